"""A claim proven by the tracker itself: its SOS frame over its own TCP connection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.store.database import Database
from gateway.store.queries import current_binding
from protocols import get_codec
from protocols.codec import Fix

from .conftest import Act, StartAct, imei, start_claim, status_of, verify

OWNER = "owner@example.com"


async def wait_status(act: Act, started: dict, status: str) -> dict:
    for _ in range(500):
        view = await status_of(act.http, started)
        if view["status"] == status:
            return view
        await asyncio.sleep(0.02)
    raise AssertionError(f"status stayed {view['status']}, expected {status}")


@pytest.fixture
async def act(start_act: StartAct) -> Act:
    """Device signals are opt-in (activation.allow_device_signal)."""
    return await start_act(activation={"allow_device_signal": True})


@pytest.mark.parametrize("protocol", ["gps103", "tk103", "gl300"])
async def test_claim_by_pressing_sos(act: Act, db: Database, link_factory, protocol: str) -> None:
    device = imei(300 + ["gps103", "tk103", "gl300"].index(protocol))
    encoder = get_codec(protocol).device(device)
    link = await link_factory(act.gateway.tcp.ports[protocol])
    await link.send(encoder.login())
    started = await start_claim(act.http, device, OWNER)
    assert started["status"] == "awaiting_device_signal"
    fix = Fix(datetime.now(UTC).replace(microsecond=0), 48.85, 2.35)
    await link.send(encoder.sos(fix))
    view = await wait_status(act, started, "pending")
    assert view["hint"] == "Code sent to o***@e***.com."
    code = await act.code_for(OWNER)
    answer = await verify(act.http, started, code)
    assert answer.status_code == 200, answer.text
    stored_id = getattr(encoder, "device_id", device)
    binding = await current_binding(db, stored_id)
    assert binding is not None and binding.contact == OWNER
    # Positions are now kept for the owner, under the device's 15-digit IMEI.
    await link.send(encoder.position(Fix(datetime.now(UTC).replace(microsecond=0), 48.86, 2.36)))
    for _ in range(500):
        positions = (await act.http.get(f"/api/v1/devices/{device}/positions")).json()
        if positions.get("positions"):
            break
        await asyncio.sleep(0.02)
    assert positions["positions"][-1]["lat"] == pytest.approx(48.86, abs=1e-4)
    devices = (await act.http.get("/api/v1/devices")).json()["devices"]
    assert [(d["protocol"], d["online"], d["state"]) for d in devices] == [
        (protocol, True, "claimed")]


async def test_another_devices_sos_does_not_count(act: Act, link_factory) -> None:
    target, other = imei(310), imei(311)
    started = await start_claim(act.http, target, OWNER)
    encoder = get_codec("gps103").device(other)
    link = await link_factory(act.gateway.tcp.ports["gps103"])
    await link.send(encoder.login())
    await link.expect(b"LOAD")
    await link.send(encoder.sos(Fix(datetime.now(UTC).replace(microsecond=0), 1.0, 1.0)))
    await link.expect(f"**,imei:{other},E;".encode())
    await act.drain()
    assert (await status_of(act.http, started))["status"] == "awaiting_device_signal"
    assert act.messages() == []
