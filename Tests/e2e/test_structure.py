"""The target graph: Package.swift, docs/architecture.md and the sources'
own `import` lines must say the same thing, and the privilege rules of
DESIGN.md must hold (only SSHServer touches libssh, only PAMAuth touches
PAM and the dynamic linker, the pure libraries import neither, Lockbox does not import the cmdlet
policy). Read from `swift package dump-package`, so what is checked is what
SwiftPM builds."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWIFT = shutil.which("swift") or "/opt/swift/usr/bin/swift"

# The libraries whose imports the table states exactly.
EXACT = ["GatehouseCore", "SSHServer", "PAMAuth", "PolicyFormat", "Directory", "CmdletPolicy",
         "CmdletShell", "Lockbox", "Transcript", "Sandbox", "PostgresStore",
         "ConsoleCore", "gatehouse-web"]
C_MODULES = {"CLibSSH", "CPAM", "CDynamicLinker", "CSandbox", "CQREncode"}
PURE = ["PolicyFormat", "Directory", "CmdletPolicy", "CmdletShell", "Lockbox", "Transcript", "ConsoleCore"]


def package():
    out = subprocess.run([SWIFT, "package", "dump-package"], cwd=REPO, check=True,
                         capture_output=True, text=True, env={**os.environ, "PATH": os.environ.get("PATH", "")})
    return json.loads(out.stdout)


def project_targets(pkg):
    return {t["name"]: t for t in pkg["targets"]}


def declared_project_deps(target, names):
    deps = set()
    for d in target.get("dependencies", []):
        for key in ("byName", "target"):
            if key in d:
                name = d[key][0]
                if name in names:
                    deps.add(name)
    return deps


def documented_imports():
    """`| `Target` | owns | imports |` rows of docs/architecture.md."""
    rows = {}
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3:
            continue
        names = re.findall(r"`([A-Za-z-]+)`", cells[0])
        if not names or cells[0].startswith("target"):
            continue
        imports = set() if cells[2] in ("—", "-") else {c.strip() for c in cells[2].split(",")}
        for name in names:
            rows[name] = imports
    return rows


def source_imports(target_dir: Path, names):
    found = {}
    for f in target_dir.rglob("*.swift"):
        for m in re.finditer(r"^(?:@testable\s+)?import\s+(\w+)", f.read_text(), re.M):
            if m.group(1) in names:
                found.setdefault(m.group(1), []).append(str(f.relative_to(REPO)))
    return found


def test_package_matches_the_documented_graph():
    pkg = package()
    targets = project_targets(pkg)
    documented = documented_imports()
    for name in EXACT:
        assert name in documented, f"docs/architecture.md has no row for {name}"
        declared = declared_project_deps(targets[name], set(targets))
        assert declared == documented[name], (
            f"{name}: Package.swift declares {sorted(declared)}, docs/architecture.md says {sorted(documented[name])}")


def test_sources_import_only_what_their_target_declares():
    pkg = package()
    targets = project_targets(pkg)
    names = set(targets)
    for name, target in targets.items():
        if target["type"] not in ("regular", "executable", "test"):
            continue
        default = f"Tests/{name}" if target["type"] == "test" else f"Sources/{name}"
        path = REPO / (target.get("path") or default)
        declared = declared_project_deps(target, names)
        for module, files in source_imports(path, names).items():
            assert module in declared or module == name, (
                f"{files[0]} imports {module}, which target {name} does not declare")


def test_privilege_rules_of_the_design():
    pkg = package()
    targets = project_targets(pkg)
    names = set(targets)
    importers = {m: set() for m in C_MODULES}
    for name, target in targets.items():
        for dep in declared_project_deps(target, names) & C_MODULES:
            importers[dep].add(name)
    assert importers["CLibSSH"] == {"SSHServer"}, importers["CLibSSH"]
    assert importers["CPAM"] == {"PAMAuth"}, importers["CPAM"]
    assert importers["CDynamicLinker"] == {"PAMAuth"}, importers["CDynamicLinker"]
    # libqrencode draws the enrolment QR code in the operator CLI; the daemon never maps it.
    assert importers["CQREncode"] == {"gatehouse"}, importers["CQREncode"]
    # Sandbox's own tests and helper may reach the kernel constants; no other library may.
    assert importers["CSandbox"] - {"SandboxTests", "sandbox-helper"} == {"Sandbox"}, importers["CSandbox"]
    for name in PURE:
        deps = declared_project_deps(targets[name], names)
        assert not deps & (C_MODULES | {"SSHServer", "PAMAuth", "Gateway"}), f"{name} depends on {deps}"
    assert "CmdletPolicy" not in declared_project_deps(targets["Lockbox"], names)
    # The fleet's PostgreSQL (issue 13): postgres-nio is linked only through
    # PostgresStore, and only the monitor's binary and the operator CLI link
    # that (plus the store's own tests and their race helper). The pure
    # libraries and Gateway are handed its objects, never link it.
    pg_users = {n for n, t in targets.items() if "PostgresStore" in declared_project_deps(t, names)}
    assert pg_users - {"LockboxTests", "lockbox-race-helper", "lockbox-claim-bench"} == {"gatehoused", "gatehouse"}, pg_users
    for name, target in targets.items():
        products = {d["product"][1] for d in target.get("dependencies", []) if "product" in d}
        if "postgres-nio" in products:
            assert name == "PostgresStore", f"{name} links postgres-nio directly"


def package_product_users(pkg, package_name):
    """The targets that link a product of the third-party package `package_name`."""
    users = set()
    for target in pkg["targets"]:
        for d in target.get("dependencies", []):
            if "product" in d and (d["product"][1] or "").lower() == package_name:
                users.add(target["name"])
    return users


def test_only_the_web_process_links_hummingbird_and_it_holds_no_store():
    """Issue 14: the console is a process of its own. The daemon, its network
    side (same binary) and every library stay free of Hummingbird and SwiftNIO
    (idle SSH session memory and the network side's seccomp list are
    unchanged), and gatehouse-web reaches no store, key or PAM module: it
    links neither Gateway nor Lockbox, Transcript or PAMAuth and asks the
    monitor for everything over the web channel."""
    pkg = package()
    targets = project_targets(pkg)
    assert package_product_users(pkg, "hummingbird") == {"gatehouse-web"}
    deps = declared_project_deps(targets["gatehouse-web"], set(targets))
    assert deps == {"ConsoleCore", "GatehouseCore", "Sandbox"}, deps
    # ConsoleCore (shared with the monitor) links no HTTP server either.
    assert not declared_project_deps(targets["ConsoleCore"], set(targets)) - {"GatehouseCore"}


def test_the_fuzz_target_still_compiles_against_the_libraries():
    """`make fuzz` is not part of `make test`; without this check its entry
    point rots silently when a library API changes (it did once)."""
    from gatehouse_harness import BUILD
    modules = BUILD / "Modules"
    cyaml = next((REPO / ".build" / "checkouts").glob("Yams/Sources/CYaml/include"), None)
    assert cyaml is not None, "the Yams checkout is missing; run swift build first"
    result = subprocess.run(["swiftc", "-typecheck", "-parse-as-library", "-I", str(modules), "-I", str(cyaml),
                             str(REPO / "fuzz" / "FuzzTarget.swift")], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PATH="/opt/swift/usr/bin:" + os.environ.get("PATH", "")))
    assert result.returncode == 0, result.stderr
