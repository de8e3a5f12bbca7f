"""Only a session channel with pty/shell/exec/window-change is accepted."""
import asyncssh
import pytest

from gatehouse_harness import connect, run


def test_local_port_forwarding_is_refused(gateway):
    async def go():
        async with await connect(gateway, "alice") as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", gateway.port)
    run(go())


def test_remote_port_forwarding_is_refused(gateway):
    async def go():
        async with await connect(gateway, "alice") as conn:
            with pytest.raises(asyncssh.ChannelListenError):
                await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 9)
    run(go())


def test_sftp_is_refused(gateway):
    async def go():
        async with await connect(gateway, "alice") as conn:
            with pytest.raises((asyncssh.ChannelOpenError, asyncssh.SFTPError, asyncssh.Error, OSError)):
                async with conn.start_sftp_client():
                    pass
    run(go())


def test_subsystem_and_env_are_refused_and_audited(gateway):
    async def go():
        async with await connect(gateway, "alice") as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_session(asyncssh.SSHClientSession, subsystem="netconf")
            # asyncssh sends env requests without waiting for the answer; the
            # command must still run with the clean environment.
            result = await conn.run("Get-Mailbox -Identity bob", env={"LD_PRELOAD": "/tmp/evil.so"}, check=False)
            return result
    result = run(go())
    assert result.exit_status == 0
    assert "LD_PRELOAD" not in gateway.invocations()[-1]["env"]
    refusals = [e for e in gateway.audit_events() if e["kind"] == "channel.refused"]
    requests = {e["fields"].get("request") for e in refusals}
    assert "subsystem" in requests and "env" in requests, refusals
