"""`gatehouse mfa enroll|reset`: a user's TOTP secret in pam_oath's users file.

The real CLI runs; its terminal QR code is read back into a bitmap and
decoded by zbarimg (zbar-tools), and codes are compared with oathtool, the
OATH Toolkit's own implementation of what pam_oath checks."""
import base64
import os
import re
import shutil
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gatehouse_harness import BUILD, REPO, Gateway, expect_refused, run, run_exec, totp

URI = re.compile(r"^otpauth://totp/Gatehouse:([a-z0-9._-]+)\?secret=([A-Z2-7]+)"
                 r"&issuer=Gatehouse&algorithm=SHA1&digits=6&period=30$")

# Other users' entries as pam_oath leaves them (counter, last code, time of
# use), a comment, a blank line, and a tab: all must survive byte for byte.
OTHERS = (b"# pam_oath users, one line per token\n"
          b"HOTP/T30 bob - 3132333435363738393031323334353637383930 0 755224 2026-12-06T10:00:00L\n"
          b"\n"
          b"HOTP/T30\tcarol - 00112233445566778899aabbccddeeff00112233\n")

needs_tools = pytest.mark.skipif(not (shutil.which("zbarimg") and shutil.which("oathtool")),
                                 reason="zbarimg (zbar-tools) and oathtool are needed: scripts/install-deps")


def mfa(state: Path, command, *args, directory=REPO / "policies" / "directory.yaml"):
    return subprocess.run([str(BUILD / "gatehouse"), "mfa", command, "--state-dir", str(state),
                           "--directory", str(directory), *args], capture_output=True, timeout=60)


def state_dir(tmp_path: Path, contents: bytes | None = OTHERS) -> Path:
    state = tmp_path / "state"
    (state / "oath").mkdir(parents=True)
    if contents is not None:
        users = state / "oath" / "users.oath"
        users.write_bytes(contents)
        users.chmod(0o600)
    return state


def terminal_qr_to_pbm(lines: list[str], path: Path, light_terminal=False, scale=4):
    """The half-block QR code as a PBM bitmap (1 = black). On a dark terminal
    the drawn half-cells are the light modules; on a light one, the dark."""
    halves = {" ": (False, False), "\u2580": (True, False), "\u2584": (False, True), "\u2588": (True, True)}
    rows = []
    for line in lines:
        top, bottom = zip(*(halves[c] for c in line))
        rows += [top, bottom]
    black = [[drawn == light_terminal for drawn in row] for row in rows]
    # The terminal's own background around the code is dark on a dark
    # terminal: give the image a white margin, as the screen a phone sees
    # would be cropped, so only the printed quiet zone is tested.
    width = len(black[0])
    pixels = [[b for b in row for _ in range(scale)] for row in black for _ in range(scale)]
    pbm = f"P1\n{width * scale} {len(pixels)}\n" + "\n".join(" ".join("1" if p else "0" for p in row) for row in pixels)
    path.write_text(pbm + "\n")


def printed(result, tmp_path: Path, light_terminal=False):
    """The URI the CLI printed and the one its QR code decodes to."""
    out = result.stdout.decode()
    lines = out.splitlines()
    uris = [l for l in lines if l.startswith("otpauth://")]
    assert len(uris) == 1, out
    qr = [l for l in lines if l and set(l) <= set(" \u2580\u2584\u2588") and l.strip(" ")]
    assert len(qr) > 10 and len({len(l) for l in qr}) == 1, out
    image = tmp_path / "qr.pbm"
    terminal_qr_to_pbm(qr, image, light_terminal)
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", str(image)], capture_output=True, text=True, timeout=30)
    assert decoded.returncode == 0, decoded.stderr
    return uris[0], decoded.stdout.strip()


def b32(secret: str) -> bytes:
    return base64.b32decode(secret + "=" * (-len(secret) % 8))


def oathtool(*args):
    return subprocess.run(["oathtool", "--totp", *args], capture_output=True, text=True, check=True).stdout.strip()


def entry(users: Path, user: str) -> list[str]:
    return [l for l in users.read_text().splitlines() if l.split()[1:2] == [user]]


@needs_tools
def test_enroll_prints_uri_and_qr_of_the_secret_it_wrote(tmp_path):
    state = state_dir(tmp_path)
    r = mfa(state, "enroll", "alice")
    assert r.returncode == 0, r.stderr
    uri, decoded = printed(r, tmp_path)
    assert decoded == uri
    user, secret = URI.match(uri).groups()
    assert user == "alice" and len(b32(secret)) == 20
    users = state / "oath" / "users.oath"
    [line] = entry(users, "alice")
    kind, name, pin, hex_secret = line.split()
    assert (kind, name, pin) == ("HOTP/T30", "alice", "-") and re.fullmatch(r"[0-9a-f]{40}", hex_secret)
    # What the authenticator app computes from the QR code is what pam_oath
    # computes from the file.
    assert oathtool("-b", secret) == oathtool(hex_secret)
    assert b32(secret).hex() == hex_secret
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    assert users.read_bytes() == OTHERS + line.encode() + b"\n"
    # No temp file, and no lock file: pam_oath fails every login while one exists.
    assert [p.name for p in users.parent.iterdir()] == ["users.oath"]
    # No daemon runs on this state directory: made, but said to be unaudited.
    assert "the change is made but not audited" in r.stderr.decode() and secret not in r.stderr.decode()


@needs_tools
def test_qr_for_a_light_terminal_decodes_too(tmp_path):
    state = state_dir(tmp_path, contents=None)
    r = subprocess.run([str(BUILD / "gatehouse"), "mfa", "enroll", "dave", "--light-terminal", "--state-dir", str(state),
                        "--directory", str(REPO / "policies" / "directory.yaml")], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    uri, decoded = printed(r, tmp_path, light_terminal=True)
    assert decoded == uri
    users = state / "oath" / "users.oath"
    assert stat.S_IMODE(users.stat().st_mode) == 0o600 and len(entry(users, "dave")) == 1


def test_a_first_enrolment_creates_the_oath_directory(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    assert mfa(state, "reset", "alice").returncode != 0 and not (state / "oath").exists()
    r = mfa(state, "enroll", "alice")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE((state / "oath").stat().st_mode) == 0o700
    assert [l.split()[1] for l in (state / "oath" / "users.oath").read_text().splitlines()] == ["alice"]


def test_enroll_twice_is_refused_and_points_at_reset(tmp_path):
    state = state_dir(tmp_path)
    assert mfa(state, "enroll", "alice").returncode == 0
    users = state / "oath" / "users.oath"
    before = users.read_bytes()
    r = mfa(state, "enroll", "alice")
    assert r.returncode != 0 and r.stdout == b""
    assert "'alice' already has a TOTP entry" in r.stderr.decode()
    assert "gatehouse mfa reset alice" in r.stderr.decode()
    assert users.read_bytes() == before
    # bob's entry came from the file, not from this tool: refused all the same.
    r = mfa(state, "enroll", "bob")
    assert r.returncode != 0 and "already has" in r.stderr.decode()


@needs_tools
def test_reset_replaces_the_secret_in_place_and_keeps_the_rest(tmp_path):
    state = state_dir(tmp_path)
    users = state / "oath" / "users.oath"
    r = mfa(state, "reset", "bob")
    assert r.returncode == 0, r.stderr
    uri, decoded = printed(r, tmp_path)
    assert decoded == uri
    _, secret = URI.match(uri).groups()
    [line] = entry(users, "bob")
    assert line.split()[3] != "3132333435363738393031323334353637383930" and len(line.split()) == 4
    assert oathtool("-b", secret) == oathtool(line.split()[3])
    # Same place, same neighbours: only bob's line changed.
    assert users.read_bytes() == OTHERS.replace(
        b"HOTP/T30 bob - 3132333435363738393031323334353637383930 0 755224 2026-12-06T10:00:00L", line.encode())
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    r2 = mfa(state, "reset", "bob")
    assert r2.returncode == 0 and URI.match(printed(r2, tmp_path)[0]).group(2) != secret


def test_reset_refuses_a_user_without_an_entry(tmp_path):
    state = state_dir(tmp_path)
    users = state / "oath" / "users.oath"
    r = mfa(state, "reset", "dave")
    assert r.returncode != 0 and "'dave' has no TOTP entry" in r.stderr.decode()
    assert "gatehouse mfa enroll dave" in r.stderr.decode()
    assert users.read_bytes() == OTHERS


def test_a_file_without_a_final_newline_keeps_its_last_line(tmp_path):
    state = state_dir(tmp_path, contents=OTHERS.rstrip(b"\n"))
    assert mfa(state, "enroll", "alice").returncode == 0
    text = (state / "oath" / "users.oath").read_bytes()
    assert text.startswith(OTHERS) and text.count(b"\n") == OTHERS.count(b"\n") + 1


@pytest.mark.parametrize("name, problem", [
    ("bob smith", "contains whitespace"),
    ("al\x1b[2Jice", "contains a control character (U+001B)"),
    ("Alice", "has upper-case letters"),
    ("-alice", "is not an account name"),
    ("", "is empty"),
    ("a" * 33, "is longer than 32 bytes"),
])
def test_unsafe_user_names_are_refused_with_the_reason(tmp_path, name, problem):
    state = state_dir(tmp_path)
    r = mfa(state, "enroll", "--", name) if name.startswith("-") else mfa(state, "enroll", name)
    assert r.returncode != 0 and problem in r.stderr.decode(), r.stderr
    assert b"\x1b" not in r.stderr
    assert (state / "oath" / "users.oath").read_bytes() == OTHERS


def test_a_lock_file_left_behind_is_named_not_waited_on_forever(tmp_path):
    """pam_oath's lock is <file>.lock created exclusively; one nobody holds
    was left by a crash (and fails every login): the CLI says so."""
    state = state_dir(tmp_path)
    lock = state / "oath" / "users.oath.lock"
    lock.write_bytes(b"")
    r = mfa(state, "enroll", "alice")
    assert r.returncode != 0 and "exists but no process holds it" in r.stderr.decode(), r.stderr
    assert lock.exists() and (state / "oath" / "users.oath").read_bytes() == OTHERS and r.stdout == b""


def test_a_user_outside_the_directory_is_refused(tmp_path):
    state = state_dir(tmp_path)
    r = mfa(state, "enroll", "mallory")
    assert r.returncode != 0 and "'mallory' is not a user in the directory" in r.stderr.decode()
    assert (state / "oath" / "users.oath").read_bytes() == OTHERS


def test_concurrent_enrolments_lose_no_entry(tmp_path):
    names = [f"user{i}" for i in range(12)]
    directory = tmp_path / "directory.yaml"
    directory.write_text("users:\n" + "".join(f"  {n}:\n    roles: []\n    keys: []\n" for n in names))
    state = state_dir(tmp_path)
    with ThreadPoolExecutor(len(names)) as pool:
        results = list(pool.map(lambda n: mfa(state, "enroll", n, directory=directory), names))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    users = state / "oath" / "users.oath"
    assert users.read_bytes().startswith(OTHERS)
    assert sorted(l.split()[1] for l in users.read_text().splitlines()[len(OTHERS.splitlines()):]) == sorted(names)


def test_the_demo_state_directory_is_found_without_options(tmp_path):
    """The demo's layout: directory.yaml and oath/users.oath in the state directory."""
    state = state_dir(tmp_path)
    shutil.copy(REPO / "policies" / "directory.yaml", state / "directory.yaml")
    r = subprocess.run([str(BUILD / "gatehouse"), "mfa", "enroll", "carol", "--state-dir", str(state)],
                       capture_output=True, timeout=60)
    assert r.returncode != 0 and "'carol' already has" in r.stderr.decode()
    r = subprocess.run([str(BUILD / "gatehouse"), "mfa", "enroll", "alice", "--state-dir", str(state)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_a_reset_secret_logs_in_through_pam_oath_and_the_old_one_does_not(tmp_path):
    """End to end: the daemon's real PAM stack (pam_oath in a PAM worker)
    accepts a code of the new secret and refuses one of the old."""
    gw = Gateway(tmp_path / "gw", config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
    try:
        old_hex = gw.users["dave"]["totpSecretHex"]
        r = gw.cli("mfa", "reset", "dave")
        [uri] = [l for l in r.stdout.splitlines() if l.startswith("otpauth://")]
        secret = URI.match(uri).group(2)
        new_hex = b32(secret).hex()
        assert new_hex != old_hex
        result = run(run_exec(gw, "dave", "Get-Mailbox -Identity dave", code=totp(new_hex)))
        assert result.exit_status == 0, result.stderr
        expect_refused(gw, run_exec(gw, "dave", "Get-Mailbox -Identity dave", code=totp(old_hex)))
        gw.assert_serving()
        # The daemon audited the reset for the CLI: user and operator, no secret.
        event = gw.wait_for_audit(lambda e: e["kind"] == "mfa.reset")
        assert event["user"] == "dave" and event["fields"]["operatorUID"] == str(os.geteuid())
        assert "the audit log records mfa.reset" in r.stdout and "not audited" not in r.stderr
        log = (gw.state_dir / "audit.log").read_text()
        assert secret not in log and new_hex not in log
        assert gw.cli("audit", "verify").returncode == 0
    finally:
        gw.stop()
