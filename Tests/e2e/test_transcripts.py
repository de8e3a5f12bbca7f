"""Transcripts, the chained audit log and the reviewer tools, on the real
daemon with real SSH clients, checked with the real `asciinema` and the real
`gatehouse` CLI."""
import asyncio
import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gatehouse_harness import BUILD, REPO, Gateway, connect, read_json_lines, run, run_exec

ASCIINEMA = REPO / ".venv" / "bin" / "asciinema"


def gatehouse(state_dir, *args, check=True):
    result = subprocess.run([str(BUILD / "gatehouse"), *args, "--state-dir", str(state_dir)],
                            capture_output=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"gatehouse {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout.decode(errors='replace')}\n{result.stderr.decode(errors='replace')}")
    return result


def canonical(value) -> bytes:
    """The audit log's canonical JSON, as an auditor would recompute it."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


async def shell_session(gw, user, lines, pause=0.4, leave=True):
    """Types `lines` into an interactive pty shell; returns (output, session id)."""
    async with await connect(gw, user) as conn:
        proc = await conn.create_process(term_type="xterm-256color", term_size=(120, 40))
        await asyncio.sleep(pause)
        for line in lines:
            proc.stdin.write(line + "\r")
            await asyncio.sleep(pause)
        if leave:
            proc.stdin.write("exit\r")
        out = await asyncio.wait_for(proc.stdout.read(), 10)
    session = out.split("Session ", 1)[1].split(".", 1)[0]
    return out, session


def session_end(gw, session, timeout=5):
    """The session's end event; the daemon writes it just after the client sees the exit."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ends = [e for e in gw.audit_events() if e["kind"] == "session.end" and e.get("session") == session]
        if ends:
            return ends[0]
        time.sleep(0.05)
    raise AssertionError(f"no session.end for {session}")


def last_session_of(gw, line):
    return [e for e in gw.audit_events() if e["kind"].startswith("command.") and e.get("fields", {}).get("line") == line][-1]["session"]


def cast_path(gw, session):
    return gw.state_dir / "transcripts" / f"{session}.cast"


def read_cast(path):
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), [json.loads(l) for l in lines[1:] if l.strip()]


def test_shell_session_is_recorded_and_plays_in_real_asciinema(gateway):
    out, session = run(shell_session(gateway, "alice", ["Get-Mailbox -Identity bob"]))
    assert "bob@contoso.com" in out
    session_end(gateway, session)
    path = cast_path(gateway, session)
    header, events = read_cast(path)
    assert header["version"] == 2 and header["width"] == 120 and header["height"] == 40
    assert header["env"]["TERM"] == "xterm-256color"
    meta = header["gatehouse"]
    assert meta["user"] == "alice" and meta["session"] == session
    assert meta["node"] and meta["client"].startswith("127.0.0.1:") and meta["start"]
    assert meta["claim"] == [{"role": "MailboxReader", "source": "baseline"}]
    types = {e[1] for e in events}
    assert {"o", "i", "m"} <= types
    assert any(e[1] == "i" and "Get-Mailbox -Identity bob" in e[2] for e in events)
    assert events[-1] == [events[-1][0], "m", "gatehouse: session ended (exit)"]
    # The real asciinema reads it: cat prints the recorded output.
    cat = subprocess.run([str(ASCIINEMA), "cat", str(path)], capture_output=True, timeout=30)
    assert cat.returncode == 0, cat.stderr
    assert b"bob@contoso.com" in cat.stdout and b"gatehouse alice> " in cat.stdout
    # ... and play runs through it (idle capped, fast) without error.
    play = subprocess.run([str(ASCIINEMA), "play", "-s", "20", "-i", "0.1", str(path)],
                          capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert play.returncode == 0, play.stderr
    assert b"bob@contoso.com" in play.stdout


def test_exec_session_records_its_output_stream(gateway):
    result = run(run_exec(gateway, "alice", "Get-Mailbox -Identity alice"))
    assert result.exit_status == 0
    session = last_session_of(gateway, "Get-Mailbox -Identity alice")
    end = session_end(gateway, session)
    header, events = read_cast(cast_path(gateway, session))
    assert header["gatehouse"]["channel"] == "exec"
    assert header["gatehouse"]["command"] == "Get-Mailbox -Identity alice"
    assert "alice@contoso.com" in "".join(e[2] for e in events if e[1] == "o")
    assert end["fields"]["transcript"].endswith(f"{session}.cast")


def test_no_totp_code_reaches_transcripts_or_audit_log(gateway):
    code = gateway.fresh_totp("alice")

    async def go():
        async with await connect(gateway, "alice", code=code) as conn:
            proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
            await asyncio.sleep(0.3)
            proc.stdin.write("Get-Mailbox -Identity alice\rexit\r")
            return await asyncio.wait_for(proc.stdout.read(), 10)
    out = run(go())
    session = out.split("Session ", 1)[1].split(".", 1)[0]
    session_end(gateway, session)
    _, events = read_cast(cast_path(gateway, session))
    assert all(code not in e[2] for e in events)
    for event in gateway.audit_events():
        values = [v for k, v in event.get("fields", {}).items() if k not in ("signature", "signedHash")]
        assert all(code not in v for v in values), event


def test_audit_log_is_a_verifiable_chain_an_auditor_can_recompute(gateway):
    run(run_exec(gateway, "alice", "Get-Mailbox -Identity alice"))
    export = gatehouse(gateway.state_dir, "audit", "export", "--format", "jsonl").stdout.decode()
    prev = "0" * 64
    records = [json.loads(line) for line in export.splitlines()]
    assert len(records) >= 5
    for n, record in enumerate(records, start=1):
        assert record["seq"] == n and record["prev"] == prev
        body = {k: v for k, v in record.items() if k != "hash"}
        assert hashlib.sha256(canonical(body)).hexdigest() == record["hash"]
        prev = record["hash"]
    allowed = [r for r in records if r["kind"] == "command.allowed"][-1]
    for key in ("cmdlet", "role", "argv", "parameters", "line"):
        assert key in allowed["fields"], key
    finished = [r for r in records if r["kind"] == "command.finished"][-1]
    for key in ("exitStatus", "durationMs", "stdoutBytes", "stderrBytes"):
        assert key in finished["fields"], key
    assert any(r["kind"] == "auth.success" and r["fields"]["method"] == "keyboard-interactive" for r in records)
    assert any(r["kind"] == "policy.load" for r in records)
    # CSV for auditors: one row per event, same sequence numbers.
    rows = list(csv.DictReader(io.StringIO(
        gatehouse(gateway.state_dir, "audit", "export", "--format", "csv").stdout.decode())))
    assert [int(r["seq"]) for r in rows][:len(records)] == [r["seq"] for r in records]
    verify = gatehouse(gateway.state_dir, "audit", "verify").stdout.decode()
    assert verify.startswith("OK:"), verify


def test_reviewer_tools_on_real_sessions(gateway):
    run(run_exec(gateway, "alice", "Set-Mailbox -Identity alice -ProhibitSendQuota 1GB"))
    unique = "rv-" + os.urandom(4).hex()
    _, session = run(shell_session(gateway, "bob", ["Get-Mailbox -Identity carol", f"Get-Mailbox -Identity {unique}"]))
    session_end(gateway, session)
    listing = gatehouse(gateway.state_dir, "sessions", "list", "--user", "bob").stdout.decode()
    assert session in listing and "alice" not in listing.split("\n", 1)[1]
    denied = gatehouse(gateway.state_dir, "sessions", "list", "--denied-only", "--since", "1h").stdout.decode()
    assert "alice" in denied and session not in denied
    search = gatehouse(gateway.state_dir, "audit", "search", "--cmdlet", "Set-Mailbox", "--decision", "deny",
                       "--since", "1d").stdout.decode()
    assert "alice" in search and "Set-Mailbox -Identity alice" in search and "not permitted" in search
    by_param = gatehouse(gateway.state_dir, "audit", "search", "--param", f"Identity={unique}").stdout.decode()
    assert session in by_param and "bob" in by_param and "1 command(s)" in by_param
    by_user = gatehouse(gateway.state_dir, "audit", "search", "--param", "identity=carol", "--user", "bob").stdout.decode()
    assert session in by_user and "alice" not in by_user
    show = gatehouse(gateway.state_dir, "sessions", "show", session).stdout.decode()
    assert "ALLOW  Get-Mailbox -Identity carol" in show and "role MailboxReader" in show
    assert "ended (exit)" in show and "exit 0" in show
    play = gatehouse(gateway.state_dir, "sessions", "play", session, "--speed", "50").stdout.decode()
    assert "carol@contoso.com" in play and "[session ended: exit]" in play


def test_reviewer_tools_never_print_a_control_character(gateway):
    # A hostile user types an OSC title sequence and a CSI clear into the
    # shell; a hostile transcript file carries raw escapes in its output.
    _, session = run(shell_session(gateway, "alice", ["Get-Mailbox -Identity \x1b]0;pwned\x07x\x1b[2J"]))
    session_end(gateway, session)
    _, events = read_cast(cast_path(gateway, session))
    assert any("\x1b" in e[2] for e in events if e[1] == "i"), "the typed escape is recorded as input"
    hostile = cast_path(gateway, "0000000000000000deadbeef")
    hostile.write_text(json.dumps({"version": 2, "width": 80, "height": 24}) + "\n"
                       + json.dumps([0.1, "o", "\x1b]0;pwned\x07\x1b[2J\x9b31m\r\n"]) + "\n")
    outputs = [
        gatehouse(gateway.state_dir, "sessions", "show", session).stdout,
        gatehouse(gateway.state_dir, "sessions", "play", session, "--speed", "100").stdout,
        gatehouse(gateway.state_dir, "sessions", "play", "0000000000000000deadbeef", "--speed", "100").stdout,
        gatehouse(gateway.state_dir, "audit", "search", "--session", session).stdout,
        gatehouse(gateway.state_dir, "audit", "export").stdout,
        gatehouse(gateway.state_dir, "audit", "export", "--format", "csv").stdout,
        gatehouse(gateway.state_dir, "sessions", "list").stdout,
    ]
    for out in outputs:
        text = out.decode()
        bad = [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f]
        assert not bad, (bad, text[:500])
    assert "\\x1b]0;pwned" in outputs[2].decode()


def test_kill_9_mid_session_leaves_a_playable_cut_off_transcript_and_a_verifiable_log(tmp_path):
    config = tmp_path / "gatehouse.yaml"
    config.write_text("auditCheckpointInterval: 1\n")
    gw = Gateway(tmp_path / "state", extra_args=["--config", str(config)]).start()
    try:
        described = []

        async def session_then_kill():
            async with await connect(gw, "alice") as conn:
                proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
                await asyncio.sleep(0.3)
                proc.stdin.write("Get-Mailbox -Identity bob\r")
                await asyncio.sleep(1.6)          # a signed checkpoint happens meanwhile
                proc.stdin.write("Get-Mailbox -Identity carol\r")
                await asyncio.sleep(0.3)          # > the 250 ms flush bound
                text = await asyncio.wait_for(proc.stdout.read(4096), 5)
                # The kill comes right after a describing event (its record
                # returns before any sync): written whole, chained, kept.
                allowed = gw.wait_for_audit(lambda e: e["kind"] == "command.allowed" and "carol" in e["fields"]["line"])
                described.append(gw.wait_for_audit(lambda e: e["kind"] == "command.finished" and e["seq"] > allowed["seq"]))
                os.kill(gw.proc.pid, signal.SIGKILL)
                gw.proc.wait(10)
                return text
        try:
            run(session_then_kill())
        except Exception:
            pass  # the connection dies with the daemon
        assert gw.proc.returncode == -signal.SIGKILL
        session = [e for e in gw.audit_events() if e["kind"] == "session.start"][-1]["session"]
        assert not [e for e in gw.audit_events() if e["kind"] == "session.end" and e["session"] == session]
        path = cast_path(gw, session)
        _, events = read_cast(path)
        output = "".join(e[2] for e in events if e[1] == "o")
        assert "carol@contoso.com" in output, "the transcript holds everything up to the kill"
        assert not any(e[1] == "m" and e[2].startswith("gatehouse: session ended") for e in events)
        cat = subprocess.run([str(ASCIINEMA), "cat", str(path)], capture_output=True, timeout=30)
        assert cat.returncode == 0 and b"carol@contoso.com" in cat.stdout
        show = gatehouse(gw.state_dir, "sessions", "show", session).stdout.decode()
        assert "CUT OFF" in show
        assert "CUT OFF" in gatehouse(gw.state_dir, "sessions", "list").stdout.decode()
        assert "transcript CUT OFF" in gatehouse(gw.state_dir, "sessions", "play", session, "--speed", "100").stdout.decode()
        verify = gatehouse(gw.state_dir, "audit", "verify").stdout.decode()
        assert verify.startswith("OK:"), verify
        records = gw.audit_events()
        assert described and described[0] in records, "the describing event before the kill is in the chain"
        checkpoints = [r["seq"] for r in records if r["kind"] == "audit.checkpoint"]
        assert checkpoints, "a checkpoint was signed during the session"
        assert f"signed through seq {checkpoints[-1]}" in verify, verify
        tail = records[-1]["seq"] - checkpoints[-1]
        print("after kill -9:", verify.strip())
        if tail:
            assert f"{tail} event(s) after the last checkpoint are chained but not yet signed" in verify, verify
        # The daemon restarts on the same state and continues the same chain.
        gw.start()
        assert run(run_exec(gw, "alice", "Get-Mailbox -Identity alice")).exit_status == 0
        gw.stop()
        verify = gatehouse(gw.state_dir, "audit", "verify").stdout.decode()
        assert verify.startswith("OK:") and "not yet signed" not in verify, verify
    finally:
        gw.stop()


def test_verify_names_the_first_bad_seq_of_a_tampered_real_log(tmp_path, gateway):
    run(run_exec(gateway, "alice", "Get-Mailbox -Identity alice"))
    state = tmp_path / "copy"
    state.mkdir()
    for name in ("audit.log", "audit.log.checkpoint", "audit-signing.pub"):
        src = gateway.state_dir / name
        if src.exists():
            (state / name).write_bytes(src.read_bytes())
    lines = (state / "audit.log").read_text().splitlines()
    record = json.loads(lines[2])
    lines[2] = lines[2].replace(record["kind"], record["kind"].upper(), 1)
    (state / "audit.log").write_text("\n".join(lines) + "\n")
    result = gatehouse(state, "audit", "verify", check=False)
    assert result.returncode == 1
    assert b"FAILED at seq 3:" in result.stdout, result.stdout


def test_gateway_fails_closed_when_the_audit_log_cannot_be_written(tmp_path):
    """The audit log sits on a tiny tmpfs that is then filled: the next
    command is refused (125) without starting its backend, the session ends,
    and a new login is refused."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    config = tmp_path / "gatehouse.yaml"
    config.write_text(f"auditLog: {mnt}/audit.log\nauditCheckpointInterval: 3600\n")
    gw = Gateway(tmp_path / "state", extra_args=["--config", str(config)])
    try:
        gw.audit_events = lambda: read_json_lines(mnt / "audit.log")
        gw.start()

        async def go():
            async with await connect(gw, "alice") as conn:
                proc = await conn.create_process(term_type="xterm", term_size=(80, 24))
                await asyncio.wait_for(proc.stdout.readuntil("alice> "), 10)
                fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o600)   # fill the file system
                try:
                    while os.write(fd, b"x" * 4096) > 0:
                        pass
                except OSError:
                    pass
                finally:
                    os.close(fd)
                ran = 0
                for _ in range(40):
                    before = len(gw.invocations())
                    proc.stdin.write("Get-Mailbox -Identity alice\r")
                    out = ""
                    try:
                        while "alice> " not in out:
                            chunk = await asyncio.wait_for(proc.stdout.read(4096), 10)
                            if not chunk:
                                break
                            out += chunk
                    except asyncio.TimeoutError:
                        pass
                    # The disk fills either at the command's allowed event
                    # (it is refused, and no backend starts) or at its
                    # finished event (it ran; the session then ends).
                    refused = "audit log unavailable; command refused" in out
                    if refused:
                        assert len(gw.invocations()) == before, "a refused command must not start its backend"
                    if refused or "The audit log is unavailable; the session ends." in out:
                        await asyncio.wait_for(proc.wait_closed(), 10)
                        return ran, out, proc.exit_status
                    assert "alice@contoso.com" in out, out
                    ran += 1
                raise AssertionError("the audit log never filled up")
        ran, out, status = run(go())
        print(f"commands that ran before the audit log filled up: {ran}; then: {out.strip()!r}")
        assert "the session ends" in out
        assert status == 125
        with pytest.raises(Exception):
            run(run_exec(gw, "alice", "Get-Mailbox -Identity alice"))
    finally:
        gw.stop()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def append_event(log: Path, kind: str, user: str, session: str, fields: dict):
    """Appends one correctly chained event, as the daemon would write it."""
    last = json.loads(log.read_text().splitlines()[-1])
    body = {"seq": last["seq"] + 1, "prev": last["hash"], "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "kind": kind, "user": user, "session": session, "fields": fields}
    body["hash"] = hashlib.sha256(canonical(body)).hexdigest()
    with open(log, "ab") as f:
        f.write(canonical(body) + b"\n")


def test_sessions_show_renders_elevation_windows_and_request_links(tmp_path, gateway):
    """Elevation events (written by Lockbox, issue 4) in a real session's log:
    the timeline shows the window and the request, and `sessions list
    --request` finds the session. The events are appended, correctly
    chained, to a copy of the real log."""
    _, session = run(shell_session(gateway, "alice", ["Get-Mailbox -Identity bob"]))
    session_end(gateway, session)
    state = tmp_path / "copy"
    (state / "transcripts").mkdir(parents=True)
    for name in ("audit.log", "audit.log.checkpoint", "audit-signing.pub"):
        if (gateway.state_dir / name).exists():
            (state / name).write_bytes((gateway.state_dir / name).read_bytes())
    (state / "transcripts" / f"{session}.cast").write_bytes(cast_path(gateway, session).read_bytes())
    log = state / "audit.log"
    append_event(log, "elevation.start", "alice", session, {"requestID": "987654", "role": "MailboxAdmin", "scope": "contoso"})
    append_event(log, "elevation.end", "alice", session, {"requestID": "987654", "reason": "expired"})
    assert gatehouse(state, "audit", "verify").stdout.decode().startswith("OK:")
    show = gatehouse(state, "sessions", "show", session).stdout.decode()
    assert "Elevation windows" in show
    assert "request #987654 role MailboxAdmin scope contoso" in show and "(expired)" in show
    assert "Lockbox requests: #987654" in show
    listed = gatehouse(state, "sessions", "list", "--request", "987654").stdout.decode()
    assert session in listed and "1 session(s)" in listed


def test_elevated_session_review_and_no_secret_in_the_transcript(gateway):
    """The whole Lockbox path, reviewed: the one-time secret is neither in the
    transcript (shown: withheld marker; typed ahead in the same packet as
    Enter-Elevation: redaction marker) nor in the audit log, and the reviewer
    tools tie the session, its elevation window and its commands to the
    request."""
    from test_lockbox import SECRET_RE, Shell, approved_request
    rid = approved_request(gateway)

    async def scenario():
        shell = await Shell.open(gateway, "alice")
        try:
            banner = shell.seen
            secret = await shell.fetch_secret(rid)
            # Type-ahead: the command and the secret arrive in one packet.
            shell.process.stdin.write(f"Enter-Elevation -Id {rid}\r{secret}\r")
            elevated = await shell.expect(r"\]> ")
            assert "Elevated: MailboxAdmin in contoso" in elevated, elevated
            done = await shell.command("Set-Mailbox -Identity alice -ProhibitSendQuota 5GB")
            assert re.search(r"ProhibitSendQuota +: 5GB", done), done
            await shell.command("Exit-Elevation")
            return secret
        finally:
            await shell.close()

    secret = run(scenario())
    session = last_session_of(gateway, "Set-Mailbox -Identity alice -ProhibitSendQuota 5GB")
    session_end(gateway, session)
    text = cast_path(gateway, session).read_text()
    assert secret not in text and secret.replace("-", "") not in text
    assert not SECRET_RE.search(text)
    _, events = read_cast(cast_path(gateway, session))
    markers = [e[2] for e in events if e[1] == "m"]
    assert "gatehouse: output withheld (one-time secret shown to the requester)" in markers
    assert "gatehouse: input redacted (no-echo prompt)" in markers
    assert secret not in (gateway.state_dir / "audit.log").read_text()
    show = gatehouse(gateway.state_dir, "sessions", "show", session).stdout.decode()
    assert f"request #{rid} role MailboxAdmin scope contoso" in show, show
    assert f"via Lockbox request #{rid}" in show
    assert secret not in show
    listed = gatehouse(gateway.state_dir, "sessions", "list", "--request", str(rid)).stdout.decode()
    assert session in listed
    found = gatehouse(gateway.state_dir, "audit", "search", "--cmdlet", "Set-Mailbox", "--scope", "contoso",
                      "--request", str(rid), "--decision", "allow").stdout.decode()
    assert session in found and "1 command(s)" in found, found


def test_a_session_that_cannot_be_recorded_does_not_run(tmp_path):
    """The transcript directory cannot be created (its parent is a file): the
    exec command is refused with 125 before its backend starts, and the
    failure is audited."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    gw = Gateway(tmp_path / "state", config={"transcriptDirectory": f"{blocker}/transcripts"}).start()
    try:
        result = run(run_exec(gw, "alice", "Get-Mailbox -Identity alice"))
        assert result.exit_status == 125, (result.stdout, result.stderr)
        assert "Session recording is unavailable; the session ends." in result.stderr
        assert "alice@contoso.com" not in result.stdout
        assert gw.invocations() == [], "no backend ran unrecorded"
        failed = gw.wait_for_audit(lambda e: e["kind"] == "transcript.failed")
        assert "cannot create the transcript" in failed["fields"]["error"]
        assert session_end(gw, failed["session"])["fields"]["reason"] == "error"
        assert not [e for e in gw.audit_events() if e["kind"] == "command.allowed"]
    finally:
        gw.stop()


def test_a_transcript_that_fills_its_disk_ends_the_session(tmp_path):
    """Transcripts on a tiny tmpfs that the session's own output fills: the
    session ends with a message instead of going on unrecorded."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.decode().strip()}")
    gw = Gateway(tmp_path / "state", config={"transcriptDirectory": str(mnt)})
    try:
        gw.start()

        async def go():
            async with await connect(gw, "alice") as conn:
                proc = await conn.create_process(term_type="xterm", term_size=(200, 50))
                await asyncio.wait_for(proc.stdout.readuntil("alice> "), 10)
                tail = ""
                for _ in range(400):
                    proc.stdin.write("Get-Mailbox -ResultSize 1000\r")
                    out = ""
                    try:
                        while "alice> " not in out:
                            chunk = await asyncio.wait_for(proc.stdout.read(65536), 10)
                            if not chunk:
                                return tail + out
                            out += chunk
                    except asyncio.TimeoutError:
                        return tail + out
                    tail = out[-2000:]
                raise AssertionError("96 KiB of transcript never filled up")
        tail = run(go())
        assert "Session recording is unavailable; the session ends." in tail, tail[-500:]
        failed = gw.wait_for_audit(lambda e: e["kind"] == "transcript.failed")
        assert "transcript write failed" in failed["fields"]["error"], failed
        assert session_end(gw, failed["session"])["fields"]["reason"] == "error"
        # The audit log, on another file system, is whole.
        assert gatehouse(gw.state_dir, "audit", "verify").returncode == 0
    finally:
        gw.stop()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
