"""Attack pass: sign-ins anyone can start for an owner's contact (the public form needs only
the contact) must not use up the codes that contact may receive for what the signed-in owner
does to their own device: confirming an engine resume (or stop, or a release) after five
strangers' sign-ins in a quarter of an hour."""

from __future__ import annotations

import pytest

from gateway.store.database import Database

from .conftest import Act, imei, seen, start_claim, verify

OWNER = "owner@example.com"


async def signed_in_owner(act: Act, db: Database, device: str) -> None:
    """`act.http` is the owner's browser: it claimed `device` (a code to the contact of record)
    and is signed in by it."""
    await seen(db, device)
    provisioned = await act.admin.post("/api/v1/admin/devices",
                                       json={"imei": device, "contact": OWNER})
    assert provisioned.status_code == 201, provisioned.text
    started = await start_claim(act.http, device, OWNER)
    assert (await verify(act.http, started, await act.code_for(OWNER))).status_code == 200


def codes_to(act: Act, purpose: str) -> list[str]:
    return [m["code"] for m in act.messages() if m["to"] == OWNER and m["purpose"] == purpose]


@pytest.mark.parametrize("purpose", ["engine_resume", "release"])
async def test_strangers_sign_ins_never_stop_the_owners_confirmation_code(
    act: Act, db: Database, purpose: str
) -> None:
    device = imei(2900 if purpose == "engine_resume" else 2901)
    await signed_in_owner(act, db, device)
    async with act.client() as stranger:  # no session: the public sign-in form
        for _ in range(5):
            started = await stranger.post("/api/v1/sessions", json={"contact": OWNER})
            assert started.status_code == 202, started.text
    await act.drain()

    if purpose == "release":
        asked = await act.http.post(f"/api/v1/devices/{device}/release", json={})
    else:
        asked = await act.http.post(f"/api/v1/devices/{device}/commands/confirmations",
                                    json={"type": purpose})
    assert asked.status_code == 202, asked.text
    await act.drain()
    assert len(codes_to(act, purpose)) == 1, act.messages()
