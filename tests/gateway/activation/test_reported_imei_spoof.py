"""Attack pass: the IMEI a login reports is wire data nobody authenticates. An attacker who
holds the claim key of an IMEI of their own (one device bought, never connected) must not be
able to take someone else's unclaimed device by making its row "report" that IMEI, with a
tk103 BP05 login sent in the victim's id from another connection: neither when the victim
names itself by its IMEI (gps103) nor when it names itself by another id (a fixed-layout
tk103's 12 digits)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store.database import Database
from gateway.store.queries import current_binding
from protocols.tk103.device import Tk103Device

from .conftest import Act, DeviceLink, establish, verify
from .conftest import imei as make_imei

ATTACKER = "attacker@example.com"


def spoofed_login(victim_id: str, reported: str) -> bytes:
    """A fixed-layout tk103 BP05 login that names the device `victim_id` and reports the IMEI
    `reported` (a real unit's login with its id and IMEI swapped)."""
    genuine = Tk103Device(reported).login()  # (<12-digit id>BP05<000 + id><fix>)
    fix = genuine[1 + 12 + 4 + 15:]
    return b"(" + victim_id.encode() + b"BP05" + reported.encode() + fix


@pytest.mark.parametrize("victim_protocol", ["gps103", "tk103"])
async def test_a_spoofed_login_cannot_hand_a_victims_device_to_another_imeis_key(
    act: Act, db: Database, victim_protocol: str
) -> None:
    n = 2600 if victim_protocol == "gps103" else 2610
    own = make_imei(n + 1)  # the attacker's own device: its label's claim key, never connected
    if victim_protocol == "gps103":  # connected, named by its IMEI, not yet claimed
        victim = make_imei(n)
        link = await establish(act, victim)
    else:  # a fixed-layout tk103 unit, connected, named by the last 12 digits of its IMEI
        unit = Tk103Device(make_imei(n))
        victim = unit.device_id
        assert act.gateway.tcp is not None
        link = await DeviceLink.open(act.gateway.tcp.ports["tk103"])
        await link.send(unit.login())
        await link.expect(b"(" + victim.encode() + b"AP05)")
    provisioned = await act.admin.post("/api/v1/admin/devices",
                                       json={"imei": own, "claim_key": "generate"})
    assert provisioned.status_code == 201, provisioned.text
    key = provisioned.json()["claim_key"]

    assert act.gateway.tcp is not None
    spoof = await DeviceLink.open(act.gateway.tcp.ports["tk103"])
    await spoof.send(spoofed_login(victim, own))
    await spoof.expect(b"(" + victim.encode() + b"AP05)")
    for _ in range(300):  # the spoofed login is stored (answered at once, committed after)
        frames = (await act.admin.get(f"/api/v1/admin/devices/{victim}/frames")).json()
        if any(f"BP05{own}" in f["text"] for f in frames["frames"]):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the spoofed login was never stored")
    listed = (await act.admin.get("/api/v1/admin/devices")).json()["devices"]
    reported = next(d["reported_imei"] for d in listed if d["imei"] == victim)
    # A device named by its IMEI takes no other; the tk103 row records it (shown to admins).
    assert reported == (None if victim_protocol == "gps103" else own)

    started = (await act.http.post("/api/v1/activations", json={
        "imei": own, "contact": ATTACKER, "claim_key": key})).json()
    answer = await verify(act.http, started, await act.code_for(ATTACKER))
    assert answer.status_code == 200, answer.text  # the attacker's own IMEI is theirs to claim

    binding = await current_binding(db, victim)
    assert binding is None, f"the victim's tracker was bound to {binding.contact}"
    devices = (await act.http.get("/api/v1/devices")).json()["devices"]
    assert [d["imei"] for d in devices] != [victim]
    await spoof.close()
    await link.close()
