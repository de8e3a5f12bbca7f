"""Shared helpers for the session-limit and hardening tests: a policy copy
with a slow cmdlet (so a backend can be running when a limit strikes), and
small asyncssh helpers."""
import asyncio
import shutil
from pathlib import Path

from gatehouse_harness import REPO

WAIT_CMDLET = """
cmdlets:
  Start-Wait:
    synopsis: Test-only cmdlet that sleeps, so a limit can strike mid-command.
    parameters:
      Seconds:
        type: int
        min: 1
        max: 600
        mandatory: true
        position: 0
    backend:
      executable: /bin/sleep
      argv: ["{Seconds}"]
      timeout: 10m
      outputLimit: 1KB
    output: text
"""


def policy_with_wait(tmp_path: Path) -> Path:
    """A copy of policies/ where MailboxReader may also run Start-Wait."""
    dest = tmp_path / "policies"
    shutil.copytree(REPO / "policies", dest)
    (dest / "cmdlets" / "wait.yaml").write_text(WAIT_CMDLET)
    roles = dest / "roles" / "mailbox.yaml"
    roles.write_text(roles.read_text().replace("      - Get-MailboxStatistics\n",
                                               "      - Get-MailboxStatistics\n      - Start-Wait\n", 1))
    return dest


class Collector:
    """Collects everything a shell channel prints, stdout and stderr alike."""

    def __init__(self):
        self.text = ""
        self.closed = asyncio.Event()

    def add(self, data):
        self.text += data


async def open_shell(conn, term_type=None, **kwargs):
    """A shell channel; returns (process, collector) with a reader task running."""
    proc = await conn.create_process(term_type=term_type, stderr=asyncssh_stdout(), **kwargs)
    collector = Collector()

    async def pump():
        try:
            while True:
                data = await proc.stdout.read(4096)
                if not data:
                    break
                collector.add(data)
        except Exception:
            pass
        collector.closed.set()
    asyncio.ensure_future(pump())
    return proc, collector


def asyncssh_stdout():
    import asyncssh
    return asyncssh.STDOUT


async def wait_for_text(collector, needle, timeout):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while needle not in collector.text:
        if loop.time() > deadline:
            raise AssertionError(f"{needle!r} not seen; got {collector.text[-800:]!r}")
        await asyncio.sleep(0.05)
