"""The map, live updates and /docs in a real browser: Playwright driving Debian's headless
Chromium against the real gateway, with every request that leaves the machine blocked (no map
tiles, no CDN): the device page still draws the track, its points with their times, the last
position and a scale; a simulated tracker's SOS appears on the open page as it is committed;
/docs renders from the gateway's own files.

A screenshot of each is saved under test-output/screenshots/web-live/ for review. The tests fail
(never skip) when Chromium is missing: `.ci/run` installs it (apt-get install chromium).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from gateway.store.database import Database
from protocols.codec import Fix
from simulators import DeviceConfig, Scheduler, SimDevice, State, TcpLink

from .conftest import ALICE, Act, LinkFactory, claim, imei, online

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[3] / "test-output" / "screenshots" / "web-live"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
T0 = datetime(2026, 5, 4, 9, 30, 0, tzinfo=UTC)
#: A walk along the Spree in Berlin: (seconds after T0, lat, lon, valid).
WALK = [(0, 52.51860, 13.37618, True), (60, 52.51905, 13.37905, True),
        (120, 52.51982, 13.38270, True), (180, 52.52040, 13.38600, False),
        (240, 52.52095, 13.38905, True), (300, 52.52150, 13.39240, True)]

#: Records what the page tried to fetch outside the gateway, and CSP violations.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), (
        "the browser tests need Debian's Chromium at /usr/bin/chromium: "
        "apt-get install chromium (.ci/run does it)")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                           args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Offline:
    """A browser context whose requests to anything but the gateway fail, as without
    internet; `blocked` lists them (with the Referer they carried)."""

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.context = context
        self.host = urlsplit(base).netloc
        self.blocked: list[tuple[str, str | None]] = []

    async def start(self) -> None:
        await self.context.add_init_script(WATCH_CSP)
        await self.context.route("**/*", self._route)

    async def _route(self, route: Route) -> None:
        request = route.request
        if urlsplit(request.url).netloc == self.host:
            await route.continue_()
            return
        self.blocked.append((request.url, request.headers.get("referer")))
        await route.abort("internetdisconnected")


def base_of(act: Act) -> str:
    return str(act.http.base_url).rstrip("/")


async def signed_in_page(browser: Browser, act: Act) -> tuple[Page, Offline]:
    """A page of a browser holding the owner's session (act.http signed in), offline."""
    base = base_of(act)
    context = await browser.new_context(viewport={"width": 1100, "height": 1000})
    session = act.http.cookies.get("gw_session")
    assert session
    await context.add_cookies([{"name": "gw_session", "value": session, "url": base}])
    offline = Offline(context, base)
    await offline.start()
    return await context.new_page(), offline


async def shot(page: Page, name: str, dialect: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{dialect}-{name}.png"), full_page=True)


def dialect_of(store_url: str) -> str:
    return "sqlite" if store_url.startswith("sqlite") else "postgresql"


async def test_the_map_draws_the_track_with_tiles_blocked(
    act: Act, db: Database, link_factory: LinkFactory, browser: Browser, store_url: str
) -> None:
    device = imei(840)
    link, encoder = await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    for seconds, lat, lon, valid in WALK:
        await link.send(encoder.position(Fix(T0 + timedelta(seconds=seconds), lat, lon,
                                             speed_kmh=4.5, valid=valid)))
    for _ in range(500):
        stored = (await act.http.get(f"/api/v1/devices/{device}/positions")).json()
        if len(stored["positions"]) == len(WALK):
            break
        await asyncio.sleep(0.02)
    page, offline = await signed_in_page(browser, act)
    await page.goto(f"{base_of(act)}/devices/{device}")

    drawn = [w for w in WALK if w[3]]
    await expect(page.locator("#map path.track-last")).to_have_count(1)
    await expect(page.locator("#map path.track-point")).to_have_count(len(drawn))
    # The line joins the valid fixes, in time order: one move and a segment per next point.
    line = await page.locator("#map path.track-line").get_attribute("d") or ""
    assert line.count("L") == len(drawn) - 1, line
    # The scale, in metres, and the tiles' attribution, although no tile came.
    await expect(page.locator(".leaflet-control-scale-line").first).to_have_text(
        re.compile(r"^\d+ (m|km)$"))
    await expect(page.locator(".leaflet-control-attribution")).to_contain_text("OpenStreetMap")
    await expect(page.locator("#map-note")).to_be_visible()
    # Each point tells its time on hover; the last one says it is the last.
    await page.locator("#map path.track-point").first.hover()
    await expect(page.locator(".leaflet-tooltip")).to_have_text(
        "2026-05-04 09:30:00 UTC · 4.5 km/h")
    await page.locator("#map path.track-last").hover()
    await expect(page.locator(".leaflet-tooltip").last).to_contain_text(
        "Last position: 2026-05-04 09:35:00 UTC")
    # The invalid fix is listed, not drawn.
    await expect(page.locator("#positions tbody tr")).to_have_count(len(WALK))
    await expect(page.locator("#positions tbody tr").nth(2)).to_contain_text("no")
    await shot(page, "map-tiles-blocked", dialect_of(store_url))

    tiles = [(url, referer) for url, referer in offline.blocked
             if url.startswith("https://tile.openstreetmap.org/")]
    assert tiles, offline.blocked  # the tiles were asked for, and failed
    assert [url for url, _referer in offline.blocked if url not in dict(tiles)] == []
    # OpenStreetMap's tile policy wants a Referer: the origin, never the device page's path.
    assert {referer for _url, referer in tiles} == {base_of(act) + "/"}
    assert await page.evaluate("window.__csp") == []


async def test_a_simulated_sos_appears_live_on_the_open_device_page(
    act: Act, db: Database, browser: Browser, store_url: str
) -> None:
    assert act.gateway.tcp is not None
    scheduler = Scheduler()
    tracker = SimDevice("gps103", imei(841), config=DeviceConfig(
        position_interval_s=0.5, heartbeat_interval_s=30.0, ack_timeout_s=2.0))
    link = TcpLink(tracker, "127.0.0.1", act.gateway.tcp.ports["gps103"], scheduler)
    link.start()
    try:
        for _ in range(500):
            if tracker.state is State.ONLINE and tracker.stats.positions_sent:
                break
            await asyncio.sleep(0.02)
        await claim(act.http, act, tracker.imei, ALICE)
        page, offline = await signed_in_page(browser, act)
        await page.goto(f"{base_of(act)}/devices/{tracker.imei}")
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        await page.evaluate("window.__samePage = true")
        # New positions arrive while the page stays open (the tracker reports twice a second).
        fresh = page.locator("#positions tbody tr.fresh")
        for _ in range(300):
            if await fresh.count() >= 6:
                break
            await asyncio.sleep(0.05)
        assert await fresh.count() >= 6
        assert await page.locator("#map path.track-point").count() >= 6
        await expect(page.locator("#map path.track-last")).to_have_count(1)
        # The page had no position (they are recorded from the claim on): the first one
        # brought the map from the whole world to the street.
        await expect(page.locator(".leaflet-control-scale-line").first).to_have_text(
            re.compile(r"^\d+ m$"))

        tracker.press_sos()
        alarm = page.locator("#live-alarms .alarm-sos")
        await expect(alarm).to_contain_text("SOS alarm at ", timeout=10_000)
        await expect(page.locator("#map path.alarm-marker")).to_have_count(1)
        # ... and joins the page's table of alarms, which said there were none.
        await expect(page.locator("#alarms-table tbody tr.alarm-sos")).to_have_count(1)
        await expect(page.locator("#alarms-table tbody tr.alarm-sos td").nth(1)).to_have_text("SOS")
        await expect(page.locator("#no-alarms")).to_be_hidden()
        assert await page.evaluate("window.__samePage") is True  # no reload: live
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        await shot(page, "sos-live", dialect_of(store_url))
        assert await page.evaluate("window.__csp") == []
        assert [url for url, _referer in offline.blocked
                if not url.startswith("https://tile.openstreetmap.org/")] == []
    finally:
        link.stop()
        await asyncio.sleep(0.05)
        scheduler.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_an_alarm_committed_while_the_live_stream_was_away_appears_on_reconnect(
    act: Act, link_factory: LinkFactory, browser: Browser, store_url: str
) -> None:
    device = imei(843)
    link, encoder = await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    page, _offline = await signed_in_page(browser, act)
    await page.route("**/live", lambda route: route.abort("connectionreset"))
    await page.goto(f"{base_of(act)}/devices/{device}")
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "paused")
    await expect(page.locator("#no-alarms")).to_be_visible()

    at = datetime.now(UTC).replace(microsecond=0)
    await link.send(encoder.sos(Fix(at, 52.52, 13.405)))  # while the page has no stream
    for _ in range(300):
        alarms = (await act.http.get(f"/api/v1/devices/{device}/alarms")).json()["alarms"]
        if alarms:
            break
        await asyncio.sleep(0.03)
    assert [a["alarm_type"] for a in alarms] == ["sos"]
    await expect(page.locator("#alarms-table tbody tr")).to_have_count(0)

    await page.unroute("**/live")  # the stream comes back (the page retries after 3 s)
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live",
                                                                  timeout=15_000)
    await expect(page.locator("#alarms-table tbody tr.alarm-sos")).to_have_count(1)
    await expect(page.locator("#live-alarms .alarm-sos")).to_contain_text(
        at.strftime("SOS alarm at %Y-%m-%d %H:%M:%S UTC"))
    await page.reload()  # the page's own table and a catch-up never repeat an alarm
    await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    await page.wait_for_timeout(500)
    await expect(page.locator("#alarms-table tbody tr.alarm-sos")).to_have_count(1)
    await link.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_docs_render_with_the_network_blocked(
    act: Act, browser: Browser, store_url: str
) -> None:
    base = base_of(act)
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    offline = Offline(context, base)
    await offline.start()
    page = await context.new_page()
    await page.goto(base + "/docs")
    await expect(page.locator(".swagger-ui .info .title")).to_contain_text("tracker-gateway")
    live = page.locator(".opblock-summary-path", has_text="/api/v1/devices/{imei}/live")
    await expect(live).to_be_visible()
    await live.click()
    await expect(page.locator(".opblock-description-wrapper").first).to_contain_text(
        "Server-Sent Events")
    # Its "Try it out" calls the gateway and shows the answer, highlighted.
    health = page.locator(".opblock", has=page.locator(".opblock-summary-path",
                                                        has_text=re.compile(r"^/healthz$")))
    await health.locator(".opblock-summary").click()
    await health.get_by_role("button", name="Try it out").click()
    await health.get_by_role("button", name="Execute").click()
    await expect(health.locator(".live-responses-table td.response-col_status").last).to_have_text(
        "200")
    await expect(health.locator(".live-responses-table .microlight, "
                                ".live-responses-table pre").first).to_contain_text('"status"')
    await shot(page, "docs-offline", "sqlite")
    assert offline.blocked == []  # it asked nothing of anyone else
    assert await page.evaluate("window.__csp") == []
