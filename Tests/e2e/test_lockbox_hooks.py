"""Lockbox with a policy of its own: a notification hook that records every
event (and then fails, which must not matter), and a long-running MailboxAdmin
cmdlet, to show that a backend still running when its grant ends is stopped.

This starts a second daemon (its own state directory and a copy of the
repository's policies with the two additions).
"""
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from gatehouse_harness import REPO, Gateway, read_json_lines, run, run_exec
from test_lockbox import Shell, approved_request


@pytest.fixture(scope="module")
def hooked():
    with tempfile.TemporaryDirectory(prefix="gatehouse-e2e-hooks-") as tmp:
        tmp = Path(tmp)
        policies = tmp / "policies"
        shutil.copytree(REPO / "policies", policies)
        roles = policies / "roles" / "mailbox.yaml"
        roles.write_text(roles.read_text().replace("      - Remove-Mailbox\n",
                                                   "      - Remove-Mailbox\n      - Test-LongChange\n"))
        (policies / "cmdlets" / "slow.yaml").write_text(
            "cmdlets:\n"
            "  Test-LongChange:\n"
            "    synopsis: Sleeps; stands in for a long backend run.\n"
            "    backend: {executable: /bin/sleep, argv: [\"30\"], timeout: 60s}\n"
            "    output: text\n")
        events = tmp / "notified.jsonl"
        hook = tmp / "hook.sh"
        # Records the event, then fails: a failing hook must be logged, not fatal.
        hook.write_text(f"#!/bin/sh\ncat >> {events}\nexit 3\n")
        hook.chmod(0o755)
        lockbox = policies / "lockbox.yaml"
        lockbox.write_text(lockbox.read_text().replace(
            "  admins: [lockbox-admins]\n",
            f"  admins: [lockbox-admins]\n  notify: {{command: [{hook}], timeout: 5s}}\n"))
        gw = Gateway(tmp / "state", extra_args=["--policy-dir", str(policies)]).start()
        gw.notified = events
        try:
            yield gw
        finally:
            gw.stop()


def test_notification_hook_gets_every_state_change_as_json(hooked):
    import json
    rid = approved_request(hooked)
    deadline = time.time() + 10
    kinds = []
    while time.time() < deadline:
        if hooked.notified.exists():
            records = read_json_lines(hooked.notified)
            kinds = [r["kind"] for r in records if r["fields"].get("requestID") == str(rid)]
            if len(kinds) >= 3:
                break
        time.sleep(0.1)
    assert kinds == ["lockbox.requested", "lockbox.approved", "lockbox.approved"], kinds
    assert "notification hook failed with status 3" in hooked.daemon_log()


def test_backend_running_when_the_grant_ends_is_stopped(hooked):
    rid = approved_request(hooked, duration="4s")

    async def scenario():
        shell = await Shell.open(hooked, "alice")
        try:
            secret = await shell.fetch_secret(rid)
            assert "Elevated" in await shell.elevate(rid, secret)
            started = time.monotonic()
            out = await shell.command("Test-LongChange", timeout=20)
            took = time.monotonic() - started
            assert "Test-LongChange was stopped: its elevation ended" in out, out
            assert took < 12, f"the backend ran {took:.1f}s past its grant"
        finally:
            await shell.close()

    run(scenario())
    assert_long_change_was_cancelled(hooked)


def assert_long_change_was_cancelled(gw):
    """The audit says the last Test-LongChange was stopped, not finished."""
    finished = [e for e in gw.audit_events() if e["kind"] == "command.finished"
                and e["fields"].get("cmdlet") == "Test-LongChange"]
    assert finished and finished[-1]["fields"]["cancelled"] == "true"


def test_revocation_from_another_session_stops_the_running_backend(hooked):
    """Bob revokes while alice's 30 s backend runs under that grant: the
    registry wakes her session and stops the backend then, not when it ends.
    The 5 s bound is generous, so the test cannot flake; it only tells "at
    the revocation" from "at the backend's own end"."""
    rid = approved_request(hooked)

    async def scenario():
        shell = await Shell.open(hooked, "alice")
        try:
            secret = await shell.fetch_secret(rid)
            assert "Elevated" in await shell.elevate(rid, secret)
            last = max((e["seq"] for e in hooked.audit_events()), default=0)
            shell.process.stdin.write("Test-LongChange\r")
            hooked.wait_for_audit(lambda e: e["seq"] > last and e["kind"] == "command.allowed"
                                  and e["fields"].get("cmdlet") == "Test-LongChange")
            revoke = await run_exec(hooked, "bob", f"Revoke-LockboxRequest -Id {rid} -Reason 'change freeze'")
            assert revoke.exit_status == 0, revoke.stderr
            revoked = time.monotonic()
            out = await shell.expect(r"\S+> $", timeout=20)
            took = time.monotonic() - revoked
            assert "Test-LongChange was stopped: its elevation ended" in out, out
            assert took < 5, f"the backend ran {took:.1f}s past the revocation"
        finally:
            await shell.close()

    run(scenario())
    assert_long_change_was_cancelled(hooked)


def test_requests_survive_a_restart_and_a_used_secret_stays_used(hooked):
    """Runs last in this module: it restarts the daemon on the same state."""
    used = approved_request(hooked)
    waiting = approved_request(hooked)

    async def redeem_used():
        shell = await Shell.open(hooked, "alice")
        try:
            secret = await shell.fetch_secret(used)
            assert "Elevated" in await shell.elevate(used, secret)
            return secret, await shell.fetch_secret(waiting)
        finally:
            await shell.close()

    used_secret, waiting_secret = run(redeem_used())
    hooked.stop()
    hooked.start()

    async def after_restart():
        shell = await Shell.open(hooked, "alice")
        try:
            again = await shell.elevate(used, used_secret)
            assert "Elevated" not in again and re.search(rf"Request {used} (is cancelled|was already redeemed)", again), again
            fresh = await shell.elevate(waiting, waiting_secret)
            assert "Elevated: MailboxAdmin in contoso" in fresh, fresh
        finally:
            await shell.close()

    run(after_restart())


def test_a_grant_does_not_outlive_a_killed_daemon_and_one_daemon_per_state_dir(hooked):
    """Runs after the restart test: kill -9 while elevated, then start again."""
    import os
    import signal
    import subprocess
    from gatehouse_harness import BUILD
    rid = approved_request(hooked)

    async def elevate_then_kill():
        shell = await Shell.open(hooked, "alice")
        secret = await shell.fetch_secret(rid)
        assert "Elevated" in await shell.elevate(rid, secret)
        os.kill(hooked.proc.pid, signal.SIGKILL)
        hooked.proc.wait(10)
    try:
        run(elevate_then_kill())
    except Exception:
        pass  # the connection dies with the daemon
    assert hooked.proc.returncode == -signal.SIGKILL
    shown = hooked.cli("lockbox", "show", str(rid)).stdout
    assert re.search(r"State\s+: active", shown), "the store still says active: nothing ran to end it\n" + shown

    hooked.start()
    shown = hooked.cli("lockbox", "show", str(rid)).stdout
    assert re.search(r"State\s+: cancelled", shown), shown
    ended = [e for e in hooked.audit_events() if e["kind"] == "elevation.end" and e["fields"].get("requestID") == str(rid)]
    assert ended and ended[-1]["fields"]["reason"] == "its session ended with the previous daemon", ended

    # A second daemon on the same state directory is refused: two writers
    # would fork the audit chain. --check-config only reads, so it still works.
    before = (hooked.state_dir / "audit.log").read_bytes()
    args = [str(BUILD / "gatehoused"), "--demo", "--state-dir", str(hooked.state_dir), "--listen", "127.0.0.1:0",
            "--policy-dir", str(hooked.state_dir.parent / "policies")]
    second = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert second.returncode != 0
    assert "another gatehoused is running on the state directory" in second.stderr, second.stderr
    check = subprocess.run(args + ["--check-config"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "configuration OK" in check.stdout, check.stdout + check.stderr
    assert (hooked.state_dir / "audit.log").read_bytes()[:len(before)] == before
    assert hooked.cli("audit", "verify").returncode == 0
