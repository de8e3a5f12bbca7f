"""The engineer's shell as a person meets it: the real OpenSSH client with
`-tt` in a real terminal (tmux), driven with send-keys and read back with
capture-pane. History, Ctrl-R, Ctrl-C on a long backend, bracketed paste,
PowerShell's pipeline operators and object rendering; then the session's
transcript, played by the real asciinema in a terminal of the same size,
shows what the user saw."""
import json
import shutil
import subprocess
import time

import pytest

from gatehouse_harness import REPO, Gateway
from limits_fixtures import policy_with_wait
from test_openssh import ssh_argv

ASCIINEMA = REPO / ".venv" / "bin" / "asciinema"

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (scripts/install-deps installs it)"),
    pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client (openssh-client) not installed"),
]

COLUMNS, ROWS = 120, 50


class Pane:
    """One tmux session on a private server socket, whose pane runs `argv`."""

    def __init__(self, tmp_path, name, argv):
        self.socket = str(tmp_path / f"tmux-{name}")
        self.name = name
        self.tmux("new-session", "-d", "-s", name, "-x", str(COLUMNS), "-y", str(ROWS), *argv)
        self.tmux("set-option", "-t", name, "remain-on-exit", "on")
        self.tmux("set-option", "-t", name, "history-limit", "5000")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.socket, "-f", "/dev/null", *args],
                              capture_output=True, text=True, timeout=10, check=True).stdout

    def keys(self, *keys):
        self.tmux("send-keys", "-t", self.name, *keys)

    def text(self, history=False):
        """The screen (and with `history` the scrollback), lines without trailing blanks."""
        out = self.tmux("capture-pane", "-p", "-J", "-t", self.name, *(["-S", "-"] if history else []))
        return "\n".join(line.rstrip() for line in out.split("\n")).rstrip("\n")

    def wait_for(self, predicate, what, timeout=20):
        deadline = time.time() + timeout
        while True:
            screen = self.text(history=True)
            if predicate(screen):
                return screen
            if time.time() > deadline:
                raise AssertionError(f"waited for {what}; the terminal shows:\n{screen}")
            time.sleep(0.05)

    def wait_count(self, needle, count, timeout=20):
        return self.wait_for(lambda s: s.count(needle) >= count, f"{count}x {needle!r}", timeout)

    def close(self):
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture(scope="module")
def shell_gateway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tmux")
    gw = Gateway(tmp / "state", extra_args=["--policy-dir", str(policy_with_wait(tmp))],
                 config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
    yield gw
    gw.stop()


def test_a_real_terminal_session_and_its_replay(shell_gateway, tmp_path):
    gw = shell_gateway
    prompt = "gatehouse alice>"   # the screen's lines lose their trailing blanks
    live = Pane(tmp_path, "live", ssh_argv(gw, "alice", "-tt"))
    try:
        live.wait_for(lambda s: "One-time password" in s, "the TOTP prompt")
        live.keys(gw.fresh_totp("alice"), "Enter")
        live.wait_count(prompt, 1)

        # Objects: one mailbox is a list; a filtered report with the new operators.
        live.keys("Get-Mailbox -Identity alice", "Enter")
        live.wait_count(prompt, 2)
        assert "PrimarySmtpAddress : alice@contoso.com" in live.text(history=True)
        boxes = sorted(json.loads(gw.mailbox_data()), key=lambda b: b["identity"])
        big = [b["identity"] for b in boxes if b["itemCount"] > 100]
        live.keys("Get-MailboxReport | Where-Object ItemCount -GT 100 | Select-Object Identity,ItemCount", "Enter")
        screen = live.wait_count(prompt, 3)
        table = screen.split("Select-Object Identity,ItemCount\n", 1)[1].split(prompt)[0].split("\n")
        assert [row.split()[0] for row in table[2:] if row.strip()] == big, screen

        # History: Up recalls the last line, which runs again as it was.
        calls = len(gw.invocations())
        live.keys("Up")
        live.wait_for(lambda s: s.endswith(prompt + " Get-MailboxReport | Where-Object ItemCount -GT 100 | "
                                           "Select-Object Identity,ItemCount"), "the recalled line")
        live.keys("Enter")
        live.wait_count(prompt, 4)
        assert [c["argv"] for c in gw.invocations()[calls:]] == [["report"]]

        # Ctrl-R finds the older Get-Mailbox line; Enter runs it.
        live.keys("C-r")
        live.keys("-l", "Identity al")
        live.wait_for(lambda s: s.endswith("(reverse-i-search)`Identity al': Get-Mailbox -Identity alice"),
                      "the search's match")
        live.keys("Enter")
        live.wait_count(prompt, 5)
        assert gw.invocations()[-1]["argv"] == ["get", "--identity", "alice"]

        # Ctrl-C on a long backend: SIGINT to its group, audited, prompt back.
        live.keys("Start-Wait 300", "Enter")
        gw.wait_for_audit(lambda e: e["kind"] == "command.allowed" and e["fields"].get("cmdlet") == "Start-Wait")
        live.keys("C-c")
        live.wait_count(prompt, 6)
        assert "Start-Wait was interrupted (Ctrl-C)." in live.text(history=True)
        done = gw.wait_for_audit(lambda e: e["kind"] == "command.finished"
                                 and e["fields"].get("cmdlet") == "Start-Wait")
        assert done["fields"]["interrupted"] == "true" and done["fields"]["exitStatus"] == str(128 + 2), done

        # A pasted block is shown and runs only after a 'y'.
        calls = len(gw.invocations())
        live.tmux("set-buffer", "-b", "block", "Get-Mailbox -Identity bob\nGet-MailboxStatistics carol\n")
        live.tmux("paste-buffer", "-p", "-b", "block", "-t", "live")
        live.wait_for(lambda s: s.endswith("Run them one after another? [y/N]"), "the paste's question")
        screen = live.text(history=True)
        assert "Pasted 2 lines:\n  Get-Mailbox -Identity bob\n  Get-MailboxStatistics carol\n" in screen, screen
        assert len(gw.invocations()) == calls, "nothing ran before the answer"
        live.keys("y")
        live.wait_count(prompt, 8)
        assert [c["argv"] for c in gw.invocations()[calls:]] == [["get", "--identity", "bob"],
                                                                  ["statistics", "--identity", "carol"]]

        # A typo: a caret under it, and the nearest name the caller may see.
        live.keys("Get-Mailbx -Identity alice", "Enter")
        screen = live.wait_count(prompt, 9)
        assert ("Get-Mailbx -Identity alice\n^\nUnknown cmdlet 'Get-Mailbx'. Did you mean Get-Mailbox?") in screen, screen
        live.keys("Get-Mailbox -Identiy alice", "Enter")
        screen = live.wait_count(prompt, 10)
        assert "Get-Mailbox -Identiy alice\n            ^\nGet-Mailbox has no parameter -Identiy; did you mean -Identity?" \
            in screen, screen

        live.keys("exit", "Enter")
        live.wait_for(lambda s: "Connection to" in s and "closed." in s, "the end of the session")
        seen = live.text(history=True)
    finally:
        live.close()

    # The transcript, played by asciinema in a terminal of the same size,
    # shows the same screen lines as the user saw between login and logout.
    session = [e for e in gw.audit_events() if e["kind"] == "command.finished"
               and e["fields"].get("cmdlet") == "Start-Wait"][-1]["session"]
    cast = gw.state_dir / "transcripts" / f"{session}.cast"
    marker = "END-OF-REPLAY"
    replay = Pane(tmp_path, "replay", ["sh", "-c", f"'{ASCIINEMA}' cat '{cast}'; echo {marker}; exec sleep 600"])
    try:
        played = replay.wait_for(lambda s: marker in s, "asciinema to finish")
    finally:
        replay.close()
    played_lines = played.split(marker)[0].split("\n")
    while played_lines and not played_lines[-1]:
        played_lines.pop()
    seen_lines = seen.split("\n")
    start = next(i for i, l in enumerate(seen_lines) if l.startswith("Gatehouse constrained shell"))
    assert played_lines[0].startswith("Gatehouse constrained shell"), played
    assert len(played_lines) > 20, played
    assert seen_lines[start:start + len(played_lines)] == played_lines, (seen, played)
