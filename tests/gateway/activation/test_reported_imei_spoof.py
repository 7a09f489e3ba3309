"""Attack pass: the IMEI a login reports is wire data nobody authenticates. An attacker who
holds the claim key of an IMEI of their own (one device bought, never connected) must not be
able to take someone else's unclaimed device by making its row "report" that IMEI, with a
tk103 BP05 login sent in the victim's id from another connection."""

from __future__ import annotations

import asyncio

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


async def test_a_spoofed_login_cannot_hand_a_victims_device_to_another_imeis_key(
    act: Act, db: Database
) -> None:
    victim = make_imei(2600)  # a gps103 tracker, connected, not yet claimed by its buyer
    own = make_imei(2601)  # the attacker's own device: its label's claim key, never connected
    link = await establish(act, victim)
    provisioned = await act.admin.post("/api/v1/admin/devices",
                                       json={"imei": own, "claim_key": "generate"})
    assert provisioned.status_code == 201, provisioned.text
    key = provisioned.json()["claim_key"]

    assert act.gateway.tcp is not None
    spoof = await DeviceLink.open(act.gateway.tcp.ports["tk103"])
    await spoof.send(spoofed_login(victim, own))
    await spoof.expect(b"(" + victim.encode() + b"AP05)")
    await asyncio.sleep(0.1)  # stored

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
