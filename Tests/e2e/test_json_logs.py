"""`gatehoused --log-format json`: every log line the daemon writes is one
JSON object, and a session's lines carry its session id."""
import json
import re

from gatehouse_harness import Gateway, run, run_exec


def test_json_logs_name_the_session_on_every_session_line(tmp_path):
    gw = Gateway(tmp_path / "state", extra_args=["--log-format", "json", "--log-level", "debug"]).start()
    try:
        result = run(run_exec(gw, "alice", "Get-Mailbox -Identity alice"))
        assert result.exit_status == 0, result.stderr
        session = [e for e in gw.audit_events() if e["kind"] == "session.start"][-1]["session"]
        bad = run(run_exec(gw, "alice", "Get-Mailbox -Identity alice; whoami"))
        assert bad.exit_status == 2
    finally:
        gw.stop()
    lines = gw.daemon_log(tail=10**7).splitlines()
    records = []
    for line in lines:
        if line.startswith("{"):
            records.append(json.loads(line))   # a line that starts as JSON must be JSON
        else:
            # The demo's instructions are printed on stdout; no log line is text.
            assert not re.match(r"^\d{4}-\d\d-\d\dT\S+ (trace|debug|info|notice|warning|error|critical) ", line), line
    assert records, "no JSON log lines at all"
    for record in records:
        assert {"time", "level", "label", "message", "source"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["time"]), record
    mine = [r for r in records if r.get("session") == session]
    assert mine, f"no log line names session {session}"
    assert all(r.get("peer", "").startswith("127.0.0.1") for r in mine), mine


def test_a_bad_log_level_or_format_is_a_clear_error(tmp_path):
    import subprocess
    from gatehouse_harness import BUILD
    for args, needle in [(["--log-level", "loud"], "--log-level must be one of"),
                         (["--log-format", "xml"], "log-format")]:
        proc = subprocess.run([str(BUILD / "gatehoused"), "--check-config", *args], capture_output=True, text=True,
                              timeout=30)
        assert proc.returncode != 0, (args, proc.stdout)
        assert needle in proc.stderr, (args, proc.stderr)
