"""The map's settings, the Content-Security-Policy they open, and /docs served from the
gateway's own files (no CDN), against the real gateway."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from gateway.config import ConfigError, WebSettings, load_settings

from .conftest import ALICE, Act, LinkFactory, claim, imei, online

VENDOR = Path(__file__).resolve().parents[3] / "gateway" / "web" / "static" / "vendor"


def directive(csp: str, name: str) -> str:
    [found] = [d.strip() for d in csp.split(";") if d.strip().startswith(name + " ")]
    return found


async def test_the_pages_allow_images_from_the_tile_server_and_nothing_else_new(
    act: Act,
) -> None:
    csp = (await act.http.get("/")).headers["content-security-policy"]
    assert directive(csp, "img-src") == "img-src 'self' data: https://tile.openstreetmap.org"
    assert directive(csp, "script-src") == "script-src 'self'"
    assert directive(csp, "style-src") == "style-src 'self'"
    assert directive(csp, "connect-src") == "connect-src 'self'"
    assert directive(csp, "default-src") == "default-src 'self'"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_a_tile_server_with_subdomains_is_allowed_as_a_wildcard_and_none_without_tiles(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    custom = await start_act(web={
        "tile_url": "https://{s}.tiles.example.net:8443/osm/{z}/{x}/{y}{r}.png?key=abc",
        "tile_attribution": '<a href="https://example.net/">Example & Co</a>'})
    csp = (await custom.http.get("/")).headers["content-security-policy"]
    assert directive(csp, "img-src") == "img-src 'self' data: https://*.tiles.example.net:8443"
    device = imei(860)
    await online(custom, link_factory, device)
    await claim(custom.http, custom, device, ALICE)
    page = (await custom.http.get(f"/devices/{device}")).text
    assert ('data-tile-url="https://{s}.tiles.example.net:8443/osm/{z}/{x}/{y}{r}.png'
            '?key=abc"') in page.replace("&amp;", "&")
    # The attribution reaches the map as text in an attribute, escaped.
    assert ('data-tile-attribution="&lt;a href=&#34;https://example.net/&#34;&gt;Example '
            '&amp; Co&lt;/a&gt;"') in page
    assert f'data-live-url="/api/v1/devices/{device}/live"' in page

    without = await start_act(web={"tile_url": ""})
    csp = (await without.http.get("/")).headers["content-security-policy"]
    assert directive(csp, "img-src") == "img-src 'self' data:"


def test_a_tile_url_that_is_not_one_says_what_is_expected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for bad in ("https://tiles.example.net/{z}/{x}.png",  # no {y}
                "https://tiles.example.net; script-src *;/{z}/{x}/{y}.png",  # CSP injection
                "ftp://tiles.example.net/{z}/{x}/{y}.png",
                "https://tiles.{s}.example.net/{z}/{x}/{y}.png"):
        monkeypatch.setenv("GATEWAY_WEB__TILE_URL", bad)
        with pytest.raises(ConfigError) as info:
            load_settings()
        message = str(info.value)
        assert "web.tile_url" in message and "GATEWAY_WEB__TILE_URL" in message
        assert "{z}, {x} and {y}" in message
    assert WebSettings(tile_url="http://127.0.0.1:8080/{z}/{x}/{y}.png").tile_source == (
        "http://127.0.0.1:8080")


async def test_docs_are_served_from_the_gateways_own_files(act: Act) -> None:
    docs = await act.http.get("/docs")
    assert docs.status_code == 200
    csp = docs.headers["content-security-policy"]
    assert directive(csp, "script-src") == "script-src 'self'"
    assert directive(csp, "style-src") == "style-src 'self'"
    assert "http" not in csp  # no CDN, no other host
    sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert sources == ["/static/vendor/swagger-ui/favicon-32x32.png",
                       "/static/vendor/swagger-ui/swagger-ui.css", "/openapi.json",
                       "/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/docs.js"]
    for source in sources:
        answer = await act.http.get(source)
        assert answer.status_code == 200, source
        assert len(answer.content) > 0
    bundle = await act.http.get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert "javascript" in bundle.headers["content-type"]
    # ReDoc would load from a CDN: not offered.
    assert (await act.http.get("/redoc")).status_code == 404
    spec = (await act.http.get("/openapi.json")).json()
    live = spec["paths"]["/api/v1/devices/{imei}/live"]["get"]
    assert "text/event-stream" in live["responses"]["200"]["content"]
    assert set(live["responses"]) >= {"200", "404", "429", "503"}


def test_the_vendored_files_are_those_recorded_with_their_licences() -> None:
    """scripts/vendor-web-assets.sh writes VERSIONS; a file edited by hand or a licence
    left out shows here."""
    lines = (VENDOR / "VERSIONS").read_text().splitlines()
    assert [line.split()[:2] for line in lines if line.startswith(("leaflet ", "swagger"))] == [
        ["leaflet", "1.9.4"], ["swagger-ui-dist", "5.35.0"]]
    recorded = dict(reversed(line.split("  ", 1)) for line in lines
                    if re.fullmatch(r"[0-9a-f]{64}  \S+", line))
    served = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*")
              if p.is_file() and p.name != "VERSIONS"}
    assert set(recorded) == served
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    assert {"leaflet/LICENSE", "swagger-ui/LICENSE", "swagger-ui/NOTICE"} <= served


async def test_every_page_has_an_icon_and_favicon_ico_answers(act: Act) -> None:
    home = await act.http.get("/")
    assert '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">' in home.text
    for path in ("/static/favicon.svg", "/favicon.ico"):
        icon = await act.http.get(path)
        assert icon.status_code == 200, path
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.content.startswith(b"<svg")
