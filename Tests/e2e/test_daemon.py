"""The daemon's own files and lifecycle."""
import os
import stat

from gatehouse_harness import Gateway, run, run_exec


def test_host_key_is_private_and_persistent(gateway, tmp_path):
    key = gateway.state_dir / "ssh_host_ecdsa_key"
    mode = stat.S_IMODE(os.stat(key).st_mode)
    assert mode == 0o600, oct(mode)
    # A second daemon on the same state directory keeps the same host key:
    # it must connect with the known_hosts file the first one wrote.
    before = key.read_bytes()
    other = Gateway(tmp_path / "second").start()
    try:
        first_hostkey = (tmp_path / "second" / "known_hosts").read_text().split(" ", 1)[1]
    finally:
        other.stop()
    again = Gateway(tmp_path / "second").start()
    try:
        assert (tmp_path / "second" / "known_hosts").read_text().split(" ", 1)[1] == first_hostkey
        assert run(run_exec(again, "alice", "Get-Mailbox -Identity bob")).exit_status == 0
    finally:
        again.stop()
    assert key.read_bytes() == before


def test_manifest_shape(gateway):
    m = gateway.manifest
    assert m["listen"] == f"{gateway.host}:{gateway.port}"
    names = [u["name"] for u in m["users"]]
    # rita is the console's reviewer (issue 14: the `reviewers` group).
    assert names == ["alice", "bob", "carol", "dave", "rita"]
    for u in m["users"]:
        assert os.path.isabs(u["privateKey"]) and os.path.exists(u["privateKey"])
        assert stat.S_IMODE(os.stat(u["privateKey"]).st_mode) == 0o600
        assert len(u["totpSecretHex"]) == 40 and u["totpSecretBase32"]
        assert isinstance(u["roles"], list)
    assert "MailboxReader" in next(u for u in m["users"] if u["name"] == "alice")["roles"]


def test_demo_keys_load_in_every_client(gateway):
    """The generated private keys are read by paramiko and asyncssh as well as OpenSSH."""
    import asyncssh
    import paramiko
    for u in gateway.manifest["users"]:
        p = paramiko.ECDSAKey.from_private_key_file(u["privateKey"])
        a = asyncssh.read_private_key(u["privateKey"])
        assert p.get_base64() == u["publicKey"].split()[1]
        assert a.export_public_key().decode().split()[1] == u["publicKey"].split()[1]
