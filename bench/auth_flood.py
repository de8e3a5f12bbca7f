#!/usr/bin/env python3
"""A good client's login latency while one source floods the daemon with
failing logins, and the daemon's memory (VmRSS) before and after.

Starts its own gatehoused (demo configuration, default limits: per-source
caps and penalties on), floods from 127.0.0.2 with `--flood` concurrent
publickey attempts using the wrong key, and meanwhile logs bob in `-n` times
from 127.0.0.1, each running one command.

    .venv/bin/python bench/auth_flood.py [--build .build/release] [-n 20] [--flood 1000]
"""
import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "e2e"))
import gatehouse_harness as h  # noqa: E402


async def flood(gw, count):
    async def one():
        try:
            conn = await asyncssh.connect(gw.host, gw.port, username="alice", client_keys=[gw.key("bob")],
                                          known_hosts=None, local_addr=("127.0.0.2", 0), agent_path=None,
                                          preferred_auth=["publickey"], login_timeout=10)
            conn.close()
            return "logged in"
        except asyncssh.PermissionDenied:
            return "auth failed"
        except (asyncssh.Error, OSError):
            return "refused"
    return await asyncio.gather(*(one() for _ in range(count)))


async def good(gw, n):
    times = []
    await asyncio.sleep(0.2)
    for _ in range(n):
        code = gw.fresh_totp("bob")
        t0 = time.perf_counter()
        async with await h.connect(gw, "bob", code=code) as conn:
            result = await conn.run("Get-Mailbox -Identity bob", check=False)
        times.append(time.perf_counter() - t0)
        assert result.exit_status == 0, result.stderr
    return times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=".build/release")
    ap.add_argument("-n", type=int, default=20)
    ap.add_argument("--flood", type=int, default=1000)
    args = ap.parse_args()
    h.BUILD = Path(args.build).resolve()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        gw = h.Gateway(Path(tmp) / "state").start()
        try:
            rss_before = gw.rss_kib()

            async def both():
                return await asyncio.gather(flood(gw, args.flood), good(gw, args.n))
            flood_results, times = asyncio.run(both())
            time.sleep(1)
            rss_after = gw.rss_kib()
            ms = sorted(t * 1000 for t in times)
            print(f"good login+exec during a {args.flood}-connection flood ({h.BUILD.name} build): "
                  f"median {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} logins")
            print(f"flood connections: {flood_results.count('auth failed')} reached authentication and failed, "
                  f"{flood_results.count('refused')} were refused (per-source cap or penalty), "
                  f"{flood_results.count('logged in')} logged in")
            print(f"daemon VmRSS: before {rss_before} KiB, after {rss_after} KiB ({rss_after - rss_before:+d} KiB)")
        finally:
            gw.stop()


if __name__ == "__main__":
    main()
