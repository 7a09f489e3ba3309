"""Commands in a real browser (Playwright, Debian's /usr/bin/chromium): an owner asks for the
position of their tracker while it is offline and watches the command on the open device page go
from queued to acknowledged as the simulated tracker connects and answers, then stops the
engine with a fresh code. Screenshots go to test-output/screenshots/ (not committed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright, expect

from gateway.store.database import Database

from .conftest import ALICE, FAST, StartAct, Tracker, connect, eventually, fix_now, imei, owner_of

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


async def shot(page: Page, name: str, dialect: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{dialect}-commands-{name}.png"), full_page=True)


async def answer_commands(tracker: Tracker, count: int) -> None:
    """The simulated tracker: carries out each command it gets and answers it."""
    for _ in range(count):
        data = await asyncio.wait_for(tracker.link.reader.readuntil(b"$"), 30)
        reply = tracker.device.command_answer(data, fix_now())
        assert reply is not None, data
        await asyncio.sleep(0.5)  # a real device takes a moment
        await tracker.send(reply)


async def test_owner_watches_a_position_request_go_from_queued_to_acknowledged(
    start_act: StartAct, db: Database, link_factory: Any, store_url: str,
) -> None:
    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install chromium); see .ci/run"
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    act = await start_act(**FAST)
    device = imei(880)
    first = await connect(act, link_factory, "gl300", device)
    await first.login()
    await first.send(first.device.position(fix_now()))
    await owner_of(act, db, device)
    await first.link.close()  # the tracker is out of coverage

    async def offline() -> bool:
        assert act.gateway.pipeline is not None
        return device not in act.gateway.pipeline.online

    await eventually(offline)
    base = str(act.http.base_url).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 900})
            await page.goto(base + "/signin")
            await page.get_by_label("Your e-mail or mobile number").fill(ALICE)
            await page.get_by_role("button", name="Continue").click()
            await page.get_by_label("Code").fill(await act.code_for(ALICE, "sign_in"))
            await page.get_by_role("button", name="Confirm").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("My devices")
            await page.get_by_role("link", name=device).click()
            await expect(page.get_by_role("heading", name="Commands")).to_be_visible()
            await shot(page, "01-device-page", dialect)

            await page.get_by_role("button", name="Request position").click()
            await expect(page.get_by_role("status")).to_contain_text("Command queued")
            row = page.locator("#command-list tbody tr").first
            await expect(row).to_contain_text("position request")
            await expect(row.locator(".command-status")).to_have_text("queued")
            await shot(page, "02-queued", dialect)
            await page.evaluate("window.stillTheSamePage = true")

            # The tracker comes back and answers; the open page follows by itself.
            tracker = await connect(act, link_factory, "gl300", device)
            answering = asyncio.create_task(answer_commands(tracker, 2))
            await tracker.send(tracker.device.position(fix_now()))
            await expect(row.locator(".command-status")).to_have_text("acknowledged",
                                                                      timeout=15_000)
            await expect(row).to_contain_text("RTL")
            assert await page.evaluate("window.stillTheSamePage") is True
            await shot(page, "03-acknowledged", dialect)

            # Engine stop: a fresh code first.
            await page.get_by_role("button", name="Stop engine…").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text(
                f"Stop the engine of device {device}")
            await expect(page.locator("#flow-hint")).to_have_text("Code sent to a***@e***.com.")
            await shot(page, "04-engine-code", dialect)
            await page.get_by_label("Code").fill(await act.code_for(ALICE, "engine_stop"))
            await page.get_by_role("button", name="Stop the engine").click()
            stop = page.locator("#command-list tbody tr").first
            await expect(stop).to_contain_text("engine stop")
            await expect(stop.locator(".command-status")).to_have_text("acknowledged",
                                                                       timeout=15_000)
            await shot(page, "05-engine-stopped", dialect)
            await answering
        finally:
            await browser.close()
