"""Cmdlets over exec and over an interactive shell, through the real daemon."""
from gatehouse_harness import run, run_exec


def test_allowed_cmdlet_output_and_status(gateway):
    before = len(gateway.invocations())
    result = run(run_exec(gateway, "alice", "Get-Mailbox -Identity alice"))
    assert result.exit_status == 0, result.stderr
    assert "alice@contoso.com" in result.stdout
    assert "ProhibitSendQuota" in result.stdout
    calls = gateway.invocations()[before:]
    assert [c["argv"] for c in calls] == [["get", "--identity", "alice"]]
    assert calls[0]["actor"] == "alice"
    # A clean environment: only what the policy declares, plus PATH and LANG.
    assert sorted(calls[0]["env"]) == ["GATEHOUSE_ACTOR", "GATEHOUSE_DEMO_DATA", "LANG", "PATH"]


def test_denied_cmdlet_starts_no_backend(gateway):
    before_calls = len(gateway.invocations())
    before_data = gateway.mailbox_data()
    result = run(run_exec(gateway, "alice", "Set-Mailbox -Identity alice -ProhibitSendQuota 1GB"))
    assert result.exit_status != 0
    assert "Set-Mailbox" in result.stderr and "not permitted" in result.stderr
    assert result.stdout == ""
    assert len(gateway.invocations()) == before_calls, "a denied line must start no backend"
    assert gateway.mailbox_data() == before_data
    denied = [e for e in gateway.audit_events() if e["kind"] == "command.denied"]
    assert denied and denied[-1]["user"] == "alice"


def test_unknown_and_malformed_lines_start_nothing(gateway):
    before = len(gateway.invocations())
    cases = {
        "Get-Mailboxx": 127,
        "Get-Mailbox -Identity alice; Set-Mailbox": 2,
        "Get-Mailbox -Identity 'a\nb'": 2,
        "Get-Mailbox -Identity $(whoami)": 2,
        "Get-Mailbox -Identity ../../etc/passwd": 2,
        "Get-Mailbox -ResultSize 100000": 2,
        "Get-Mailbox -Bogus x": 2,
    }
    for line, status in cases.items():
        result = run(run_exec(gateway, "alice", line))
        assert result.exit_status == status, (line, result.exit_status, result.stderr)
        assert result.stderr.strip(), line
        assert len(result.stderr.strip().splitlines()) == 1, (line, result.stderr)
    assert len(gateway.invocations()) == before


def test_backend_failure_status_is_relayed(gateway):
    result = run(run_exec(gateway, "alice", "Get-Mailbox -Identity nobody"))
    assert result.exit_status == 1
    assert "No mailbox 'nobody'" in result.stderr


def test_user_without_roles_may_run_nothing(gateway):
    result = run(run_exec(gateway, "carol", "Get-Mailbox -Identity alice"))
    assert result.exit_status == 126
    assert "not permitted" in result.stderr


def test_audit_log_records_the_decisions(gateway):
    run(run_exec(gateway, "alice", "Get-MailboxStatistics -Identity bob"))
    events = gateway.audit_events()
    kinds = {e["kind"] for e in events}
    assert {"auth.success", "session.start", "command.allowed", "command.finished", "session.end"} <= kinds
    allowed = [e for e in events if e["kind"] == "command.allowed"][-1]
    assert allowed["fields"]["cmdlet"] == "Get-MailboxStatistics"
    assert allowed["fields"]["role"] == "MailboxReader"
    # The exec session ended normally once its command finished.
    import time
    deadline = time.time() + 5
    while True:
        ends = [e for e in gateway.audit_events()
                if e["kind"] == "session.end" and e.get("session") == allowed.get("session")]
        if ends or time.time() > deadline:
            break
        time.sleep(0.05)
    assert ends and ends[0]["fields"]["reason"] == "exit", ends
    # No TOTP code, nor anything that looks like one, in the audit log.
    text = (gateway.state_dir / "audit.log").read_text()
    for user in gateway.users.values():
        assert user["totpSecretHex"] not in text


def test_demo_cmdlets_return_objects_that_pipe_like_powershell(gateway):
    """Get-Mailbox writes objects: one renders as a list, several as a
    table, and PowerShell's pipeline habits work on them over the real
    server; `| ConvertTo-Json` over exec writes exactly the JSON."""
    import json
    one = run(run_exec(gateway, "alice", "Get-Mailbox -Identity alice"))
    assert one.exit_status == 0, one.stderr
    assert "PrimarySmtpAddress : alice@contoso.com" in one.stdout, one.stdout
    listed = run(run_exec(gateway, "alice", "Get-Mailbox -Identity alice | Format-List Identity,ProhibitSendQuota"))
    assert listed.exit_status == 0 and listed.stdout.startswith("Identity          : alice\n"), listed
    boxes = sorted(json.loads(gateway.mailbox_data()), key=lambda b: b["identity"])
    first = run(run_exec(gateway, "alice", "Get-Mailbox | Select-Object -First 2 | ConvertTo-Json"))
    assert first.exit_status == 0, first.stderr
    assert [b["Identity"] for b in json.loads(first.stdout)] == [b["identity"] for b in boxes[:2]], first.stdout
    big = run(run_exec(gateway, "alice",
                       "Get-MailboxReport | Where-Object -Property ItemCount -GT 100 | Select-Object -ExpandProperty Identity"))
    assert big.exit_status == 0, big.stderr
    assert big.stdout.split() == [b["identity"] for b in boxes if b["itemCount"] > 100], big.stdout
    stats = run(run_exec(gateway, "alice", "Get-MailboxStatistics bob | ConvertTo-Csv"))
    assert stats.exit_status == 0, stats.stderr
    header, row = stats.stdout.splitlines()
    assert header == '"Identity","ItemCount","TotalItemSize"' and row.startswith('"bob",'), stats.stdout
