"""The dashboard in headless Chromium (Debian chromium and chromium-driver, driven by selenium): it logs
in once through the cookie URL, shows the position and equity ``bot status --json`` computes, and
the server answers 401 without the token. With BOT_UPDATE_SCREENSHOTS=1 the screenshot is written as the README's (docs/dashboard.png)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from daemon_harness import ROOT, count, stop
from ops_helpers import TOKEN, bot_status, free_port, get, ops_config, start_ops_daemon
from waiting import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# the README's picture is refreshed only when asked (BOT_UPDATE_SCREENSHOTS=1): a test run leaves the tree clean
README_SCREENSHOT = ROOT / "docs" / "dashboard.png"

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason=f"{CHROMIUM} or {CHROMEDRIVER} is absent: install the Debian packages chromium and chromium-driver (.ci/run does)",
)


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def test_dashboard_shows_what_status_says_and_needs_the_token(tmp_path, emulator):
    from selenium.webdriver.common.by import By

    port = free_port()
    # controls on: the page shows its buttons (not pressed here; test_ops_alerts presses the kill switch)
    config = ops_config(tmp_path, emulator, port=port, extra="control = true\n")
    db = tmp_path / "bot.db"
    proc = start_ops_daemon(tmp_path, config, port)
    driver = None
    try:
        wait_until(lambda: count(db, "select count(*) from fills") >= 2, "two fills")
        driver = browser(tmp_path / "chrome-profile")
        driver.set_page_load_timeout(60)
        driver.get(f"http://127.0.0.1:{port}/login?token={TOKEN}")
        assert driver.current_url.rstrip("/") == f"http://127.0.0.1:{port}", "the login redirects to the dashboard"
        cookie = driver.get_cookie("bot_session")
        assert cookie is not None and cookie["httpOnly"] and cookie["value"] != TOKEN

        def shown() -> dict | None:
            values = driver.execute_script(
                "return {equity: document.getElementById('equity').dataset.value, position: document.getElementById('position').dataset.value,"
                " rows: document.querySelectorAll('#instruments tbody tr').length, stamp: document.getElementById('stamp').textContent}")
            return values if values["equity"] and values["rows"] else None

        wait_until(shown, "the dashboard to show equity and an instrument row")

        def agrees() -> dict | None:
            before = bot_status(db, tmp_path)
            page = shown()
            after = bot_status(db, tmp_path)
            if page is None or before["equity"] != after["equity"] or before["position"] != after["position"]:
                return None  # the daemon moved between the two reads: look again
            return {"page": page, "status": after} if float(page["equity"]) == after["equity"] and page["position"] == after["position"] else None

        seen = wait_until(agrees, "the dashboard's equity and position to equal `bot status --json`")
        status = seen["status"]
        # read in one script: the page replaces its rows every second
        cells = driver.execute_script("return Array.from(document.querySelectorAll('#instruments tbody tr:first-child td'), td => td.textContent)")
        assert cells[0] == status["symbol"]
        assert driver.find_element(By.ID, "controls").is_displayed()
        assert "no answer" not in seen["page"]["stamp"]
        # the chart has points to draw before the picture is taken
        wait_until(lambda: driver.execute_script("return fetch('/api/equity').then(r => r.json()).then(d => d.points.length)") >= 3,
                   "three equity points")
        wait_until(lambda: "updated" in driver.execute_script("return document.getElementById('stamp').textContent"), "a fresh poll")
        shot = README_SCREENSHOT if os.environ.get("BOT_UPDATE_SCREENSHOTS") == "1" else tmp_path / "dashboard.png"
        shot.parent.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        # without the token (no header, no cookie): 401 for the page, the API and the metrics
        for path in ("/", "/api/live", "/api/status", "/metrics", "/login?token=wrong"):
            code, body, _ = get(f"http://127.0.0.1:{port}{path}", None)
            assert code == 401, path
            assert b"equity" not in body
        # a browser that never logged in gets the 401 too
        fresh = browser(tmp_path / "chrome-profile-2")
        try:
            fresh.get(f"http://127.0.0.1:{port}/api/live")
            assert "unauthorized" in fresh.page_source
        finally:
            fresh.quit()
    finally:
        if driver is not None:
            driver.quit()
        assert stop(proc) == 0, (tmp_path / "daemon.out").read_text()[-3000:]
