"""Rule 23: where the device signal is allowed, an SOS proves possession only on the device's
established connection, and a second connection naming the IMEI voids it.

The attack (issue 12): anyone who knows an IMEI opens a TCP connection to the gateway and sends
an SOS frame in the device's name, while the real tracker is online on its own connection or
switched off. Each case below runs against the real gateway over real sockets.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from gateway.store.database import Database
from gateway.store.queries import current_binding
from protocols import get_codec
from protocols.codec import Fix

from .conftest import Act, StartAct, imei, seen, start_claim, status_of, verify

CLAIMANT = "owner@example.com"
MALLORY = "mallory@example.net"


@pytest.fixture
async def act(start_act: StartAct) -> Act:
    return await start_act(activation={"allow_device_signal": True})


def sos(device: str) -> bytes:
    fix = Fix(datetime.now(UTC).replace(microsecond=0), 52.5, 13.4)
    return get_codec("gps103").device(device).sos(fix)


async def tracker(act: Act, link_factory, device: str):  # type: ignore[no-untyped-def]
    """A connection that logs the device in (LOAD) and whose login is stored."""
    link = await link_factory(act.gateway.tcp.ports["gps103"])
    await link.send(get_codec("gps103").device(device).login())
    await link.expect(b"LOAD")
    await asyncio.sleep(0.05)  # the login's commit (and so its link record) precedes the claim
    return link


async def refusals(db: Database) -> list[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text(
            "SELECT detail FROM audit_log WHERE action = 'signal' "
            "AND outcome = 'device_signal_conflict' ORDER BY id"))
        return [str(row[0]) for row in rows]


def refused(act: Act, reason: str) -> float:
    value = act.gateway.metrics.registry.get_sample_value(
        "gateway_activation_signal_refused_total", {"reason": reason})
    return value or 0.0


async def test_the_trackers_own_sos_on_its_established_connection_sends_the_code(
    act: Act, db: Database, link_factory
) -> None:
    device = imei(2300)
    link = await tracker(act, link_factory, device)
    started = await start_claim(act.http, device, CLAIMANT)
    assert started["status"] == "awaiting_device_signal"
    await link.send(sos(device))
    code = await act.code_for(CLAIMANT)
    assert (await verify(act.http, started, code)).status_code == 200
    assert (await current_binding(db, device)) is not None


@pytest.mark.parametrize("real_tracker", ["online", "offline"])
async def test_an_sos_on_a_second_connection_gets_no_code(
    act: Act, db: Database, link_factory, real_tracker: str
) -> None:
    """The spoofed SOS: the impostor's connection opened after the claim started."""
    device = imei(2301 if real_tracker == "online" else 2302)
    if real_tracker == "online":
        real = await tracker(act, link_factory, device)
    else:
        await seen(db, device)
    started = await start_claim(act.http, device, MALLORY)
    impostor = await link_factory(act.gateway.tcp.ports["gps103"])
    await impostor.send(sos(device))
    await impostor.expect(f"**,imei:{device},E;".encode())  # stored and acknowledged as data
    await act.drain()
    await asyncio.sleep(0.2)
    assert act.messages() == []
    assert (await status_of(act.http, started))["status"] == "awaiting_device_signal"
    assert any("link_newer_than_claim" in detail for detail in await refusals(db))
    assert refused(act, "link_newer_than_claim") == 1
    if real_tracker == "online":
        # The real tracker's own press now finds a second connection in the window: void too.
        await real.send(sos(device))
        await act.drain()
        await asyncio.sleep(0.2)
        assert act.messages() == []
        assert refused(act, "second_link") == 1
    for guess in ("000000", "123456"):
        assert (await verify(act.http, started, guess)).status_code == 400
    assert await current_binding(db, device) is None


async def test_a_connection_opened_before_the_claim_still_voids_the_signal(
    act: Act, db: Database, link_factory
) -> None:
    """An impostor who connected and named the device before the claim, next to the real
    tracker: two established connections, so neither press proves anything."""
    device = imei(2303)
    real = await tracker(act, link_factory, device)
    impostor = await tracker(act, link_factory, device)
    started = await start_claim(act.http, device, MALLORY)
    for link in (impostor, real):
        await link.send(sos(device))
    await act.drain()
    await asyncio.sleep(0.3)
    assert act.messages() == []
    assert refused(act, "second_link") == 2
    assert (await status_of(act.http, started))["status"] == "awaiting_device_signal"


async def test_a_tracker_that_reconnected_within_the_window_is_not_taken_on_its_word(
    act: Act, db: Database, link_factory
) -> None:
    """A previous connection of the device inside the window counts as a second one: the
    gateway cannot tell it from an impostor's (docs/activation.md: wait out the window)."""
    device = imei(2304)
    first = await tracker(act, link_factory, device)
    await first.close()
    link = await tracker(act, link_factory, device)
    await start_claim(act.http, device, CLAIMANT)
    await link.send(sos(device))
    await act.drain()
    await asyncio.sleep(0.3)
    assert act.messages() == []
    assert refused(act, "second_link") == 1


async def test_an_sos_through_mqtt_counts_only_where_the_broker_authenticates_devices(
    act: Act, db: Database
) -> None:
    """Anyone may publish on an anonymous broker: an SOS that came through MQTT is no proof
    unless activation.signal_over_mqtt says the broker authenticates each device."""
    device = imei(2305)
    await seen(db, device)
    started = await start_claim(act.http, device, CLAIMANT)
    await act.gateway.activation.device_signal(device, "gps103", datetime.now(UTC),
                                               link="mqtt-link", transport="mqtt")
    await act.drain()
    assert act.messages() == []
    assert refused(act, "mqtt_not_trusted") == 1
    assert (await status_of(act.http, started))["status"] == "awaiting_device_signal"
