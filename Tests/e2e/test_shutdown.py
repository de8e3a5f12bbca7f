"""Shutdown waits for the session threads without polling: the main thread
sleeps until the last one leaves or the grace period ends.

A daemon of its own: it is stopped here.
"""
import re
import signal
import socket
import tempfile
import time
from pathlib import Path

from gatehouse_harness import Gateway


def voluntary_switches(pid: int, tid: int) -> int:
    """How often the thread has gone to sleep so far, so how often it woke."""
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))


def test_the_shutdown_grace_is_one_wait_that_the_last_session_ends():
    """A connection that has not even sent its SSH banner keeps its thread
    (it is not woken by the shutdown; its login grace is 30 s), so SIGTERM
    leaves the main thread waiting out the 5 s shutdown grace for it. It
    used to look every 50 ms (about 20 wake-ups a second); now it sleeps
    until the thread leaves, and the daemon exits once the connection closes."""
    with tempfile.TemporaryDirectory(prefix="gatehouse-e2e-shutdown-") as tmp:
        gw = Gateway(Path(tmp) / "state").start()
        try:
            held = socket.create_connection((gw.host, gw.port))
            held.recv(64)  # the server's banner: the connection has its thread
            pid = gw.proc.pid
            gw.proc.send_signal(signal.SIGTERM)
            deadline = time.time() + 10
            while "shutting down" not in gw.daemon_log() and time.time() < deadline:
                time.sleep(0.05)
            assert "shutting down" in gw.daemon_log()
            time.sleep(0.3)  # serve() has returned; the main thread waits for sessions
            assert gw.proc.poll() is None, "the held connection's thread keeps the daemon in its grace period"
            before = voluntary_switches(pid, pid)
            time.sleep(1)
            woke = voluntary_switches(pid, pid) - before
            assert gw.proc.poll() is None
            assert woke <= 2, f"the main thread woke {woke} times while waiting for one session thread"
            held.close()
            assert gw.proc.wait(10) == 0
        finally:
            gw.stop()
