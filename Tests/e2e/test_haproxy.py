"""Two real gatehoused nodes behind the real HAProxy (Debian's package, TCP
mode, `send-proxy-v2`), on loopback (issue 13). The engineer's client binds
127.0.0.2, HAProxy connects to the nodes from 127.0.0.1, and each node is
configured with `proxyProtocolFrom: 127.0.0.1`: audit events, the live
session list, transcripts and per-source penalties must name 127.0.0.2, not
the balancer. A balancer address without a header is refused; a header from
anyone else is not honoured; `kill -9` of a node sends the client's next
connection, through the same address, to the other node.

Both nodes get the same demo users and the same host key (copied from a
first, seeding start), as every node behind one address must present one
host key (docs/fleet.md).

With GATEHOUSE_TEST_POSTGRES_URL (`scripts/test-postgres start`; `make test`
and `.ci/run` start one) both nodes share that PostgreSQL (`store:`), and the
Lockbox checks run too: a request filed in a session on one node is approved
through the balancer on the other and redeemed on the first, and after
`kill -9` of the node holding an elevated session the state stays
consistent. Without it those checks skip and say why (under CI=true they
fail, as test_fleet_store.py does)."""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from gatehouse_harness import REPO, Gateway, KbdintClient, run, totp
from test_fleet_store import URL as STORE_URL, psql, request_node, require_postgres
from test_lockbox import Shell

ENGINEER = "127.0.0.2"      # the engineer's client
BAD = "127.0.0.9"           # a client that fails its logins
DIRECT = "127.0.0.3"        # a client that talks to a node without the balancer
ASCIINEMA = REPO / ".venv" / "bin" / "asciinema"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# Penalties as the defaults: a failed login earns 5s, 15s make it active.
NODE_CONFIG = {"proxyProtocolFrom": "127.0.0.1", "metricsListen": "off", "perSourcePenaltyAuthFail": "5s",
               "perSourcePenaltyMin": "15s", "perSourcePenaltyMax": "60s"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_config(front: int, nodes: dict, stats: Path) -> str:
    """deploy/haproxy.cfg itself, on loopback: its bind and servers replaced
    by the test's ports, run in the foreground as the test's user without
    syslog, and health checks every 300 ms (so a killed node is marked down
    quickly). Everything else (TCP mode, send-proxy-v2, check-send-proxy,
    leastconn, redispatch, the timeouts) is what ships."""
    shipped = (REPO / "deploy" / "haproxy.cfg").read_text()
    out = []
    servers_written = False
    for line in shipped.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] in ("user", "group", "daemon") or words[:2] == ["log", "/dev/log"]:
            continue
        if words[:2] == ["stats", "socket"]:
            line = f"    stats socket {stats} mode 600 level admin"
        elif words[0] == "bind":
            line = f"    bind 127.0.0.1:{front}"
        elif words[0] == "default-server":
            assert "send-proxy-v2" in words and "check-send-proxy" in words, line
            line = line.replace("inter 2s fall 3 rise 2", "inter 300ms fall 1 rise 1")
            assert "inter 300ms" in line, line
        elif words[0] == "server":
            if servers_written:
                continue
            servers_written = True
            line = "\n".join(f"    server {name} 127.0.0.1:{port}" for name, port in nodes.items())
        out.append(line)
    assert servers_written, "deploy/haproxy.cfg names no server"
    return "\n".join(out) + "\n"


class Balancer:
    def __init__(self, tmp: Path, nodes: dict):
        self.port = free_port()
        self.stats = tmp / "haproxy.sock"
        self.config = tmp / "haproxy.cfg"
        self.config.write_text(haproxy_config(self.port, nodes, self.stats))
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.log = open(tmp / "haproxy.log", "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.names = set(nodes)
        self.wait_until(lambda: self.up() == self.names, "every server UP")

    def command(self, text: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(text.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict:
        """Server name → status (UP, DOWN, ...) from `show stat`."""
        try:
            lines = self.command("show stat").splitlines()
        except OSError:
            return {}
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, l.split(","))) for l in lines[1:] if l and l.startswith("gatehouse,")]
        return {r["svname"]: r["status"] for r in rows if r["svname"] not in ("FRONTEND", "BACKEND")}

    def up(self) -> set:
        return {name for name, state in self.server_states().items() if state == "UP"}

    def wait_until(self, predicate, what, timeout=15):
        deadline = time.time() + timeout
        while not predicate():
            assert self.proc.poll() is None, f"haproxy exited: {self.proc.returncode}"
            if time.time() > deadline:
                raise AssertionError(f"haproxy: {what} not reached: {self.server_states()}")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Fleet:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        if STORE_URL:
            # A fresh database for this module: the nodes migrate it as they start.
            psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        # A seeding start makes the demo users and the host key once.
        seed = Gateway(tmp / "seed").start()
        seed.stop()
        self.nodes = {}
        for name in ("a", "b"):
            state = tmp / f"node-{name}"
            state.mkdir()
            for item in ("keys", "oath"):
                shutil.copytree(seed.state_dir / item, state / item)
            for item in ("demo-users.json", "ssh_host_ecdsa_key"):
                shutil.copy2(seed.state_dir / item, state / item)
            config = {**NODE_CONFIG, "nodeName": f"node-{name}"}
            if STORE_URL:
                config["store"] = STORE_URL
            gw = Gateway(state, config=config)
            gw.reuse_users = True
            self.nodes[name] = gw.start()
        self.balancer = Balancer(tmp, {name: gw.port for name, gw in self.nodes.items()})
        a = self.nodes["a"]
        self.users = a.users
        self.known_hosts = tmp / "known_hosts"
        key = (a.state_dir / "known_hosts").read_text().split(" ", 1)[1]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.balancer.port} {key}")

    def stop(self):
        self.balancer.stop()
        for gw in self.nodes.values():
            gw.stop()

    def fresh_totp(self, user):
        for gw in self.nodes.values():
            if gw.proc.poll() is None:
                gw.reset_totp_replay()
        return totp(self.users[user]["totpSecretHex"])

    def key(self, user):
        return asyncssh.read_private_key(self.users[user]["privateKey"])

    async def connect(self, user="alice", source=ENGINEER, key=None, **kwargs):
        """A real engineer's login through the balancer's one address, from `source`."""
        client = KbdintClient(self.fresh_totp(user))
        conn, _ = await asyncssh.create_connection(
            lambda: client, "127.0.0.1", self.balancer.port, username=user,
            client_keys=[self.key(key or user)], known_hosts=str(self.known_hosts),
            preferred_auth=["publickey", "keyboard-interactive"], agent_path=None, password=None,
            login_timeout=15, local_addr=(source, 0), **kwargs)
        return conn

    def node_of(self, session: str) -> str:
        """The node whose audit log started `session`."""
        for name, gw in self.nodes.items():
            if any(e["kind"] == "session.start" and e.get("session") == session for e in gw.audit_events()):
                return name
        raise AssertionError(f"no node started session {session}")

    def node_of_port(self, user: str, port: int) -> str:
        """The node that started `user`'s session from ENGINEER:`port`."""
        name, _ = self.wait_for_event(lambda e: e["kind"] == "session.start" and e.get("user") == user
                                      and e["fields"]["source"] == f"{ENGINEER}:{port}")
        return name

    async def shell(self, user="alice"):
        """An interactive session through the balancer: (Shell, node name)."""
        conn = await self.connect(user)
        process = await conn.create_process(term_type="xterm", term_size=(200, 40))
        shell = Shell(conn, process)
        await shell.expect(user)
        await shell.expect("> ")
        return shell, self.node_of_port(user, conn.get_extra_info("sockname")[1])

    async def exec(self, user, line):
        """One command through the balancer: (result, node name)."""
        async with await self.connect(user) as conn:
            port = conn.get_extra_info("sockname")[1]
            result = await conn.run(line, check=False)
        return result, self.node_of_port(user, port)

    def wait_for_event(self, predicate, timeout=10):
        """(node, event) for the first audit event on any node matching `predicate`."""
        deadline = time.time() + timeout
        while True:
            for name, gw in self.nodes.items():
                for event in gw.audit_events():
                    if predicate(event):
                        return name, event
            if time.time() > deadline:
                raise AssertionError("no matching audit event on any node")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    if not Path(HAPROXY).exists():
        pytest.skip("haproxy is not installed (scripts/install-deps installs it)")
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    try:
        yield f
    finally:
        f.stop()


def first_words(s) -> bytes:
    """What the server says first: b'' when it closes (or resets: unread
    bytes of ours were left behind) without a word."""
    try:
        return s.recv(64)
    except ConnectionResetError:
        return b""


def session_started(gw, port):
    """The session.start event of the client whose source port is `port`."""
    return gw.wait_for_audit(lambda e: e["kind"] == "session.start"
                             and e["fields"]["source"] == f"{ENGINEER}:{port}")


def test_the_engineer_address_reaches_audit_sessions_and_transcript(fleet):
    async def go():
        async with await fleet.connect() as conn:
            port = conn.get_extra_info("sockname")[1]
            proc = await conn.create_process(term_type="xterm-256color", term_size=(100, 30))
            out = ""
            while "gatehouse alice> " not in out:
                out += await asyncio.wait_for(proc.stdout.read(4096), 10)
            session = out.split("Session ", 1)[1].split(".", 1)[0]
            name = fleet.node_of(session)
            live = json.loads(fleet.nodes[name].cli("sessions", "list", "--live", "--json").stdout)
            proc.stdin.write("Get-Mailbox -Identity bob\r")
            while "bob@contoso.com" not in out:
                out += await asyncio.wait_for(proc.stdout.read(4096), 10)
            proc.stdin.write("exit\r")
            await asyncio.wait_for(proc.wait_closed(), 10)
            return port, session, name, live
    port, session, name, live = run(go())
    gw = fleet.nodes[name]
    client = f"{ENGINEER}:{port}"
    mine = [s for s in live["sessions"] if s["id"] == session]
    assert mine and mine[0]["source"] == client, live

    start = session_started(gw, port)
    assert start["session"] == session and start["fields"]["node"] == f"node-{name}"
    assert start["fields"]["balancer"].startswith("127.0.0.1:"), start
    auth = [e for e in gw.audit_events() if e["kind"] == "auth.success" and e.get("session") == session]
    assert auth and all(e["fields"]["source"] == client for e in auth), auth
    assert all(e["fields"]["balancer"].startswith("127.0.0.1:") for e in auth), auth
    # No event on either node names the balancer as a client.
    for node in fleet.nodes.values():
        assert not [e for e in node.audit_events() if e.get("fields", {}).get("source", "").startswith("127.0.0.1")]

    gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e.get("session") == session)
    cast = gw.state_dir / "transcripts" / f"{session}.cast"
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["gatehouse"]["client"] == client, header
    assert header["gatehouse"]["balancer"].startswith("127.0.0.1:"), header


def test_health_checks_leave_nothing_in_the_audit_log(fleet):
    before = {name: len(gw.audit_events()) for name, gw in fleet.nodes.items()}
    # Health checks every 300 ms, to each node: a window of 10 intervals.
    time.sleep(3)
    assert fleet.balancer.up() == {"a", "b"}, "the checks pass"
    after = {name: gw.audit_events()[before[name]:] for name, gw in fleet.nodes.items()}
    assert after == {name: [] for name in fleet.nodes}, after


def test_a_balancer_address_without_a_header_is_refused(fleet):
    a = fleet.nodes["a"]
    # An SSH client straight to the node, from the balancer's address.
    with socket.create_connection((a.host, a.port), timeout=10, source_address=("127.0.0.1", 0)) as s:
        s.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        assert first_words(s) == b"", "the node must close without its SSH banner"
    refusal = a.wait_for_audit(lambda e: e["kind"] == "connection.refused" and e["fields"]["reason"] == "proxyHeader")
    assert refusal["fields"]["source"] == "127.0.0.1"
    assert "no PROXY protocol v2 header" in refusal["fields"]["detail"], refusal
    assert "PROXY protocol v2 header is required" in a.daemon_log(tail=20000)
    # A version 1 text header is refused too (on the other node: each bad
    # header adds to the balancer address's penalty on its node).
    b = fleet.nodes["b"]
    with socket.create_connection((b.host, b.port), timeout=10, source_address=("127.0.0.1", 0)) as s:
        s.sendall(b"PROXY TCP4 10.1.1.1 127.0.0.1 5555 22\r\nSSH-2.0-x\r\n")
        assert first_words(s) == b""
    refusal = b.wait_for_audit(lambda e: e["kind"] == "connection.refused" and e["fields"]["reason"] == "proxyHeader")
    assert "v1" in refusal["fields"]["detail"], refusal
    # Through the balancer, logins go on.
    async def login():
        async with await fleet.connect() as conn:
            return (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status
    assert run(login()) == 0


def test_a_header_from_anyone_else_is_not_honoured(fleet):
    a = fleet.nodes["a"]
    forged = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11, 0x00, 0x0C]) + bytes([203, 0, 113, 9, 127, 0, 0, 1])
              + (4242).to_bytes(2, "big") + (22).to_bytes(2, "big"))
    with socket.create_connection((a.host, a.port), timeout=10, source_address=(DIRECT, 0)) as s:
        # Not a balancer: the node speaks SSH at once, reading no header
        # (from a balancer it would wait, silent, for one).
        banner = first_words(s)
        assert banner.startswith(b"SSH-2.0-"), banner
        # The header's bytes go to libssh as the client's banner, and end it.
        s.sendall(forged + b"SSH-2.0-OpenSSH_9.2\r\n")
        rest = b""
        try:
            while chunk := s.recv(4096):
                rest += chunk
        except ConnectionResetError:
            pass
        assert b"SSH-2.0-" not in rest and len(rest) < 4096, rest
    assert a.proc.poll() is None
    assert not [e for e in a.audit_events() if "203.0.113.9" in json.dumps(e)]
    assert not [e for e in a.audit_events() if e["kind"] == "connection.refused" and e["fields"]["source"] == DIRECT]

    # A direct client that is not a balancer logs in as it always did.
    async def direct():
        client = KbdintClient(fleet.fresh_totp("dave"))
        conn, _ = await asyncssh.create_connection(
            lambda: client, a.host, a.port, username="dave", client_keys=[fleet.key("dave")],
            known_hosts=a.known_hosts(), preferred_auth=["publickey", "keyboard-interactive"], agent_path=None,
            password=None, login_timeout=15, local_addr=(DIRECT, 0))
        async with conn:
            port = conn.get_extra_info("sockname")[1]
            assert (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status == 0
            return port
    port = run(direct())
    start = a.wait_for_audit(lambda e: e["kind"] == "session.start" and e["fields"]["source"] == f"{DIRECT}:{port}")
    assert "balancer" not in start["fields"]


def test_penalties_fall_on_the_client_not_the_balancer(fleet):
    async def bad_login():
        try:
            async with await fleet.connect("alice", source=BAD, key="bob"):
                pass
        except (asyncssh.PermissionDenied, asyncssh.DisconnectError, ConnectionError):
            return
        raise AssertionError("a login with the wrong key succeeded")

    penalty = None
    deadline = time.time() + 60
    # Each failure earns BAD 5s on the node it reached; leastconn spreads
    # them, so up to 8 make 15s on one node.
    for _ in range(8):
        run(bad_login())
        found = [(n, e) for n, gw in fleet.nodes.items() for e in gw.audit_events()
                 if e["kind"] == "auth.source-penalty"]
        if found:
            penalty = found
            break
        assert time.time() < deadline
    if penalty is None:
        name, event = fleet.wait_for_event(lambda e: e["kind"] == "auth.source-penalty")
        penalty = [(name, event)]
    assert {e["fields"]["source"] for _, e in penalty} == {BAD}, penalty
    # The penalized client is refused before key exchange on that node, by its own address.
    name = penalty[0][0]
    gw = fleet.nodes[name]
    with socket.create_connection(("127.0.0.1", fleet.balancer.port), timeout=10, source_address=(BAD, 0)) as s:
        # Which node HAProxy picks is its choice: either the refusal (closed,
        # nothing said) or the other node's banner.
        first = first_words(s)
    if first == b"":
        refusal = gw.wait_for_audit(lambda e: e["kind"] == "connection.refused"
                                    and e["fields"]["reason"].startswith("penalty"))
        assert refusal["fields"]["source"] == BAD and refusal["fields"]["balancer"].startswith("127.0.0.1:")
    # ... and the engineer behind the same balancer is not.
    async def login():
        async with await fleet.connect() as conn:
            return (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status
    for _ in range(2):   # both nodes, with leastconn alternating
        assert run(login()) == 0
    for node in fleet.nodes.values():
        assert not [e for e in node.audit_events() if e["kind"] == "auth.source-penalty"
                    and e["fields"]["source"] != BAD]


async def file_and_approve_across(fleet, shell, node):
    """In `shell` (on `node`), alice files a request; bob approves it through
    the balancer while her session is open, so leastconn sends him to the
    other node. Returns the request's id."""
    out = await shell.command("New-LockboxRequest -Role MailboxAdmin -Scope fabrikam -Duration 1h "
                              "-Reason 'quota fix' -Ticket INC-13")
    match = re.search(r"Request (\d+) filed", out)
    assert match, out
    rid = int(match.group(1))
    approval, approver = await fleet.exec("bob", f"Approve-LockboxRequest -Id {rid} -Comment 'ok'")
    assert approval.exit_status == 0 and "is approved" in approval.stdout, approval
    assert approver != node, "leastconn sends bob to the node without alice's session"
    assert any(e["kind"] == "lockbox.approved" and e["fields"].get("requestID") == str(rid)
               for e in fleet.nodes[approver].audit_events()), "the approval is the other node's"
    return rid


def test_a_request_on_one_node_is_approved_on_the_other_and_redeemed_on_the_first(fleet):
    require_postgres()

    async def scenario():
        shell, node = await fleet.shell("alice")
        try:
            rid = await file_and_approve_across(fleet, shell, node)
            assert "Elevated: MailboxAdmin in fabrikam" in await shell.elevate(rid, await shell.fetch_secret(rid))
            state, grant_node, _ = request_node(rid).split()
            assert (state, grant_node) == ("active", f"node-{node}"), request_node(rid)
            out = await shell.command("Set-Mailbox fiona -ProhibitSendQuota 2GB")
            assert re.search(r"ProhibitSendQuota +: 2GB", out), out
            # bob revokes through the balancer (landing on the other node);
            # alice's next command on the first node finds the grant gone.
            revoke, revoker = await fleet.exec("bob", f"Revoke-LockboxRequest -Id {rid} -Reason 'done'")
            assert revoke.exit_status == 0 and revoker != node, (revoke, revoker)
            out = await shell.command("Set-Mailbox fiona -ProhibitSendQuota 3GB")
            if "not permitted" not in out:
                # The session may announce the revocation first (the store's
                # notification woke it), then run the line.
                out += await shell.expect(r"not permitted")   # fails the test if it never comes
            assert request_node(rid).split()[0] == "revoked"
        finally:
            await shell.close()
        return rid, node

    rid, node = run(scenario())
    assert any(e["kind"] == "elevation.start" and e["fields"].get("requestID") == str(rid)
               for e in fleet.nodes[node].audit_events()), "the redemption is the first node's"


def test_one_session_per_user_per_node_behind_one_address(fleet):
    """One live session per user per node (as the seed's gateways): dave's
    second connection through the balancer goes to the node without his
    first and is let in; a third finds a session on whichever node it
    reaches and is refused there, naming it and its client address."""
    async def scenario():
        first, node1 = await fleet.shell("dave")
        try:
            second, node2 = await fleet.shell("dave")
            try:
                assert node2 != node1, "leastconn: the node without a session"
                assert "mailbox" in (await second.command("Get-Mailbox fiona")).lower()
                client = KbdintClient(fleet.fresh_totp("dave"))
                try:
                    conn, _ = await asyncssh.create_connection(
                        lambda: client, "127.0.0.1", fleet.balancer.port, username="dave",
                        client_keys=[fleet.key("dave")], known_hosts=str(fleet.known_hosts),
                        preferred_auth=["publickey", "keyboard-interactive"], agent_path=None, password=None,
                        login_timeout=15, local_addr=(ENGINEER, 0))
                    async with conn:
                        third = await conn.run("Get-Mailbox fiona", check=False)
                    assert third.exit_status != 0, third.stdout
                except (asyncssh.DisconnectError, asyncssh.ConnectionLost, asyncssh.ChannelOpenError):
                    pass   # refused after authentication: the audit event below says so and why
                name, refusal = fleet.wait_for_event(lambda e: e["kind"] == "session.refused" and e.get("user") == "dave")
                assert refusal["fields"]["source"].startswith(f"{ENGINEER}:")
                assert refusal["fields"]["existingSource"].startswith(f"{ENGINEER}:")
                assert "mailbox" in (await first.command("Get-Mailbox fiona")).lower(), "the first goes on"
            finally:
                await second.close()
        finally:
            await first.close()

    run(scenario())


def test_kill_9_of_a_node_sends_the_reconnect_to_the_other(fleet):
    """Last in this file: it kills a node. With the shared store, alice's
    session on the node is elevated first (filed there, approved on the
    other), and the Lockbox state is checked across the kill and the
    killed node's restart."""
    async def session_then_kill():
        shell, name = await fleet.shell("alice")
        rid = None
        if STORE_URL:
            rid = await file_and_approve_across(fleet, shell, name)
            assert "Elevated" in await shell.elevate(rid, await shell.fetch_secret(rid))
            assert request_node(rid).split()[:2] == ["active", f"node-{name}"]
        out = await shell.command("Get-Mailbox -Identity bob")
        assert "bob@contoso.com" in out, out
        gw = fleet.nodes[name]
        session = [e for e in gw.audit_events() if e["kind"] == "session.start" and e.get("user") == "alice"][-1]["session"]
        gw.wait_for_audit(lambda e: e["kind"] == "command.finished" and e.get("session") == session
                          and e["fields"].get("cmdlet") == "Get-Mailbox")
        children = [int(c) for c in Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()]
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait(10)
        # The network side and the PAM workers go with the monitor's channel.
        deadline = time.time() + 10
        while any(Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]
                  for c in children):
            assert time.time() < deadline, "the killed node's children live on"
            await asyncio.sleep(0.05)
        # The client's connection ends with the node.
        await asyncio.wait_for(shell.process.wait_closed(), 10)
        shell.conn.close()
        return name, session, rid
    name, session, rid = run(session_then_kill())
    other = "b" if name == "a" else "a"
    fleet.balancer.wait_until(lambda: name not in fleet.balancer.up(), f"{name} marked down")

    # The engineer reconnects through the same address and lands on the other node.
    result, landed = run(fleet.exec("alice", "Get-Mailbox -Identity bob"))
    assert result.exit_status == 0 and "bob@contoso.com" in result.stdout
    assert landed == other
    if rid is not None:
        # The grant stays bound to the dead session: no elevation here, and
        # the store still says whose it is.
        denied, _ = run(fleet.exec("alice", "Set-Mailbox fiona -ProhibitSendQuota 3GB"))
        assert denied.exit_status != 0 and "not permitted" in denied.stderr + denied.stdout, denied
        assert request_node(rid).split()[:3] == ["active", f"node-{name}", session], request_node(rid)

    # The killed node's audit log verifies, and holds the session up to the kill.
    dead = fleet.nodes[name]
    verify = dead.cli("audit", "verify")
    assert verify.stdout.startswith("OK:"), verify.stdout
    kinds = [e["kind"] for e in dead.audit_events() if e.get("session") == session]
    assert "session.start" in kinds and "command.allowed" in kinds and "command.finished" in kinds, kinds
    assert "session.end" not in kinds, "a kill -9 writes no end"
    # Its transcript plays in the real asciinema, up to the kill.
    cast = dead.state_dir / "transcripts" / f"{session}.cast"
    header = json.loads(cast.read_text().splitlines()[0])
    assert header["gatehouse"]["client"].startswith(f"{ENGINEER}:"), header
    played = subprocess.run([str(ASCIINEMA), "cat", str(cast)], capture_output=True, timeout=30)
    assert played.returncode == 0, played.stderr
    assert b"bob@contoso.com" in played.stdout

    if rid is not None:
        # The killed node comes back on its state directory: its start-up
        # sweep ends its own orphaned grant, which the store then shows.
        dead.reuse_users = True
        dead.start()
        dead.wait_for_audit(lambda e: e["kind"] == "elevation.end" and e["fields"].get("requestID") == str(rid))
        assert request_node(rid).split()[0] == "cancelled", request_node(rid)
        assert dead.cli("audit", "verify").stdout.startswith("OK:")
