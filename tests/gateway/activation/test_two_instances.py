"""Two gateway instances on one PostgreSQL database share every counter and lock of the
activation engine: an attacker who spreads guesses, claims and replays over the instances
behind a load balancer gets no more than from one. (Both run with the tests' server key; that
instances share the database's key by default is `test_several_instances.py`'s, with HAProxy.)"""

from __future__ import annotations

import time

import pyotp
import pytest

from gateway.store.database import Database

from .conftest import Act, StartAct, imei, seen, start_claim, verify, wrong
from .test_attacks import VICTIM, claimed, provision

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

LIMITS = {"max_failures_per_account": 1000, "max_failures_per_client": 1000,
          "max_codes_per_destination_15min": 1000, "max_codes_per_destination_day": 1000}


def codes(acts: tuple[Act, Act], to: str, purpose: str = "activation") -> list[str]:
    return [m["code"] for act in acts for m in act.messages()
            if m["to"] == to and m["purpose"] == purpose]


async def test_wrong_codes_on_both_instances_lock_the_device_once(
    start_act: StartAct, db: Database
) -> None:
    a = await start_act(activation={**LIMITS, "device_lock_failures": 10})
    b = await start_act(activation={**LIMITS, "device_lock_failures": 10})
    device = imei(3200)
    await seen(db, device)
    await provision(a, device, contact=VICTIM)
    for n, act in enumerate((a, b, a, b, a)):  # two wrong codes per claim, each instance
        started = await start_claim(act.http, device, VICTIM)
        await act.drain()
        code = codes((a, b), VICTIM)[-1]
        for checker in (a, b):
            assert (await verify(checker.http, started, wrong(code))).status_code == 400
        assert len(codes((a, b), VICTIM)) == n + 1
    for act in (a, b):  # ten failures in all: locked, whichever instance looks
        locked = (await act.admin.get("/api/v1/admin/devices",
                                      params={"state": "locked"})).json()["devices"]
        assert [d["imei"] for d in locked] == [device]
    sent = len(codes((a, b), VICTIM))
    for act in (b, a):  # a claim answers as usual on both, and no code is sent
        assert (await start_claim(act.http, device, VICTIM))["status"] == "pending"
        await act.drain()
    assert len(codes((a, b), VICTIM)) == sent


async def test_the_destination_cap_counts_codes_sent_by_both_instances(
    start_act: StartAct, db: Database
) -> None:
    caps = {"max_codes_per_destination_15min": 3, "device_lock_failures": 1000}
    a = await start_act(activation=caps)
    b = await start_act(activation=caps)
    device = imei(3201)
    await seen(db, device)
    await provision(a, device, contact=VICTIM)
    for act in (a, b, a, b, a, b):
        await start_claim(act.http, device, f"claimant-{time.monotonic_ns()}@example.net")
        await act.drain()
    assert len(codes((a, b), VICTIM)) == 3


async def test_an_app_code_used_on_one_instance_is_refused_on_the_other(
    start_act: StartAct, db: Database
) -> None:
    a = await start_act()
    b = await start_act()
    await claimed(a, db, imei(3202), VICTIM)
    enrol = (await a.http.post("/api/v1/account/totp", json={})).json()
    totp = pyotp.TOTP(pyotp.parse_uri(enrol["uri"]).secret)
    assert (await a.http.post("/api/v1/account/totp/confirm",
                              json={"code": totp.at(time.time() - 30)})).status_code == 200
    code = totp.now()
    results = []
    for act in (a, b):
        async with act.client() as browser:
            started = (await browser.post("/api/v1/sessions",
                                          json={"contact": VICTIM, "method": "totp"})).json()
            results.append((await browser.post(
                f"/api/v1/sessions/{started['session_id']}/verify",
                json={"token": started["token"], "code": code})).status_code)
    assert results == [200, 400]
