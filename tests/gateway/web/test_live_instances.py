"""Live updates across gateway instances on one PostgreSQL database (LISTEN/NOTIFY): two
in-process gateways; a device sends to one, its owner watches on the other."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gateway.store.live_bus import CHANNEL
from protocols.codec import Fix

from .conftest import ALICE, Act, LinkFactory, claim, imei, live, online

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

T0 = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def url_of(act: Act, path: str) -> str:
    return f"http://127.0.0.1:{act.gateway.http_port}{path}"


async def until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "still false"
        await asyncio.sleep(0.01)


async def test_a_position_stored_by_one_instance_appears_on_the_others_stream(
    start_act, link_factory: LinkFactory  # type: ignore[no-untyped-def]
) -> None:
    a, b = await start_act(), await start_act()
    device = imei(820)
    link, encoder = await online(a, link_factory, device)
    await claim(a.http, a, device, ALICE)
    # The same browser (its session cookie) on both instances, as behind a load balancer.
    async with live(a.http, device) as on_a:
        assert (await on_a.next())[0] == "ready"
        b.http.cookies = a.http.cookies
        async with live(b.http, device) as on_b:
            assert (await on_b.next())[0] == "ready"
            # `ready` comes once the interest came back through the database: A knows it.
            assert a.gateway.live is not None and a.gateway.live.bus is not None
            assert a.gateway.live.bus.wants(device)
            await link.send(encoder.position(Fix(at(0), 45.4642, 9.1900)))
            kind, position = await on_b.next()
            assert kind == "position" and position["imei"] == device
            assert position["lat"] == pytest.approx(45.4642, abs=1e-6)
            assert datetime.fromisoformat(position["fix_time"]) == at(0)
            await link.send(encoder.sos(Fix(at(3), 45.4650, 9.1910)))
            _before, alarm = await on_b.until("alarm")
            assert alarm["alarm"] == "sos" and alarm["imei"] == device
            # A's own subscriber got each event once: directly, not again through the database.
            await link.send(encoder.position(Fix(at(9), 45.4660, 9.1920)))
            on_a_events = []
            while True:
                kind, data = await on_a.next()
                on_a_events.append((kind, data))
                if kind == "position" and datetime.fromisoformat(data["fix_time"]) == at(9):
                    break
            times = [data["fix_time"] for kind, data in on_a_events if kind == "position"]
            assert len(times) == len(set(times)) and times[0] == at(0).isoformat()
            assert [kind for kind, _data in on_a_events].count("alarm") == 1


async def test_only_watched_devices_are_published_and_in_few_notifications(
    start_act, link_factory: LinkFactory, store_url: str  # type: ignore[no-untyped-def]
) -> None:
    a, b = await start_act(), await start_act()
    watched, unwatched = imei(821), imei(822)
    link, encoder = await online(a, link_factory, watched)
    other, other_encoder = await online(a, link_factory, unwatched)
    await claim(a.http, a, watched, ALICE)
    await claim(a.http, a, unwatched, ALICE)
    dsn = make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)
    spy = await asyncpg.connect(dsn)
    payloads: list[str] = []
    try:
        await spy.add_listener(CHANNEL, lambda *args: payloads.append(args[-1]))
        b.http.cookies = a.http.cookies
        async with live(b.http, watched) as on_b:
            assert (await on_b.next())[0] == "ready"
            await other.send(b"".join(other_encoder.position(Fix(at(n), 41.0, 2.0 + n / 1e4))
                                      for n in range(20)))
            await link.send(b"".join(encoder.position(Fix(at(n), 40.0, 3.0 + n / 1e4))
                                     for n in range(20)))
            got = []
            while len(got) < 20:
                kind, data = await on_b.next()
                assert kind == "position" and data["imei"] == watched
                got.append(data["fix_time"])
            assert sorted(got) == sorted(at(n).isoformat() for n in range(20))
        await asyncio.sleep(0.2)
    finally:
        await spy.close()
    messages = [json.loads(p) for p in payloads]
    assert all(len(p) < 8000 for p in payloads)
    carried = [m for m in messages if "events" in m]
    devices = {device for m in carried for device, _event in m["events"]}
    assert devices == {watched}  # nobody watches the other device: not published
    assert sum(len(m["events"]) for m in carried) == 20
    assert len(carried) <= 4  # batched: 20 events in a few NOTIFYs, not 20


async def test_after_its_link_to_the_database_broke_an_instance_tells_its_browsers_to_reload(
    start_act, link_factory: LinkFactory, store_url: str  # type: ignore[no-untyped-def]
) -> None:
    a, b = await start_act(), await start_act()
    device = imei(823)
    link, encoder = await online(a, link_factory, device)
    await claim(a.http, a, device, ALICE)
    b.http.cookies = a.http.cookies
    assert b.gateway.live is not None and b.gateway.live.bus is not None
    bus = b.gateway.live.bus
    async with live(b.http, device) as on_b:
        assert (await on_b.next())[0] == "ready"
        pid = bus.server_pid
        dsn = make_url(store_url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid) is True
        finally:
            await admin.close()
        _before, reload = await on_b.until("reload", timeout=15)
        assert reload == {"reason": "events may have been missed: reload what you show"}
        assert bus.up and bus.server_pid != pid
        metrics = (await b.http.get("/metrics")).text
        assert "gateway_live_bus_up 1.0" in metrics
        # A learns again what B watches (B announced it when it came back).
        assert a.gateway.live is not None and a.gateway.live.bus is not None
        a_bus = a.gateway.live.bus
        await until(lambda: a_bus.wants(device))
        await link.send(encoder.position(Fix(at(30), 47.0, 8.0)))
        _before, position = await on_b.until("position")
        assert datetime.fromisoformat(position["fix_time"]) == at(30)
