"""Hostile input against the console and the API: XSS payloads in a
request's reason and ticket and in recorded output are shown as text in a
real browser and never run; forms without the session's CSRF token are
refused and change nothing; the cookie and header policy; tenant-scoped
tokens; no self-approval and no double approval through the console."""
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from console_harness import ConsoleGateway, assert_console_never_ended, browser, click, http_sign_in, screenshot, sign_in  # noqa: F401
from gatehouse_harness import REPO, run, run_exec
from test_lockbox import Shell

XSS = "<img src=x onerror=alert(1)>"
XSS_TITLE = '"><script>document.title="pwned"</script>'
XSS_TICKET = "INC-1<svg/onload=alert(2)>"
HOSTILE_NAME = "Alice <img src=x onerror=alert(3)> \u001b]0;pwned\u0007\u001b[31mred\u001b[0m</pre><script>alert(4)</script>"
CSP = ("default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


@pytest.fixture(scope="module")
def hostile():
    """A console daemon whose MailboxAdmin takes any ticket text, and whose
    mailbox data carries markup and terminal escapes (what alice's commands
    then print, and the transcript records)."""
    with tempfile.TemporaryDirectory(prefix="gatehouse-console-hostile-") as tmp:
        policies = Path(tmp) / "policies"
        shutil.copytree(REPO / "policies", policies)
        lockbox = policies / "lockbox.yaml"
        text = lockbox.read_text()
        assert "ticketPattern: '^INC-[0-9]{1,8}$'" in text
        lockbox.write_text(text.replace("ticketPattern: '^INC-[0-9]{1,8}$'", "ticketPattern: '^INC-.{1,60}$'"))
        state = Path(tmp) / "state"
        (state / "mailboxes").mkdir(parents=True)
        seed = json.loads(re.search(r'seedMailboxes = """\n(.*?)\n    """', (REPO / "Sources/gatehoused/Demo/DemoEnvironment.swift")
                                    .read_text(), re.S).group(1))
        seed[0]["displayName"] = HOSTILE_NAME
        (state / "mailboxes" / "mailboxes.json").write_text(json.dumps(seed))
        gw = ConsoleGateway(state, extra_args=["--web-listen", "127.0.0.1:0", "--policy-dir", str(policies)],
                            config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
        try:
            yield gw
        finally:
            gw.stop()
        assert_console_never_ended(gw)


def file_request(gw, reason, ticket, scope="contoso", user="alice"):
    # Single quotes in the shell: the payloads hold none.
    result = run(run_exec(gw, user, f"New-LockboxRequest -Role MailboxAdmin -Scope {scope} -Duration 1h "
                                    f"-Reason '{reason}' -Ticket '{ticket}'"))
    assert result.exit_status == 0, result.stderr
    return int(re.search(r"Request (\d+) filed", result.stdout).group(1))


def assert_nothing_ran(driver):
    try:
        alert = driver.switch_to.alert
        raise AssertionError(f"a script ran: alert {alert.text!r}")
    except NoAlertPresentException:
        pass
    assert driver.title != "pwned" and "pwned" not in driver.execute_script("return document.title")


def state_of(gw, rid):
    out = gw.cli("lockbox", "show", str(rid)).stdout
    return re.search(r"State\s+:\s+(\S+)", out).group(1)


def test_xss_in_reason_ticket_and_recorded_output_is_shown_as_text(hostile, browser):
    gw = hostile
    rid = file_request(gw, XSS + XSS_TITLE, XSS_TICKET)
    sign_in(browser, gw, "bob")
    row = browser.find_element(By.ID, f"request-{rid}")
    assert row.find_element(By.CLASS_NAME, "reason").text == XSS + XSS_TITLE
    assert row.find_element(By.CLASS_NAME, "ticket").text == XSS_TICKET
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main svg, main script")
    assert_nothing_ran(browser)
    screenshot(browser, "console-hostile-queue")
    browser.find_element(By.ID, f"comment-{rid}").send_keys(XSS)
    click(browser, f"approve-{rid}")
    assert_nothing_ran(browser)
    sign_in(browser, gw, "carol")
    click(browser, f"approve-{rid}")
    assert "is approved" in browser.find_element(By.ID, "notice").text

    async def elevated_commands():
        shell = await Shell.open(gw, "alice")
        try:
            secret = await shell.fetch_secret(rid)
            await shell.elevate(rid, secret)
            shown = await shell.command("Get-Mailbox -Identity alice")
            assert "onerror" in shown, shown
            await shell.command("Set-Mailbox -Identity alice -ProhibitSendQuota 3GB")
        finally:
            await shell.close()
    run(elevated_commands())
    gw.wait_for_audit(lambda e: e["kind"] == "session.end" and e["user"] == "alice")

    sign_in(browser, gw, "rita")
    browser.get(gw.web + "/review?cmdlet=Get-Mailbox&user=alice")
    link = browser.find_elements(By.CSS_SELECTOR, "#results tr.result .session-link")[0]
    click(browser, link)
    approval = browser.find_element(By.ID, f"approval-{rid}")
    assert approval.find_element(By.CLASS_NAME, "reason").text == XSS + XSS_TITLE
    assert approval.find_element(By.CLASS_NAME, "manager-approver").text == "bob: " + XSS
    text = browser.find_element(By.ID, "transcript-text").text
    assert "<img src=x onerror=alert(3)>" in text and "<script>alert(4)</script>" in text, text
    WebDriverWait(browser, 30).until(
        lambda d: "onerror=alert(3)" in d.find_element(By.CSS_SELECTOR, "#player .ap-player").text)
    # No element the payloads would have made: asciinema's player draws its own
    # controls as inline SVG, so SVG counts only outside the player.
    made = browser.execute_script("""
        return Array.from(document.querySelectorAll('main img, main script, main svg, [onerror], [onload]'))
            .filter(e => !(e.tagName.toLowerCase() === 'svg' || e.closest('svg')) || !e.closest('.ap-player'))
            .map(e => e.outerHTML.slice(0, 120));""")
    assert not made, made
    assert_nothing_ran(browser)
    # The session cookie is HttpOnly: no script of the page can read it.
    assert "gh_session" not in browser.execute_script("return document.cookie")
    screenshot(browser, "console-hostile-session")


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(hostile):
    gw = hostile
    rid = file_request(gw, "csrf probe", "INC-9")
    session, csrf, _ = http_sign_in(gw, "bob")
    url = f"{gw.web_ip}/requests/{rid}/decide"
    missing = requests.post(url, data={"action": "approve", "comment": "x"}, cookies={"gh_session": session},
                            allow_redirects=False, timeout=30)
    assert missing.status_code == 403, missing.text[-300:]
    wrong = requests.post(url, data={"action": "approve", "csrf": csrf[:-2] + "AA", "comment": "x"},
                          cookies={"gh_session": session}, allow_redirects=False, timeout=30)
    assert wrong.status_code == 403
    deny = requests.post(url, data={"action": "deny", "comment": "x"}, cookies={"gh_session": session},
                         allow_redirects=False, timeout=30)
    assert deny.status_code == 403
    assert state_of(gw, rid) == "pending-manager"
    refusals = [e for e in gw.audit_events() if e["kind"] == "monitor.refused" and e["fields"].get("channel") == "web"
                and e["fields"].get("request") == "decide"]
    assert len(refusals) >= 3, refusals
    # With the token it goes through: the refusals were about the token alone.
    ok = requests.post(url, data={"action": "approve", "csrf": csrf, "comment": "fine"}, cookies={"gh_session": session},
                       allow_redirects=False, timeout=30)
    assert ok.status_code == 200 and "waits for the approver of contoso" in ok.text
    assert state_of(gw, rid) == "pending-customer"
    # Sign-in forms carry a pre-session token too.
    bare = requests.post(f"{gw.web_ip}/signin", data={"user": "bob"}, allow_redirects=False, timeout=30)
    assert bare.status_code == 403


def test_an_approver_cannot_approve_their_own_request_or_approve_twice(hostile):
    gw = hostile
    rid = file_request(gw, "self approval probe", "INC-10")
    session, csrf, _ = http_sign_in(gw, "alice")
    own = requests.post(f"{gw.web_ip}/requests/{rid}/decide", data={"action": "approve", "csrf": csrf},
                        cookies={"gh_session": session}, allow_redirects=False, timeout=30)
    assert own.status_code == 409 and "Nobody may approve their own request" in own.text, own.text[-500:]
    assert state_of(gw, rid) == "pending-manager"
    session, csrf, _ = http_sign_in(gw, "bob")
    url = f"{gw.web_ip}/requests/{rid}/decide"
    first = requests.post(url, data={"action": "approve", "csrf": csrf}, cookies={"gh_session": session}, timeout=30)
    assert first.status_code == 200
    second = requests.post(url, data={"action": "approve", "csrf": csrf}, cookies={"gh_session": session}, timeout=30)
    assert second.status_code == 409, second.text[-500:]
    assert state_of(gw, rid) == "pending-customer"
    approvals = [e for e in gw.audit_events() if e["kind"] == "lockbox.approved" and e["fields"].get("requestID") == str(rid)]
    assert [e["user"] for e in approvals] == ["bob"]
    # A denial with the token and a comment: the Lockbox's deny, audited as the shell's is.
    other = file_request(gw, "deny probe", "INC-13")
    denied = requests.post(f"{gw.web_ip}/requests/{other}/decide",
                           data={"action": "deny", "csrf": csrf, "comment": "no ticket context"},
                           cookies={"gh_session": session}, timeout=30)
    assert denied.status_code == 200 and f"Request {other} is denied" in denied.text
    assert state_of(gw, other) == "denied"
    event = gw.wait_for_audit(lambda e: e["kind"] == "lockbox.denied" and e["fields"].get("requestID") == str(other))
    assert event["user"] == "bob" and "no ticket context" in json.dumps(event["fields"])


def test_cookie_flags_and_security_headers(hostile):
    gw = hostile
    _, _, response = http_sign_in(gw, "carol")
    cookie = [c for c in response.raw.headers.getlist("Set-Cookie") if c.startswith("gh_session=")][0]
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) == 43, "a 256-bit id, base64url"
    flags = {f.strip() for f in cookie.split(";")[1:]}
    assert {"HttpOnly", "Secure", "SameSite=Strict", "Path=/"} <= flags, cookie
    page = requests.get(gw.web_ip + "/queue", cookies={"gh_session": value}, timeout=30)
    assert page.status_code == 200
    for r in [page, requests.get(gw.web_ip + "/signin", timeout=10), requests.get(gw.web_ip + "/api/v1/activity", timeout=10)]:
        assert r.headers["Content-Security-Policy"] == CSP
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in page.text and " style=" not in page.text and "onclick" not in page.text
    # No cookie, or one the monitor never issued: back to sign-in, and the forged one is audited.
    assert requests.get(gw.web_ip + "/queue", allow_redirects=False, timeout=10).headers["Location"] == "/signin"
    forged = "A" * 43
    r = requests.get(gw.web_ip + "/queue", cookies={"gh_session": forged}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["Location"] == "/signin"
    gw.wait_for_audit(lambda e: e["kind"] == "monitor.refused" and e["fields"].get("reason") == "no such web session")
    # Signed out means gone on the server, not just in the browser.
    session, csrf, _ = http_sign_in(gw, "bob")
    out = requests.post(gw.web_ip + "/signout", data={"csrf": csrf}, cookies={"gh_session": session},
                        allow_redirects=False, timeout=10)
    assert out.status_code == 303
    again = requests.get(gw.web_ip + "/queue", cookies={"gh_session": session}, allow_redirects=False, timeout=10)
    assert again.headers["Location"] == "/signin"


def test_tokens_are_tenant_scoped_and_required(hostile):
    gw = hostile
    contoso_rid = file_request(gw, "contoso work", "INC-11", scope="contoso", user="dave")
    fabrikam_rid = file_request(gw, "fabrikam work", "INC-12", scope="fabrikam", user="dave")
    contoso = gw.api_token("contoso-siem", "contoso")
    fabrikam = gw.api_token("fabrikam-siem", "fabrikam")
    api = gw.web_ip + "/api/v1"

    def get(path, token, **params):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(api + path, headers=headers, params=params, timeout=30)

    seen = get("/activity", contoso, contentType="Audit.Lockbox", pageSize=100).json()
    ids = {e["requestId"] for e in seen["items"]}
    assert contoso_rid in ids and fabrikam_rid not in ids, seen
    assert all(e["scope"] == "contoso" for e in seen["items"])
    other = get("/activity", fabrikam, pageSize=100).json()
    assert fabrikam_rid in {e["requestId"] for e in other["items"]}
    assert all(e["scope"] == "fabrikam" for e in other["items"])
    assert {r["id"] for r in get("/requests", contoso).json()["items"]} >= {contoso_rid}
    assert fabrikam_rid not in {r["id"] for r in get("/requests", contoso).json()["items"]}
    assert get(f"/requests/{fabrikam_rid}", contoso).status_code == 404
    assert get(f"/requests/{fabrikam_rid}", fabrikam).json()["scope"] == "fabrikam"
    # No token, a malformed one, an unknown one: 401 with a JSON error.
    for token in [None, "x", "A" * 43]:
        r = get("/activity", token)
        assert r.status_code == 401, r.text
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json()["error"]["code"] == "Unauthorized"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # Read-only: nothing but GET.
    assert requests.post(api + "/requests", headers={"Authorization": f"Bearer {contoso}"}, timeout=10).status_code == 405
    # Stored hashed: the token is not in the file; revoked, it stops at once.
    data = (gw.state_dir / "api-tokens.sqlite").read_bytes()
    assert contoso.encode() not in data
    gw.cli("api-token", "revoke", "--name", "contoso-siem")
    assert get("/activity", contoso).status_code == 401
    # Both changes are in the audit chain, with the client and its tenants, never the token.
    created = gw.wait_for_audit(lambda e: e["kind"] == "api.token-created" and e["fields"].get("client") == "contoso-siem")
    assert created["fields"]["tenants"] == "contoso"
    gw.wait_for_audit(lambda e: e["kind"] == "api.token-revoked" and e["fields"].get("client") == "contoso-siem")
    assert contoso not in (gw.state_dir / "audit.log").read_text()
    # A tenant the directory does not know is refused at creation.
    bad = gw.cli("api-token", "create", "--name", "typo", "--tenant", "contosso", check=False)
    assert bad.returncode != 0 and "no tenant 'contosso'" in bad.stderr
