"""`gatehouse policy check|test`: the operator CLI on the daemon's code path."""
import shutil
import subprocess
from pathlib import Path

from gatehouse_harness import BUILD, REPO

GOLDEN = REPO / "Tests" / "CmdletShellTests" / "Golden"


def gatehouse(*args, cwd=REPO):
    return subprocess.run([str(BUILD / "gatehouse"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_policy_test_prints_decision_role_and_argv():
    r = gatehouse("policy", "test", "--user", "alice", "Get-MailboxReport -Identity alice,bob | Format-List")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "decision: allow" in r.stdout
    assert "role: MailboxReader (" in r.stdout and "policies/roles/mailbox.yaml:" in r.stdout
    argv_line = next(l for l in r.stdout.splitlines() if l.startswith("argv: "))
    assert argv_line.endswith('gatehouse-demo-mailbox", "report", "--identity", "alice", "--identity", "bob"]')
    assert "output: json → Format-List" in r.stdout


def test_policy_test_denies_with_the_shell_exit_status():
    r = gatehouse("policy", "test", "--user", "alice", "Set-Mailbox alice -ProhibitSendQuota 1GB")
    assert r.returncode == 126 and "decision: deny" in r.stdout and "stage: authorize" in r.stdout
    r = gatehouse("policy", "test", "--user", "alice", "Get-Mailbox alice; id")
    assert r.returncode == 2 and "column: 18" in r.stdout
    r = gatehouse("policy", "test", "--user", "alice", "--grant", "MailboxAdmin@contoso",
                  "Set-Mailbox alice -ProhibitSendQuota 1GB")
    assert r.returncode == 0 and "role: MailboxAdmin" in r.stdout and "scope contoso" in r.stdout


def test_policy_check_reports_every_lint_error_with_file_and_line(tmp_path):
    policy = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policy)
    (policy / "cmdlets" / "bad.yaml").write_text("""cmdlets:
  Invoke-Shell:
    synopsis: Runs a shell.
    parameters:
      Script:
        type: string
        mandatory: true
    backend:
      executable: /bin/sh
      argv: ["-c", "{Script}"]
  Invoke-Expression:
    synopsis: Looks harmless.
    backend:
      executable: /usr/bin/true
""")
    (policy / "roles" / "bad.yaml").write_text("roles:\n  Ops:\n    cmdlets: [Invoke-Shell, Invoke-Expression]\n")
    r = gatehouse("policy", "check", str(policy))
    assert r.returncode == 1, r.stdout
    out = r.stdout
    assert f"{policy}/cmdlets/bad.yaml:9:7: error: backend hands the typed value of 'Script' to the interpreter 'sh' as code" in out, out
    assert f"{policy}/cmdlets/bad.yaml:5:7: warning: string parameter 'Script' has no constraint" in out, out
    assert f"{policy}/roles/bad.yaml:3:29: error: role 'Ops' makes the dangerous command 'Invoke-Expression' visible" in out, out
    assert "policy has 2 error(s)" in out, out


def test_shipped_policy_is_clean_even_in_strict_mode():
    """The shipped policy has no lint finding of its own. Where the checkout
    itself sits in a non-root-owned tree, the backend-ownership warnings are
    about this machine, not the policy, and are the only ones allowed."""
    r = gatehouse("policy", "check", "--strict", "policies")
    warnings = [l for l in r.stdout.splitlines() if ": warning: " in l]
    about_this_machine = [w for w in warnings if "owned by uid" in w or "writable by its group" in w]
    assert warnings == about_this_machine, r.stdout
    if not warnings:
        assert r.returncode == 0 and "0 warning(s)" in r.stdout, r.stdout
    else:
        assert r.returncode == 1 and "refused by --strict" in r.stdout, r.stdout


def test_declared_alias_decides_as_its_cmdlet_and_clashes_name_file_and_line(tmp_path):
    policy = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policy)
    mailbox = policy / "cmdlets" / "mailbox.yaml"
    text = mailbox.read_text()
    anchor = "  Get-Mailbox:\n    synopsis: Show the properties of one mailbox, or list mailboxes.\n"
    assert anchor in text
    mailbox.write_text(text.replace(anchor, anchor + "    aliases: [gmbx]\n"))
    r = gatehouse("policy", "test", "--policy-dir", str(policy), "--user", "alice", "GMBX -Identity alice")
    assert r.returncode == 0 and "decision: allow" in r.stdout, r.stdout + r.stderr
    assert "cmdlet: Get-Mailbox" in r.stdout, r.stdout
    # Without the declaration the same word is an unknown cmdlet.
    r = gatehouse("policy", "test", "--user", "alice", "gmbx -Identity alice")
    assert r.returncode == 127, r.stdout

    (policy / "cmdlets" / "clash.yaml").write_text(
        "cmdlets:\n  Show-Box:\n    synopsis: Shows.\n    aliases:\n      - gmbx\n      - iex\n"
        "    backend:\n      executable: /usr/bin/true\n"
        "  Show-Other:\n    synopsis: Shows.\n    aliases: [exit]\n    backend:\n      executable: /usr/bin/true\n")
    r = gatehouse("policy", "check", str(policy))
    assert r.returncode == 1, r.stdout
    clash = f"{policy}/cmdlets/clash.yaml"
    # Files load in name order, so the second claimant of 'gmbx' is mailbox.yaml.
    assert (f"{policy}/cmdlets/mailbox.yaml:16:15: error: alias 'gmbx' of 'Get-Mailbox' is already an alias of "
            f"'Show-Box' (at {clash}:5)") in r.stdout, r.stdout
    assert f"{clash}:6:9: error: alias 'iex' of 'Show-Box' has the name of a dangerous PowerShell command" in r.stdout, r.stdout
    assert f"{clash}:11:15: error: alias 'exit' would hide the built-in command 'exit'" in r.stdout, r.stdout
    assert "policy has 3 error(s)" in r.stdout, r.stdout


def test_policy_test_names_a_lockbox_command_as_such():
    """The daemon answers Lockbox commands before policy; `policy test` says so
    instead of calling them unknown cmdlets."""
    r = gatehouse("policy", "test", "--user", "alice", "approve-lockboxrequest -Id 3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("decision: Lockbox workflow\ncommand: Approve-LockboxRequest\n"), r.stdout
    r = gatehouse("policy", "test", "--user", "alice", "Approve-LockboxRequests -Id 3")
    assert r.returncode == 127 and "Unknown cmdlet" in r.stdout, r.stdout
