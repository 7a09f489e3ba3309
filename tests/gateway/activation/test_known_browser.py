"""Attack pass: anybody who knows an owner's e-mail address could start five sign-ins for it
and so use up its codes for 15 minutes (20 a day: a whole day), locking the owner out of
signing in. A browser that signed in as the owner before keeps a mark (cookie `gw_known`, an
HMAC of the contact under the server key); its sign-in codes are counted apart from the ones
anybody can ask for. The answer of a sign-in is the same with or without the mark (rule 12)."""

from __future__ import annotations

from gateway.store.database import Database

from .conftest import StartAct, imei
from .test_attacks import VICTIM, claimed


def sign_in_codes(act, to: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [m["code"] for m in act.messages() if m["to"] == to and m["purpose"] == "sign_in"]


async def test_strangers_filling_the_caps_do_not_lock_out_the_owners_own_browser(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"max_codes_per_destination_15min": 3})
    await claimed(act, db, imei(3300), VICTIM)  # the owner's browser (act.http) signed in
    mark = act.http.cookies.get("gw_known")
    assert mark and len(mark) == 40
    signed_out = await act.http.delete("/api/v1/sessions/current")  # the mark stays
    assert signed_out.status_code == 204 and signed_out.content == b""
    assert act.http.cookies.get("gw_session") is None
    assert act.http.cookies.get("gw_known") == mark

    async with act.client() as stranger:
        answers = [(await stranger.post("/api/v1/sessions", json={"contact": VICTIM})).json()
                   for _ in range(6)]
        await act.drain()
        # Capped at 3 codes to the contact (the claim's and two sign-ins): the rest never sent.
        assert len(sign_in_codes(act, VICTIM)) == 2
        sent = len(sign_in_codes(act, VICTIM))
    async with act.client() as forger:
        forger.headers["Cookie"] = "gw_known=" + "0" * 40
        forged = await forger.post("/api/v1/sessions", json={"contact": VICTIM})
        await act.drain()
        assert len(sign_in_codes(act, VICTIM)) == sent  # a forged mark counts for nothing

    started = await act.http.post("/api/v1/sessions", json={"contact": VICTIM})
    assert started.status_code == 202
    assert set(started.json()) == set(answers[0]) == set(forged.json())  # the same answer
    code = await act.code_for(VICTIM, "sign_in", count=sent + 1)
    verified = await act.http.post(f"/api/v1/sessions/{started.json()['session_id']}/verify",
                                   json={"token": started.json()["token"], "code": code})
    assert verified.status_code == 200, verified.text


async def test_the_mark_is_only_for_the_contact_that_signed_in(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"max_codes_per_destination_15min": 1})
    other = "other-owner@example.org"
    await claimed(act, db, imei(3301), VICTIM)
    await claimed(act, db, imei(3302), other)  # act.http's mark is now the other owner's
    async with act.client() as stranger:
        await stranger.post("/api/v1/sessions", json={"contact": VICTIM})
    await act.drain()
    before = len(sign_in_codes(act, VICTIM))
    await act.http.post("/api/v1/sessions", json={"contact": VICTIM})
    await act.drain()
    assert len(sign_in_codes(act, VICTIM)) == before  # capped: not VICTIM's browser
