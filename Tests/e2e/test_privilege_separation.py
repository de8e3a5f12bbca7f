"""Privilege separation (issue 11): the daemon is two processes. The monitor
(gatehoused as started, root) keeps PAM, the keys, the audit log and the
Lockbox database; the network side (the same binary, re-executed) runs
libssh, the sessions and the interpreter as gatehouse-net with no
capability, no new privileges and a seccomp filter. These tests read the
kernel's own view (/proc), kill the network side mid-session, and try the
monitor's files as the network side's account."""
import asyncio
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gatehouse_harness import Gateway, connect, run, run_exec

ACCOUNT = "gatehouse-net"


def proc_status(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


def network_pid(gw: Gateway, other_than=None, timeout=10) -> int:
    """The monitor's child running `gatehoused --network-side` (waiting for
    one other than `other_than`, after a restart)."""
    deadline = time.time() + timeout
    while True:
        children = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
        for child in map(int, children):
            try:
                argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if b"--network-side" in argv and child != other_than:
                return child
        if time.time() > deadline:
            raise AssertionError(f"no network side among the monitor's children {children}:\n{gw.daemon_log()}")
        time.sleep(0.05)


@pytest.fixture
def own(tmp_path):
    gw = Gateway(tmp_path / "state", config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
    yield gw
    gw.stop()


def test_the_network_side_is_unprivileged_and_confined(gateway):
    pid = network_pid(gateway)
    assert pid != gateway.proc.pid
    status = proc_status(pid)
    uid = pwd.getpwnam(ACCOUNT).pw_uid
    gid = pwd.getpwnam(ACCOUNT).pw_gid
    assert status["Uid"].split() == [str(uid)] * 4, status["Uid"]
    assert status["Gid"].split() == [str(gid)] * 4, status["Gid"]
    assert status["Groups"].split() == [str(gid)], status["Groups"]
    for capabilities in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]:
        assert status[capabilities] == "0000000000000000", (capabilities, status[capabilities])
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2", "seccomp filter mode"
    # Every thread, not only the first, runs under the filter (TSYNC).
    for task in Path(f"/proc/{pid}/task").iterdir():
        assert proc_status(int(task.name))["Seccomp"] == "2", task
    monitor = proc_status(gateway.proc.pid)
    assert monitor["Uid"].split()[0] == "0", "the monitor is root"
    assert monitor["Seccomp"] == "0"
    # Of the state directory it holds only the directory file the monitor
    # opened for it: no host key file, audit log, signing key or Lockbox database.
    opened = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    state = str(gateway.state_dir) + "/"
    assert {path for path in opened if path.startswith(state)} == {state + "directory.yaml"}, opened


def test_the_network_side_account_cannot_read_the_monitor_s_secrets(gateway):
    """As gatehouse-net (setpriv, the same uid, gid and no other group),
    every secret of the monitor is refused by the file system itself."""
    state = gateway.state_dir
    secrets = [state / "audit-signing.key", state / "lockbox.sqlite", state / "audit.log",
               state / "ssh_host_ecdsa_key", state / "oath" / "users.oath", state / "pam.d",
               state / "demo-users.json"]
    if (state / "transcripts").exists():
        secrets.append(state / "transcripts")
    for path in secrets:
        assert path.exists(), path
        result = subprocess.run(["setpriv", f"--reuid={ACCOUNT}", f"--regid={ACCOUNT}", "--clear-groups",
                                 "--inh-caps=-all", "cat", str(path)], capture_output=True, timeout=10)
        assert result.returncode != 0 and b"Permission denied" in result.stderr, (path, result)
    # The Lockbox database is private even without the state directory's mode.
    assert (state / "lockbox.sqlite").stat().st_mode & 0o077 == 0
    # What it does read, it reads through the descriptors the monitor opened:
    # the policy directory, as that account.
    policies = Path(__file__).resolve().parents[2] / "policies"
    result = subprocess.run(["setpriv", f"--reuid={ACCOUNT}", f"--regid={ACCOUNT}", "--clear-groups",
                             "ls", str(policies / "cmdlets")], capture_output=True, timeout=10)
    assert result.returncode == 0, result


def test_kill_9_of_the_network_side_ends_the_session_on_the_monitor_and_a_new_one_serves(own):
    gw = own
    first = network_pid(gw)

    async def session_then_kill():
        async with await connect(gw, "alice") as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.sleep(0.3)
            proc.stdin.write("Get-Mailbox -Identity bob\r")
            text = ""
            while "bob@contoso.com" not in text:
                text += await asyncio.wait_for(proc.stdout.read(4096), 10)
            await asyncio.to_thread(gw.wait_for_audit, lambda e: e["kind"] == "command.finished")
            os.kill(first, signal.SIGKILL)
            # The connection goes with the process that held it.
            await asyncio.wait_for(proc.wait_closed(), 10)

    try:
        run(session_then_kill())
    except Exception:
        pass  # the connection dies with the network side
    session = [e for e in gw.audit_events() if e["kind"] == "session.start" and e.get("user") == "alice"][-1]["session"]
    end = gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("session") == session)
    assert end["user"] == "alice"
    assert end["fields"]["reason"] == "error", end
    assert "ended" in end["fields"]["detail"], end
    assert gw.proc.poll() is None, "the monitor lives on"
    # What the session did before the kill is all there.
    ran = [e for e in gw.audit_events() if e.get("session") == session and e["kind"].startswith("command.")]
    assert [e["kind"] for e in ran] == ["command.allowed", "command.finished"], ran

    verify = gw.cli("audit", "verify")
    assert verify.stdout.startswith("OK:"), verify.stdout

    # A fresh network side accepts on the same socket, confined like the first.
    result = run(run_exec(gw, "alice", "Get-Mailbox -Identity alice"))
    assert result.exit_status == 0 and "alice@contoso.com" in result.stdout, result
    # It accepted, so it had entered its sandbox first.
    second = network_pid(gw, other_than=first)
    assert proc_status(second)["Seccomp"] == "2"
    assert "network side ended" in gw.daemon_log(tail=20000)
    last = [e for e in gw.audit_events() if e["kind"] == "session.start"][-1]["session"]
    assert last != session
    gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("session") == last)
    # Nothing was lost: every event in order, one end per start.
    events = gw.audit_events()
    starts = [e["session"] for e in events if e["kind"] == "session.start"]
    ends = [e["session"] for e in events if e["kind"] == "session.end"]
    assert sorted(starts) == sorted(ends), (starts, ends)
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] + len(events)))


def test_the_operator_lists_and_kills_a_session_held_by_the_network_side(own):
    gw = own

    async def listed_then_killed():
        async with await connect(gw, "bob") as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.sleep(0.3)
            listing = await asyncio.to_thread(gw.cli, "sessions", "list", "--live", "--json")
            session = [e for e in gw.audit_events() if e["kind"] == "session.start"][-1]["session"]
            assert session in listing.stdout and '"bob"' in listing.stdout, listing.stdout
            await asyncio.to_thread(gw.cli, "sessions", "kill", session, "--reason", "maintenance")
            text = ""
            try:
                while True:
                    chunk = await asyncio.wait_for(proc.stdout.read(4096), 10)
                    if not chunk:
                        break
                    text += chunk
            except Exception:
                pass
            return session, text

    session, text = run(listed_then_killed())
    assert "ended by an operator: maintenance" in text, text
    end = gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("session") == session)
    assert end["fields"]["reason"] == "killed", end
    killed = gw.wait_for_audit(lambda e: e["kind"] == "session.kill" and e.get("session") == session)
    assert killed["user"] == "bob"


def test_a_network_side_that_keeps_dying_stops_the_daemon_for_systemd(own):
    """Restarts are rate-limited: the sixth death within a minute ends the
    daemon with status 1 (systemd's Restart=on-failure takes over) instead
    of a crash loop inside it."""
    gw = own
    pid = None
    for _ in range(6):
        pid = network_pid(gw, other_than=pid)
        os.kill(pid, signal.SIGKILL)
    assert gw.proc.wait(20) == 1, gw.daemon_log()
    assert "network side ended 6 times within 60 s; exiting" in gw.daemon_log(tail=20000)
    verify = gw.cli("audit", "verify")
    assert verify.stdout.startswith("OK:"), verify.stdout


def test_the_network_side_does_not_outlive_the_monitor(own):
    """kill -9 of the monitor: the network side sees its channel end and
    exits at once, so no unmonitored process is left serving."""
    gw = own
    pid = network_pid(gw)
    os.kill(gw.proc.pid, signal.SIGKILL)
    gw.proc.wait(10)
    def gone():
        try:
            return proc_status(pid)["State"].startswith("Z")
        except FileNotFoundError:
            return True

    deadline = time.time() + 10
    while not gone():
        assert time.time() < deadline, f"the network side {pid} outlived its monitor"
        time.sleep(0.05)
    with pytest.raises(OSError):
        socket_banner(gw)


def socket_banner(gw):
    import socket
    with socket.create_connection((gw.host, gw.port), timeout=2) as s:
        return s.recv(256)


def test_a_backend_running_when_the_network_side_dies_is_killed_by_the_monitor(tmp_path):
    """The backend is the monitor's child: when the network side dies mid
    command, the monitor kills it with its group and reaps it, then writes
    the session's end."""
    from limits_fixtures import policy_with_wait
    gw = Gateway(tmp_path / "state", extra_args=["--policy-dir", str(policy_with_wait(tmp_path))],
                 config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
    try:
        network = network_pid(gw)

        def sleepers():
            found = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        argv = (entry / "cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if argv[:2] == [b"/bin/sleep", b"321"]:
                        found.append(int(entry.name))
            return found

        async def run_then_kill():
            async with await connect(gw, "alice") as conn:
                proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
                await asyncio.sleep(0.3)
                proc.stdin.write("Start-Wait 321\r")
                deadline = time.time() + 10
                while not sleepers():
                    assert time.time() < deadline, "the backend did not start"
                    await asyncio.sleep(0.05)
                os.kill(network, signal.SIGKILL)
                await asyncio.wait_for(proc.wait_closed(), 10)

        try:
            run(run_then_kill())
        except Exception:
            pass
        session = [e for e in gw.audit_events() if e["kind"] == "session.start"][-1]["session"]
        gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("session") == session)
        assert sleepers() == [], "the backend outlived the network side"
        assert gw.cli("audit", "verify").stdout.startswith("OK:")
    finally:
        gw.stop()
