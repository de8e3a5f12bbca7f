"""PAM runs in gatehouse-pam-worker processes, never on the daemon's threads
(issue 11): after a real login the daemon has no PAM module mapped, and not
even libpam, while a worker, its child, holds both."""
import os
from pathlib import Path

from gatehouse_harness import connect, run


def mapped_objects(pid: int) -> set:
    """Basenames of the files mapped into process `pid`."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            names.add(os.path.basename(fields[5]))
    return names


def children(pid: int) -> list:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended while listed
        # The command name is in parentheses and may hold spaces: split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def executable(pid: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return ""


def is_libpam(name: str) -> bool:
    return name.startswith("libpam.so")


def test_pam_modules_are_mapped_in_a_worker_never_in_the_daemon(gateway):
    async def login():
        async with await connect(gateway, "alice") as conn:
            return await conn.run("Get-Mailbox -Identity alice", check=False)

    assert run(login()).exit_status == 0
    daemon = gateway.proc.pid
    daemon_maps = mapped_objects(daemon)
    assert "pam_oath.so" not in daemon_maps, sorted(daemon_maps)
    assert not any(is_libpam(name) for name in daemon_maps), sorted(daemon_maps)
    workers = [pid for pid in children(daemon) if executable(pid) == "gatehouse-pam-worker"]
    assert workers, f"no gatehouse-pam-worker child of {daemon}: {[(p, executable(p)) for p in children(daemon)]}"
    holding = [pid for pid in workers
               if "pam_oath.so" in mapped_objects(pid) and any(is_libpam(n) for n in mapped_objects(pid))]
    assert holding, f"no worker holds pam_oath.so and libpam: {workers}"


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def test_a_worker_killed_with_sigkill_is_reaped_and_replaced(gateway):
    """kill -9 of every idle worker: the next real login still succeeds, on a
    fresh worker, and the daemon leaves no zombie behind."""
    async def login():
        async with await connect(gateway, "alice") as conn:
            return await conn.run("Get-Mailbox -Identity alice", check=False)

    gateway.reset_totp_replay()
    assert run(login()).exit_status == 0
    daemon = gateway.proc.pid
    old = [pid for pid in children(daemon) if executable(pid) == "gatehouse-pam-worker"]
    assert old
    for pid in old:
        os.kill(pid, 9)
    gateway.reset_totp_replay()
    assert run(login()).exit_status == 0
    now = children(daemon)
    assert not [pid for pid in now if state(pid) == "Z"], [(pid, state(pid)) for pid in now]
    assert not set(old) & set(now)
    assert [pid for pid in now if executable(pid) == "gatehouse-pam-worker"]
