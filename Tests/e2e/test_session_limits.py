"""Session rules against the real daemon with real clients: one live session
per user, idle and lifetime limits with warnings, operator list/kill, and a
backend ended mid-command. Timeouts are seconds here (test configuration);
the defaults (30m idle, 24h lifetime) are checked in --dump-config."""
import asyncio
import json
import re
import shutil
import subprocess
import time

import asyncssh
import pytest

from gatehouse_harness import BUILD, Gateway, connect, run
from test_openssh import askpass_env, ssh_argv
from limits_fixtures import open_shell, policy_with_wait, wait_for_text


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    gw = Gateway(tmp / "state", extra_args=["--policy-dir", str(policy_with_wait(tmp))],
                 config={"idleTimeout": "5s", "maxSessionLifetime": "1h",
                         "perSourcePenaltyExempt": "127.0.0.1"}).start()
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def no_live_sessions_left(request):
    """One session per user is the rule under test: before each test, wait
    until the sessions of the previous one have ended in the daemon too (its
    thread notices a client's close a moment after the client returns)."""
    if "limited" in request.fixturenames:
        gw = request.getfixturevalue("limited")
        deadline = time.time() + 10
        while json.loads(gw.cli("sessions", "list", "--live", "--json").stdout)["sessions"]:
            assert time.time() < deadline, "sessions of an earlier test never ended"
            time.sleep(0.05)


def ended(gw, session_id):
    return gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("session") == session_id)


def session_of(gw, user, source_port):
    event = gw.wait_for_audit(lambda e: e["kind"] == "session.start" and e.get("user") == user
                              and e["fields"]["source"].endswith(f":{source_port}"))
    return event["session"]


def test_defaults_are_the_issue_values(tmp_path):
    out = subprocess.run([str(BUILD / "gatehoused"), "--dump-config"], capture_output=True, text=True,
                         timeout=30).stdout
    for line in ["maxSessionsPerUser 1 ", "idleTimeout 30m ", "maxSessionLifetime 1d ", "fips true ",
                 "userLockoutFailures 10 ", "userLockoutWindow 15m "]:
        assert line in out, out


def test_dump_config_names_the_config_file_as_source(limited):
    out = subprocess.run([str(BUILD / "gatehoused"), "--demo", "--dump-config", "--config", str(limited.config_path)],
                         capture_output=True, text=True, timeout=30, cwd=limited.state_dir.parent).stdout
    assert re.search(r"^idleTimeout 5s\s+# .*gatehouse\.yaml:\d+$", out, re.M), out


def test_check_config_validates_and_prints_settings_with_sources(limited, tmp_path):
    out = subprocess.run([str(BUILD / "gatehoused"), "--demo", "--check-config", "--state-dir", str(tmp_path / "s"),
                          "--config", str(limited.config_path), "--policy-dir", str(policy_with_wait(tmp_path))],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "configuration OK" in out.stdout
    assert re.search(r"^idleTimeout 5s\s+# .*gatehouse\.yaml:\d+$", out.stdout, re.M), out.stdout
    assert re.search(r"^maxSessionsPerUser 1\s+# default$", out.stdout, re.M), out.stdout


@pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client (openssh-client) not installed")
def test_second_login_is_refused_and_the_first_is_untouched(limited, tmp_path):
    async def go():
        first = await connect(limited, "bob")
        async with first:
            port = first.get_extra_info("sockname")[1]
            first_id = session_of(limited, "bob", port)
            # The second login with OpenSSH, which prints the server's
            # disconnect message as the user would see it.
            second = await asyncio.create_subprocess_exec(
                "setsid", "-w", *ssh_argv(limited, "bob"), "Get-Mailbox -Identity bob",
                env=askpass_env(limited, tmp_path, "bob"), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            _, err = await asyncio.wait_for(second.communicate(), 30)
            result = await first.run("Get-Mailbox -Identity bob", check=False)
            return first_id, port, second.returncode, err.decode(), result
    first_id, port, status, message, result = run(go())
    assert status != 0
    assert "already have a live session" in message, message
    assert f"127.0.0.1:{port}" in message, message
    assert re.search(r"started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", message), message
    assert result.exit_status == 0 and "bob" in result.stdout
    refusal = limited.wait_for_audit(lambda e: e["kind"] == "session.refused" and e["fields"]["existingSession"] == first_id)
    assert refusal["user"] == "bob" and refusal["fields"]["existingSource"].endswith(f":{port}")
    # Once the first ends, bob may log in again.
    ended(limited, first_id)
    async def again():
        async with await connect(limited, "bob") as conn:
            return await conn.run("Get-Mailbox -Identity bob", check=False)
    assert run(again()).exit_status == 0


def test_several_exec_channels_one_after_another(limited):
    async def go():
        async with await connect(limited, "bob") as conn:
            return [(await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status for _ in range(12)]
    assert run(go()) == [0] * 12


def test_idle_session_is_warned_then_disconnected(limited):
    async def go():
        async with await connect(limited, "alice") as conn:
            port = conn.get_extra_info("sockname")[1]
            proc, out = await open_shell(conn)
            start = time.monotonic()
            await wait_for_text(out, "will be disconnected in", 8)
            await wait_for_text(out, "without input.", 8)
            await asyncio.wait_for(out.closed.wait(), 5)
            return port, out.text, time.monotonic() - start
    port, text, elapsed = run(go())
    assert "Disconnected after 5 seconds without input." in text, text
    # Both warnings (scaled for a 5s timeout: at 2s and 1s before), in order.
    warnings = re.findall(r"disconnected in (\d+) seconds?", text)
    assert len(warnings) == 2 and int(warnings[0]) > int(warnings[1]), text
    assert 4 <= elapsed < 15, elapsed   # not before the 5s timeout; generous for a loaded CI host
    sid = session_of(limited, "alice", port)
    assert ended(limited, sid)["fields"]["reason"] == "idle"
    kinds = [e["fields"]["limit"] for e in limited.audit_events() if e["kind"] == "session.warning" and e["session"] == sid]
    assert kinds == ["idleTimeout", "idleTimeout"], kinds


def test_input_keeps_a_session_alive(limited):
    async def go():
        async with await connect(limited, "alice") as conn:
            proc, out = await open_shell(conn)
            for _ in range(4):          # 8 seconds in all, more than the 5s timeout
                await asyncio.sleep(2)
                proc.stdin.write("Get-Mailbox -Identity bob\n")
            await asyncio.sleep(0.5)
            return out.closed.is_set(), out.text
    closed, text = run(go())
    assert not closed, text
    assert "without input" not in text


def test_operator_lists_and_kills_a_live_session_mid_command(limited):
    async def go():
        async with await connect(limited, "bob") as conn:
            port = conn.get_extra_info("sockname")[1]
            sid = session_of(limited, "bob", port)
            listing = limited.cli("sessions", "list", "--live").stdout
            assert sid in listing and "bob" in listing and f"127.0.0.1:{port}" in listing, listing
            task = asyncio.ensure_future(conn.run("Start-Wait 60", check=False))
            await asyncio.sleep(1)
            assert "yes" in limited.cli("sessions", "list", "--live").stdout.split(sid)[1].splitlines()[0]
            started = time.monotonic()
            killed = limited.cli("sessions", "kill", sid, "--reason", "maintenance window")
            result = await asyncio.wait_for(task, 10)
            return sid, killed.stdout, result, time.monotonic() - started
    sid, killed, result, elapsed = run(go())
    assert "ended" in killed
    assert elapsed < 20, elapsed         # the 60s backend did not run out
    assert "was stopped: Your session was ended by an operator: maintenance window" in result.stderr, result.stderr
    kill = limited.wait_for_audit(lambda e: e["kind"] == "session.kill" and e["session"] == sid)
    assert kill["fields"]["reason"] == "maintenance window" and kill["user"] == "bob"
    assert ended(limited, sid)["fields"]["reason"] == "killed"
    finished = limited.wait_for_audit(lambda e: e["kind"] == "command.finished" and e["session"] == sid)
    assert finished["fields"]["cancelled"] == "true"
    deadline = time.time() + 5      # the registry entry goes right after session.end
    while sid in limited.cli("sessions", "list", "--live").stdout:
        assert time.time() < deadline
        time.sleep(0.05)


def test_kill_of_unknown_session_fails(limited):
    result = limited.cli("sessions", "kill", "0123456789abcdef01234567", "--reason", "x", check=False)
    assert result.returncode == 1 and "no live session" in result.stderr


def test_lifetime_forces_logoff_even_when_active_and_ends_backend(tmp_path):
    gw = Gateway(tmp_path / "state", extra_args=["--policy-dir", str(policy_with_wait(tmp_path))],
                 config={"maxSessionLifetime": "6s", "idleTimeout": "1h"}).start()
    try:
        async def go():
            async with await connect(gw, "alice") as conn:
                port = conn.get_extra_info("sockname")[1]
                proc, out = await open_shell(conn)
                for _ in range(4):        # active: input every second
                    await asyncio.sleep(1)
                    proc.stdin.write("Get-Mailbox -Identity bob\n")
                proc.stdin.write("Start-Wait 60\n")     # still running when the lifetime ends
                start = time.monotonic()
                await asyncio.wait_for(out.closed.wait(), 20)
                return port, out.text, time.monotonic() - start
        port, text, elapsed = run(go())
        assert elapsed < 20, elapsed    # the 60s backend was stopped at the 6s lifetime
        assert "reaches its maximum lifetime in" in text, text
        assert "Start-Wait was stopped" in text, text
        sid = session_of(gw, "alice", port)
        assert ended(gw, sid)["fields"]["reason"] == "lifetime"
        assert any(e["kind"] == "session.warning" and e["fields"]["limit"] == "maxSessionLifetime"
                   for e in gw.audit_events())
    finally:
        gw.stop()


def test_lifetime_warnings_reach_the_user_while_a_command_runs(tmp_path):
    """Both warnings (5 s and 2 s before a 10 s lifetime) fall due while one
    long backend runs: they are shown then, not lost or held back."""
    gw = Gateway(tmp_path / "state", extra_args=["--policy-dir", str(policy_with_wait(tmp_path))],
                 config={"maxSessionLifetime": "10s", "idleTimeout": "1h"}).start()
    try:
        async def go():
            async with await connect(gw, "alice") as conn:
                proc, out = await open_shell(conn, term_type="xterm")
                await wait_for_text(out, "> ", 5)
                proc.stdin.write("Start-Wait 60\r")
                await asyncio.wait_for(out.closed.wait(), 20)
                return out.text
        text = run(go())
        during = text.split("Start-Wait 60", 1)[1].split("Start-Wait was stopped", 1)[0]
        warnings = re.findall(r"maximum lifetime in (\d+) seconds?", during)
        assert [int(w) for w in warnings] == [5, 2], text
        assert "alice> " not in during, "no prompt is drawn in the middle of a running command"
        assert "alice> " not in text.split("Start-Wait was stopped", 1)[1], "nor after it, when the session ends"
        kinds = [e["fields"]["remainingSeconds"] for e in gw.audit_events()
                 if e["kind"] == "session.warning" and e["fields"]["limit"] == "maxSessionLifetime"]
        assert kinds == ["5", "2"], kinds
    finally:
        gw.stop()
