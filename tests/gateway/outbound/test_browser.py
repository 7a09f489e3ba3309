"""Commands in a real browser (Playwright, Debian's /usr/bin/chromium): an owner asks for the
position of their tracker while it is offline and watches the command on the open device page go
from queued to acknowledged as the simulated tracker (`simulators.SimDevice`, as `trackersim`
runs it: it logs in, reports along a route and answers commands on its own) connects and
answers; then stops the engine with a fresh code. Screenshots go to test-output/screenshots/
(not committed).
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, async_playwright, expect

from gateway.store.database import Database
from simulators import DeviceConfig, Scheduler, SimDevice, State, TcpLink

from .conftest import ALICE, FAST, Act, StartAct, eventually, imei, owner_of

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


async def shot(page: Page, name: str, dialect: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{dialect}-commands-{name}.png"), full_page=True)


def simulated_tracker(act: Act, scheduler: Scheduler, device: str) -> TcpLink:
    """A gl300 tracker on a TCP link to the gateway, reporting every second."""
    assert act.gateway.tcp is not None
    tracker = SimDevice("gl300", device, config=DeviceConfig(position_interval_s=1.0,
                                                             heartbeat_interval_s=30.0))
    link = TcpLink(tracker, "127.0.0.1", act.gateway.tcp.ports["gl300"], scheduler)
    link.backoff.first = 0.05
    link.start()
    return link


async def online(link: TcpLink) -> None:
    async def up() -> bool:
        return link.device.state is State.ONLINE and link.device.stats.positions_sent > 0

    await eventually(up)


async def test_owner_watches_a_position_request_go_from_queued_to_acknowledged(
    start_act: StartAct, db: Database, store_url: str,
) -> None:
    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install chromium); see .ci/run"
    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    act = await start_act(**FAST)
    device = imei(880)
    scheduler = Scheduler()
    first = simulated_tracker(act, scheduler, device)
    await online(first)
    await owner_of(act, db, device)
    first.stop()  # the tracker is out of coverage

    async def offline() -> bool:
        assert act.gateway.pipeline is not None
        return device not in act.gateway.pipeline.online

    await eventually(offline)
    base = str(act.http.base_url).rstrip("/")
    tracker: TcpLink | None = None
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
            tracker = simulated_tracker(act, scheduler, device)
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
            assert tracker.device.stats.commands_answered == 2
        finally:
            await browser.close()
            for link in (first, tracker):
                if link is not None:
                    link.stop()
            scheduler.close()
