#!/usr/bin/env python3
"""How fast the reviewer tools are on a large audit log.

Writes a correctly chained log of N sessions (start, 8 commands with their
finish events, a denial, end: 20 events each) the way the daemon writes it
(canonical JSON, SHA-256 chain; no signatures, so verify checks the chain
only), then times the real `gatehouse` CLI: a full `audit reindex`, a
catch-up with nothing new, `audit search` by cmdlet+scope+time, by parameter
value and by decision, `sessions list` by user, and `audit verify`.

    .venv/bin/python bench/audit_search.py --build .build/release [--sessions 20000]
"""
import argparse
import hashlib
import json
import subprocess
import tempfile
import time
from pathlib import Path


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def write_log(path: Path, sessions: int):
    prev = "0" * 64
    seq = 0
    t0 = time.time() - 30 * 86400
    with open(path, "wb") as f:
        def emit(kind, user, session, fields, at):
            nonlocal prev, seq
            seq += 1
            body = {"seq": seq, "prev": prev, "kind": kind, "fields": fields,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(at))}
            if user:
                body["user"] = user
                body["session"] = session
            body["hash"] = hashlib.sha256(canonical({k: v for k, v in body.items()})).hexdigest()
            f.write(canonical(body) + b"\n")
            prev = body["hash"]
        for n in range(sessions):
            user = f"user{n % 500}"
            session = f"{n:024x}"
            at = t0 + n * (30 * 86400 / sessions)
            emit("session.start", user, session, {"node": f"gw{n % 3}", "source": "10.0.0.1:5000"}, at)
            for c in range(8):
                cmdlet = "Set-Mailbox" if c == 7 else "Get-Mailbox"
                identity = f"mbx{(n * 8 + c) % 100000}"
                fields = {"cmdlet": cmdlet, "line": f"{cmdlet} -Identity {identity}", "role": "MailboxReader",
                          "argv": json.dumps(["/usr/libexec/mailbox", "get", identity]),
                          "parameters": json.dumps({"Identity": identity}, sort_keys=True)}
                if c == 7:
                    fields.update(role="MailboxAdmin", scope="contoso" if n % 2 else "fabrikam", requestID=str(n))
                emit("command.allowed", user, session, fields, at + c)
                emit("command.finished", user, session, {"cmdlet": cmdlet, "exitStatus": "0", "durationMs": "12",
                                                         "stdoutBytes": "300", "stderrBytes": "0"}, at + c)
            emit("command.denied", user, session, {"cmdlet": "Remove-Mailbox", "line": "Remove-Mailbox -Identity x",
                                                   "reason": "not permitted", "stage": "authorize"}, at + 9)
            emit("session.end", user, session, {"reason": "exit"}, at + 10)
    return seq


def timed(cli, state, *args):
    t0 = time.perf_counter()
    out = subprocess.run([cli, *args, "--state-dir", str(state)], capture_output=True, check=True).stdout.decode()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=".build/release")
    ap.add_argument("--sessions", type=int, default=20000)
    args = ap.parse_args()
    cli = str(Path(args.build).resolve() / "gatehouse")
    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-audit-") as tmp:
        state = Path(tmp)
        events = write_log(state / "audit.log", args.sessions)
        size = (state / "audit.log").stat().st_size / 2**20
        print(f"audit log: {events} events, {size:.0f} MiB, {args.sessions} sessions ({Path(args.build).name} build)")
        for label, argv in [
            ("audit reindex (full)", ["audit", "reindex"]),
            ("search, index up to date", ["audit", "search", "--cmdlet", "Set-Mailbox", "--scope", "contoso", "--since", "7d"]),
            ("search --param Identity=mbx4242", ["audit", "search", "--param", "Identity=mbx4242"]),
            ("search --decision deny --user user7", ["audit", "search", "--decision", "deny", "--user", "user7"]),
            ("sessions list --user user7 --since 7d", ["sessions", "list", "--user", "user7", "--since", "7d"]),
            ("audit verify (chain only)", ["audit", "verify"]),
        ]:
            seconds, out = timed(cli, state, *argv)
            last = out.strip().splitlines()[-1] if out.strip() else ""
            print(f"  {label:40s} {seconds * 1000:8.0f} ms   {last[:70]}")


if __name__ == "__main__":
    main()
