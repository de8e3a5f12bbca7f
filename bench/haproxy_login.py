#!/usr/bin/env python3
"""Login latency through HAProxy (PROXY protocol v2) against the same node
directly (issue 13): what the balancer and the header cost a login.

Starts one gatehoused node (demo configuration, `proxyProtocolFrom:
127.0.0.1`) and HAProxy in front of it with the shipped deploy/haproxy.cfg
(as Tests/e2e/test_haproxy.py runs it). A login is the full thing: TCP
connect, key exchange, publickey, keyboard-interactive TOTP through the real
pam_oath, one exec channel running `Get-Mailbox -Identity bob`, close. The
direct logins come from 127.0.0.3 (the node reads no header from it), the
balanced ones from 127.0.0.2 through HAProxy; they alternate, so drift
affects both alike. Penalties are off (a benchmark makes no failed logins).

    .venv/bin/python bench/haproxy_login.py [--build .build/debug] [-n 50]
"""
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "e2e"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=None)
    parser.add_argument("-n", type=int, default=50)
    args = parser.parse_args()
    if args.build:
        os.environ["GATEHOUSE_BUILD"] = str(Path(args.build).resolve())
    import asyncssh
    import gatehouse_harness as harness
    import test_haproxy as fleetlib

    with tempfile.TemporaryDirectory(prefix="gatehouse-haproxy-bench-") as tmp:
        tmp = Path(tmp)
        node = harness.Gateway(tmp / "node", config={"proxyProtocolFrom": "127.0.0.1", "metricsListen": "off",
                                                     "perSourcePenalties": "false"}).start()
        balancer = fleetlib.Balancer(tmp, {"a": node.port})
        key = (node.state_dir / "known_hosts").read_text().split(" ", 1)[1]
        known = tmp / "known_hosts"
        known.write_text(f"[127.0.0.1]:{balancer.port} {key}[127.0.0.1]:{node.port} {key}")
        try:
            async def login(port, source):
                client = harness.KbdintClient(node.fresh_totp("bob"))
                started = time.perf_counter()
                conn, _ = await asyncssh.create_connection(
                    lambda: client, "127.0.0.1", port, username="bob", client_keys=[node.key("bob")],
                    known_hosts=str(known), preferred_auth=["publickey", "keyboard-interactive"],
                    agent_path=None, password=None, login_timeout=15, local_addr=(source, 0))
                async with conn:
                    result = await conn.run("Get-Mailbox -Identity bob", check=False)
                assert result.exit_status == 0, result
                return time.perf_counter() - started

            async def measure():
                times = {"direct": [], "haproxy": []}
                for _ in range(3):   # warm-up, not counted
                    await login(node.port, "127.0.0.3")
                    await login(balancer.port, "127.0.0.2")
                for _ in range(args.n):
                    times["direct"].append(await login(node.port, "127.0.0.3"))
                    times["haproxy"].append(await login(balancer.port, "127.0.0.2"))
                return times

            times = asyncio.run(measure())
        finally:
            balancer.stop()
            node.stop()
    for name, values in times.items():
        values.sort()
        print(f"{name:8} n={len(values)} p50={statistics.median(values) * 1000:.1f} ms "
              f"p90={values[int(len(values) * 0.9) - 1] * 1000:.1f} ms min={values[0] * 1000:.1f} ms")
    delta = statistics.median(times["haproxy"]) - statistics.median(times["direct"])
    print(f"haproxy - direct, p50: {delta * 1000:+.1f} ms")


if __name__ == "__main__":
    main()
