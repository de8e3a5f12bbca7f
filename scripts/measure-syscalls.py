#!/usr/bin/env python3
"""Measures which system calls the network process makes on the e2e paths
once its seccomp filter is in force, for
Sources/Sandbox/NetworkSideSyscalls.swift. Needs strace and a debug build
(`swift build --build-tests`); run as `.venv/bin/python scripts/measure-syscalls.py`.

With `--web`, the same for the console process (`gatehouse-web`) through the
console's e2e tests, from its `PR_SET_NO_NEW_PRIVS` on, for
Sources/Sandbox/WebConsoleSyscalls.swift: the monitor starts the
`gatehouse-web` beside its own executable, so the daemon is a copy in the
wrapper directory and `gatehouse-web` there runs the real one under strace.
Two tests of test_console_process.py fail under the wrapper (they look for
the console's own process, which is strace's child there), and `seccomp`,
the call that installs the filter, is reported as measured and not listed.

The e2e harness starts `$GATEHOUSE_BUILD/gatehoused`; here that is a wrapper
running the real one under `strace -D -ff -ttt` (one trace file per thread,
with times; -D keeps the daemon's own pid, so the tests' SIGHUP and SIGTERM
reach it). Of the traces, only the network process's threads count: the
one that execs `--network-side`, and the threads it and they clone. Only
calls after its `seccomp(SECCOMP_SET_MODE_FILTER)` count. Prints each call
with where it was seen (main thread, other threads), then how the union
compares with NetworkSideSyscalls."""
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEBUG = REPO / ".build" / "debug"
SELECTION = [
    "test_auth.py::test_key_and_totp_logs_in", "test_auth.py::test_wrong_code_is_refused",
    "test_auth.py::test_pam_prompt_reaches_the_client", "test_commands.py", "test_channels.py",
    "test_transcripts.py::test_shell_session_is_recorded_and_plays_in_real_asciinema",
    "test_transcripts.py::test_exec_session_records_its_output_stream",
    "test_lockbox.py::test_full_path_alice_bob_carol_secret_elevation_set_mailbox",
    "test_lockbox.py::test_revocation_is_announced_at_once_and_takes_effect_at_the_next_command",
    "test_session_limits.py::test_operator_lists_and_kills_a_live_session_mid_command",
    "test_hostile.py::test_window_change_flood_is_harmless",
    "test_hardening.py::test_sighup_reload_keeps_old_policy_on_error_and_applies_a_good_one",
    "test_hardening.py::test_sigterm_tells_sessions_ends_backends_and_exits_promptly",
]


WEB_SELECTION = ["test_console_browser.py", "test_activity_api.py", "test_console_hostile.py",
                 "test_console_process.py"]


def web_threads(files: dict) -> tuple:
    """The console process's threads and when it set PR_SET_NO_NEW_PRIVS."""
    roots = [tid for tid, text in files.items() if re.search(r'execve\("[^"]*gatehouse-web"', text)]
    return thread_family(files, roots, r"prctl\(PR_SET_NO_NEW_PRIVS")


def wrapper_build(work: Path, traced="gatehoused", flags="-D -ff -ttt -qq", copied=()) -> Path:
    """A build directory like the debug one in which `traced` runs under
    `strace flags`, one trace directory per start under work/traces. The
    programs in `copied` are real copies rather than links, so that their
    /proc/self/exe is this directory (the monitor starts the gatehouse-web
    beside its own executable)."""
    bin_dir, traces = work / "bin", work / "traces"
    bin_dir.mkdir()
    traces.mkdir()
    for entry in DEBUG.iterdir():
        if entry.name in copied:
            shutil.copy2(entry, bin_dir / entry.name)
        elif entry.name != traced:
            (bin_dir / entry.name).symlink_to(entry.resolve())
    wrapper = bin_dir / traced
    wrapper.write_text(f'#!/bin/sh\nd={traces}/$$\nmkdir -p "$d"\n'
                       f'exec /usr/bin/strace {flags} -o "$d/t" {DEBUG.resolve() / traced} "$@"\n')
    wrapper.chmod(0o755)
    return bin_dir


async def shell_keys(gw):
    """What no e2e test types: tab completion, Ctrl-C on a line and during a
    command, Ctrl-U, window changes."""
    from gatehouse_harness import connect
    async with await connect(gw, "alice") as conn:
        proc = await conn.create_process(term_type="xterm-256color", term_size=(120, 40))
        for keys in ["Get-Mail", "\t", "\x03", "abc\x15", "Get-Mailbox -Identity bob\r\x03", "Get-Help\r"]:
            proc.stdin.write(keys)
            await asyncio.sleep(0.3)
            proc.change_terminal_size(80 + len(keys), 24)
        proc.stdin.write("exit\r")
        await asyncio.wait_for(proc.stdout.read(), 10)


LINE = re.compile(r"^(\d+\.\d+) (?:<\.\.\. )?([a-z_0-9]+)[( ]")


def network_threads(files: dict) -> tuple:
    """The network process's thread ids (its exec'd main thread and every
    thread cloned from one of them) and when its filter went in."""
    roots = [tid for tid, text in files.items()
             if re.search(r'execve\("[^"]*", \[[^\]]*"--network-side"', text)]
    return thread_family(files, roots, r"seccomp\(SECCOMP_SET_MODE_FILTER")


def thread_family(files: dict, roots: list, marker: str) -> tuple:
    """The threads of the processes that `roots` began (each root and every
    thread cloned from a member), the roots, and the first time a root made
    the call `marker` matches successfully (None if none did)."""
    members, queue, since = set(), list(roots), None
    for root in roots:
        m = re.search(rf"^(\d+\.\d+) {marker}.* = 0$", files[root], re.M)
        if m:
            since = min(float(m.group(1)), since or float("inf"))
    while queue:
        tid = queue.pop()
        if tid in members:
            continue
        members.add(tid)
        for m in re.finditer(r"^\S+ clone3?\((.*)\) = (\d+)$", files.get(tid, ""), re.M):
            if "CLONE_THREAD" in m.group(1):
                queue.append(int(m.group(2)))
    return members, roots, since


def union(traces: Path, threads=None, examples=None):
    """Each call seen, with where (main thread, other threads); `examples`
    collects a few distinct argument lists per call."""
    seen = collections.defaultdict(set)
    for daemon in traces.iterdir():
        files = {int(t.name.split(".")[1]): t.read_text(errors="replace") for t in daemon.iterdir()}
        members, roots, since = (threads or network_threads)(files)
        if since is None:
            continue
        for tid in members:
            kind = "main" if tid in roots else "thread"
            for line in files[tid].splitlines():
                m = LINE.match(line)
                if m and float(m.group(1)) > since:
                    seen[m.group(2)].add(kind)
                    if examples is not None and len(examples[m.group(2)]) < 6:
                        examples[m.group(2)].add(line.split(" ", 1)[1][:160])
    return seen


def listed(name="NetworkSideSyscalls"):
    path = REPO / "Sources" / "Sandbox" / f"{name}.swift"
    if not path.exists():
        return set()
    text = path.read_text()
    body = re.sub(r"//.*", "", text[text.index(f"public enum {name}"):])
    return set(re.findall(r"(?<![A-Za-z_])\.([a-z_0-9]+)\b(?=[,\]:])", body))


def report(seen, name):
    for call in sorted(seen):
        print(f"{call:24} {','.join(sorted(seen[call]))}")
    names = listed(name)
    print(f"\nmeasured, not in {name}:", " ".join(sorted(set(seen) - names)))
    print(f"in {name}, not measured:", " ".join(sorted(names - set(seen))))


def main_web():
    with tempfile.TemporaryDirectory(prefix="gatehouse-web-syscalls-") as tmp:
        work = Path(tmp)
        bin_dir = wrapper_build(work, "gatehouse-web", "-ff -ttt -qq", copied=("gatehoused",))
        env = {**os.environ, "GATEHOUSE_BUILD": str(bin_dir)}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        *[f"Tests/e2e/{t}" for t in WEB_SELECTION]], cwd=REPO, env=env, check=False)
        examples = collections.defaultdict(set)
        seen = union(work / "traces", web_threads, examples)
    report(seen, "WebConsoleSyscalls")
    print("\nexamples:")
    for call in sorted(examples):
        for example in sorted(examples[call]):
            print(f"  {example}")


def main():
    if "--web" in sys.argv[1:]:
        return main_web()
    with tempfile.TemporaryDirectory(prefix="gatehouse-syscalls-") as tmp:
        work = Path(tmp)
        bin_dir = wrapper_build(work)
        env = {**os.environ, "GATEHOUSE_BUILD": str(bin_dir)}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        *[f"Tests/e2e/{t}" for t in SELECTION]], cwd=REPO, env=env, check=False)
        os.environ["GATEHOUSE_BUILD"] = str(bin_dir)
        sys.path.insert(0, str(REPO / "Tests" / "e2e"))
        import gatehouse_harness
        gatehouse_harness.BUILD = bin_dir
        gw = gatehouse_harness.Gateway(work / "state", config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
        try:
            asyncio.run(shell_keys(gw))
        finally:
            gw.stop()
        seen = union(work / "traces")
    report(seen, "NetworkSideSyscalls")


if __name__ == "__main__":
    main()
