"""Devices that do not name themselves by their IMEI on the wire (a JT/T 808 unit's terminal
phone): a claim by the IMEI printed on the unit finds them through the pair an installer
recorded (`gateway provision IMEI --wire-id ID`), never through the IMEI their login reported
(nobody authenticates it; the admin list shows it so that an installer can record the pair)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from gateway.store.database import Database
from gateway.store.queries import current_binding
from protocols import Fix, get_codec
from protocols.jt808.device import Jt808Device

from .conftest import Act, imei, verify

OWNER = "owner@example.com"


async def claim_with_key(act: Act, device_imei: str, **provisioning: str) -> dict:
    answer = await act.admin.post("/api/v1/admin/devices", json={
        "imei": device_imei, "claim_key": "generate", **provisioning})
    assert answer.status_code == 201, answer.text
    key = answer.json()["claim_key"]
    started = (await act.http.post("/api/v1/activations", json={
        "imei": device_imei, "contact": OWNER, "claim_key": key})).json()
    verified = await verify(act.http, started, await act.code_for(OWNER))
    assert verified.status_code == 200, verified.text
    return dict(started)


async def connect(act: Act, link_factory, unit: Jt808Device):  # type: ignore[no-untyped-def]
    """The unit registers over TCP (answered at once) and its registration is stored."""
    assert act.gateway.tcp is not None
    link = await link_factory(act.gateway.tcp.ports["jt808"])
    await link.send(unit.login())
    await asyncio.wait_for(link.reader.read(1024), 10)  # 0x8100
    await asyncio.sleep(0.1)
    return link


async def owner_sees_a_position(act: Act, device_imei: str, link, unit) -> None:  # type: ignore[no-untyped-def]
    await link.send(unit.position(Fix(datetime.now(UTC).replace(microsecond=0), 31.2, 121.5)))
    for _ in range(300):
        answer = await act.http.get(f"/api/v1/devices/{device_imei}/positions")
        if answer.status_code == 200 and answer.json()["positions"]:
            return
        await asyncio.sleep(0.03)
    raise AssertionError(f"no position for the owner: {answer.text}")


async def test_the_imei_a_unit_reports_is_shown_to_admins_but_claims_need_the_recorded_pair(
    act: Act, db: Database, link_factory
) -> None:
    device_imei = imei(2400)
    unit = Jt808Device(device_imei, version=2019, phone="13912345678")
    assert unit.device_id != device_imei
    link = await connect(act, link_factory, unit)
    listed = (await act.admin.get("/api/v1/admin/devices")).json()["devices"]
    [row] = [d for d in listed if d["imei"] == unit.device_id]
    assert row["reported_imei"] == device_imei

    # The installer checks the label and records the pair: the owner's claim finds the unit.
    await claim_with_key(act, device_imei, wire_id=unit.device_id)
    binding = await current_binding(db, unit.device_id)
    assert binding is not None and binding.contact == OWNER
    await owner_sees_a_position(act, device_imei, link, unit)


async def test_without_the_recorded_pair_the_reported_imei_reaches_no_unit(
    act: Act, db: Database, link_factory
) -> None:
    device_imei = imei(2405)
    unit = Jt808Device(device_imei, version=2019, phone="13912340000")
    await connect(act, link_factory, unit)
    await claim_with_key(act, device_imei)
    assert await current_binding(db, unit.device_id) is None


@pytest.mark.parametrize("order", ["provisioned_first", "connected_first"])
async def test_a_unit_that_does_not_report_its_imei_is_found_through_the_recorded_pair(
    act: Act, db: Database, link_factory, order: str
) -> None:
    device_imei = imei(2401 if order == "provisioned_first" else 2402)
    phone = "013912345678" if order == "provisioned_first" else "013987654321"
    unit = Jt808Device(device_imei, version=2013, phone=phone)
    assert unit.device_id == phone  # its 2013 registration carries 7 digits, not the IMEI
    if order == "provisioned_first":
        recorded = await act.admin.post("/api/v1/admin/devices", json={
            "imei": device_imei, "wire_id": phone})
        assert recorded.status_code == 201, recorded.text
    link = await connect(act, link_factory, unit)
    await claim_with_key(act, device_imei, wire_id=phone)
    binding = await current_binding(db, phone)
    assert binding is not None and binding.contact == OWNER
    await owner_sees_a_position(act, device_imei, link, unit)


async def test_another_imei_does_not_reach_a_recorded_unit(act: Act, db: Database,
                                                           link_factory) -> None:
    unit = Jt808Device(imei(2403), version=2013, phone="013911112222")
    await connect(act, link_factory, unit)
    await act.admin.post("/api/v1/admin/devices", json={"imei": imei(2403), "wire_id":
                                                        "013911112222"})
    await claim_with_key(act, imei(2404))  # a different IMEI, its own key
    assert await current_binding(db, "013911112222") is None
    assert get_codec("jt808").name == "jt808"


async def test_a_recorded_pair_wins_over_a_row_of_the_exact_imei(
    act: Act, db: Database, link_factory
) -> None:
    """An attacker's gps103 login in the IMEI of a JT/T 808 unit creates a row of that exact
    id; the installer recorded the unit's pair, so the owner's claim still binds the unit."""
    device_imei = imei(2406)
    unit = Jt808Device(device_imei, version=2013, phone="013955556666")
    recorded = await act.admin.post("/api/v1/admin/devices", json={
        "imei": device_imei, "wire_id": unit.device_id})
    assert recorded.status_code == 201, recorded.text
    link = await connect(act, link_factory, unit)
    assert act.gateway.tcp is not None
    spoof = await link_factory(act.gateway.tcp.ports["gps103"])
    await spoof.send(get_codec("gps103").device(device_imei).login())
    await asyncio.wait_for(spoof.reader.readexactly(4), 10)  # LOAD
    for _ in range(300):
        listed = (await act.admin.get("/api/v1/admin/devices")).json()["devices"]
        if any(d["imei"] == device_imei for d in listed):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the spoofed row was never stored")
    await claim_with_key(act, device_imei, wire_id=unit.device_id)
    binding = await current_binding(db, unit.device_id)
    assert binding is not None and binding.contact == OWNER
    assert await current_binding(db, device_imei) is None
    await owner_sees_a_position(act, device_imei, link, unit)
