"""Both factors are required: publickey, then keyboard-interactive through PAM."""
import asyncio
import subprocess
import sys
import types

import asyncssh
import pytest

from gatehouse_harness import connect, expect_refused, run, totp


def test_a_dead_daemon_is_not_a_refusal():
    """The refusal check must fail when the daemon is gone: a refused TCP
    connect (daemon dead before the login) and a connection closed mid
    handshake (daemon crashed during it) are not refusals."""
    dead = types.SimpleNamespace(proc=subprocess.Popen([sys.executable, "-c", "pass"]))
    dead.proc.wait()

    async def crashed_during_handshake():
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            await asyncssh.connect("127.0.0.1", port, username="alice", known_hosts=None, login_timeout=5)

    async def dead_before_login():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        await asyncssh.connect("127.0.0.1", port, username="alice", known_hosts=None, login_timeout=5)

    for coro in (crashed_during_handshake, dead_before_login):
        with pytest.raises(AssertionError):
            expect_refused(dead, coro())


async def login_and_run(gw, user, **kw):
    async with await connect(gw, user, **kw) as conn:
        return await conn.run("Get-Mailbox -Identity alice", check=False)


def test_key_and_totp_logs_in(gateway):
    result = run(login_and_run(gateway, "alice"))
    assert result.exit_status == 0


def test_pam_prompt_reaches_the_client(gateway):
    async def go():
        conn = await connect(gateway, "alice")
        async with conn:
            return conn.test_client.prompts
    prompts = run(go())
    # pam_oath's own prompt text, unchanged.
    assert any("One-time password" in p for p in prompts), prompts


def test_wrong_code_is_refused(gateway):
    gateway.reset_totp_replay()
    right = totp(gateway.users["alice"]["totpSecretHex"])
    wrong = f"{(int(right) + 1) % 1000000:06d}"
    expect_refused(gateway, login_and_run(gateway, "alice", code=wrong))
    failures = [e for e in gateway.audit_events() if e["kind"] == "auth.failure"]
    assert any(e["fields"].get("method") == "keyboard-interactive" for e in failures)
    # Checked in the events' fields: the chain's hex hashes could hold any
    # six digits by chance.
    assert all(wrong not in str(e.get("fields", {})) for e in gateway.audit_events())


def test_key_only_is_refused(gateway):
    expect_refused(gateway, login_and_run(gateway, "alice", kbdint=False))


def test_kbdint_only_is_refused(gateway):
    expect_refused(gateway, login_and_run(gateway, "alice", key=None))


def test_someone_elses_key_is_refused(gateway):
    expect_refused(gateway, login_and_run(gateway, "alice", key="bob"))


def test_unknown_user_is_refused(gateway):
    async def go():
        conn, _ = await asyncssh.create_connection(
            asyncssh.SSHClient, gateway.host, gateway.port, username="mallory",
            client_keys=[gateway.key("alice")], known_hosts=gateway.known_hosts(),
            preferred_auth=["publickey", "keyboard-interactive"], agent_path=None, login_timeout=10)
        conn.close()
    expect_refused(gateway, go())


def test_replayed_code_is_refused(gateway):
    code = gateway.fresh_totp("bob")
    assert run(login_and_run(gateway, "bob", code=code)).exit_status == 0
    # Same code again, without resetting pam_oath's replay memory.
    expect_refused(gateway, login_and_run(gateway, "bob", code=code))
