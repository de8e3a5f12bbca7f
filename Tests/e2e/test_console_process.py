"""The console's process: unprivileged and apart from the daemon's state,
started again by the monitor when it dies, HTTPS with a configured
certificate, and plain HTTP refused off loopback."""
import os
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from console_harness import ConsoleGateway
from gatehouse_harness import BUILD


def web_pids(daemon_pid):
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0]
            status = (entry / "status").read_text()
        except OSError:
            continue
        if cmdline.endswith(b"gatehouse-web") and f"PPid:\t{daemon_pid}\n" in status:
            pids.append(int(entry.name))
    return pids


def status_fields(pid):
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def fixed_port_console():
    with tempfile.TemporaryDirectory(prefix="gatehouse-console-proc-") as tmp:
        port = free_port()
        gw = ConsoleGateway(Path(tmp) / "state", extra_args=["--web-listen", f"127.0.0.1:{port}"]).start()
        try:
            yield gw
        finally:
            gw.stop()


def test_the_web_process_runs_as_its_own_account_with_nothing_of_the_daemons(fixed_port_console):
    gw = fixed_port_console
    [pid] = web_pids(gw.proc.pid)
    import pwd
    account = pwd.getpwnam("gatehouse-web")
    fields = status_fields(pid)
    assert fields["Uid"].split() == [str(account.pw_uid)] * 4, fields["Uid"]
    assert fields["Gid"].split() == [str(account.pw_gid)] * 4, fields["Gid"]
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]:
        assert int(fields[cap], 16) == 0, (cap, fields[cap])
    assert fields["NoNewPrivs"].strip() == "1"
    # Confined like the network side: a seccomp filter on the process and on
    # every thread SwiftNIO started (WebConsoleSyscalls).
    assert fields["Seccomp"].strip() == "2", "seccomp filter mode"
    for task in os.listdir(f"/proc/{pid}/task"):
        assert status_fields(int(task))["Seccomp"].strip() == "2", task
    # It holds none of the monitor's files: no audit log, no Lockbox or token store, no key.
    held = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    state = str(gw.state_dir)
    assert not [h for h in held if h.startswith(state + "/")], held
    # And its account cannot read them (the state directory is 0700 root).
    assert os.stat(state).st_mode & 0o077 == 0


def test_a_killed_web_process_is_started_again(fixed_port_console):
    gw = fixed_port_console
    [pid] = web_pids(gw.proc.pid)
    os.kill(pid, 9)
    new = wait_until(lambda: [p for p in web_pids(gw.proc.pid) if p != pid], what="a new gatehouse-web")
    assert len(new) == 1
    page = wait_until(lambda: _get(gw.web_ip + "/signin"), what="the console to answer again")
    assert page.status_code == 200
    gw.assert_serving()
    assert "the web console ended" in gw.daemon_log(20000)


def _get(url):
    try:
        return requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None


def test_plain_http_off_loopback_is_a_configuration_error(tmp_path):
    result = subprocess.run([str(BUILD / "gatehoused"), "--demo", "--state-dir", str(tmp_path / "state"),
                             "--web-listen", "0.0.0.0:8443", "--check-config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "command line: webListen 0.0.0.0 is not a loopback address" in result.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("webListen: localhost\n")
    result = subprocess.run([str(BUILD / "gatehoused"), "--demo", "--state-dir", str(tmp_path / "state"),
                             "--config", str(typo), "--check-config"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"{typo}:1" in result.stderr, result.stderr


def test_https_with_a_configured_certificate(tmp_path):
    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    os.chmod(key, 0o600)
    gw = ConsoleGateway(tmp_path / "state", extra_args=["--web-listen", "127.0.0.1:0"],
                        config={"webCertificate": str(cert), "webPrivateKey": str(key), "loginGraceTime": "3"})
    gw.start()
    try:
        assert gw.manifest["web"].startswith("https://127.0.0.1:")
        page = requests.get(gw.manifest["web"] + "/signin", verify=str(cert), timeout=10)
        assert page.status_code == 200 and "Sign in" in page.text
        assert "Secure" in page.headers["Set-Cookie"]
        with pytest.raises(requests.ConnectionError):
            requests.get(gw.manifest["web"].replace("https://", "http://") + "/signin", timeout=5)
        # TLS 1.2 at least.
        context = ssl.create_default_context(cafile=str(cert))
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.minimum_version = ssl.TLSVersion.TLSv1
        host, port = gw.manifest["web"][len("https://"):].split(":")
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="localhost"):
                    pass
        # A TLS handshake that never starts is dropped after loginGraceTime.
        with socket.create_connection((host, int(port)), timeout=30) as stalled:
            try:
                assert stalled.recv(1024) == b""
            except ConnectionResetError:
                pass
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def strict_console():
    """Short limits: a web session idle for 2 s ends; two failed sign-ins lock
    the user; a connection silent for 3 s (loginGraceTime) is closed."""
    with tempfile.TemporaryDirectory(prefix="gatehouse-console-strict-") as tmp:
        gw = ConsoleGateway(Path(tmp) / "state", extra_args=["--web-listen", "127.0.0.1:0"],
                            config={"idleTimeout": "2s", "userLockoutFailures": "2", "loginGraceTime": "3"}).start()
        try:
            yield gw
        finally:
            gw.stop()


def test_a_silent_or_slow_client_is_disconnected_and_others_are_served(strict_console):
    gw = strict_console
    host, port = gw.web_ip[len("http://"):].split(":")
    silent = socket.create_connection((host, int(port)), timeout=30)
    slow = socket.create_connection((host, int(port)), timeout=30)
    slow.sendall(b"GET /signin HTTP/1.1\r\nHost: console\r\nX-Slow: ")   # a head that never ends
    try:
        for client in (silent, slow):
            try:
                assert client.recv(1024) == b"", "the console answered a request it never got"
            except ConnectionResetError:
                pass
            # Closed by the console (the 30 s client timeout would have raised).
    finally:
        silent.close()
        slow.close()
    assert requests.get(gw.web_ip + "/signin", timeout=10).status_code == 200


def test_an_idle_web_session_ends_on_the_server(strict_console):
    from console_harness import http_sign_in
    gw = strict_console
    session, _, _ = http_sign_in(gw, "carol")
    assert requests.get(gw.web_ip + "/queue", cookies={"gh_session": session}, allow_redirects=False,
                        timeout=10).status_code == 200
    # Asked again only after the idle timeout: the monitor has ended it (each request counts as activity).
    deadline = time.time() + 2.2
    while time.time() < deadline:
        time.sleep(deadline - time.time())
    r = requests.get(gw.web_ip + "/queue", cookies={"gh_session": session}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/signin"


def test_failed_web_sign_ins_lock_the_user_as_ssh_ones_do(strict_console):
    import re
    gw = strict_console
    web = gw.web_ip

    def attempt(password, code):
        r = requests.get(web + "/signin", timeout=10)
        pre = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
        jar = {"gh_pre": r.cookies["gh_pre"]}
        r = requests.post(web + "/signin", data={"csrf": pre, "user": "dave"}, cookies=jar, timeout=30)
        if "answer-0" not in r.text:
            return r
        jar.update(r.cookies.get_dict())
        r = requests.post(web + "/signin/step", data={"csrf": pre, "answer": password}, cookies=jar, timeout=30)
        jar.update(r.cookies.get_dict())
        return requests.post(web + "/signin/step", data={"csrf": pre, "answer": code}, cookies=jar, timeout=30,
                             allow_redirects=False)

    for _ in range(2):
        assert attempt("wrong", "000000").status_code == 401
    locked = attempt(gw.password("dave"), gw.fresh_totp("dave"))
    assert locked.status_code == 401 and "locked" in locked.text, locked.text[-400:]
    gw.wait_for_audit(lambda e: e["kind"] == "auth.user-lockout" and e["user"] == "dave")
    # An operator's unlock opens it again (the same lockouts as SSH).
    gw.cli("users", "unlock", "dave")
    ok = attempt(gw.password("dave"), gw.fresh_totp("dave"))
    assert ok.status_code == 303 and ok.headers["Location"] == "/queue"
