"""Lockbox elevation end to end: the demo users, real SSH, the real daemon and
its SQLite store. alice and dave are engineers (manager bob); carol approves
for contoso (Customer Lockbox on); fabrikam has Customer Lockbox off.

Each test files its own requests, so they are independent of order. Every
user has at most one session open at a time (the gateway may limit that).
"""
import asyncio
import re
import time

import pytest

from gatehouse_harness import connect, run, run_exec

SECRET_RE = re.compile(r"\b([A-Z2-7]{4}(?:-[A-Z2-7]{4}){7})\b")


def file_request(gw, user="alice", scope="contoso", duration="1h", ticket="INC-7"):
    cmd = f"New-LockboxRequest -Role MailboxAdmin -Scope {scope} -Duration {duration} -Reason 'quota fix'"
    if ticket:
        cmd += f" -Ticket {ticket}"
    result = run(run_exec(gw, user, cmd))
    assert result.exit_status == 0, result.stderr
    match = re.search(r"Request (\d+) filed", result.stdout)
    assert match, result.stdout
    return int(match.group(1))


def approve(gw, user, request_id, expect_state=None):
    result = run(run_exec(gw, user, f"Approve-LockboxRequest -Id {request_id} -Comment 'ok'"))
    assert result.exit_status == 0, result.stderr
    return result.stdout


def approved_request(gw, user="alice", scope="contoso", duration="1h"):
    rid = file_request(gw, user, scope, duration)
    approve(gw, "bob", rid)
    if scope == "contoso":
        approve(gw, "carol", rid)
    return rid


def wait_for_event(gw, predicate, timeout=5):
    """Audit events of other threads (the session's end, the sweeper) land asynchronously."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(predicate(e) for e in gw.audit_events()):
            return True
        time.sleep(0.1)
    return False


class Shell:
    """An interactive pty session (asyncssh process with a terminal)."""

    def __init__(self, conn, process):
        self.conn, self.process, self.seen = conn, process, ""

    @classmethod
    async def open(cls, gw, user):
        conn = await connect(gw, user)
        process = await conn.create_process(term_type="xterm", term_size=(200, 40))
        shell = cls(conn, process)
        await shell.expect(f"{user}")
        await shell.expect("> ")
        return shell

    async def expect(self, pattern, timeout=15):
        """Reads until `pattern` (a regex) appears; returns everything read up to and including it."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.seen)
            if match:
                consumed, self.seen = self.seen[:match.end()], self.seen[match.end():]
                return consumed
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {self.seen!r}")
            try:
                chunk = await asyncio.wait_for(self.process.stdout.read(4096), left)
            except asyncio.TimeoutError:
                continue
            if not chunk:
                raise AssertionError(f"session closed while waiting for {pattern!r}; got {self.seen!r}")
            self.seen += chunk

    async def command(self, line, timeout=15):
        """Sends a line and returns its output up to the next prompt."""
        self.process.stdin.write(line + "\r")
        return await self.expect(r"\S+> $|\]> ", timeout)

    async def close(self):
        self.process.stdin.write("exit\r")
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        finally:
            self.conn.close()
            await self.conn.wait_closed()

    async def fetch_secret(self, rid):
        out = await self.command(f"Get-LockboxCredential -Id {rid}")
        match = SECRET_RE.search(out)
        assert match, out
        return match.group(1)

    async def elevate(self, rid, secret):
        self.process.stdin.write(f"Enter-Elevation -Id {rid}\r")
        await self.expect(r"\(input is hidden\): ")
        self.process.stdin.write(secret + "\r")
        return await self.expect(r"\S+> $|\]> ")


def test_full_path_alice_bob_carol_secret_elevation_set_mailbox(gateway):
    rid = file_request(gateway)
    pending = run(run_exec(gateway, "bob", "Get-LockboxRequest -Pending"))
    assert re.search(rf"^{rid}\s+pending-manager\s+alice\s+MailboxAdmin\s+contoso", pending.stdout, re.M), pending.stdout
    assert "waits for the approver of contoso" in approve(gateway, "bob", rid)
    # carol sees it only now, at her stage.
    assert re.search(rf"^{rid}\s+pending-customer", run(run_exec(gateway, "carol", "Get-LockboxRequest -Pending")).stdout, re.M)
    assert "is approved" in approve(gateway, "carol", rid)

    async def scenario():
        shell = await Shell.open(gateway, "alice")
        try:
            refused = await shell.command("Set-Mailbox -Identity alice -ProhibitSendQuota 3GB")
            assert "not permitted" in refused
            secret = await shell.fetch_secret(rid)
            again = await shell.command(f"Get-LockboxCredential -Id {rid}")
            assert "shown only once" in again and secret not in again
            elevated = await shell.elevate(rid, secret)
            assert secret not in elevated, "the secret was echoed"
            assert "Elevated: MailboxAdmin in contoso" in elevated, elevated
            assert "[MailboxAdmin@contoso " in elevated, "the prompt shows role, scope and time left"
            done = await shell.command("Set-Mailbox -Identity alice -ProhibitSendQuota 3GB")
            assert re.search(r"ProhibitSendQuota +: 3GB", done), done
            outside = await shell.command("Set-Mailbox -Identity dave -ProhibitSendQuota 3GB")
            assert "outside your elevation's scope (contoso)" in outside, outside
            left = await shell.command("Exit-Elevation")
            assert "ended" in left
            after = await shell.command("Set-Mailbox -Identity alice -ProhibitSendQuota 4GB")
            assert "not permitted" in after
            return secret
        finally:
            await shell.close()

    secret = run(scenario())
    events = gateway.audit_events()
    kinds = [e["kind"] for e in events if e.get("fields", {}).get("requestID") == str(rid)]
    for kind in ["lockbox.requested", "lockbox.approved", "lockbox.credential", "elevation.start", "elevation.end"]:
        assert kind in kinds, kinds
    allowed = [e for e in events if e["kind"] == "command.allowed" and e["fields"].get("requestID") == str(rid)]
    by_cmdlet = {}
    for e in allowed:
        by_cmdlet.setdefault(e["fields"]["cmdlet"], []).append(e)
    assert by_cmdlet["Set-Mailbox"][0]["fields"]["scope"] == "contoso"
    # The Lockbox lines themselves are on record and linked to the request too.
    assert [e["user"] for e in by_cmdlet["Approve-LockboxRequest"]] == ["bob", "carol"], by_cmdlet.keys()
    assert by_cmdlet["Get-LockboxCredential"][0]["user"] == "alice"
    # The reviewer's timeline shows the approval line, linked to the request, without a backend argv.
    import subprocess
    from gatehouse_harness import BUILD
    bob_session = by_cmdlet["Approve-LockboxRequest"][0]["session"]
    shown = subprocess.run([str(BUILD / "gatehouse"), "sessions", "show", bob_session, "--state-dir", str(gateway.state_dir)],
                           capture_output=True, text=True, timeout=30).stdout
    entry = shown.split(f"ALLOW  Approve-LockboxRequest -Id {rid}", 1)[1].split("\n  20", 1)[0]
    assert "role (Lockbox workflow); exit 0" in entry and f"via Lockbox request #{rid}" in entry, shown
    assert "argv" not in entry and "bytes" not in entry, entry
    # The secret is nowhere at rest: not in the audit log, not in the store.
    assert secret not in (gateway.state_dir / "audit.log").read_text()
    for path in gateway.state_dir.glob("lockbox.sqlite*"):
        data = path.read_bytes()
        assert secret.encode() not in data and secret.replace("-", "").encode() not in data


def test_after_expiry_set_mailbox_is_refused(gateway):
    rid = approved_request(gateway, duration="5s")

    async def scenario():
        shell = await Shell.open(gateway, "alice")
        try:
            secret = await shell.fetch_secret(rid)
            assert "Elevated" in await shell.elevate(rid, secret)
            assert "ProhibitSendQuota  : " in await shell.command("Set-Mailbox -Identity bob -ProhibitSendQuota 2GB")
            await shell.expect(rf"Elevation {rid} \(MailboxAdmin in contoso\) ended: its time is up", timeout=10)
            await shell.expect(r"alice> ")
            after = await shell.command("Set-Mailbox -Identity bob -ProhibitSendQuota 2GB")
            assert "not permitted" in after, after
        finally:
            await shell.close()

    run(scenario())
    assert wait_for_event(gateway, lambda e: e["kind"] == "elevation.end" and e["fields"].get("requestID") == str(rid)
                          and e["fields"].get("state") == "expired")


def test_self_approval_is_refused(gateway):
    rid = file_request(gateway)
    result = run(run_exec(gateway, "alice", f"Approve-LockboxRequest -Id {rid}"))
    assert result.exit_status == 126
    assert "Nobody may approve their own request" in result.stderr
    # dave, a peer, is not an approver either.
    peer = run(run_exec(gateway, "dave", f"Approve-LockboxRequest -Id {rid}"))
    assert peer.exit_status == 126
    state = run(run_exec(gateway, "alice", f"Get-LockboxRequest -Id {rid}"))
    assert re.search(r"State\s+: pending-manager", state.stdout), state.stdout


def test_over_maximum_duration_is_refused_not_shortened(gateway):
    before = run(run_exec(gateway, "alice", "Get-LockboxRequest")).stdout
    result = run(run_exec(gateway, "alice",
                          "New-LockboxRequest -Role MailboxAdmin -Scope contoso -Duration 5h -Reason 'x' -Ticket INC-1"))
    assert result.exit_status == 1
    assert "exceeds the maximum for MailboxAdmin of 4h" in result.stderr
    assert run(run_exec(gateway, "alice", "Get-LockboxRequest")).stdout == before, "nothing was filed"
    bad_ticket = run(run_exec(gateway, "alice",
                              "New-LockboxRequest -Role MailboxAdmin -Scope contoso -Duration 1h -Reason 'x' -Ticket JIRA-1"))
    assert "does not match the ticket pattern" in bad_ticket.stderr
    unknown = run(run_exec(gateway, "alice",
                           "New-LockboxRequest -Role MailboxAdmin -Scope initech -Duration 1h -Reason 'x'"))
    assert "Unknown scope 'initech'" in unknown.stderr
    carol = run(run_exec(gateway, "carol",
                         "New-LockboxRequest -Role MailboxAdmin -Scope contoso -Duration 1h -Reason 'x'"))
    assert carol.exit_status == 126 and "may not request MailboxAdmin" in carol.stderr


def test_reused_secret_is_refused_in_a_second_session(gateway):
    rid = approved_request(gateway)

    async def first():
        shell = await Shell.open(gateway, "alice")
        try:
            secret = await shell.fetch_secret(rid)
            assert "Elevated" in await shell.elevate(rid, secret)
            return secret
        finally:
            await shell.close()

    async def second(secret):
        shell = await Shell.open(gateway, "alice")
        try:
            out = await shell.elevate(rid, secret)
            assert "Elevated" not in out
            assert re.search(rf"Request {rid} (was already redeemed|is cancelled)", out), out
            assert "not permitted" in await shell.command("Set-Mailbox -Identity alice -ProhibitSendQuota 2GB")
        finally:
            await shell.close()

    secret = run(first())
    run(second(secret))


def test_tenant_without_customer_lockbox_needs_only_the_manager(gateway):
    rid = file_request(gateway, user="dave", scope="fabrikam")
    assert "is approved" in approve(gateway, "bob", rid)
    carol = run(run_exec(gateway, "carol", "Get-LockboxRequest -Pending"))
    assert not re.search(rf"^{rid}\s", carol.stdout, re.M)

    async def scenario():
        shell = await Shell.open(gateway, "dave")
        try:
            secret = await shell.fetch_secret(rid)
            assert "Elevated: MailboxAdmin in fabrikam" in await shell.elevate(rid, secret)
            assert re.search(r"ProhibitSendQuota +: 2GB", await shell.command("Set-Mailbox fiona -ProhibitSendQuota 2GB"))
            assert "outside your elevation's scope" in await shell.command("Set-Mailbox alice -ProhibitSendQuota 2GB")
        finally:
            await shell.close()

    run(scenario())


def test_revocation_is_announced_at_once_and_takes_effect_at_the_next_command(gateway):
    rid = approved_request(gateway)

    async def scenario():
        shell = await Shell.open(gateway, "alice")
        try:
            secret = await shell.fetch_secret(rid)
            assert "Elevated" in await shell.elevate(rid, secret)
            assert "ProhibitSendQuota  : " in await shell.command("Set-Mailbox -Identity carol -ProhibitSendQuota 6GB")
            revoke = await run_exec(gateway, "bob", f"Revoke-LockboxRequest -Id {rid} -Reason 'done for today'")
            assert revoke.exit_status == 0, revoke.stderr
            # The revocation wakes alice's idle session: it says so at once,
            # with a fresh prompt, before she types anything.
            notice = await shell.expect(r"revoked by bob[^\n]*\n.*> $", timeout=5)
            assert "Elevation " + str(rid) in notice, notice
            out = await shell.command("Set-Mailbox -Identity carol -ProhibitSendQuota 7GB")
            assert "not permitted" in out, out
        finally:
            await shell.close()

    run(scenario())
    assert any(e["kind"] == "lockbox.revoked" and e["fields"].get("requestID") == str(rid)
               and e["fields"].get("actor") == "bob" for e in gateway.audit_events())


def test_enter_elevation_over_exec_is_refused(gateway):
    result = run(run_exec(gateway, "alice", "Enter-Elevation -Id 1"))
    assert result.exit_status == 1
    assert "needs an interactive session" in result.stderr


def test_operator_tool_lists_and_shows_requests(gateway):
    import subprocess
    from gatehouse_harness import BUILD
    rid = file_request(gateway, user="dave", scope="fabrikam")
    listed = subprocess.run([str(BUILD / "gatehouse"), "lockbox", "list", "--state-dir", str(gateway.state_dir),
                             "--user", "dave", "--state", "pending-manager"],
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{rid}\s+pending-manager\s+dave\s+MailboxAdmin\s+fabrikam", listed.stdout, re.M), listed.stdout
    shown = subprocess.run([str(BUILD / "gatehouse"), "lockbox", "show", str(rid), "--state-dir", str(gateway.state_dir)],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and re.search(r"CustomerLockbox\s+: not required", shown.stdout), shown.stdout


# -- the sweeper: expiries without a session, and no wake-ups in between ------

@pytest.fixture(scope="module")
def short_ttl():
    """A daemon of its own whose requests wait at most 3 s for approval."""
    import shutil
    import tempfile
    from pathlib import Path
    from gatehouse_harness import REPO, Gateway
    with tempfile.TemporaryDirectory(prefix="gatehouse-e2e-ttl-") as tmp:
        policies = Path(tmp) / "policies"
        shutil.copytree(REPO / "policies", policies)
        lockbox = policies / "lockbox.yaml"
        text = lockbox.read_text()
        assert "  pendingTTL: 8h\n" in text
        lockbox.write_text(text.replace("  pendingTTL: 8h\n", "  pendingTTL: 3s\n"))
        gw = Gateway(Path(tmp) / "state", extra_args=["--policy-dir", str(policies)]).start()
        try:
            yield gw
        finally:
            gw.stop()


def test_a_pending_request_is_recorded_expired_with_no_session_open(short_ttl):
    """The request's session has ended before its 3 s TTL lapses; nobody
    looks at it again. The daemon's sweeper alone records the expiry."""
    rid = file_request(short_ttl)
    events = short_ttl.audit_events()
    filed = next(e for e in events if e["kind"] == "lockbox.requested" and e["fields"].get("requestID") == str(rid))
    assert wait_for_event(short_ttl, lambda e: e["kind"] == "lockbox.expired"
                          and e["fields"].get("requestID") == str(rid), timeout=20)
    events = short_ttl.audit_events()
    expired = next(e for e in events if e["kind"] == "lockbox.expired" and e["fields"].get("requestID") == str(rid))
    assert expired["fields"]["reason"] == "not approved within the pending TTL"
    assert expired["user"] == "alice" and expired["fields"]["actor"] == "lockbox"
    # No session was open when it was recorded: every session that started
    # before it had ended before it.
    before = [e for e in events if e["seq"] < expired["seq"]]
    started = {e["session"] for e in before if e["kind"] == "session.start"}
    ended = {e["session"] for e in before if e["kind"] == "session.end"}
    assert started and started == ended, (started, ended)
    assert filed["seq"] < expired["seq"]
    shown = short_ttl.cli("lockbox", "show", str(rid)).stdout
    assert re.search(r"State\s+: expired", shown), shown


def wake_ups(pid: int, thread: str) -> int:
    """Voluntary context switches so far of the daemon's thread named
    `thread`: how often it went to sleep, so how often it woke."""
    from pathlib import Path
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == thread:
                status = (task / "status").read_text()
                return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
        except FileNotFoundError:
            continue  # a thread that just ended
    raise AssertionError(f"gatehoused has no thread named {thread!r}")


def test_an_idle_sweeper_does_not_wake(short_ttl):
    """The Lockbox sweeper used to wake every second to look; now it sleeps
    until the earliest deadline or a change. With no live request it does not
    wake in the 3 s below (the old one woke three times)."""
    for state in ("pending-manager", "pending-customer", "approved", "active"):
        listed = short_ttl.cli("lockbox", "list", "--state", state).stdout
        assert "No requests." in listed, f"this test needs no live request:\n{listed}"
    pid = short_ttl.proc.pid
    before = wake_ups(pid, "lockbox-sweeper")
    time.sleep(3)
    woke = wake_ups(pid, "lockbox-sweeper") - before
    assert woke == 0, f"the sweeper woke {woke} times with nothing due"
