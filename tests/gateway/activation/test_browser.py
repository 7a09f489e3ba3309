"""The pages in a real browser: Playwright driving Debian's headless Chromium claims a device
end to end with the claim key of its printed label (the QR code decoded from the generated PNG
sheet with zxing-cpp, opened as a phone would), then releases it and signs in again.

A screenshot of each page is saved under test-output/screenshots/ for review. The test fails
(never skips) when Chromium is missing, saying what to install (`tests/gateway/browser.py`);
`.ci/run` installs it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pyotp
import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Page, async_playwright, expect

from gateway.activation.labels import read_labels, write_labels
from gateway.store.database import Database
from protocols import get_codec
from protocols.codec import Fix
from tests.gateway.browser import chromium_executable

from .conftest import Act, imei

SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
OWNER = "jane@example.com"


async def shot(page: Page, name: str, dialect: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{dialect}-{name}.png"), full_page=True)


async def test_claim_release_and_sign_in_through_the_pages(
    act: Act, db: Database, link_factory, store_url: str, tmp_path: Path
) -> None:
    chromium = chromium_executable()
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    device = imei(700)
    encoder = get_codec("gps103").device(device)
    link = await link_factory(act.gateway.tcp.ports["gps103"])
    await link.send(encoder.login())
    await link.expect(b"LOAD")
    base = str(act.http.base_url).rstrip("/")
    # The vendor makes a key and prints the label sheet, exactly as `gateway labels` does.
    made = await act.admin.post("/api/v1/admin/devices",
                                json={"imei": device, "claim_key": "generate"})
    sheet = tmp_path / "labels.png"
    write_labels(read_labels(f"imei,claim_key\n{device},{made.json()['claim_key']}\n", base),
                 sheet)
    [qr] = zxingcpp.read_barcodes(Image.open(sheet))
    assert qr.text.startswith(f"{base}/claim?imei={device}&key=")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                           args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 800})
            await page.goto(base + "/")
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                "Your tracker, only yours")
            await shot(page, "01-home", dialect)

            await page.get_by_role("link", name="Activate a device").first.click()
            await page.get_by_label("IMEI of the tracker").fill("359586015829803")
            await page.get_by_label("Your e-mail or mobile number").fill(OWNER)
            await page.get_by_role("button", name="Continue").click()
            await expect(page.get_by_role("alert")).to_contain_text("check digit")
            await shot(page, "02-claim-error", dialect)

            # The owner scans the label: the form opens filled in.
            await page.goto(qr.text)
            await expect(page.get_by_label("IMEI of the tracker")).to_have_value(device)
            await expect(page.get_by_label("Claim key")).to_have_value(
                made.json()["claim_key"])
            await page.get_by_label("Your e-mail or mobile number").fill(OWNER)
            await shot(page, "03-claim-form-from-label", dialect)
            await page.get_by_role("button", name="Continue").click()
            await expect(page.locator("#flow-status")).to_have_text("Enter the code")
            await expect(page.locator("#flow-hint")).to_contain_text("j***@e***.com")
            await expect(page.locator("#flow-countdown")).to_contain_text("min")
            await shot(page, "04-claim-code-sent", dialect)

            code = await act.code_for(OWNER)
            await page.get_by_label("Code").fill(f"{(int(code) + 1) % 10**6:06d}")
            await page.get_by_role("button", name="Confirm").click()
            await expect(page.get_by_role("alert")).to_contain_text("did not work")
            await expect(page.locator("#flow-attempts")).to_have_text("4")
            await shot(page, "05-claim-wrong-code", dialect)
            await page.get_by_label("Code").fill(code)
            await page.get_by_role("button", name="Confirm").click()
            await expect(page.get_by_role("status")).to_contain_text("is now yours")

            await link.send(encoder.position(Fix(datetime.now(UTC).replace(microsecond=0),
                                                 48.8570, 2.3530, speed_kmh=12.0)))
            await link.send(encoder.position(Fix(datetime.now(UTC).replace(microsecond=0)
                                                 .replace(second=0), 48.8580, 2.3540)))
            for _ in range(100):
                await page.reload()
                if await page.locator("tbody tr").count() >= 2:
                    break
                await page.wait_for_timeout(100)
            await expect(page.locator("#map path.track-last")).to_be_visible()
            await shot(page, "07-device", dialect)

            await page.get_by_role("link", name="My devices").click()
            await expect(page.get_by_role("cell", name=device)).to_be_visible()
            await expect(page.locator("span.online")).to_have_text("online")
            await shot(page, "08-my-devices", dialect)

            await page.get_by_role("link", name="Account").click()
            await page.get_by_role("button", name="Set up an authenticator app").click()
            await expect(page.locator(".qr svg")).to_be_visible()
            await shot(page, "09-account-totp-qr", dialect)
            uri = await page.locator("details code").text_content() or ""
            app = pyotp.TOTP(pyotp.parse_uri(uri).secret)
            await page.get_by_label("Code from the app").fill(app.now())
            await page.get_by_role("button", name="Turn on").click()
            await expect(page.get_by_role("status")).to_contain_text("authenticator app is on")
            # Turning it off takes a code from it: a wrong one is refused, the next one works.
            off = page.get_by_label("To turn it off, enter the code it shows now")
            await off.fill(f"{(int(app.now()) + 500_000) % 1_000_000:06d}")
            await page.get_by_role("button", name="Turn off").click()
            await expect(page.get_by_role("alert")).to_contain_text("did not match")
            await expect(page.get_by_role("status")).to_contain_text("authenticator app is on")
            await off.fill(app.at(time.time() + 30))
            await page.get_by_role("button", name="Turn off").click()
            await expect(page.get_by_role("button", name="Set up an authenticator app")
                         ).to_be_visible()

            await page.goto(f"{base}/devices/{device}")
            await page.get_by_role("button", name="Release this device…").click()
            await expect(page.locator("#flow-hint")).to_have_text("Code sent to j***@e***.com.")
            await shot(page, "10-release-code", dialect)
            await page.get_by_label("Code").fill(await act.code_for(OWNER, "release"))
            await page.get_by_role("button", name="Release the device").click()
            await expect(page.get_by_role("status")).to_contain_text("was released")
            await expect(page.get_by_role("cell", name="released")).to_be_visible()
            await shot(page, "11-released", dialect)

            await page.get_by_role("button", name="Sign out").click()
            await page.get_by_role("navigation").get_by_role("link", name="Sign in").click()
            await page.get_by_label("Your e-mail or mobile number").fill(OWNER)
            await shot(page, "12-sign-in", dialect)
            await page.get_by_role("button", name="Continue").click()
            await page.get_by_label("Code").fill(await act.code_for(OWNER, "sign_in"))
            await shot(page, "13-sign-in-code", dialect)
            await page.get_by_role("button", name="Confirm").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("My devices")
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies["gw_session"]["httpOnly"] is True
            assert cookies["gw_session"]["sameSite"] == "Lax"
        finally:
            await browser.close()


@pytest.mark.parametrize("path", ["/claim", "/signin"])
async def test_forms_without_csrf_token_are_refused(act: Act, path: str) -> None:
    page = await act.http.get(path)
    assert page.status_code == 200
    forged = await act.http.post(path, data={"imei": imei(701), "contact": OWNER,
                                             "csrf": "forged"})
    assert forged.status_code == 403
    assert "reload the page" in forged.json()["detail"]


async def test_pages_work_without_javascript(act: Act) -> None:
    """Plain form posts and redirects, as a browser without JavaScript does them."""
    import re

    form = await act.http.get("/claim")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = await act.http.post("/claim", data={"imei": imei(702), "contact": OWNER,
                                                 "csrf": csrf})
    assert answer.status_code == 303
    waiting = await act.http.get(answer.headers["location"])
    assert 'name="code"' in waiting.text
    assert "claim key" in waiting.text
    assert (await act.http.get("/devices")).status_code == 303
