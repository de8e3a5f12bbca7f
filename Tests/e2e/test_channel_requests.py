"""Channel requests the gateway refuses, checked on the wire: the client that
asks with want-reply must read SSH_MSG_CHANNEL_FAILURE, the refusal must be in
the audit log, and the session must go on serving commands afterwards."""
import asyncio

from gatehouse_harness import connect, run
from limits_fixtures import open_shell, wait_for_text


async def _request_on_shell(gateway, request, *args):
    """Opens a shell, sends `request` with want-reply on its channel, then runs
    a command in the same shell. Returns (reply, shell text, a later exec's
    exit status on the same connection)."""
    async with await connect(gateway, "alice") as conn:
        proc, out = await open_shell(conn)
        await wait_for_text(out, "Roles:", 5)
        # asyncssh's own request helper: sets want-reply and waits for the
        # SUCCESS (True) or FAILURE (False) that answers it.
        reply = await asyncio.wait_for(proc.channel._make_request(request, *args), 10)
        proc.stdin.write("Get-Mailbox -Identity bob\n")
        await wait_for_text(out, "ProhibitSendQuota", 10)
        later = await conn.run("Get-Mailbox -Identity bob", check=False)
        proc.stdin.write("exit\n")
        return reply, out.text, later.exit_status


def test_agent_forwarding_request_is_answered_with_failure(gateway):
    reply, text, later = run(_request_on_shell(gateway, b"auth-agent-req@openssh.com"))
    assert reply is False, f"auth-agent-req@openssh.com was answered with {reply!r}, not CHANNEL_FAILURE"
    assert "bob@contoso.com" in text
    assert later == 0
    assert gateway.wait_for_audit(lambda e: e["kind"] == "channel.refused"
                                  and e["fields"]["request"] == "auth-agent")


def test_x11_request_is_answered_with_failure(gateway):
    from asyncssh.packet import Boolean, String, UInt32
    reply, _, later = run(_request_on_shell(gateway, b"x11-req", Boolean(False), String(b"MIT-MAGIC-COOKIE-1"),
                                            String(b"00" * 16), UInt32(0)))
    assert reply is False
    assert later == 0
    assert gateway.wait_for_audit(lambda e: e["kind"] == "channel.refused" and e["fields"]["request"] == "x11")
