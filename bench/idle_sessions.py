#!/usr/bin/env python3
"""Daemon RSS with N idle authenticated sessions (each an open shell channel
with a pty), measured from /proc/PID/status (VmRSS) before and after.

    .venv/bin/python bench/idle_sessions.py [--build .build/release] [-n 100]

All sessions log in as alice, so the bench's daemon raises maxSessionsPerUser
(default 1) to N; each login gets a fresh TOTP replay state (see the e2e
harness).
"""
import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "e2e"))
import gatehouse_harness as h  # noqa: E402


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def open_sessions(gw, n):
    conns = []
    for _ in range(n):
        conn = await h.connect(gw, "alice")
        proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
        await proc.stdout.readuntil("alice> ")
        conns.append((conn, proc))
    return conns


async def run(gw, n):
    base = rss_kib(gw.proc.pid)
    conns = await open_sessions(gw, n)
    await asyncio.sleep(2)
    loaded = rss_kib(gw.proc.pid)
    threads = len(list(Path(f"/proc/{gw.proc.pid}/task").iterdir()))
    for conn, _ in conns:
        conn.close()
    for conn, _ in conns:
        await conn.wait_closed()
    await asyncio.sleep(2)
    after = rss_kib(gw.proc.pid)
    return base, loaded, after, threads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=".build/release")
    ap.add_argument("-n", type=int, default=100)
    args = ap.parse_args()
    h.BUILD = Path(args.build).resolve()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        gw = h.Gateway(Path(tmp) / "state", config={"maxSessionsPerUser": args.n}).start()
        try:
            base, loaded, after, threads = asyncio.run(run(gw, args.n))
            print(f"RSS idle daemon {base / 1024:.1f} MiB; with {args.n} idle shell sessions "
                  f"{loaded / 1024:.1f} MiB (+{(loaded - base) / args.n:.0f} KiB/session, {threads} threads); "
                  f"after they closed {after / 1024:.1f} MiB")
        finally:
            gw.stop()


if __name__ == "__main__":
    main()
