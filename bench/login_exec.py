#!/usr/bin/env python3
"""Time one connect + publickey + TOTP (PAM, pam_oath) + exec + close on loopback.

Starts its own gatehoused (demo configuration, private state directory,
ephemeral port), then runs N sequential logins with asyncssh, each running
`Get-Mailbox -Identity alice`. The TOTP replay memory is reset between logins
outside the timed section (see Tests/e2e/gatehouse_harness.py).

    .venv/bin/python bench/login_exec.py [--build .build/release] [-n 50]
"""
import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "e2e"))
import gatehouse_harness as h  # noqa: E402


async def one(gw, code):
    t0 = time.perf_counter()
    async with await h.connect(gw, "alice", code=code) as conn:
        result = await conn.run("Get-Mailbox -Identity alice", check=False)
    elapsed = time.perf_counter() - t0
    assert result.exit_status == 0, result.stderr
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=".build/release")
    ap.add_argument("-n", type=int, default=50)
    args = ap.parse_args()
    h.BUILD = Path(args.build).resolve()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        gw = h.Gateway(Path(tmp) / "state").start()
        try:
            times = []
            for _ in range(args.n + 3):
                code = gw.fresh_totp("alice")
                times.append(asyncio.run(one(gw, code)))
            times = sorted(times[3:])  # drop warm-up
            ms = [t * 1000 for t in times]
            print(f"login+exec+close over {len(ms)} runs ({h.BUILD.name} build): "
                  f"median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9) - 1]:.1f} ms, "
                  f"min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms")
        finally:
            gw.stop()


if __name__ == "__main__":
    main()
