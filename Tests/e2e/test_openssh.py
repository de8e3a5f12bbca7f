"""OpenSSH's own ssh client: exec with SSH_ASKPASS answering the TOTP prompt,
and an interactive pty session driven by pexpect."""
import os
import shutil
import subprocess

import pexpect
import pytest

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="OpenSSH client (openssh-client) not installed")


def ssh_argv(gw, user, *extra):
    return ["ssh", "-F", "/dev/null", "-p", str(gw.port), "-i", gw.users[user]["privateKey"],
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={gw.known_hosts()}",
            "-o", "StrictHostKeyChecking=yes", "-o", "PreferredAuthentications=publickey,keyboard-interactive",
            "-o", "ConnectTimeout=10", *extra, f"{user}@{gw.host}"]


def askpass_env(gw, tmp_path, user):
    code = gw.fresh_totp(user)
    script = tmp_path / "askpass.sh"
    # The prompt arrives as $1; log it so the test can check what PAM asked.
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{tmp_path}/prompts"\necho {code}\n')
    script.chmod(0o700)
    env = dict(os.environ, SSH_ASKPASS=str(script), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    return env


def test_openssh_exec_with_askpass(gateway, tmp_path):
    env = askpass_env(gateway, tmp_path, "alice")
    proc = subprocess.run(["setsid", "-w", *ssh_argv(gateway, "alice"), "Get-Mailbox -Identity alice"],
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "alice@contoso.com" in proc.stdout
    assert "One-time password" in (tmp_path / "prompts").read_text()


def test_openssh_exec_denied_status(gateway, tmp_path):
    env = askpass_env(gateway, tmp_path, "alice")
    proc = subprocess.run(["setsid", "-w", *ssh_argv(gateway, "alice"),
                           "Set-Mailbox -Identity alice -ProhibitSendQuota 1GB"],
                          env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 126
    assert "not permitted" in proc.stderr


def test_openssh_interactive_shell(gateway, tmp_path):
    code = gateway.fresh_totp("alice")
    child = pexpect.spawn(ssh_argv(gateway, "alice", "-tt")[0], ssh_argv(gateway, "alice", "-tt")[1:],
                          timeout=20, encoding="utf-8")
    try:
        child.expect("One-time password")
        child.sendline(code)
        child.expect("alice> ")
        child.sendline("Get-Mailbox -Identity alice")
        child.expect("alice@contoso.com")
        child.expect("alice> ")
        child.sendline("Set-Mailbox -Identity alice -ProhibitSendQuota 1GB")
        child.expect("not permitted")
        child.expect("alice> ")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
