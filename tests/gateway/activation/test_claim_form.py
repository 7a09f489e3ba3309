"""The claim form tells every mistake at once, and a missing page is a page: over HTTP as a
browser without JavaScript posts the form, and in real Chromium (screenshots under
test-output/screenshots/, like the other browser test)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from playwright.async_api import async_playwright, expect

from tests.gateway.browser import chromium_executable

from .conftest import Act, imei

ROOT = Path(__file__).resolve().parents[3]
SHOTS = ROOT / "test-output" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

BAD = {"imei": "35958601582980", "claim_key": "K7M2Q-9XHCU", "contact": "0170 1234567"}
#: The start of each field's message, as the form shows it.
MESSAGES = {"imei": "the IMEI must be exactly 15 digits",
            "claim_key": "the claim key has only the letters and digits printed",
            "contact": "enter the phone number with its country code"}


async def test_every_wrong_field_is_named_in_one_answer(act: Act) -> None:
    form = await act.http.get("/claim")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    answer = await act.http.post("/claim", data={**BAD, "csrf": found.group(1)})
    assert answer.status_code == 422
    page = answer.text
    for field, error_id in [("imei", "imei-error"), ("claim_key", "key-error"),
                            ("contact", "contact-error")]:
        error = re.search(rf'<p class="error" id="{error_id}" role="alert">([^<]+)</p>', page)
        assert error is not None, field
        assert error.group(1).startswith(MESSAGES[field]), error.group(1)
    assert page.count('aria-invalid="true"') == 3
    # What was typed stays in the form, to be corrected.
    assert f'value="{BAD["imei"]}"' in page and f'value="{BAD["contact"]}"' in page
    # One wrong field: that one alone.
    answer = await act.http.post("/claim", data={
        "imei": imei(800), "contact": "0170 1234567", "csrf": found.group(1)})
    assert answer.status_code == 422
    assert answer.text.count('role="alert"') == 1 and 'id="contact-error"' in answer.text


async def test_the_api_lists_every_wrong_field_too(act: Act) -> None:
    answer = await act.http.post("/api/v1/activations", json=BAD)
    assert answer.status_code == 422
    body = answer.json()
    assert body["field"] == "imei" and body["detail"].startswith(MESSAGES["imei"])
    assert sorted(body["errors"]) == ["claim_key", "contact", "imei"]
    for field, message in body["errors"].items():
        assert message.startswith(MESSAGES[field])


async def test_the_form_and_a_missing_page_in_chromium(act: Act, store_url: str) -> None:
    chromium = chromium_executable()
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    base = str(act.http.base_url).rstrip("/")
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 900})
            await page.goto(base + "/claim")
            await page.get_by_label("IMEI of the tracker").fill(BAD["imei"])
            await page.get_by_label("Claim key").fill(BAD["claim_key"])
            await page.get_by_label("Your e-mail or mobile number").fill(BAD["contact"])
            await page.get_by_role("button", name="Continue").click()
            alerts = page.get_by_role("alert")
            await expect(alerts).to_have_count(3)
            for field, label in [("imei", "IMEI of the tracker"), ("claim_key", "Claim key"),
                                 ("contact", "Your e-mail or mobile number")]:
                box = page.get_by_label(label)
                await expect(box).to_have_attribute("aria-invalid", "true")
                await expect(box).to_have_accessible_description(re.compile(
                    re.escape(MESSAGES[field])))
            await page.screenshot(path=str(SHOTS / f"{dialect}-claim-all-errors.png"),
                                  full_page=True)

            await page.goto(base + "/devices/123/typo")
            await expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
            await expect(page.get_by_role("link", name="Home").last).to_be_visible()
            await page.screenshot(path=str(SHOTS / f"{dialect}-page-not-found.png"),
                                  full_page=True)
        finally:
            await browser.close()


def test_without_chromium_the_browser_test_says_what_to_install(tmp_path: Path) -> None:
    """The README's test command on a machine without the browser: the browser test fails
    (not skipped, not a traceback) saying what to install. The browser stays installed: the
    test's path to it is pointed at a file that does not exist."""
    missing = tmp_path / "no-chromium-here" / "chromium"
    env = {**os.environ, "GATEWAY_TEST_CHROMIUM": str(missing),
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/gateway/activation/test_browser.py", "-k", "claim_release and sqlite"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout  # failed: neither passed nor skipped
    assert "1 failed" in done.stdout and "skipped" not in done.stdout, done.stdout
    assert (f"the browser tests need Chromium at {missing}, and there is none: install "
            "it with `apt-get install chromium` (Debian, Ubuntu), or point "
            "GATEWAY_TEST_CHROMIUM at a Chromium or Chrome binary") in done.stdout
    assert "Traceback" not in done.stdout
