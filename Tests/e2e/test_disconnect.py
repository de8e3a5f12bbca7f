"""A client that closes its connection ends its session. libssh can read the
client's disconnect outside the session's poll (while a channel close or a
write flushes), close the socket and drop it from the poll set; the session
loop then waited on its wake descriptor alone and the session lived on
until the idle timeout. The window is a race, so the test repeats a
sequence that hit it often (with six rounds, two runs of three failed
before the fix)."""
import asyncio

import pytest

from gatehouse_harness import Gateway, connect
from limits_fixtures import open_shell, wait_for_text

ROUNDS = 10


def session_ends(gw):
    return sum(e["kind"] == "session.end" for e in gw.audit_events())


async def one_round(gw):
    held = []
    try:
        for _ in range(3):
            conn = await connect(gw, "alice")
            _, out = await open_shell(conn)
            await wait_for_text(out, "Get-Command lists", 30)
            held.append(conn)
        result = await held[0].run("Get-Mailbox -Identity bob", check=False)
        assert result.exit_status == 0, result.stderr
        before = session_ends(gw)
        for conn in held[1:]:
            conn.close()
            await conn.wait_closed()
        # The two closed sessions end, while the first is still open.
        gw.wait_for_audit(lambda e: session_ends(gw) >= before + 2)
    finally:
        for conn in held:
            conn.close()


@pytest.fixture
def gw(tmp_path):
    gw = Gateway(tmp_path / "state", config={"maxSessionsPerUser": "10",
                                             "perSourcePenaltyExempt": "127.0.0.1"}).start()
    yield gw
    gw.stop()


def test_closed_connections_end_their_sessions(gw):
    for _ in range(ROUNDS):
        asyncio.run(one_round(gw))
