"""The activity API against its own OpenAPI document: schemathesis (a real
run of its CLI against the real daemon and gatehouse-web, with a valid
token and a bounded number of examples) finds no 5xx and no response that
breaks the document; paging by nextPageUri visits each event once; the
transcript link gives the asciicast."""
import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from console_harness import console  # noqa: F401 (fixture)
from gatehouse_harness import REPO, run, run_exec
from test_lockbox import approved_request


def seed(gw):
    """Activity in both tenants, with a session that has a transcript."""
    rid = approved_request(gw, user="dave", scope="fabrikam")
    run(run_exec(gw, "alice", "Get-Mailbox -Identity alice"))
    run(run_exec(gw, "alice", "Set-Mailbox -Identity alice -ProhibitSendQuota 9GB"))  # denied: a deny event
    return rid


def test_the_served_document_is_the_one_in_docs(console):
    served = requests.get(console.web_ip + "/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    assert served.json() == json.loads((REPO / "docs" / "activity-api.openapi.json").read_text())
    assert served.json()["openapi"].startswith("3.")


def test_paging_visits_every_event_once(console):
    seed(console)
    token = console.api_token("pager", "*")
    headers = {"Authorization": f"Bearer {token}"}
    whole = requests.get(console.web_ip + "/api/v1/activity", headers=headers, params={"pageSize": 100}, timeout=30).json()
    assert whole["items"] and whole["nextPageUri"] is None, "the seed fits one page of 100"
    seen, url, pages = [], "/api/v1/activity?pageSize=3", 0
    while url:
        page = requests.get(console.web_ip + url, headers=headers, timeout=30).json()
        assert len(page["items"]) <= 3
        seen += [e["seq"] for e in page["items"]]
        url, pages = page["nextPageUri"], pages + 1
        assert pages < 200
    # Events written while paging (the API reads the live log) come after; the first ones match exactly.
    assert seen[:len(whole["items"])] == [e["seq"] for e in whole["items"]]
    assert seen == sorted(set(seen)), "each event once, in order"
    # Filters: a content type and a kind.
    denied = requests.get(console.web_ip + "/api/v1/activity", headers=headers,
                          params={"kind": "command.denied", "user": "alice"}, timeout=30).json()["items"]
    assert denied and all(e["kind"] == "command.denied" and e["contentType"] == "Audit.Command" for e in denied)
    # Sessions carry a link to their transcript, which is the asciicast.
    sessions = requests.get(console.web_ip + "/api/v1/sessions", headers=headers, params={"user": "alice"},
                            timeout=30).json()["items"]
    linked = [s for s in sessions if s["transcriptUri"]]
    assert linked, sessions
    cast = requests.get(console.web_ip + linked[-1]["transcriptUri"], headers=headers, timeout=30)
    assert cast.status_code == 200 and cast.headers["Content-Type"] == "application/x-asciicast"
    assert json.loads(cast.text.splitlines()[0])["version"] == 2
    bad = requests.get(console.web_ip + "/api/v1/activity", headers=headers, params={"startTime": "yesterday"}, timeout=30)
    assert bad.status_code == 400 and "startTime" in bad.json()["error"]["message"]
    # Every call the token was accepted for is audited: the client, the path, the query, the status.
    def read_by_pager(check):
        return console.wait_for_audit(lambda e: e["kind"] == "review.access" and e["fields"].get("client") == "pager"
                                      and check(e["fields"]))
    read_by_pager(lambda f: f["path"].endswith("/activity") and "pageSize=3" in f["query"] and f["status"] == "200")
    read_by_pager(lambda f: f["path"].endswith("/transcript") and f["via"] == "api")
    read_by_pager(lambda f: "startTime=yesterday" in f["query"] and f["status"] == "400")
    # A call without a valid token reads nothing and is not an access.
    refused = requests.get(console.web_ip + "/api/v1/activity", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert refused.status_code == 401


def test_schemathesis_finds_no_server_error_and_no_schema_violation(console, tmp_path):
    seed(console)
    token = console.api_token("schemathesis", "*")
    report = tmp_path / "junit.xml"
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", console.web_ip + "/api/v1/openapi.json",
               "--url", console.web_ip, "-H", f"Authorization: Bearer {token}",
               "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                           "response_schema_conformance,response_headers_conformance",
               "--max-examples", "40", "--request-timeout", "20", "--generation-deterministic",
               "--phases", "examples,coverage,fuzzing", "--workers", "2",
               "--report", "junit", "--report-junit-path", str(report)]
    # Run in the test's directory: schemathesis keeps a cache where it runs.
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                            env=dict(os.environ, SCHEMATHESIS_HOOKS=""))
    print(result.stdout[-4000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout


def test_paging_through_a_longer_log_matches_the_log(console):
    """More records than the monitor's seek marks' stride (256): the second
    and later pages start from a mark, and still give exactly the log."""
    from test_lockbox import Shell

    async def many_commands():
        shell = await Shell.open(console, "alice")
        try:
            for _ in range(160):
                await shell.command("Get-Mailbox -Identity alice")
        finally:
            await shell.close()
    run(many_commands())
    console.wait_for_audit(lambda e: e["kind"] == "session.end" and e["user"] == "alice")
    logged = [e["seq"] for e in console.audit_events()]
    assert len(logged) > 300, "more than one stride of marks"
    token = console.api_token("long-pager", "*")
    headers = {"Authorization": f"Bearer {token}"}
    for attempt in range(2):   # the first pass learns the marks, the second uses them
        seen, url = [], "/api/v1/activity?pageSize=100"
        while url:
            page = requests.get(console.web_ip + url, headers=headers, timeout=30).json()
            seen += [e["seq"] for e in page["items"]]
            url = page["nextPageUri"]
        assert seen[:len(logged)] == logged, (attempt, len(seen), len(logged))
