"""Hostile clients against the real daemon: floods, wrong and replayed codes,
malformed keyboard-interactive, disconnects mid-auth, half-open connections,
channel floods and input floods. After each, a good client still logs in and
the daemon's memory stays bounded: RSS (VmRSS) is measured before and after
and printed (run with -s to see the figures).

Hostile traffic comes from 127.0.0.2 and up; the good client is on
127.0.0.1 and is never exempted, so a penalty that spilled over would show."""
import asyncio
import os
import socket
import time

import asyncssh
import paramiko
import pytest

from gatehouse_harness import Gateway, connect, expect_refused, run, totp
from limits_fixtures import open_shell, wait_for_text
from test_hardening import paramiko_kbdint, paramiko_key

RSS_BOUND_KIB = 48 * 1024      # growth allowed per scenario


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("hostile") / "state",
                 # Several sessions per user: a hostile scenario can leave
                 # the daemon busy for a moment after its client is gone, and
                 # the next scenario logs in as the same user at once.
                 # (test_session_limits.py covers the one-session rule.)
                 config={"loginGraceTime": "3", "ioTimeout": "3s", "maxSessionsPerUser": "4"}).start()
    gw.rss_log = []
    yield gw
    print("\nRSS figures (KiB):")
    for name, before, after in gw.rss_log:
        print(f"  {name:40s} before {before:7d}  after {after:7d}  growth {after - before:+7d}")
    gw.stop()


class Measure:
    def __init__(self, gw, name):
        self.gw, self.name = gw, name

    def __enter__(self):
        self.before = self.gw.rss_kib()
        self.threads = threads(self.gw)
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        after = self.gw.rss_kib()
        self.gw.rss_log.append((self.name, self.before, after))
        assert self.gw.proc.poll() is None, "the daemon died"
        assert after - self.before < RSS_BOUND_KIB, (self.name, self.before, after)
        assert good_login(self.gw), "a good client can still log in"
        return False


def threads(gw):
    for line in open(f"/proc/{gw.proc.pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])


def wait_threads_at_most(gw, n, timeout=10):
    deadline = time.time() + timeout
    while threads(gw) > n and time.time() < deadline:
        time.sleep(0.1)
    return threads(gw)


def good_login(gw):
    async def go():
        async with await connect(gw, "bob") as conn:
            return (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status
    return run(go()) == 0


def test_auth_flood_from_one_source_while_a_good_client_logs_in(target):
    with Measure(target, "auth flood (300 attempts from one source)"):
        async def flood():
            async def one():
                try:
                    conn = await asyncssh.connect(target.host, target.port, username="alice",
                                                  client_keys=[target.key("bob")], known_hosts=None,
                                                  local_addr=("127.0.0.2", 0), agent_path=None,
                                                  preferred_auth=["publickey"], login_timeout=10)
                    conn.close()
                except (asyncssh.Error, OSError):
                    pass
            await asyncio.gather(*(one() for _ in range(300)))

        async def good():
            times = []
            await asyncio.sleep(0.2)
            for _ in range(5):
                start = time.monotonic()
                async with await connect(target, "bob") as conn:
                    assert (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status == 0
                times.append(time.monotonic() - start)
            return times

        async def both():
            results = await asyncio.gather(flood(), good())
            return results[1]
        times = run(both())
        print(f"\ngood logins during the flood: {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    assert any(e["kind"] == "connection.refused" and e["fields"]["source"] == "127.0.0.2"
               for e in target.audit_events())


def test_wrong_codes_repeated(target):
    with Measure(target, "wrong codes repeated (3 x 10 rounds)"):
        for _ in range(3):
            outcomes = paramiko_kbdint(target, "carol", lambda p: ["123456"] * len(p), source="127.0.0.3", tries=10)
            assert "ok" not in outcomes and outcomes[-1] == "disconnected", outcomes
    assert any(e["kind"] == "auth.user-lockout" and e["user"] == "carol" for e in target.audit_events())
    target.cli("users", "unlock", "carol")


def test_totp_code_replayed_inside_its_window(target):
    with Measure(target, "TOTP replay inside the window"):
        code = target.fresh_totp("alice")
        async def login(source):
            async with await connect(target, "alice", code=code, local_addr=(source, 0)) as conn:
                return (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status
        assert run(login("127.0.0.4")) == 0
        for _ in range(3):
            expect_refused(target, login("127.0.0.4"))


@pytest.mark.parametrize("answers", [lambda p: [], lambda p: ["1", "2", "3"], lambda p: ["x" * 5000] * len(p)],
                         ids=["no answers", "too many answers", "oversized answer"])
def test_keyboard_interactive_with_malformed_answers(target, answers):
    with Measure(target, "kbd-int malformed answers"):
        outcomes = paramiko_kbdint(target, "alice", answers, source="127.0.0.5", tries=2)
        assert "ok" not in outcomes, outcomes


def raw_then_close(gw, source, payload):
    s = socket.create_connection((gw.host, gw.port), timeout=5, source_address=(source, 0))
    try:
        if payload:
            s.sendall(payload)
        s.recv(64)
    except OSError:
        pass
    s.close()


def test_disconnects_in_the_middle_of_auth(target):
    base = threads(target)
    with Measure(target, "disconnects mid-auth (80 connections)"):
        for i in range(20):
            raw_then_close(target, "127.0.0.6", b"")                              # before the version line
            raw_then_close(target, "127.0.0.6", b"SSH-2.0-hostile\r\n")           # during key exchange
        for i in range(20):                                                      # after kex, before userauth
            # A source of its own each: the same source would soon be
            # penalized (1s per connection without auth) and refused.
            t = paramiko.Transport(socket.create_connection((target.host, target.port),
                                                            source_address=(f"127.0.1.{i + 1}", 0)))
            t.start_client(timeout=10)
            t.close()
        for i in range(10):                                                      # after publickey, mid kbd-int
            sock = socket.create_connection((target.host, target.port), source_address=(f"127.0.2.{i + 1}", 0))
            t = paramiko.Transport(sock)
            t.start_client(timeout=10)
            t.auth_publickey("alice", paramiko_key(target, "alice"))
            def hang_up(title, instr, prompts):
                sock.shutdown(socket.SHUT_RDWR)
                return [""] * len(prompts)
            try:
                t.auth_interactive("alice", hang_up)
            except (paramiko.SSHException, EOFError, OSError):
                pass
            t.close()
        left = wait_threads_at_most(target, base)
        assert left <= base, f"{left} threads, {base} before: session threads leaked"


def test_half_open_connections_that_never_speak(target):
    base = threads(target)
    held = []
    with Measure(target, "half-open connections (4 sources x 10)"):
        try:
            for source in ["127.0.0.9", "127.0.0.10", "127.0.0.11", "127.0.0.12"]:
                for _ in range(10):
                    held.append(socket.create_connection((target.host, target.port), source_address=(source, 0)))
            assert good_login(target), "the good client gets in while they hang"
            # The login grace time (3s here) closes every admitted one.
            time.sleep(4)
            assert wait_threads_at_most(target, base) <= base
        finally:
            for s in held:
                s.close()


def test_one_hundred_channels_on_one_connection(target):
    with Measure(target, "100 channels on one connection"):
        async def go():
            async with await connect(target, "bob") as conn:
                async def open_one():
                    try:
                        chan, _ = await conn.create_session(asyncssh.SSHClientSession)
                        return chan
                    except asyncssh.ChannelOpenError:
                        return None
                chans = await asyncio.gather(*(open_one() for _ in range(100)))
                opened = [c for c in chans if c is not None]
                for c in opened:
                    c.close()
                await asyncio.sleep(0.3)
                # After closing them, exec channels one after another still work.
                statuses = [(await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status
                            for _ in range(100)]
                return len(opened), statuses
        opened, statuses = run(go())
    assert opened == 10, opened        # maxChannelsPerConnection
    assert statuses == [0] * 100
    refusals = [e for e in target.audit_events() if e["kind"] == "channel.refused"
                and e["fields"]["detail"] == "too many channels"]
    assert len(refusals) >= 90


def test_channel_churn_on_one_connection_is_released(target):
    with Measure(target, "3000 channels opened and closed on one connection"):
        async def go():
            async with await connect(target, "bob") as conn:
                for _ in range(300):
                    chans = await asyncio.gather(*(conn.create_session(asyncssh.SSHClientSession) for _ in range(10)))
                    for chan, _ in chans:
                        chan.close()
                    await asyncio.gather(*(chan.wait_closed() for chan, _ in chans))
                return (await conn.run("Get-Mailbox -Identity bob", check=False)).exit_status
        assert run(go()) == 0


def test_hundred_megabytes_on_stdin_do_not_grow_memory(target):
    with Measure(target, "100 MB on stdin (shell, no newline)"):
        async def go():
            async with await connect(target, "bob") as conn:
                proc, out = await open_shell(conn)
                await wait_for_text(out, "Roles:", 5)
                chunk = "A" * (1 << 20)
                for _ in range(100):
                    proc.stdin.write(chunk)
                    await proc.stdin.drain()
                proc.stdin.write("\nGet-Mailbox -Identity bob\n")
                await wait_for_text(out, "Line too long", 30)
                await wait_for_text(out, "bob@", 10)
                proc.stdin.write("exit\n")
        run(go())


def test_window_change_flood_is_harmless(target):
    with Measure(target, "10000 window-change requests"):
        async def go():
            async with await connect(target, "bob") as conn:
                proc, out = await open_shell(conn, term_type="xterm")
                await wait_for_text(out, "bob> ", 5)
                for i in range(10000):
                    proc.change_terminal_size(10 + i % 5000, 5 + i % 3000)
                proc.change_terminal_size(2 ** 31 - 1, 2 ** 31 - 1)
                proc.stdin.write("Get-Mailbox -Identity bob\r")
                await wait_for_text(out, "bob@", 10)
        run(go())


def test_client_that_stops_reading_is_dropped_without_buffering(target):
    with Measure(target, "client that stops reading output"):
        async def go():
            async with await connect(target, "bob") as conn:
                # A small receive window, so the daemon's writes block soon.
                proc, out = await open_shell(conn, term_type="xterm", window=16384)
                await wait_for_text(out, "bob> ", 5)
                proc.channel.pause_reading()
                # Each line echoes back and lists mailboxes; nothing is read.
                for _ in range(300):
                    proc.stdin.write("Get-Mailbox -ResultSize 1000\r")
                start = time.monotonic()
                while not any(e["kind"] == "session.end" and e["fields"]["reason"] == "io-timeout"
                              for e in target.audit_events()):
                    assert time.monotonic() - start < 30, target.audit_events()[-3:]
                    await asyncio.sleep(0.2)
                return time.monotonic() - start, len(out.text)
        elapsed, read = run(go())
        print(f"\nnon-reading client dropped after {elapsed:.1f}s (ioTimeout 3s); it had read {read} bytes")
