#!/usr/bin/env python3
"""`make bench`: Gatehouse and OpenSSH's sshd side by side on loopback.

Both servers run at once, each under bench/subreaper.py, with the same login
(publickey, then keyboard-interactive answered by pam_matrix, in each
server's private mount of /etc/pam.d: a fixed second factor, since TOTP
allows one login per code) and
the same backend executables (bench/backends): Gatehouse through the bench
cmdlets in bench/policies, sshd through a ForceCommand sh dispatcher. One
asyncssh client drives both. Every workload runs REPEATS times, alternating
the servers (A B A B); the table shows the median of the repeats with the
min-max spread, and the ratio Gatehouse / sshd of the medians.

Server CPU is utime+stime+cutime+cstime from /proc summed over the server's
process tree, the subreaper's reaped children included, so short-lived
backends and orphans count. Memory is Pss from /proc/PID/smaps_rollup over
the same tree.

    .venv/bin/python bench/run.py [--quick] [--repeats N] [--hold]

Counts come from the environment (BENCH_REPEATS, BENCH_MB, BENCH_SHELL,
BENCH_EXEC, BENCH_LOGINS, BENCH_PARALLEL_LOGINS, BENCH_IDLE, BENCH_HOLD,
BENCH_HOLD_RESERVE_MIB);
--quick shrinks them so a run takes a few minutes.
"""
import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncssh

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PAM_MATRIX = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so"
PASSWORD = "bench-second-factor"
# sshd's login: a system account with /bin/sh (scripts/bench-setup creates it),
# so ForceCommand starts a plain sh and no login scripts.
SSHD_USER = "gatehouse-bench"
BENCH_USERS = 100          # Gatehouse's maxSessionsPerUser tops out at 100
CLK_TCK = os.sysconf("SC_CLK_TCK")
CIPHERS = {"chacha20": "chacha20-poly1305@openssh.com", "aes128-gcm": "aes128-gcm@openssh.com"}


# -- /proc over a process tree ------------------------------------------------

def _processes():
    """pid -> (ppid, [utime, stime, cutime, cstime] in ticks) for every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                text = f.read().decode()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        table[int(entry.name)] = (int(fields[1]), [int(x) for x in fields[11:15]])
    return table


def tree(root):
    """The pids of root and all its descendants, with the process table."""
    table = _processes()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out, table


def tree_cpu(root):
    """CPU seconds of the tree under the subreaper `root`: its descendants'
    own and reaped children's time, and what the subreaper itself reaped."""
    pids, table = tree(root)
    ticks = 0
    for pid in pids:
        u, s, cu, cs = table[pid][1]
        ticks += cu + cs if pid == root else u + s + cu + cs
    return ticks / CLK_TCK


def tree_pss_kib(root):
    pids, _ = tree(root)
    total = 0
    for pid in pids:
        if pid == root:
            continue
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total, len(pids) - 1


# -- the two servers ------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_pam(directory: Path, service: str, passdb: Path):
    """The bench's PAM directory: the service's fixed-answer stack, and a
    refusal for any other service."""
    directory.mkdir()
    (directory / service).write_text(pam_stack(passdb))
    (directory / "other").write_text("auth required pam_deny.so\naccount required pam_deny.so\n"
                                      "session required pam_deny.so\npassword required pam_deny.so\n")


def pam_stack(passdb):
    return (f"auth     required  {PAM_MATRIX} passdb={passdb}\n"
            "account  required  pam_permit.so\n"
            "session  required  pam_permit.so\n"
            "password required  pam_deny.so\n")


class Server:
    name = "?"
    prompt_user = None

    def __init__(self, run_dir: Path, client_key):
        self.dir = run_dir / self.name
        self.dir.mkdir(parents=True)
        self.client_key = client_key
        self.port = free_port()
        self.proc = None

    def user(self, i):
        raise NotImplementedError

    def command(self):
        raise NotImplementedError

    def start(self):
        # Each server sees the bench's PAM directory as /etc/pam.d, in a
        # mount namespace of its own: the system's files are never touched,
        # and the real libpam runs the fixed-answer pam_matrix stack.
        # (pam_wrapper, the demo's way, gives each process that loads it one
        # of 62 private directories, and sshd's per-connection processes
        # each take one: sshd could then hold about 60 sessions.)
        private_pam = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                       'mount --bind "$0" /etc/pam.d && exec "$@"', str(self.dir / "pam.d")]
        self.log = open(self.dir / "server.log", "wb")
        self.proc = subprocess.Popen([sys.executable, str(BENCH / "subreaper.py"), *private_pam, *self.command()],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{(self.dir / 'server.log').read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not come up:\n{(self.dir / 'server.log').read_text()[-3000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def cpu(self):
        return tree_cpu(self.proc.pid)

    def pss(self):
        return tree_pss_kib(self.proc.pid)


class Gatehouse(Server):
    name = "gatehouse"

    def __init__(self, run_dir, client_key, build: Path):
        super().__init__(run_dir, client_key)
        self.build = build
        policy = self.dir / "policies"
        shutil.copytree(BENCH / "policies", policy)
        for f in policy.rglob("*.yaml"):
            f.write_text(f.read_text().replace("@bench/", f"{BENCH}/"))
        public = client_key.export_public_key().decode().strip()
        users = "".join(f"  bench{i}:\n    groups: [bench]\n    roles: [BenchRunner]\n    keys:\n      - \"{public}\"\n"
                        for i in range(BENCH_USERS))
        (self.dir / "directory.yaml").write_text(f"# {BENCH_USERS} bench users, one client key.\nusers:\n{users}tenants: {{}}\n")
        (self.dir / "passdb").write_text("".join(f"bench{i}:{PASSWORD}:gatehouse-bench\n" for i in range(BENCH_USERS)))
        write_pam(self.dir / "pam.d", "gatehouse-bench", self.dir / "passdb")
        # The overlay: same algorithms as sshd (curve25519, ssh-ed25519),
        # recording and audit on as in production, room for held sessions.
        (self.dir / "gatehouse.yaml").write_text(
            f"listen: \"127.0.0.1:{self.port}\"\n"
            f"stateDirectory: \"{self.dir / 'state'}\"\n"
            f"policyDirectory: \"{policy}\"\n"
            f"directoryFile: \"{self.dir / 'directory.yaml'}\"\n"
            f"hostKey: \"{self.dir / 'ssh_host_ed25519_key'}\"\n"
            "hostKeyType: ed25519\n"
            "fips: false\n"
            "pamService: gatehouse-bench\n"
            "recordTranscripts: true\n"
            "maxSessionsPerUser: 100\n"
            "maxChannelsPerConnection: 1000\n"
            "maxUnauthenticated: 10000\n"
            "maxUnauthenticatedPerSource: 10000\n"
            "perSourcePenalties: false\n"
            "userLockoutFailures: 1000\n"
            "nodeName: bench\n")

    def command(self):
        return [str(self.build / "gatehoused"), "--config", str(self.dir / "gatehouse.yaml")]

    def user(self, i):
        return f"bench{i % BENCH_USERS}"


class Sshd(Server):
    name = "sshd"

    def __init__(self, run_dir, client_key):
        super().__init__(run_dir, client_key)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / "ssh_host_ed25519_key")],
                       check=True)
        (self.dir / "authorized_keys").write_text(client_key.export_public_key().decode())
        # sshd reads authorized_keys as the logged-in user.
        for d in (self.dir.parent, self.dir):
            d.chmod(0o755)
        (self.dir / "authorized_keys").chmod(0o644)
        (self.dir / "passdb").write_text(f"{SSHD_USER}:{PASSWORD}:sshd\n")
        write_pam(self.dir / "pam.d", "sshd", self.dir / "passdb")
        (self.dir / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1:{self.port}\n"
            f"HostKey {self.dir / 'ssh_host_ed25519_key'}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "StrictModes no\n"
            "PermitRootLogin no\n"
            "PubkeyAuthentication yes\n"
            "KbdInteractiveAuthentication yes\n"
            "PasswordAuthentication no\n"
            "AuthenticationMethods publickey,keyboard-interactive\n"
            "UsePAM yes\n"
            f"ForceCommand {BENCH / 'backends' / 'sshd-dispatch'}\n"
            "MaxStartups 10000\n"
            "MaxSessions 1000\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "UseDNS no\n"
            "X11Forwarding no\n"
            "AllowTcpForwarding no\n"
            "PermitUserEnvironment no\n"
            "LogLevel " + os.environ.get("BENCH_SSHD_LOGLEVEL", "ERROR") + "\n")
        os.makedirs("/run/sshd", exist_ok=True)

    def command(self):
        return ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")]

    def user(self, i):
        return SSHD_USER


# -- the client ----------------------------------------------------------------

class Client(asyncssh.SSHClient):
    def kbdint_auth_requested(self):
        return ""

    def kbdint_challenge_received(self, name, instructions, lang, prompts):
        return [PASSWORD for _ in prompts]


async def connect(server: Server, i=0, cipher=None):
    kwargs = {"encryption_algs": [CIPHERS[cipher]]} if cipher else {}
    conn, _ = await asyncssh.create_connection(
        Client, "127.0.0.1", server.port, username=server.user(i), client_keys=[server.client_key],
        known_hosts=None, preferred_auth=["publickey", "keyboard-interactive"], agent_path=None,
        kex_algs=["curve25519-sha256"], server_host_key_algs=["ssh-ed25519"],
        login_timeout=60, **kwargs)
    return conn


class Sink(asyncssh.SSHClientSession):
    def __init__(self):
        self.count = 0

    def data_received(self, data, datatype):
        self.count += len(data)


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def recycle_page_cache(directory, megabytes):
    """Writes and deletes a file of `megabytes` MiB in `directory`, so that
    the page cache's next pages are ones the guest has just used.

    This VM (a Firecracker kernel with virtio-balloon free page reporting,
    page_reporting_order 9) hands free 2 MiB blocks back to the host; the
    first touch of such a page then costs a host fault, charged to whoever
    touches it. `dd` of 300 MB into a new file took 0.80-0.87 s of system
    time on cold pages and 0.08 s right after the same amount was freed
    (2026-12-07). Gatehouse records all 100 MB of output into its
    transcript and sshd writes nothing, so on cold pages Gatehouse's CPU
    per GB doubled or tripled from one run to the next (perf: 52% of the
    network side in copy_folio_from_iter_atomic, the write into the page
    cache). A long-running server's page cache recycles its pages; this
    makes every run start from that state, for both servers alike. The
    transcript's own write (the copy, ext4) is still measured."""
    path = os.path.join(directory, "bench-page-recycle")
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(megabytes):
            f.write(chunk)
    os.unlink(path)     # a deleted file's dirty pages are freed, never written out


async def throughput(server, megabytes, cipher):
    size = megabytes * 1_000_000
    recycle_page_cache(server.dir, 2 * megabytes)
    async with await connect(server, cipher=cipher) as conn:
        cpu0, t0 = server.cpu(), time.perf_counter()
        chan, session = await conn.create_session(Sink, f"Get-Blob -Size {size}", encoding=None)
        await chan.wait_closed()
        wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
    if session.count < size:
        raise RuntimeError(f"{server.name}: {session.count} of {size} bytes arrived")
    return {f"mbps_{cipher}": session.count / 1e6 / wall, f"cpu_s_per_gb_{cipher}": cpu / (session.count / 1e9)}


async def shell(server, n):
    prompt = f"{server.user(0)}> "
    async with await connect(server) as conn:
        proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
        await asyncio.wait_for(proc.stdout.readuntil(prompt), 30)
        times = []
        cpu0 = server.cpu()
        for _ in range(n):
            t0 = time.perf_counter()
            proc.stdin.write("Get-Status\r")
            out = await asyncio.wait_for(proc.stdout.readuntil(prompt), 30)
            times.append(time.perf_counter() - t0)
            if '"status":"ok"' not in out:
                raise RuntimeError(f"{server.name} shell: unexpected output {out!r}")
        cpu = server.cpu() - cpu0
        proc.stdin.write("exit\r")
    ms = [t * 1000 for t in times]
    return {"shell_p50": pct(ms, 50), "shell_p95": pct(ms, 95), "shell_p99": pct(ms, 99),
            "shell_cpu_ms": cpu * 1000 / n}


async def exec_channels(server, n):
    async with await connect(server) as conn:
        times = []
        cpu0 = server.cpu()
        for _ in range(n):
            t0 = time.perf_counter()
            result = await conn.run("Get-Status", check=False)
            times.append(time.perf_counter() - t0)
            if '"status":"ok"' not in str(result.stdout):
                raise RuntimeError(f"{server.name} exec: {result.exit_status} {result.stdout!r} {result.stderr!r}")
        cpu = server.cpu() - cpu0
    ms = [t * 1000 for t in times]
    return {"exec_p50": pct(ms, 50), "exec_p95": pct(ms, 95), "exec_cpu_ms": cpu * 1000 / n}


async def one_login(server, i):
    async with await connect(server, i) as conn:
        result = await conn.run("Get-Status", check=False)
    if '"status":"ok"' not in str(result.stdout):
        raise RuntimeError(f"{server.name} login+exec: {result.exit_status} {result.stdout!r} {result.stderr!r}")


async def logins(server, n):
    times = []
    cpu0, client0 = server.cpu(), time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        await one_login(server, i)
        times.append(time.perf_counter() - t0)
    cpu, client = server.cpu() - cpu0, time.process_time() - client0
    ms = [t * 1000 for t in times]
    return {"login_p50": pct(ms, 50), "login_cpu_ms": cpu * 1000 / n, "client_cpu_ms": client * 1000 / n}


async def parallel_logins(server, n, clients=8):
    counter = iter(range(n))

    async def worker():
        for i in counter:
            await one_login(server, i)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return {"parallel_cps": n / (time.perf_counter() - t0)}


async def open_idle(server, n, opened, start=0, concurrency=8, stop_when=None):
    """Opens n authenticated pty shell sessions, each waiting at its prompt."""
    counter = iter(range(start, start + n))
    failures = []

    async def worker():
        for i in counter:
            if failures or (stop_when and stop_when()):
                return
            try:
                conn = await connect(server, i)
                proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
                await asyncio.wait_for(proc.stdout.readuntil(f"{server.user(i)}> "), 60)
                opened.append(conn)
            except (OSError, asyncssh.Error, asyncio.TimeoutError) as e:
                failures.append(f"session {i}: {type(e).__name__}: {e}")
                return
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


async def close_all(conns):
    for conn in conns:
        conn.close()
    await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)
    conns.clear()


async def idle(server, n):
    await asyncio.sleep(1)
    base, _ = server.pss()
    conns = []
    try:
        failures = await open_idle(server, n, conns)
        if failures:
            raise RuntimeError(f"{server.name} idle: {failures[0]}")
        await asyncio.sleep(2)
        loaded, _ = server.pss()
    finally:
        await close_all(conns)
    return {"idle_pss_kib": (loaded - base) / n}


def mem_available_kib():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    return 0


async def hold(server, target, reserve_kib):
    """Opens sessions until `target`, a failure, or less than `reserve_kib`
    of memory left on the machine; then checks that a fresh login works."""
    conns = []
    try:
        t0 = time.perf_counter()
        failures = await open_idle(server, target, conns, stop_when=lambda: mem_available_kib() < reserve_kib)
        held = len(conns)
        elapsed = time.perf_counter() - t0
        pss, _ = server.pss()
        try:
            await asyncio.wait_for(one_login(server, held + 1), 60)
            login_ok = True
        except Exception as e:          # the figure is whether it works, whatever the reason
            login_ok = f"{type(e).__name__}: {e}"
    finally:
        await close_all(conns)
    stop = failures[0] if failures else ("memory reserve reached" if held < target else "target reached")
    return {"held": held, "seconds": elapsed, "pss_kib": pss, "login_after": login_ok, "stopped": stop}


# -- the run -------------------------------------------------------------------

ROWS = [
    # (label, keys, format, unit of ratio)
    ("100 MB of output through one exec, MB/s (chacha20 / aes128-gcm)", ["mbps_chacha20", "mbps_aes128-gcm"], "{:.0f}"),
    ("the same, server CPU s per GB (chacha20 / aes128-gcm)", ["cpu_s_per_gb_chacha20", "cpu_s_per_gb_aes128-gcm"], "{:.1f}"),
    ("500 commands in one pty shell, p50 / p95 / p99 ms", ["shell_p50", "shell_p95", "shell_p99"], "{:.2f}"),
    ("500 exec channels on one connection, p50 / p95 ms", ["exec_p50", "exec_p95"], "{:.2f}"),
    ("server CPU per command, ms (shell / exec)", ["shell_cpu_ms", "exec_cpu_ms"], "{:.2f}"),
    ("connect + key + kbd-interactive + exec + close, 200x one at a time, p50 ms", ["login_p50"], "{:.1f}"),
    ("the same, server CPU per login, ms", ["login_cpu_ms"], "{:.1f}"),
    # The client shares the 2 cores: with 8 at once, server + client CPU per login bounds connections/s.
    ("the same, the bench client's own CPU per login, ms", ["client_cpu_ms"], "{:.1f}"),
    ("the same with 8 clients at once, connections/s", ["parallel_cps"], "{:.1f}"),
    ("1,000 idle authenticated pty sessions, server PSS per session, KiB", ["idle_pss_kib"], "{:.0f}"),
]


# --only keys: the label printed while running, and the workload.
WORKLOADS = {
    "chacha20": ("throughput chacha20", lambda s, c: throughput(s, c["mb"], "chacha20")),
    "aes128-gcm": ("throughput aes128-gcm", lambda s, c: throughput(s, c["mb"], "aes128-gcm")),
    "shell": ("shell", lambda s, c: shell(s, c["shell"])),
    "exec": ("exec", lambda s, c: exec_channels(s, c["exec"])),
    "logins": ("logins", lambda s, c: logins(s, c["logins"])),
    "parallel": ("parallel logins", lambda s, c: parallel_logins(s, c["parallel"])),
    "idle": ("idle", lambda s, c: idle(s, c["idle"])),
}


def gatehoused_pids(server):
    """The gatehoused processes under the server's subreaper and unshare:
    the monitor and its network side (and the PAM workers, which share the name's start)."""
    out = subprocess.run(["pgrep", "-s", str(server.proc.pid), "-f", r"(^|/)gatehouse(d|-pam-worker) "],
                         capture_output=True, text=True).stdout.split()
    pids = [int(p) for p in out if int(p) != server.proc.pid]
    if not pids:
        raise RuntimeError("gatehoused not found")
    return pids


def summarize(results, counts):
    """Markdown table: median [min-max] per server, ratio of medians."""
    def cell(server, keys, fmt):
        parts = []
        for k in keys:
            vals = [r[k] for r in results[server] if k in r]
            if not vals:
                parts.append("-")
                continue
            med = statistics.median(vals)
            parts.append(fmt.format(med) + (f" [{fmt.format(min(vals))}-{fmt.format(max(vals))}]" if len(vals) > 1 else ""))
        return " / ".join(parts)

    def ratio(keys):
        parts = []
        for k in keys:
            a = [r[k] for r in results["sshd"] if k in r]
            b = [r[k] for r in results["gatehouse"] if k in r]
            parts.append(f"{statistics.median(b) / statistics.median(a):.2f}" if a and b and statistics.median(a) else "-")
        return " / ".join(parts)

    label = {"100 MB": f"{counts['mb']} MB", "500 commands": f"{counts['shell']} commands",
             "500 exec": f"{counts['exec']} exec", "200x": f"{counts['logins']}x", "1,000 idle": f"{counts['idle']:,} idle"}
    lines = ["| workload | sshd (ForceCommand sh dispatcher) | Gatehouse | ratio Gatehouse / sshd |", "|---|---:|---:|---:|"]
    for text, keys, fmt in ROWS:
        if not any(k in r for k in keys for server in results for r in results[server]):
            continue    # not measured in this run (--only)
        for old, new in label.items():
            text = text.replace(old, new)
        lines.append(f"| {text} | {cell('sshd', keys, fmt)} | {cell('gatehouse', keys, fmt)} | {ratio(keys)} |")
    return "\n".join(lines)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:"))
    sshd = subprocess.run(["/usr/sbin/sshd", "-V"], capture_output=True, text=True).stderr.strip()
    libssh = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libssh-4"], capture_output=True, text=True).stdout
    return (f"nproc {os.cpu_count()}; {cpu}; {mem / 1024 / 1024:.1f} GiB; kernel {platform.release()}; "
            f"{sshd}; libssh {libssh}; asyncssh {asyncssh.__version__}; Python {platform.python_version()}; "
            f"load average at start {os.getloadavg()[0]:.1f}")


def dirty_kib():
    """Data written but not yet on disk (Dirty + Writeback in /proc/meminfo)."""
    fields = dict(l.split(":", 1) for l in open("/proc/meminfo"))
    return sum(int(fields[k].split()[0]) for k in ("Dirty", "Writeback"))


def quiet_disk():
    """Writes out what earlier work left dirty (`make bench` builds just
    before), so neither server's first runs share the disk with that
    write-back. (The output outliers first suspected of coming from it were
    this VM's free page reporting: see `recycle_page_cache`.)"""
    before = dirty_kib()
    os.sync()
    return f"dirty data before the run {before / 1024:.0f} MiB, after sync {dirty_kib() / 1024:.0f} MiB"


def env_int(name, default):
    return int(os.environ.get(name, default))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(REPO / ".build" / "release"))
    ap.add_argument("--quick", action="store_true", help="small counts, one repeat: a few minutes")
    ap.add_argument("--hold", action="store_true", help="only: how many idle sessions each server holds")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--only", action="append", choices=list(WORKLOADS), metavar="WORKLOAD",
                    help="run only this workload (repeatable; one of: " + ", ".join(WORKLOADS) + ")")
    ap.add_argument("--servers", default="sshd,gatehouse",
                    help="comma-separated: sshd, gatehouse (ratios need both)")
    ap.add_argument("--perf", metavar="OUT",
                    help="`perf record -g` gatehoused (monitor, network side, PAM workers) during its runs (cpu-clock; OUT.N per run)")
    ap.add_argument("--strace", metavar="OUT",
                    help="count gatehoused's system calls (`strace -f -c`) during its runs (OUT.N per run)")
    args = ap.parse_args()
    names = [n for n in ("sshd", "gatehouse") if n in args.servers.split(",")]
    q = args.quick
    counts = {
        "repeats": env_int("BENCH_REPEATS", 1 if q else 3),
        "mb": env_int("BENCH_MB", 20 if q else 100),
        "shell": env_int("BENCH_SHELL", 100 if q else 500),
        "exec": env_int("BENCH_EXEC", 100 if q else 500),
        "logins": env_int("BENCH_LOGINS", 40 if q else 200),
        "parallel": env_int("BENCH_PARALLEL_LOGINS", 40 if q else 200),
        "idle": env_int("BENCH_IDLE", 100 if q else 1000),
        "hold": env_int("BENCH_HOLD", 10000),
        # Memory left to the rest of the machine while sessions are held.
        "hold_reserve_mib": env_int("BENCH_HOLD_RESERVE_MIB", 4096),
    }
    # Both servers inherit this; gatehoused raises its soft limit to the hard
    # one itself. Three descriptors per Gatehouse session need more than
    # 30,000 for the 10,000-session hold: raise the hard limit where this
    # process may (CAP_SYS_RESOURCE, as LimitNOFILE= does for the systemd
    # unit), and say so where it may not.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(hard, 65536), max(hard, 65536)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        print(f"bench: the open-file limit stays at {hard} (raising it needs CAP_SYS_RESOURCE); "
              f"Gatehouse holds at most about {hard // 3} sessions under it", flush=True)
    for path in (PAM_MATRIX, "/usr/sbin/sshd"):
        if not os.path.exists(path):
            sys.exit(f"bench: {path} missing; run scripts/install-deps and scripts/bench-setup")
    try:
        import pwd
        pwd.getpwnam(SSHD_USER)
    except KeyError:
        sys.exit(f"bench: no account {SSHD_USER}; run scripts/bench-setup")

    print(machine(), flush=True)
    print(quiet_disk(), flush=True)
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        key = asyncssh.generate_private_key("ssh-ed25519")
        servers = {"sshd": Sshd(Path(tmp), key), "gatehouse": Gatehouse(Path(tmp), key, Path(args.build).resolve())}
        servers = {n: servers[n] for n in names}
        try:
            for s in servers.values():
                s.start()
            if args.hold:
                for name in ("sshd", "gatehouse"):
                    r = asyncio.run(hold(servers[name], counts["hold"], counts["hold_reserve_mib"] * 1024))
                    print(f"{name}: held {r['held']} idle pty sessions in {r['seconds']:.0f} s "
                          f"(PSS {r['pss_kib'] / 1024:.0f} MiB); stopped: {r['stopped']}; "
                          f"a fresh login then: {'works' if r['login_after'] is True else r['login_after']}", flush=True)
                return
            results = {"sshd": [{} for _ in range(counts["repeats"])],
                       "gatehouse": [{} for _ in range(counts["repeats"])]}
            workloads = [(label, lambda s, w=work: w(s, counts)) for key, (label, work) in WORKLOADS.items()
                         if not args.only or key in args.only]
            profiles = 0
            # One warm-up login each, so neither pays first-use costs in a figure.
            for s in servers.values():
                asyncio.run(one_login(s, 0))
            for label, work in workloads:
                for rep in range(counts["repeats"]):
                    for name in names:      # A B A B
                        t0 = time.time()
                        recorder = None
                        if (args.perf or args.strace) and name == "gatehouse":
                            profiles += 1
                            pids = [str(pid) for pid in gatehoused_pids(servers[name])]
                            if args.perf:
                                recorder = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000",
                                                             "-g", "-o", f"{args.perf}.{profiles}", "-p", ",".join(pids)])
                            else:
                                recorder = subprocess.Popen(["strace", "-f", "-c", "-o", f"{args.strace}.{profiles}",
                                                             *(a for pid in pids for a in ("-p", pid))])
                            time.sleep(1)   # the tracer attaches
                        figures = asyncio.run(work(servers[name]))
                        if recorder:
                            recorder.send_signal(signal.SIGINT)
                            recorder.wait()
                        results[name][rep].update(figures)
                        print(f"  {label:22s} #{rep + 1} {name:9s} {time.time() - t0:6.1f} s  "
                              + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()), flush=True)
            print()
            print(f"Median of {counts['repeats']} alternating runs [min-max]:")
            print(summarize(results, counts))
            if "gatehouse" in servers:
                state = servers["gatehouse"].dir / "state"
                transcripts = sum(1 for p in (state / "transcripts").rglob("*") if p.is_file())
                with open(state / "audit.log", "rb") as f:
                    events = sum(1 for _ in f)
                print(f"Gatehouse wrote {events} audit events and {transcripts} transcript files during the run.")
            if args.json:
                Path(args.json).write_text(json.dumps({"machine": machine(), "counts": counts, "results": results}, indent=1))
        finally:
            for s in servers.values():
                s.stop()


if __name__ == "__main__":
    main()
