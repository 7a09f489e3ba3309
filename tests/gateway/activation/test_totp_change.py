"""Attack pass: a signed-in session alone (a browser left open, a stolen cookie) could replace
the owner's authenticator app with the attacker's, or turn it off, and so keep a second factor
for sign-in, release and engine stop of its own. Replacing or turning off the app now takes a
current code from it, used once (rule 26); wrong ones count toward `totp_lock_failures`."""

from __future__ import annotations

import re
import time

import pyotp

from gateway.store.database import Database

from .conftest import Act, imei
from .test_attacks import VICTIM, claimed


async def enrolled(act: Act, db: Database, device: str) -> pyotp.TOTP:
    await claimed(act, db, device, VICTIM)
    enrol = (await act.http.post("/api/v1/account/totp", json={})).json()
    totp = pyotp.TOTP(pyotp.parse_uri(enrol["uri"]).secret)
    assert (await act.http.post("/api/v1/account/totp/confirm",
                                json={"code": totp.at(time.time() - 30)})).status_code == 200
    return totp


def wrong(totp: pyotp.TOTP) -> str:
    return f"{(int(totp.now()) + 500_000) % 1_000_000:06d}"


async def test_a_session_alone_cannot_replace_or_turn_off_the_app(
    act: Act, db: Database
) -> None:
    totp = await enrolled(act, db, imei(3100))
    # The attacker holds the session (act.http), not the phone.
    assert (await act.http.post("/api/v1/account/totp", json={})).status_code == 400
    assert (await act.http.post("/api/v1/account/totp",
                                json={"code": wrong(totp)})).status_code == 400
    assert (await act.http.post("/api/v1/account/totp/disable",
                                json={"code": wrong(totp)})).status_code == 400
    assert (await act.http.get("/api/v1/account")).json()["totp_enabled"] is True
    account = await act.http.get("/account")
    found = re.search(r'name="csrf" value="([^"]+)"', account.text)
    assert found is not None and 'name="code"' in account.text
    for data in ({"csrf": found.group(1)}, {"csrf": found.group(1), "code": wrong(totp)}):
        page = await act.http.post("/account/totp/disable", data=data)
        assert page.status_code == 400 and "did not match" in page.text
    page = await act.http.post("/account/totp", data={"csrf": found.group(1)})
    assert page.status_code == 400 and "turn it off first" in page.text
    assert (await act.http.get("/api/v1/account")).json()["totp_enabled"] is True

    # The owner, with the phone: a current code turns it off; the same code never works twice.
    code = totp.now()
    assert (await act.http.post("/api/v1/account/totp/disable",
                                json={"code": code})).status_code == 200
    assert (await act.http.get("/api/v1/account")).json()["totp_enabled"] is False
    # The owner is told of each change of their second factor.
    await act.drain()
    told = [m["purpose"] for m in act.messages() if m["to"] == VICTIM]
    assert told.count("totp_on_notice") == 1 and told.count("totp_off_notice") == 1


async def test_replacing_the_app_takes_a_current_code_used_once(act: Act, db: Database) -> None:
    totp = await enrolled(act, db, imei(3101))
    code = totp.now()
    replaced = await act.http.post("/api/v1/account/totp", json={"code": code})
    assert replaced.status_code == 200, replaced.text
    new = pyotp.TOTP(pyotp.parse_uri(replaced.json()["uri"]).secret)
    assert new.secret != totp.secret
    # The same code again (a replay) is refused.
    assert (await act.http.post("/api/v1/account/totp",
                                json={"code": code})).status_code == 400
    assert (await act.http.post("/api/v1/account/totp/confirm",
                                json={"code": new.now()})).status_code == 200
    assert (await act.http.get("/api/v1/account")).json()["totp_enabled"] is True
