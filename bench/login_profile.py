#!/usr/bin/env python3
"""Login-only measurement and profile of the Gatehouse login path.

Starts the release `gatehoused` exactly as `make bench` does (bench/run.py's
Gatehouse server: the bench configuration file, bench policies, 100 bench
users, pam_matrix through a private /etc/pam.d bind mount in a mount
namespace, recording and audit on), optionally under a wrapper such as
valgrind, and drives N logins one at a time with the bench's asyncssh client:
connect + publickey + keyboard-interactive + exec `Get-Status` + close.

    .venv/bin/python bench/login_profile.py [-n 200] [--build .build/release]
    .venv/bin/python bench/login_profile.py -n 100 --callgrind /tmp/login.callgrind
    .venv/bin/python bench/login_profile.py -n 100 --summarize /tmp/login.callgrind
    .venv/bin/python bench/login_profile.py -n 200 --perf /tmp/login.perf

Without --callgrind it prints the server CPU per login (from /proc over the
server's process tree, backends included) and the p50 wall time. With
--callgrind the daemon runs under `valgrind --tool=callgrind`; the counters
are zeroed after one warm-up login and dumped after the N measured ones, so
the profile holds exactly N logins (`callgrind_annotate --inclusive=yes`);
--summarize prints its breakdown per login. With --perf, `perf record -g`
(cpu-clock samples, kernel included) is attached after the warm-up login.
valgrind 3.19 cannot read the DWARF 5 that Swift emits: profile a copy made
with `objcopy --strip-debug` (the symbol table stays).
"""
import argparse
import asyncio
import collections
import glob
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import asyncssh

from run import BENCH, CLK_TCK, REPO, Gatehouse, one_login, pct, tree


class Wrapped(Gatehouse):
    """The bench's Gatehouse, its daemon started under `prefix`."""

    def __init__(self, run_dir, key, build, prefix):
        super().__init__(run_dir, key, build)
        self.prefix = prefix

    def command(self):
        return [*self.prefix, *super().command()]


def daemon_pid(server):
    """The pid of the process that runs gatehoused (under valgrind: valgrind's)."""
    out = subprocess.run(["pgrep", "-s", str(server.proc.pid), "-f", "gatehoused --config"],
                         capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in out if int(p) != server.proc.pid]
    if not pids:
        raise RuntimeError("gatehoused not found")
    return max(pids)


def process_ticks(server):
    """pid -> (what the process is, its own ticks, its reaped children's ticks)
    for the server's tree: the monitor, the network side, PAM workers."""
    pids, table = tree(server.proc.pid)
    out = {}
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = os.path.basename(argv[0].decode(errors="replace"))
        if name != "gatehoused" and not name.startswith("gatehouse-"):
            continue
        if name == "gatehoused":
            name = "gatehoused (network side)" if b"--network-side" in argv else "gatehoused (monitor)"
        u, s, cu, cs = table[pid][1]
        out[pid] = (name, u + s, cu + cs)
    return out


def split_by_process(before, after, n):
    """ms per login by process kind, own and reaped children's, for the
    processes alive at the end (a process that started during the run counts from 0)."""
    split = collections.defaultdict(float)
    for pid, (name, own, reaped) in after.items():
        own0, reaped0 = before.get(pid, (name, 0, 0))[1:]
        split[name] += (own - own0) * 1000 / CLK_TCK / n
        if reaped - reaped0:
            split[f"reaped by {name} (backends)"] += (reaped - reaped0) * 1000 / CLK_TCK / n
    return dict(split)


async def run_logins(server, n):
    times = []
    cpu0, procs0 = server.cpu(), process_ticks(server)
    for i in range(n):
        t0 = time.perf_counter()
        await one_login(server, i)
        times.append(time.perf_counter() - t0)
    cpu, procs = server.cpu() - cpu0, process_ticks(server)
    return cpu * 1000 / n, pct([t * 1000 for t in times], 50), split_by_process(procs0, procs, n)


# Inclusive instruction counts of these functions (mangled-name patterns, as
# callgrind_annotate prints them) make the breakdown. Rows overlap where one
# part calls another (the command's row includes its two audit events).
PARTS = [
    ("key exchange + host-key signature (libssh, OpenSSL)", r"SSHConnectionC9handshakeyyKF "),
    ("auth messages: parse, client key signature check (libssh, OpenSSL)", r"SSHConnectionC11nextMessage"),
    ("  SSHAlgorithms.accepts (key type check, twice)", r"SSHAlgorithmsV(7accepts13clientKeyType|4listySaySSGSSF)"),
    ("PAM: pam_start + authenticate + acct_mgmt + end", r"AuthenticatorC19keyboardInteractive4user8prompterSbSS_9"),
    ("  pam_start (loads the stack's modules)", r"pam_start "),
    ("audit: 7 events, record + hash + line (fdatasync is kernel time)", r"ChainedAuditLogC13GatehouseCore0C4SinkAadEP6record"),
    ("command: parse, authorize, 2 audit events, spawn", r"InterpreterC3run4line5claim"),
    ("  spawn of the backend and its output (ProcessExecutor.run)", r"ProcessExecutorV3run_6output"),
    ("transcript open (AsciicastWriter.init)", r"AsciicastWriterC4path6header13flushInterval"),
    ("transcript close", r"AsciicastWriterC5close6reason"),
    ("claim (Lockbox.claim, SQLite, twice)", r"LockboxAAC5claim4user7session3now"),
    ("grants ended at session end (Lockbox.endElevations, SQLite)", r"LockboxAAC13endElevations7session4user"),
    ("logging (swift-log StreamLogHandler)", r"StreamLogHandlerV3log5event"),
    ("Lockbox sweeper thread (once a second, not per login)", r"startLockboxSweeperyyFyyYbcfU_ "),
]


def summarize(path, logins):
    """The breakdown table of a --callgrind profile: Ir per login and share."""
    import re
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    counts = {}
    total = None
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
        if not m:
            continue
        ir, name = int(m.group(1).replace(",", "")), m.group(2)
        if name.startswith("PROGRAM TOTALS"):
            total = ir
        for label, pattern in PARTS:
            if re.search(pattern, name) and label not in counts:
                counts[label] = ir
    print(f"| part | Ir per login | share |\n|---|---:|---:|\n| all of gatehoused | {total / logins:,.0f} | 100% |")
    for label, _ in PARTS:
        ir = counts.get(label, 0)
        print(f"| {label} | {ir / logins:,.0f} | {100 * ir / total:.1f}% |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(REPO / ".build" / "release"))
    ap.add_argument("-n", type=int, default=200, help="measured logins (after one warm-up login)")
    ap.add_argument("--repeats", type=int, default=1, help="repeat the N logins, print each and the median")
    ap.add_argument("--callgrind", metavar="OUT", help="run under callgrind, write the N-login profile to OUT")
    ap.add_argument("--summarize", metavar="PROFILE", help="print the breakdown of a --callgrind profile of N logins")
    ap.add_argument("--strace", metavar="OUT", help="count the daemon's system calls (`strace -f -c`) over the N logins")
    ap.add_argument("--perf", metavar="OUT", help="run under `perf record -g` (cpu-clock samples, kernel included)")
    ap.add_argument("--switches", metavar="OUT", help="count context switches of the server's processes (`perf stat`)")
    args = ap.parse_args()
    if args.summarize:
        summarize(args.summarize, args.n)
        return
    with tempfile.TemporaryDirectory(prefix="gatehouse-login-") as tmp:
        key = asyncssh.generate_private_key("ssh-ed25519")
        prefix = []
        if args.callgrind:
            prefix = ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={tmp}/callgrind.%p",
                      "--dump-instr=no", "--separate-threads=no"]
        server = Wrapped(Path(tmp), key, Path(args.build).resolve(), prefix)
        try:
            server.start()
            asyncio.run(one_login(server, 0))          # first-use costs stay out of the figure
            if args.callgrind:
                pid = daemon_pid(server)
                subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
                t0 = time.time()
                asyncio.run(run_logins(server, args.n))
                subprocess.run(["callgrind_control", "-d", f"logins{args.n}", str(pid)], check=True,
                               capture_output=True)
                dumps = sorted(glob.glob(f"{tmp}/callgrind.{pid}.*"), key=os.path.getmtime)
                if not dumps:
                    raise RuntimeError("no callgrind dump")
                Path(args.callgrind).write_bytes(Path(dumps[-1]).read_bytes())
                print(f"{args.n} logins under callgrind in {time.time() - t0:.0f} s -> {args.callgrind}")
                return
            recorder = None
            if args.perf:
                # Attached after the warm-up login: the daemon's start is not in the profile;
                # backends forked from now on are (perf follows children).
                # Every process of the server: the monitor, the network side, PAM workers.
                pids = ",".join(str(pid) for pid in process_ticks(server))
                recorder = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g",
                                             "-o", args.perf, "-p", pids])
                time.sleep(2)
            elif args.switches:
                pids = ",".join(str(pid) for pid in process_ticks(server))
                recorder = subprocess.Popen(["perf", "stat", "--per-thread", "-e", "context-switches", "-o",
                                             args.switches, "-p", pids])
                time.sleep(2)
            elif args.strace:
                recorder = subprocess.Popen(["strace", "-f", *os.environ.get("STRACE_FLAGS", "-c").split(), "-o", args.strace, "-p", str(daemon_pid(server))])
                time.sleep(2)
            cpus, p50s = [], []
            for rep in range(args.repeats):
                cpu, p50, split = asyncio.run(run_logins(server, args.n))
                cpus.append(cpu)
                p50s.append(p50)
                parts = ", ".join(f"{name} {ms:.2f}" for name, ms in sorted(split.items()))
                print(f"#{rep + 1}: {args.n} logins, server CPU {cpu:.2f} ms per login ({parts}), p50 {p50:.1f} ms",
                      flush=True)
            if args.repeats > 1:
                print(f"median: server CPU {statistics.median(cpus):.2f} ms per login "
                      f"[{min(cpus):.2f}-{max(cpus):.2f}], p50 {statistics.median(p50s):.1f} ms")
            if recorder:
                recorder.send_signal(signal.SIGINT)
                recorder.wait(60)
            logins = 1 + args.n * args.repeats
            state = server.dir / "state"
            with open(state / "audit.log", "rb") as f:
                kinds = [json.loads(line).get("kind", "?") for line in f]
            files = sum(1 for p in (state / "transcripts").rglob("*") if p.is_file())
            print(f"{len(kinds) / logins:.1f} audit events and {files / logins:.1f} transcript files per login; "
                  "kinds: " + ", ".join(f"{k} {c}" for k, c in sorted(collections.Counter(kinds).items())))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
