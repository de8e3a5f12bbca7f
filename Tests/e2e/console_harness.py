"""The web console end to end: a real gatehoused with its gatehouse-web
process (`--web-listen 127.0.0.1:0`), real Chromium through Selenium, and
real SSH sessions for the engineer's side.

The session cookie is `Secure`, which browsers accept over plain HTTP only
from a loopback origin (Chromium takes both localhost and 127.0.0.1; the
browser tests use localhost, the HTTP-level ones 127.0.0.1).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from gatehouse_harness import BUILD, Gateway, totp

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


class ConsoleGateway(Gateway):
    def start(self, timeout=60):
        super().start(timeout)
        assert self.manifest.get("web"), f"the demo published no web console URL:\n{self.daemon_log()}"
        port = int(self.manifest["web"].rsplit(":", 1)[1])
        self.web = f"http://localhost:{port}"
        self.web_ip = f"http://127.0.0.1:{port}"
        return self

    def password(self, user):
        return self.users[user]["webPassword"]

    def api_token(self, name, *tenants):
        args = ["api-token", "create", "--name", name]
        for t in tenants:
            args += ["--tenant", t]
        out = self.cli(*args).stdout
        return out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def console():
    with tempfile.TemporaryDirectory(prefix="gatehouse-console-") as tmp:
        gw = ConsoleGateway(Path(tmp) / "state", extra_args=["--web-listen", "127.0.0.1:0"],
                            config={"perSourcePenaltyExempt": "127.0.0.1"}).start()
        try:
            yield gw
        finally:
            gw.stop()
        assert_console_never_ended(gw)


def assert_console_never_ended(gw):
    """No test of the module killed the console process: not a request, not
    a hostile one, not its seccomp filter (a call missing from
    WebConsoleSyscalls kills it, and the monitor would start it again)."""
    log = gw.daemon_log(tail=10**9)
    assert "the web console ended" not in log, log[-4000:]


def chromium_paths():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or "/usr/lib/chromium/chromedriver"
    return browser, driver if driver and os.path.exists(driver) else None


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary, driver_path = chromium_paths()
    if not binary or not driver_path:
        pytest.fail("chromium and chromium-driver are required (scripts/install-deps installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--disable-gpu", "--no-first-run", "--disable-extensions"]:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name):
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def click(driver, element_id):
    """Clicks a button or link that loads a new page, and waits for that page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    old = driver.find_element(By.TAG_NAME, "html")
    target = driver.find_element(By.ID, element_id) if isinstance(element_id, str) else element_id
    target.click()

    def left(_):
        # EC.staleness_of, except that Chromium may answer a question about
        # the old page mid-navigation with "unhandled inspector error": ask again.
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException:
            return False
    WebDriverWait(driver, 20).until(left)
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.readyState") == "complete")


def sign_in(driver, gw, user, password=None):
    """The two factors, through the PAM conversation's pages: password, then TOTP."""
    from selenium.webdriver.common.by import By
    driver.delete_all_cookies()
    driver.get(gw.web + "/signin")
    driver.find_element(By.ID, "user").send_keys(user)
    click(driver, "next")
    field = driver.find_element(By.ID, "answer-0")
    assert field.get_attribute("type") == "password", "PAM's echo-off prompt must be a password field"
    assert "Password" in driver.find_element(By.ID, "step-form").text
    field.send_keys(password if password is not None else gw.password(user))
    click(driver, "next")
    field = driver.find_element(By.ID, "answer-0")
    assert "One-time password" in driver.find_element(By.ID, "step-form").text, driver.page_source[-800:]
    field.send_keys(gw.fresh_totp(user))
    click(driver, "next")


def signed_in_as(driver):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.ID, "whoami").text


def http_sign_in(gw, user):
    """The same sign-in over plain HTTP (requests), for tests that need many
    sessions or raw responses. Returns the session cookie and the CSRF token."""
    web = gw.web_ip
    r = requests.get(web + "/signin", timeout=10)
    pre = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)
    jar = {"gh_pre": r.cookies["gh_pre"]}
    r = requests.post(web + "/signin", data={"csrf": pre, "user": user}, cookies=jar, timeout=30, allow_redirects=False)
    jar.update(r.cookies.get_dict())
    r = requests.post(web + "/signin/step", data={"csrf": pre, "answer": gw.password(user)}, cookies=jar, timeout=30,
                      allow_redirects=False)
    jar.update(r.cookies.get_dict())
    r = requests.post(web + "/signin/step", data={"csrf": pre, "answer": gw.fresh_totp(user)}, cookies=jar, timeout=30,
                      allow_redirects=False)
    assert r.status_code == 303, r.text[-500:]
    session = r.cookies["gh_session"]
    page = requests.get(web + "/queue", cookies={"gh_session": session}, timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return session, csrf, r
