"""`GET /api/v1/devices/{imei}/live`: a device's positions and alarms reach its owner as they
are committed, over Server-Sent Events from the real gateway, fed by a device over TCP."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from protocols.codec import Fix
from tests.gateway.activation.conftest import TEST_ACTIVATION
from tests.gateway.e2e.conftest import ADMIN_TOKEN, start_on_free_ports

from .conftest import ALICE, BOB, Act, LinkFactory, claim, imei, live, online

T0 = datetime(2026, 5, 4, 9, 30, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_positions_and_an_sos_reach_the_owner_as_they_are_committed(
    act: Act, link_factory: LinkFactory
) -> None:
    device = imei(800)
    link, encoder = await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    async with live(act.http, device) as stream:
        kind, ready = await stream.next()
        assert (kind, ready["imei"]) == ("ready", device)
        assert stream.retry_ms == 3000
        await link.send(encoder.position(Fix(at(0), 48.85700, 2.35300, speed_kmh=12.0)))
        kind, position = await stream.next()
        assert kind == "position"
        assert position["imei"] == device and position["valid"] is True
        assert position["lat"] == pytest.approx(48.857, abs=1e-6)
        assert position["lon"] == pytest.approx(2.353, abs=1e-6)
        assert position["speed_kmh"] == pytest.approx(12.0, abs=0.01)
        assert datetime.fromisoformat(position["fix_time"]) == at(0)
        await link.send(encoder.sos(Fix(at(5), 48.85800, 2.35400)))
        _before, alarm = await stream.until("alarm")
        assert alarm["alarm"] == "sos" and alarm["imei"] == device
        assert alarm["position"]["lat"] == pytest.approx(48.858, abs=1e-6)
        assert alarm["position"]["lon"] == pytest.approx(2.354, abs=1e-6)


async def test_only_the_signed_in_owner_gets_the_stream(
    act: Act, link_factory: LinkFactory
) -> None:
    alices, bobs = imei(801), imei(802)
    await online(act, link_factory, alices)
    await online(act, link_factory, bobs)
    await claim(act.http, act, alices, ALICE)
    async with act.client() as bob, act.client() as stranger:
        await claim(bob, act, bobs, BOB)
        anonymous = await stranger.get(f"/api/v1/devices/{alices}/live")
        assert anonymous.status_code == 401
        assert "sign in" in anonymous.json()["detail"]
        # Another owner's device is a 404, as for every device API; so is one never seen.
        for other in (alices, imei(899)):
            refused = await bob.get(f"/api/v1/devices/{other}/live")
            assert refused.status_code == 404
            assert refused.json()["detail"] == f"you have no device {other}"
        async with live(bob, bobs) as stream:
            assert (await stream.next())[0] == "ready"


async def test_a_release_ends_the_stream_and_nothing_after_it_is_sent(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    act = await start_act(web={"live_heartbeat_s": 0.2})
    device = imei(803)
    link, encoder = await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    async with live(act.http, device) as stream:
        assert (await stream.next())[0] == "ready"
        started = (await act.http.post(f"/api/v1/devices/{device}/release", json={})).json()
        code = await act.code_for(ALICE, "release")
        released = await act.http.request("DELETE", f"/api/v1/devices/{device}", json={
            "challenge_id": started["challenge_id"], "token": started["token"], "code": code})
        assert released.status_code == 200
        await link.send(encoder.position(Fix(at(10), 50.0, 8.0)))
        before, ended = await stream.until("ended")
        assert ended == {"reason": "this device is no longer yours"}
        assert [kind for kind, _data in before if kind != ":"] == []
        assert await stream.next() == ("<end>", None)
    # The history stays the owner's, but there is nothing live to watch any more.
    again = await act.http.get(f"/api/v1/devices/{device}/live")
    assert again.status_code == 404 and "no longer yours" in again.json()["detail"]


async def test_signing_out_ends_the_stream(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    act = await start_act(web={"live_heartbeat_s": 0.2})
    device = imei(804)
    await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    async with act.client() as tab:
        tab.cookies = act.http.cookies  # the same browser: its session cookie
        async with live(tab, device) as stream:
            assert (await stream.next())[0] == "ready"
            assert (await act.http.delete("/api/v1/sessions/current")).status_code in (200, 204)
            _before, ended = await stream.until("ended")
            assert ended == {"reason": "your session ended: sign in again"}


async def test_heartbeats_keep_an_idle_stream_open_and_a_closed_one_is_forgotten(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    act = await start_act(web={"live_heartbeat_s": 0.2})
    device = imei(805)
    await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    hub = act.gateway.live
    assert hub is not None
    async with live(act.http, device) as stream:
        assert (await stream.next())[0] == "ready"
        for _ in range(3):
            assert await stream.next(timeout=2) == (":", "keepalive")
        assert hub.streams == 1
        assert re.search(r"^gateway_live_streams 1\.0$", (await act.http.get("/metrics")).text,
                         re.M)
    for _ in range(500):  # the server sees the disconnect at once, or at its next write
        if hub.streams == 0:
            break
        await asyncio.sleep(0.01)
    assert hub.streams == 0
    assert hub.watched_devices() == []


async def test_a_browser_that_does_not_keep_up_is_told_to_reload(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    act = await start_act(web={"live_queue_max": 2})
    device = imei(806)
    link, encoder = await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    async with live(act.http, device) as stream:
        assert (await stream.next())[0] == "ready"
        # 20 positions in one write: one commit hands them to the stream's queue at once.
        await link.send(b"".join(encoder.position(Fix(at(100 + n), 52.0 + n / 1000, 13.0))
                                 for n in range(20)))
        before, reload = await stream.until("reload")
        assert reload == {"reason": "too many events waited for this browser: reload what "
                                    "you show"}
        assert len(before) <= 2
        assert await stream.next() == ("<end>", None)
    metrics = (await act.http.get("/metrics")).text
    assert re.search(r"^gateway_live_overflows_total 1\.0$", metrics, re.M)
    assert act.gateway.live is not None and act.gateway.live.streams == 0
    # What it missed is in the positions API; a new stream works.
    positions = (await act.http.get(f"/api/v1/devices/{device}/positions")).json()["positions"]
    assert len(positions) == 20
    async with live(act.http, device) as stream:
        assert (await stream.next())[0] == "ready"


async def test_too_many_streams_of_one_owner_are_refused(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    act = await start_act(web={"live_max_streams_per_owner": 1})
    device = imei(807)
    await online(act, link_factory, device)
    await claim(act.http, act, device, ALICE)
    async with live(act.http, device) as stream:
        assert (await stream.next())[0] == "ready"
        second = await act.http.get(f"/api/v1/devices/{device}/live")
        assert second.status_code == 429
        assert "web.live_max_streams_per_owner" in second.json()["detail"]
        assert second.headers["retry-after"] == "30"
    for _ in range(500):
        if act.gateway.live is not None and act.gateway.live.streams == 0:
            break
        await asyncio.sleep(0.01)
    async with live(act.http, device) as stream:
        assert (await stream.next())[0] == "ready"


async def test_stopping_the_gateway_ends_open_streams(
    store_url: str, link_factory: LinkFactory, tmp_path  # type: ignore[no-untyped-def]
) -> None:
    """An open stream never holds up a shutdown; the browser reconnects (no `ended`)."""
    gateway = await start_on_free_ports(
        store_url, activation=TEST_ACTIVATION,
        notify={"outbox_path": str(tmp_path / "outbox.jsonl"), "retry_delay_s": 0.0})
    try:
        base = f"http://127.0.0.1:{gateway.http_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http, httpx.AsyncClient(
                base_url=base, timeout=30,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
            act = Act(gateway, http, admin, tmp_path / "outbox.jsonl")
            device = imei(808)
            await online(act, link_factory, device)
            await claim(http, act, device, ALICE)
            async with live(http, device) as stream:
                assert (await stream.next())[0] == "ready"
                await asyncio.wait_for(gateway.stop(), 15)
                assert await stream.next() == ("<end>", None)
    finally:
        await gateway.stop()
