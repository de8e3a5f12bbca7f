"""The Prometheus endpoint (issue 13): counted from the audit events the
daemon writes, read over plain HTTP on loopback, naming no user."""
import re
import socket
import urllib.error
import urllib.request

from gatehouse_harness import Gateway, connect, expect_refused, run, run_exec


def scrape(address, path="/metrics"):
    with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4"), response.headers
        return response.read().decode()


def value(text, metric):
    """The sample `metric` (name with labels, exactly as exposed), or 0 when absent."""
    match = re.search(r"^" + re.escape(metric) + r" (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_metrics_count_logins_commands_and_lockbox_requests(tmp_path):
    gw = Gateway(tmp_path / "state", config={"metricsListen": "127.0.0.1:0",
                                             "perSourcePenaltyExempt": "127.0.0.1"}).start()
    try:
        address = re.search(r"address=(127\.0\.0\.1:\d+)[^\n]*metrics endpoint listening", gw.daemon_log()).group(1)
        before = scrape(address)
        assert value(before, 'gatehouse_logins_total{result="success"}') == 0, before

        assert run(run_exec(gw, "alice", "Get-Mailbox -Identity alice")).exit_status == 0
        assert run(run_exec(gw, "alice", "Set-Mailbox -Identity alice -ProhibitSendQuota 1GB")).exit_status == 126
        made = run(run_exec(gw, "alice", "New-LockboxRequest -Role MailboxAdmin -Scope contoso -Duration 1h "
                                         "-Reason 'quota fix' -Ticket INC-7"))
        assert made.exit_status == 0, made.stderr
        expect_refused(gw, connect(gw, "alice", code="000000"))

        async def held():
            async with await connect(gw, "bob") as conn:
                proc = await conn.create_process(term_type="xterm")
                await proc.stdout.readuntil("bob> ")
                return scrape(address)
        during = run(held())
        assert value(during, "gatehouse_sessions_live") == 1, during
        # The monitor holds the session until its end is written, a moment
        # after the client has gone.
        gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("user") == "bob")
        after = scrape(address)
    finally:
        gw.stop()

    assert value(after, 'gatehouse_logins_total{result="success"}') == 4, after
    assert value(after, 'gatehouse_logins_total{result="failure"}') >= 1, after
    assert value(after, 'gatehouse_commands_total{decision="allowed"}') == 2, after
    assert value(after, 'gatehouse_commands_total{decision="denied"}') == 1, after
    assert value(after, "gatehouse_command_duration_seconds_count") == 2, after
    assert value(after, 'gatehouse_lockbox_requests{state="pending-manager"}') == 1, after
    assert value(after, "gatehouse_audit_write_failures_total") == 0, after
    assert value(after, "gatehouse_sessions_live") == 0, after
    assert "alice" not in after and "bob" not in after, "no figure names a user"


def test_the_endpoint_answers_only_get_metrics_and_survives_a_silent_client(tmp_path):
    gw = Gateway(tmp_path / "state", config={"metricsListen": "127.0.0.1:0"}).start()
    try:
        address = re.search(r"address=(127\.0\.0\.1:\d+)[^\n]*metrics endpoint listening", gw.daemon_log()).group(1)
        host, port = address.split(":")
        try:
            scrape(address, "/secrets")
            raise AssertionError("a path other than /metrics was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 404
        # A client that connects and says nothing is dropped after its 2 s;
        # the next scrape is answered.
        silent = socket.create_connection((host, int(port)))
        try:
            assert "gatehouse_sessions_live" in scrape(address)
        finally:
            silent.close()
        gw.assert_serving()
    finally:
        gw.stop()
