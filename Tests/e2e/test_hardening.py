"""SSH hardening against the real daemon: FIPS algorithm policy, pre-auth
limits (MaxAuthTries, unauthenticated caps, per-source penalties with an
exempt list, per-user lockout and operator unlock), SIGHUP reload, SIGTERM,
the signal mask and zombies. The "bad" client connects from 127.0.0.2 so
penalties never touch the good client on 127.0.0.1."""
import asyncio
import io
import json
import os
import signal
import socket
import time

import asyncssh
import paramiko
import pytest

from gatehouse_harness import Gateway, KbdintClient, connect, expect_refused, run, run_exec, totp
from limits_fixtures import open_shell, policy_with_wait, wait_for_text

BAD = "127.0.0.2"


async def login(gw, user="alice", **kw):
    async with await connect(gw, user, **kw) as conn:
        return (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status


def login_ok(gw, user="alice", **kw):
    return run(login(gw, user, **kw)) == 0


def fails(gw, user="alice", **kw):
    """The daemon refuses the login, and still serves afterwards. A lost or
    refused connection is not a refusal: a dead daemon produces those
    (expect_refused)."""
    expect_refused(gw, login(gw, user, **kw))
    return True


def banner_from(gw, source, timeout=5):
    """Connects from `source` and returns what the server says first: b'' when
    it closes at once, None when it says nothing within `timeout`."""
    s = socket.create_connection((gw.host, gw.port), timeout=timeout, source_address=(source, 0))
    try:
        return s.recv(64)
    except ConnectionResetError:
        return b""
    except socket.timeout:
        return None
    finally:
        s.close()


# -- FIPS -------------------------------------------------------------------

@pytest.mark.parametrize("option", [
    {"encryption_algs": ["chacha20-poly1305@openssh.com"]},
    {"kex_algs": ["curve25519-sha256", "curve25519-sha256@libssh.org"]},
    {"encryption_algs": ["aes128-ctr"], "mac_algs": ["umac-128-etm@openssh.com", "hmac-sha1"]},
])
def test_fips_refuses_non_fips_only_clients(gateway, option):
    # No common algorithm: the client gives up (KEY_EXCHANGE_FAILED), or
    # libssh closes the connection without a message; either way the daemon
    # must still serve afterwards.
    expect_refused(gateway, login(gateway, **option), codes={asyncssh.DISC_KEY_EXCHANGE_FAILED},
                   closed_is_refusal=True)


def test_fips_false_allows_modern_algorithms(tmp_path):
    gw = Gateway(tmp_path / "state", config={"fips": "false", "perSourcePenaltyExempt": "127.0.0.1"}).start()
    try:
        assert login_ok(gw, encryption_algs=["chacha20-poly1305@openssh.com"])
        assert login_ok(gw, kex_algs=["curve25519-sha256"])
    finally:
        gw.stop()


# -- pre-auth limits ----------------------------------------------------------

@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    """Penalties on for 127.0.0.2 (127.0.0.1 exempt), small caps, short grace."""
    tmp = tmp_path_factory.mktemp("strict")
    gw = Gateway(tmp / "state", config={
        "perSourcePenaltyExempt": "127.0.0.1", "perSourcePenaltyAuthFail": "5s", "perSourcePenaltyMin": "15s",
        "maxUnauthenticatedPerSource": "4", "maxUnauthenticated": "20", "loginGraceTime": "3",
        "maxAuthTries": "3", "userLockoutFailures": "3", "userLockoutWindow": "10m"}).start()
    yield gw
    gw.stop()


def paramiko_key(gw, user):
    """The user's key for paramiko. paramiko 5.1 rejects an openssh-key-v1
    ECDSA file whose private section needs no padding ("Invalid key curve
    identifier") although OpenSSH and asyncssh read it, so hand it over as
    a traditional EC PEM re-exported by asyncssh."""
    key = asyncssh.read_private_key(gw.users[user]["privateKey"])
    return paramiko.ECDSAKey.from_private_key(io.StringIO(key.export_private_key("pkcs1-pem").decode()))


def paramiko_kbdint(gw, user, answers, source="127.0.0.1", tries=1):
    """publickey, then `tries` keyboard-interactive rounds on ONE connection,
    each answering with `answers(prompts)`. Returns the per-round outcomes."""
    sock = socket.create_connection((gw.host, gw.port), timeout=10, source_address=(source, 0))
    t = paramiko.Transport(sock)
    outcomes = []
    try:
        t.start_client(timeout=10)
        key = paramiko_key(gw, user)
        assert t.auth_publickey(user, key) == ["keyboard-interactive"]
        for _ in range(tries):
            try:
                t.auth_interactive(user, lambda title, instr, prompts: answers(prompts))
                outcomes.append("ok")
            except paramiko.AuthenticationException:
                # paramiko reports a closed transport as a failed round too.
                outcomes.append("denied" if t.is_active() else "disconnected")
                if not t.is_active():
                    break
            except (paramiko.SSHException, EOFError, OSError):
                outcomes.append("disconnected")
                break
    finally:
        t.close()
    return outcomes


def test_max_auth_tries_disconnects(strict):
    outcomes = paramiko_kbdint(strict, "bob", lambda prompts: ["000000"] * len(prompts), tries=6)
    # publickey succeeded (partial); the 3rd failure (maxAuthTries 3) ends the connection.
    # The third failure's reply and the disconnect arrive together; paramiko
    # may report that round either way.
    assert outcomes in (["denied", "denied", "denied", "disconnected"], ["denied", "denied", "disconnected"]), outcomes
    deadline = time.time() + 10     # the session thread logs it a moment later
    while "too many authentication failures (3)" not in strict.daemon_log(20000):
        assert time.time() < deadline, strict.daemon_log(2000)
        time.sleep(0.05)
    strict.cli("users", "unlock", "bob")


def test_unauthenticated_connections_are_capped_per_source(strict):
    held = []
    try:
        for _ in range(4):
            s = socket.create_connection((strict.host, strict.port), source_address=(BAD, 0))
            assert s.recv(8).startswith(b"SSH-2.0"), "admitted connections get the banner"
            held.append(s)
        # The fifth from the same source is closed before key exchange...
        assert banner_from(strict, BAD) == b""
        # ...while another source still logs in.
        assert login_ok(strict)
        # The login grace time (3s) ends the half-open ones: the server closes them.
        for s in held:
            s.settimeout(10)
            while s.recv(4096):      # the rest of the version line, then EOF
                pass
    finally:
        for s in held:
            s.close()
    refusal = strict.wait_for_audit(lambda e: e["kind"] == "connection.refused" and e["fields"]["source"] == BAD)
    assert refusal["fields"]["reason"] == "maxUnauthenticatedPerSource"


def test_total_unauthenticated_connections_are_capped(tmp_path):
    gw = Gateway(tmp_path / "state", config={"maxUnauthenticated": "5", "maxUnauthenticatedPerSource": "2",
                                             "perSourcePenaltyExempt": "127.0.0.1"}).start()
    held = []
    try:
        for source in ["127.0.0.2", "127.0.0.3"]:
            for _ in range(2):
                held.append(socket.create_connection((gw.host, gw.port), source_address=(source, 0)))
                assert held[-1].recv(8).startswith(b"SSH-2.0")
        held.append(socket.create_connection((gw.host, gw.port), source_address=("127.0.0.4", 0)))
        assert held[-1].recv(8).startswith(b"SSH-2.0")
        assert banner_from(gw, "127.0.0.5") == b"", "the sixth unauthenticated connection is refused"
        assert gw.wait_for_audit(lambda e: e["kind"] == "connection.refused"
                                 and e["fields"]["reason"] == "maxUnauthenticated")
        for s in held:
            s.close()
        time.sleep(0.5)
        assert login_ok(gw), "slots come back when connections go"
    finally:
        for s in held:
            s.close()
        gw.stop()


def test_openssh_client_with_only_non_fips_algorithms_is_refused(gateway, tmp_path):
    import shutil
    import subprocess
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    from test_openssh import askpass_env, ssh_argv
    for option, expected in [("Ciphers=chacha20-poly1305@openssh.com", "no matching cipher"),
                             ("KexAlgorithms=curve25519-sha256", "no matching key exchange")]:
        proc = subprocess.run(["setsid", "-w", *ssh_argv(gateway, "alice", "-o", option), "Get-Mailbox"],
                              env=askpass_env(gateway, tmp_path, "alice"), capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
        assert proc.returncode == 255 and expected in proc.stderr, proc.stderr


def test_source_penalty_after_failed_logins_spares_other_sources(strict):
    time.sleep(3.5)     # earlier half-open connections from BAD have timed out
    # Failed connections earn 5s each and the penalty decays in real time,
    # so the fourth takes it past the 15s minimum.
    for _ in range(4):
        assert fails(strict, key="bob", local_addr=(BAD, 0))
    strict.wait_for_audit(lambda e: e["kind"] == "auth.source-penalty" and e["fields"]["source"] == BAD)
    assert banner_from(strict, BAD) == b"", "a penalized source is refused before key exchange"
    assert login_ok(strict), "other sources are not affected"
    refusal = strict.wait_for_audit(lambda e: e["kind"] == "connection.refused" and e["fields"]["reason"].startswith("penalty"))
    assert refusal["fields"]["source"] == BAD


def test_exempt_source_is_never_penalized(tmp_path):
    gw = Gateway(tmp_path / "state", config={"perSourcePenaltyExempt": f"127.0.0.1,{BAD}",
                                             "perSourcePenaltyAuthFail": "10s", "perSourcePenaltyMin": "10s"}).start()
    try:
        for _ in range(3):
            assert fails(gw, key="bob", local_addr=(BAD, 0))
        assert banner_from(gw, BAD).startswith(b"SSH-2.0")
        assert login_ok(gw, local_addr=(BAD, 0))
        assert not any(e["kind"] == "auth.source-penalty" for e in gw.audit_events())
    finally:
        gw.stop()


def test_user_lockout_and_operator_unlock(strict):
    wrong = lambda prompts: ["000000"] * len(prompts)
    try:
        paramiko_kbdint(strict, "alice", wrong, tries=2)
        paramiko_kbdint(strict, "alice", wrong, tries=2)
        locked = strict.wait_for_audit(lambda e: e["kind"] == "auth.user-lockout" and e["user"] == "alice")
        assert "000000" not in json.dumps(locked)
        assert "alice" in strict.cli("sessions", "list", "--live").stdout.split("locked users:")[1]
        # Even the right code is refused while locked, and PAM is not asked;
        # the client is told why, and the last refusal is the disconnect
        # message itself (asyncssh retries keyboard-interactive until then).
        client = KbdintClient(strict.fresh_totp("alice"))
        async def attempt():
            conn, _ = await asyncssh.create_connection(
                lambda: client, strict.host, strict.port, username="alice", client_keys=[strict.key("alice")],
                known_hosts=strict.known_hosts(), preferred_auth=["publickey", "keyboard-interactive"],
                agent_path=None, login_timeout=15)
            conn.close()
        with pytest.raises(asyncssh.DisconnectError, match="Too many authentication failures"):
            run(attempt())
        assert any("account is locked" in text for text in client.instructions), client.instructions
        assert not client.prompts, "PAM was not asked for a code"
    finally:
        # Unlock even when an assertion above failed: later tests share the daemon.
        unlocked = strict.cli("users", "unlock", "alice").stdout.strip()
    assert unlocked == "alice unlocked"
    assert strict.wait_for_audit(lambda e: e["kind"] == "auth.user-unlock" and e["user"] == "alice")
    assert login_ok(strict, "alice")


def test_lockout_needs_the_key_first(strict):
    """Failures without alice's key (a stranger guessing) never lock alice."""
    for _ in range(4):
        assert fails(strict, "alice", key="bob")
    assert login_ok(strict, "alice")


# -- operations ---------------------------------------------------------------

def reload_and_wait(gw, timeout=10):
    """SIGHUP, then wait for the successful reload's policy.load event."""
    def reloads():
        return sum(1 for e in gw.audit_events() if e["kind"] == "policy.load" and e["fields"].get("reload") == "true")
    before = reloads()
    gw.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + timeout
    while reloads() == before:
        assert time.time() < deadline, "no successful reload"
        time.sleep(0.05)


def test_sighup_reload_keeps_old_policy_on_error_and_applies_a_good_one(tmp_path):
    policies = policy_with_wait(tmp_path)
    gw = Gateway(tmp_path / "state", extra_args=["--policy-dir", str(policies)],
                 config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
    try:
        roles = policies / "roles" / "mailbox.yaml"
        good = roles.read_text()
        roles.write_text(good + "    bogusKey: 1\n")
        bad_line = len(good.splitlines()) + 1
        gw.proc.send_signal(signal.SIGHUP)
        failed = gw.wait_for_audit(lambda e: e["kind"] == "policy.reload-failed")
        assert f"mailbox.yaml:{bad_line}" in failed["fields"]["first"], failed
        assert f"mailbox.yaml:{bad_line}" in gw.daemon_log(20000)
        assert login_ok(gw, "bob"), "the old policy still serves"

        # A good reload removes two cmdlets while one of them is running: the
        # running one keeps the snapshot it started with; new lines get the new one.
        async def reload_during_command():
            async with await connect(gw, "bob") as conn:
                running = asyncio.ensure_future(conn.run("Start-Wait 2", check=False))
                await asyncio.sleep(0.7)
                roles.write_text(good.replace("      - Get-MailboxStatistics\n", "").replace("      - Start-Wait\n", ""))
                gw.proc.send_signal(signal.SIGHUP)
                while not any(e["kind"] == "policy.load" and e["fields"].get("reload") == "true"
                              for e in gw.audit_events()):
                    await asyncio.sleep(0.05)
                after = await conn.run("Get-MailboxStatistics -Identity bob", check=False)
                return await running, after
        in_flight, after = run(reload_during_command())
        assert in_flight.exit_status == 0, in_flight.stderr
        assert after.exit_status == 126

        # A directory change reaches the claim too (Lockbox reads the reloaded directory).
        directory = gw.state_dir / "directory.yaml"
        text = directory.read_text()
        bob_roles = "  bob:\n    groups: [managers]\n    roles: [MailboxReader]\n"
        assert bob_roles in text
        directory.write_text(text.replace(bob_roles, "  bob:\n    groups: [managers]\n    roles: []\n"))
        reload_and_wait(gw)
        assert not login_ok(gw, "bob"), "bob lost MailboxReader in the directory"

        # A lowered maxDuration reaches the Lockbox too: a 2h request is now over the limit.
        request = "New-LockboxRequest -Role MailboxAdmin -Scope fabrikam -Duration 2h -Reason 'disk' -Ticket INC-1"
        assert run(run_exec(gw, "alice", request)).exit_status == 0, "2h is within the shipped 4h"
        roles.write_text(roles.read_text().replace("maxDuration: 4h", "maxDuration: 1h"))
        reload_and_wait(gw)
        refused = run(run_exec(gw, "alice", request))
        assert refused.exit_status != 0 and "maximum for MailboxAdmin of 1h" in refused.stderr, refused.stderr
        assert gw.proc.poll() is None
    finally:
        gw.stop()


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append((int(entry), fields[0]))
    return out


def test_sigterm_tells_sessions_ends_backends_and_exits_promptly(tmp_path):
    gw = Gateway(tmp_path / "state", extra_args=["--policy-dir", str(policy_with_wait(tmp_path))],
                 config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
    try:
        async def go():
            async with await connect(gw, "alice") as shell_conn, await connect(gw, "bob") as busy_conn:
                proc, out = await open_shell(shell_conn)
                await wait_for_text(out, "Roles:", 5)
                busy = asyncio.ensure_future(busy_conn.run("Start-Wait 60", check=False))
                await asyncio.sleep(1)
                assert [c for c in children(gw.proc.pid) if c[1] != "Z"], "the backend is running"
                started = time.monotonic()
                gw.proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(out.closed.wait(), 10)
                result = await asyncio.wait_for(busy, 10)
                return out.text, result, started
        text, result, started = run(go())
        gw.proc.wait(10)
        elapsed = time.monotonic() - started
        assert gw.proc.returncode == 0
        assert elapsed < 10, elapsed   # 5s grace at most, not the 60s backend
        assert "shutting down" in text, text
        assert "Start-Wait was stopped" in result.stderr, result.stderr
        lines = (gw.state_dir / "audit.log").read_text().splitlines()
        events = [json.loads(l) for l in lines]       # every line whole
        ends = [e for e in events if e["kind"] == "session.end"]
        assert sorted(e["fields"]["reason"] for e in ends[-2:]) == ["shutdown", "shutdown"], ends
        assert not (gw.state_dir / "control.sock").exists()
    finally:
        gw.stop()


def test_no_zombies_after_commands(gateway):
    async def go():
        async with await connect(gateway, "bob") as conn:
            for _ in range(5):
                await conn.run("Get-Mailbox -Identity bob", check=False)
    run(go())
    time.sleep(0.3)
    assert [c for c in children(gateway.proc.pid) if c[1] == "Z"] == []


def test_signal_mask_is_reset_at_start(tmp_path):
    gw = Gateway(tmp_path / "state")
    gw.popen_kwargs = {"preexec_fn": lambda: signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP})}
    gw.start()
    try:
        gw.proc.send_signal(signal.SIGTERM)
        assert gw.proc.wait(10) == 0
    finally:
        gw.stop()


# -- requests the skeleton's test_channels.py does not cover ------------------

def test_x11_and_agent_forwarding_are_refused_and_audited(gateway):
    async def go():
        client = KbdintClient(gateway.fresh_totp("alice"))
        # agent_path names a socket that need not exist: asyncssh asks for
        # agent forwarding whenever one is configured.
        conn, _ = await asyncssh.create_connection(
            lambda: client, gateway.host, gateway.port, username="alice", client_keys=[gateway.key("alice")],
            known_hosts=gateway.known_hosts(), preferred_auth=["publickey", "keyboard-interactive"],
            agent_path=str(gateway.state_dir / "no-agent.sock"), agent_forwarding=True, login_timeout=15)
        async with conn:
            port = conn.get_extra_info("sockname")[1]
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_session(asyncssh.SSHClientSession, "Get-Mailbox -Identity bob",
                                          x11_forwarding=True, x11_display="127.0.0.1:0")
            # agent forwarding is asked for on the session channel; the command still runs.
            result = await conn.run("Get-Mailbox -Identity bob", check=False)
            return port, result
    port, result = run(go())
    assert result.exit_status == 0
    def refused(kind):
        return gateway.wait_for_audit(lambda e: e["kind"] == "channel.refused" and e["fields"]["request"] == kind)
    assert refused("x11")
    assert refused("auth-agent")


def test_a_connection_without_descriptors_for_a_session_is_refused_before_key_exchange(tmp_path):
    """At the open-file limit a login used to fail inside PAM, and the client
    heard "Too many authentication failures". Now the accept path refuses a
    connection that would leave too few descriptors for a session, before
    key exchange, audited as such; once connections end, logins work again."""
    limit = 96
    gw = Gateway(tmp_path / "state", config={
        "maxUnauthenticated": "1000", "maxUnauthenticatedPerSource": "1000", "loginGraceTime": "120",
        "perSourcePenaltyExempt": "127.0.0.1,127.0.0.3"})
    gw.launcher = ["prlimit", f"--nofile={limit}:{limit}", "--"]
    gw.start()
    held = []
    try:
        assert login_ok(gw), "a login works below the limit"
        # Each admitted connection holds one descriptor of the daemon's:
        # fill the table until the daemon closes one before its banner.
        refused_banner = None
        for _ in range(limit):
            s = socket.create_connection((gw.host, gw.port), timeout=10, source_address=("127.0.0.3", 0))
            try:
                first = s.recv(8)
            except ConnectionResetError:
                first = b""
            if not first:
                s.close()
                refused_banner = first
                break
            assert first.startswith(b"SSH-2.0")
            held.append(s)
        assert refused_banner == b"", "a connection was closed before key exchange"
        print("held", len(held), "connections at the limit", limit)
        assert len(held) < limit - 16
        refusal = gw.wait_for_audit(lambda e: e["kind"] == "connection.refused" and e["fields"]["source"] == "127.0.0.3")
        assert refusal["fields"]["reason"] == "descriptors"
        # A real login now is closed before key exchange: no authentication
        # failure, no PAM.
        with pytest.raises((asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionResetError)) as lost:
            run(login(gw, "alice"))
        assert not isinstance(lost.value, asyncssh.PermissionDenied), lost.value
        assert "too few file descriptors" in gw.daemon_log()
        assert gw.proc.poll() is None, "the daemon still runs"
        for s in held:
            s.close()
        held = []
        # The sessions end on the peer's close; then there is room again.
        deadline = time.time() + 20
        while len(os.listdir(f"/proc/{gw.proc.pid}/fd")) > limit // 2 and time.time() < deadline:
            time.sleep(0.05)
        assert login_ok(gw), "logins work again once connections end"
    finally:
        for s in held:
            s.close()
        gw.stop()
