"""Attack pass: guessing an owner's authenticator-app code. The account cap (rule 8) is a
window: 20 wrong codes an hour, for ever, from any number of addresses; with three time steps
accepted, about 1.4 in 1000 a day of getting in. Wrong app codes are now also counted
consecutively (NIST 63B 5.2.2, as rule 7 does per device): at `totp_lock_failures` the app is
refused until the owner proves their contact again."""

from __future__ import annotations

import asyncio
import time

import httpx
import pyotp

from gateway.store.database import Database

from .conftest import StartAct, imei
from .test_attacks import VICTIM, claimed


async def sign_in_with_app(client: httpx.AsyncClient, code: str) -> int:
    started = (await client.post("/api/v1/sessions",
                                 json={"contact": VICTIM, "method": "totp"})).json()
    return (await client.post(f"/api/v1/sessions/{started['session_id']}/verify",
                              json={"token": started["token"], "code": code})).status_code


async def test_app_code_guesses_are_bounded_across_windows(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"failure_window_s": 0.5, "totp_lock_failures": 10})
    await claimed(act, db, imei(3000), VICTIM)
    enrol = (await act.http.post("/api/v1/account/totp", json={})).json()
    totp = pyotp.TOTP(pyotp.parse_uri(enrol["uri"]).secret)
    assert (await act.http.post("/api/v1/account/totp/confirm",
                                json={"code": totp.at(time.time() - 30)})).status_code == 200
    before = act.comparisons
    async with act.client() as evil:
        for _ in range(6):  # 30 wrong codes, the account cap's window passing in between
            wrong = f"{(int(totp.now()) + 500_000) % 1_000_000:06d}"
            started = (await evil.post("/api/v1/sessions",
                                       json={"contact": VICTIM, "method": "totp"})).json()
            for _ in range(5):
                answer = await evil.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                         json={"token": started["token"], "code": wrong})
                assert answer.status_code == 400
            await asyncio.sleep(0.6)
        assert act.comparisons - before == 10
        assert await sign_in_with_app(evil, totp.now()) == 400  # even the right one, now

    # A code sent to the owner's own contact still signs them in, and the app works again.
    async with act.client() as owner:
        started = (await owner.post("/api/v1/sessions", json={"contact": VICTIM})).json()
        code = await act.code_for(VICTIM, "sign_in")
        assert (await owner.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                 json={"token": started["token"], "code": code})
                ).status_code == 200
        assert await sign_in_with_app(owner, totp.at(time.time() + 30)) == 200
