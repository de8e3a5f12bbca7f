"""Socket activation: systemd binds the port (gatehoused.socket binds 22) and
passes the listening socket; the daemon accepts on it and never binds a port
itself. Driven by systemd's own `systemd-socket-activate`, which execs the
daemon on the first connection, as systemd does for a socket unit."""
import shutil
import socket
import threading
import time

import pytest

from gatehouse_harness import Gateway, run, run_exec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_listening_ports(pid: int) -> list:
    """The ports of the listening TCP sockets process `pid` holds."""
    import os
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate (package systemd) is not installed")
def test_the_daemon_accepts_on_the_socket_systemd_passes(tmp_path):
    port = free_port()
    # Metrics off: their endpoint is a listener of the daemon's own, and this
    # test shows the SSH socket is the one systemd made.
    gw = Gateway(tmp_path / "state", config={"metricsListen": "off"})
    gw.launcher = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=ssh"]
    # start() waits for the demo manifest, which appears only once the daemon
    # runs, and systemd-socket-activate starts it on the first connection: a
    # knock from another thread once it listens.
    def knock():
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=10).close()
                return
            except ConnectionRefusedError:
                time.sleep(0.05)
    knocker = threading.Thread(target=knock)
    knocker.start()
    try:
        gw.start()
    finally:
        knocker.join()
    try:
        # The manifest's address is the activated socket's, not --listen's port 0.
        assert gw.port == port, gw.manifest["listen"]
        assert "accepting on the socket systemd passed" in gw.daemon_log(tail=10**6)
        result = run(run_exec(gw, "alice", "Get-Mailbox -Identity alice"))
        assert result.exit_status == 0, result.stderr
        assert "alice" in result.stdout
        # The daemon bound no socket of its own: the only listening TCP socket
        # it holds is the one systemd-socket-activate made.
        assert daemon_listening_ports(gw.proc.pid) == [port]
    finally:
        gw.stop()
