#!/usr/bin/env python3
"""Cost of session recording on a 100 MB output stream: recording on vs off,
in the same run.

Starts two gatehoused (release build, demo configuration, private state
directories): one with transcripts on (the default), one with
`recordTranscripts: false`. Both get a benchmark-only cmdlet,
Get-BenchStream, whose backend (`/usr/bin/head -c 104857600`) writes 100 MiB
of text lines. OpenSSH's `ssh` runs it over exec and discards the output;
runs alternate between the two daemons. Reported per mode: the median wall
time of the whole `ssh` command (login included, identical in both) and the
median daemon CPU time (user+system, from /proc) per run; the ratios are
on/off. On a shared machine wall time is noisy: the best run per mode and
the daemon's CPU time are the steadier figures. The audit log is fdatasync'ed in both modes.

    make bench-transcripts        # or: .venv/bin/python bench/transcript_overhead.py --build .build/release [-n 5]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "e2e"))
import gatehouse_harness as h  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZE = 100 * 1024 * 1024

BENCH_CMDLET = """\
# Benchmark only (bench/transcript_overhead.py): 100 MiB of text on stdout.
cmdlets:
  Get-BenchStream:
    synopsis: Write 100 MiB of text (benchmark).
    backend:
      executable: /usr/bin/head
      argv: ["-c", "%d", "{stateDir}/bench-stream.txt"]
      timeout: 600s
      outputLimit: 200MB
    output: text
""" % SIZE


def make_policy(root: Path) -> Path:
    policy = root / "policies"
    shutil.copytree(REPO / "policies" / "cmdlets", policy / "cmdlets")
    shutil.copytree(REPO / "policies" / "roles", policy / "roles")
    (policy / "cmdlets" / "bench.yaml").write_text(BENCH_CMDLET)
    roles = policy / "roles" / "mailbox.yaml"
    text = roles.read_text()
    assert "      - Get-MailboxStatistics\n" in text
    roles.write_text(text.replace("      - Get-MailboxStatistics\n",
                                  "      - Get-MailboxStatistics\n      - Get-BenchStream\n", 1))
    return policy


def make_stream(path: Path):
    line = b"2026-11-29T04:00:00Z mailbox=user%05d folder=Inbox item=%08d subject=Quarterly report draft\n"
    with open(path, "wb") as f:
        n = 0
        written = 0
        while written < SIZE:
            chunk = b"".join(line % (i % 100000, n + i) for i in range(10000))
            f.write(chunk)
            written += len(chunk)
            n += 10000


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daemon_pid(gw) -> int:
    # Demo mode re-executes itself (execve) with pam_wrapper: same pid.
    return gw.proc.pid


def ssh_run(gw, tmp: Path) -> float:
    code = gw.fresh_totp("alice")
    askpass = tmp / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\necho {code}\n")
    askpass.chmod(0o700)
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    argv = ["setsid", "-w", "ssh", "-F", "/dev/null", "-p", str(gw.port), "-i", gw.users["alice"]["privateKey"],
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={gw.known_hosts()}",
            "-o", "StrictHostKeyChecking=yes", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
            f"alice@{gw.host}", "Get-BenchStream"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ssh exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    if len(proc.stdout) != SIZE:
        raise RuntimeError(f"expected {SIZE} bytes, got {len(proc.stdout)}")
    return elapsed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=".build/release")
    ap.add_argument("-n", type=int, default=5, help="runs per mode (after one warm-up each)")
    args = ap.parse_args()
    h.BUILD = Path(args.build).resolve()
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-transcripts-") as tmp:
        tmp = Path(tmp)
        policy = make_policy(tmp)
        stream = tmp / "bench-stream.txt"
        make_stream(stream)
        off_config = tmp / "off.yaml"
        off_config.write_text("recordTranscripts: false\n")
        gws = {}
        for mode, extra in (("on", []), ("off", ["--config", str(off_config)])):
            state = tmp / f"state-{mode}"
            state.mkdir(mode=0o700)
            os.link(stream, state / "bench-stream.txt")
            gws[mode] = h.Gateway(state, extra_args=["--policy-dir", str(policy), *extra]).start()
        try:
            wall = {"on": [], "off": []}
            cpu = {"on": [], "off": []}
            for i in range(args.n + 1):
                for mode in (("on", "off") if i % 2 == 0 else ("off", "on")):
                    gw = gws[mode]
                    before = cpu_seconds(daemon_pid(gw))
                    elapsed = ssh_run(gw, tmp)
                    time.sleep(0.2)   # let the session end and its transcript close
                    used = cpu_seconds(daemon_pid(gw)) - before
                    if i > 0:         # the first round warms up
                        wall[mode].append(elapsed)
                        cpu[mode].append(used)
                    if mode == "on":
                        for cast in (gw.state_dir / "transcripts").glob("*.cast"):
                            size = cast.stat().st_size
                            cast.unlink()
            casts_off = list((gws["off"].state_dir / "transcripts").glob("*.cast"))
            assert not casts_off, "recording off must write no transcript"
            med = {m: statistics.median(wall[m]) for m in wall}
            cmed = {m: statistics.median(cpu[m]) for m in cpu}
            print(f"100 MiB exec output over OpenSSH, {args.n} runs per mode ({h.BUILD.name} build), medians:")
            print(f"  wall  recording on {med['on']:.3f} s, off {med['off']:.3f} s, ratio {med['on'] / med['off']:.3f} "
                  f"(+{(med['on'] / med['off'] - 1) * 100:.1f}%)")
            mn = {m: min(wall[m]) for m in wall}
            print(f"  wall (best run) on {mn['on']:.3f} s, off {mn['off']:.3f} s, ratio {mn['on'] / mn['off']:.3f} "
                  f"(+{(mn['on'] / mn['off'] - 1) * 100:.1f}%)")
            print(f"  daemon CPU  on {cmed['on']:.2f} s, off {cmed['off']:.2f} s, ratio {cmed['on'] / cmed['off']:.3f} "
                  f"(+{(cmed['on'] / cmed['off'] - 1) * 100:.1f}%)")
            print(f"  transcript size per run: {size / 2**20:.1f} MiB")
            print(f"  raw wall on  {[round(x, 3) for x in wall['on']]}")
            print(f"  raw wall off {[round(x, 3) for x in wall['off']]}")
        finally:
            for gw in gws.values():
                gw.stop()


if __name__ == "__main__":
    main()
