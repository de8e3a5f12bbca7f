"""Runs the real gatehoused on loopback for end-to-end tests, and logs in with
real SSH clients (asyncssh, paramiko, OpenSSH's ssh).

The daemon is started exactly as `make demo` starts it (`gatehoused --demo`),
in a private state directory and on an ephemeral port. In demo mode the daemon
loads PAM through pam_wrapper with its own service directory, so the real
pam_oath module checks every TOTP code and /etc/pam.d is never touched.

pam_oath refuses a code that was already used (replay protection), and tests
log in many times within one 30-second step. `fresh_totp` therefore rewrites
the pam_oath users file without its "last used" fields before handing out a
code; `test_auth.py` checks the replay protection itself without that reset.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import asyncssh

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("GATEHOUSE_BUILD", REPO / ".build" / "debug"))


def totp(secret_hex: str, at: float | None = None, step: int = 30, digits: int = 6) -> str:
    """RFC 6238 TOTP (HMAC-SHA1), as pam_oath's HOTP/T30 expects."""
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(bytes.fromhex(secret_hex), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


def read_json_lines(path: Path) -> list:
    """The complete JSON lines of a file another process is appending to. A
    last line without its newline is a write still in progress (a reader can
    see part of it), so it is left for the next read; every complete line
    must parse."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    complete = lines[:-1]   # the part after the last newline is unfinished (or empty)
    return [json.loads(line) for line in complete if line.strip()]


class Gateway:
    """One running daemon with its demo state directory."""

    def __init__(self, state_dir: Path, extra_args=(), config=None):
        """`config`: settings for a `--config` file (short test timeouts);
        the demo reads it over its own settings."""
        self.state_dir = Path(state_dir)
        self.extra_args = list(extra_args)
        if config:
            self.config_path = self.state_dir.parent / (self.state_dir.name + ".gatehouse.yaml")
            self.config_path.parent.mkdir(parents=True, exist_ok=True)
            self.config_path.write_text("".join(f"{k}: {json.dumps(str(v))}\n" for k, v in config.items()))
            self.extra_args += ["--config", str(self.config_path)]
        self.proc = None
        self.log_path = self.state_dir.parent / (self.state_dir.name + ".daemon.log")

    # -- lifecycle ---------------------------------------------------------
    def start(self, timeout=30):
        manifest = self.state_dir / "demo-users.json"
        # `reuse_users`: keep the demo users (keys, TOTP secrets) the state
        # directory already has, as a second node of one fleet must; the
        # daemon then rewrites known_hosts last, which is what is waited for.
        stale = (self.state_dir / "known_hosts") if getattr(self, "reuse_users", False) else manifest
        if stale.exists():
            stale.unlink()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PAM_WRAPPER")}
        env.pop("LD_PRELOAD", None)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*getattr(self, "launcher", []), str(BUILD / "gatehoused"), "--demo", "--state-dir", str(self.state_dir),
             "--listen", "127.0.0.1:0", *self.extra_args],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            **getattr(self, "popen_kwargs", {}))
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gatehoused exited with {self.proc.returncode}:\n{self.daemon_log()}")
            # The demo writes the manifest, then known_hosts: wait for both.
            if manifest.exists() and (self.state_dir / "known_hosts").exists():
                try:
                    self.manifest = json.loads(manifest.read_text())
                    break
                except json.JSONDecodeError:
                    pass
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"gatehoused did not come up:\n{self.daemon_log()}")
        host, port = self.manifest["listen"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.users = {u["name"]: u for u in self.manifest["users"]}
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()

    def daemon_log(self, tail=4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def assert_serving(self):
        """The daemon process is alive and still answers a new connection with
        its SSH identification line."""
        assert self.proc.poll() is None, f"gatehoused exited with {self.proc.returncode}:\n{self.daemon_log()}"
        with socket.create_connection((self.host, self.port), timeout=10) as s:
            banner = s.recv(256)
        assert banner.startswith(b"SSH-2.0-"), f"no SSH banner from the daemon: {banner!r}"

    def rss_kib(self) -> int:
        """The daemon's resident set size (VmRSS), KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cli(self, *args, check=True):
        """Runs the operator tool `gatehouse` against this daemon's state directory."""
        result = subprocess.run([str(BUILD / "gatehouse"), *args, "--state-dir", str(self.state_dir)],
                                capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise RuntimeError(f"gatehouse {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def wait_for_audit(self, predicate, timeout=10):
        """The first audit event matching `predicate`, waiting for it to be written."""
        deadline = time.time() + timeout
        while True:
            for event in self.audit_events():
                if predicate(event):
                    return event
            if time.time() > deadline:
                raise AssertionError("no matching audit event; last: "
                                     + json.dumps(self.audit_events()[-5:], indent=1))
            time.sleep(0.05)

    # -- state the tests inspect ------------------------------------------
    def audit_events(self):
        return read_json_lines(self.state_dir / "audit.log")

    def invocations(self):
        return read_json_lines(self.state_dir / "mailboxes" / "invocations.log")

    def mailbox_data(self) -> str:
        return (self.state_dir / "mailboxes" / "mailboxes.json").read_text()

    # -- credentials -------------------------------------------------------
    def reset_totp_replay(self):
        oath = self.state_dir / "oath" / "users.oath"
        lines = [" ".join(l.split()[:4]) for l in oath.read_text().splitlines() if l.strip()]
        tmp = oath.with_suffix(".reset")
        tmp.write_text("\n".join(lines) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, oath)

    def fresh_totp(self, user: str) -> str:
        self.reset_totp_replay()
        return totp(self.users[user]["totpSecretHex"])

    def key(self, user: str):
        return asyncssh.read_private_key(self.users[user]["privateKey"])

    def known_hosts(self) -> str:
        return str(self.state_dir / "known_hosts")


class KbdintClient(asyncssh.SSHClient):
    """Answers every keyboard-interactive prompt with `answers` and records the prompts."""

    def __init__(self, answers):
        self.answers = answers
        self.prompts = []
        self.instructions = []
        self.lost = None

    def connection_lost(self, exc):
        """Keeps why the server ended the connection (its disconnect message)."""
        self.lost = exc

    def kbdint_auth_requested(self):
        return ""

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        self.instructions.append(instructions)
        self.prompts.extend(p for p, _ in prompts)
        if not prompts:
            return []
        if self.answers is None:
            return None
        return [self.answers() if callable(self.answers) else self.answers for _ in prompts]


async def connect(gw: Gateway, user: str, code=None, key="own", kbdint=True, **kwargs):
    """Connects with publickey and keyboard-interactive, as a real engineer would."""
    if code is None and kbdint:
        code = gw.fresh_totp(user)
    client_keys = [] if key is None else [gw.key(user if key == "own" else key)]
    client = KbdintClient(code if kbdint else None)
    methods = (["publickey"] if key is not None else []) + (["keyboard-interactive"] if kbdint else [])
    conn, _ = await asyncssh.create_connection(
        lambda: client, gw.host, gw.port, username=user, client_keys=client_keys,
        known_hosts=gw.known_hosts(), preferred_auth=methods, agent_path=None,
        password=None, login_timeout=15, **kwargs)
    conn.test_client = client
    return conn


async def run_exec(gw: Gateway, user: str, command: str, **kwargs):
    async with await connect(gw, user, **kwargs) as conn:
        result = await conn.run(command, check=False)
        return result


def run(coro):
    return asyncio.run(coro)


def expect_refused(gw: Gateway, coro, codes=None, closed_is_refusal=False):
    """Runs `coro`, a login that the daemon must refuse, and checks that it did.

    A refusal is the server saying no: asyncssh's PermissionDenied (no
    authentication method left), or a disconnect message the server sent
    itself. A lost connection (asyncssh's ConnectionLost, a DisconnectError
    too) and OS-level errors (refused, reset, broken pipe) are what a dead or
    crashed daemon produces, so they fail the test. The daemon must also
    still be serving afterwards. `codes`: the disconnect codes that count as
    a refusal (default REFUSAL_CODES). `closed_is_refusal`: the server's way
    of saying no is to close the connection without a message (libssh does
    that when key exchange finds no common algorithm); then only the daemon
    serving afterwards tells the refusal from a crash."""
    try:
        run(coro)
    except asyncssh.ConnectionLost as e:
        if not closed_is_refusal:
            raise AssertionError(f"the connection was lost, not refused: {e!r}") from e
    except OSError as e:
        raise AssertionError(f"no SSH server answered: {e!r}") from e
    except asyncssh.DisconnectError as e:
        # PermissionDenied is a DisconnectError with this code; a server-sent
        # disconnect carries the server's own code.
        assert e.code in (REFUSAL_CODES if codes is None else codes), f"not a refusal: {e!r} (code {e.code})"
    else:
        raise AssertionError("the login was not refused")
    gw.assert_serving()


# Disconnect codes (RFC 4253 11.1) a refusing server sends: no method left,
# too many failed tries or a limit, an unknown user or a policy block.
REFUSAL_CODES = {asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, asyncssh.DISC_BY_APPLICATION,
                 asyncssh.DISC_TOO_MANY_CONNECTIONS, asyncssh.DISC_ILLEGAL_USER_NAME,
                 asyncssh.DISC_HOST_NOT_ALLOWED_TO_CONNECT}
