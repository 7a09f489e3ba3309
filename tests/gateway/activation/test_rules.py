"""The 20 rules of ACTIVATION.md, each against the real gateway and database (both dialects).

Every test names its rule. Codes are read from the outbox, as a claimant reads their inbox.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from gateway.activation import codes
from gateway.store.database import Database
from gateway.store.models import Challenge
from gateway.store.queries import current_binding

from .conftest import (
    Act,
    StartAct,
    establish,
    imei,
    press_sos,
    seen,
    send_position,
    start_claim,
    status_of,
    verify,
    wrong,
)

ALICE = "alice@example.com"
BOB = "bob@example.org"


async def provisioned(act: Act, device: str, contact: str = ALICE) -> None:
    response = await act.admin.post("/api/v1/admin/devices",
                                    json={"imei": device, "contact": contact})
    assert response.status_code == 201, response.text


async def claimed(act: Act, db: Database, device: str, contact: str = ALICE) -> None:
    """`device` seen, provisioned for `contact`, and claimed by them."""
    await seen(db, device)
    await provisioned(act, device, contact)
    started = await start_claim(act.http, device, contact)
    response = await verify(act.http, started, await act.code_for(contact))
    assert response.status_code == 200, response.text


# Rule 1 ---------------------------------------------------------------------------------------

def test_rule01_codes_are_random_digits_with_leading_zeros() -> None:
    drawn = {codes.new_code(6) for _ in range(2000)}
    assert all(len(code) == 6 and code.isdigit() and code.isascii() for code in drawn)
    assert len(drawn) > 1900  # 10**6 values: 2000 draws rarely collide
    assert any(code.startswith("0") for code in drawn)
    assert all(len(codes.new_code(8)) == 8 for _ in range(100))


async def test_rule01_code_length_default_6_and_8_configurable(
    start_act: StartAct, db: Database
) -> None:
    for digits in (6, 8):
        act = await start_act(activation={"code_digits": digits})
        device = imei(digits)
        await seen(db, device)
        await provisioned(act, device, f"d{digits}@example.com")
        await start_claim(act.http, device, "x@example.com")
        code = await act.code_for(f"d{digits}@example.com")
        assert len(code) == digits and code.isdigit()


# Rule 2 ---------------------------------------------------------------------------------------

async def test_rule02_a_code_is_rejected_after_its_validity(act: Act, db: Database) -> None:
    device = imei(2)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE)
    assert (await status_of(act.http, started))["expires_at"] <= (
        datetime.now(UTC) + timedelta(minutes=10, seconds=5)).isoformat()
    # Ten minutes pass.
    async with db.begin() as conn:
        await conn.execute(update(Challenge).where(Challenge.id == started["activation_id"])
                           .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert (await verify(act.http, started, code)).status_code == 400
    assert (await status_of(act.http, started))["status"] == "expired"


# Rule 3 ---------------------------------------------------------------------------------------

async def test_rule03_a_code_works_once(act: Act, db: Database) -> None:
    device = imei(3)
    await seen(db, device)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE)
    assert (await verify(act.http, started, code)).status_code == 200
    binding = await current_binding(db, device)
    again = await verify(act.http, started, code)
    assert again.status_code == 400
    assert await current_binding(db, device) == binding
    assert (await status_of(act.http, started))["status"] == "approved"


# Rule 4 ---------------------------------------------------------------------------------------

async def test_rule04_five_wrong_codes_end_the_challenge(act: Act, db: Database) -> None:
    device = imei(4)
    await seen(db, device)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE)
    for left in (4, 3, 2, 1, 0):
        assert (await verify(act.http, started, wrong(code))).status_code == 400
        assert (await status_of(act.http, started))["attempts_left"] == left
    assert (await status_of(act.http, started))["status"] == "max_attempts_reached"
    assert (await verify(act.http, started, code)).status_code == 400
    assert await current_binding(db, device) is None


# Rule 5 ---------------------------------------------------------------------------------------

async def test_rule05_fifty_concurrent_wrong_guesses_make_five_comparisons(
    act: Act, db: Database
) -> None:
    device = imei(5)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE)
    before = act.comparisons
    guesses = [f"{(int(code) + i) % 1_000_000:06d}" for i in range(1, 51)]
    answers = await asyncio.gather(*(verify(act.http, started, g) for g in guesses))
    assert [a.status_code for a in answers] == [400] * 50
    assert act.comparisons - before == 5
    async with db.engine.connect() as conn:
        attempts = await conn.scalar(select(Challenge.attempts)
                                     .where(Challenge.id == started["activation_id"]))
    assert attempts == 5
    metrics = (await act.http.get("/metrics")).text
    assert "gateway_code_comparisons_total 5.0" in metrics


# Rule 6 ---------------------------------------------------------------------------------------

async def test_rule06_resend_replaces_the_code_and_keeps_the_attempts(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"resend_interval_s": 0})
    device = imei(6)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    first = await act.code_for(ALICE)
    assert (await verify(act.http, started, wrong(first))).status_code == 400
    resend = f"/api/v1/activations/{started['activation_id']}/resend"
    assert (await act.http.post(resend, json={"token": started["token"]})).status_code == 202
    second = await act.code_for(ALICE, count=2)
    assert (await status_of(act.http, started))["attempts_left"] == 4
    if second != first:
        assert (await verify(act.http, started, first)).status_code == 400
    # Three more sends make five; the sixth within ten minutes is refused.
    for n in (3, 4, 5):
        assert (await act.http.post(resend, json={"token": started["token"]})).status_code == 202
        await act.code_for(ALICE, count=n)
    refused = await act.http.post(resend, json={"token": started["token"]})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    latest = await act.code_for(ALICE, count=5)
    assert (await verify(act.http, started, latest)).status_code == 200


async def test_rule06_resends_are_sixty_seconds_apart(act: Act) -> None:
    device = imei(7)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    refused = await act.http.post(f"/api/v1/activations/{started['activation_id']}/resend",
                                  json={"token": started["token"]})
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= 60


# Rule 7 ---------------------------------------------------------------------------------------

async def test_rule07_hundred_failures_lock_the_device_until_an_admin_unlocks(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"max_failures_per_account": 1000,
                                      "max_failures_per_client": 1000,
                                      "max_codes_per_destination_15min": 1000,
                                      "max_codes_per_destination_day": 1000})
    device = imei(8)
    await seen(db, device)
    await provisioned(act, device)
    for n in range(20):
        started = await start_claim(act.http, device, ALICE)
        code = await act.code_for(ALICE, count=n + 1)
        for _ in range(5):
            assert (await verify(act.http, started, wrong(code))).status_code == 400
    devices = (await act.admin.get("/api/v1/admin/devices", params={"state": "locked"})).json()
    assert [d["imei"] for d in devices["devices"]] == [device]
    # Locked: a claim answers as usual but no code is sent.
    sent = len(act.messages())
    started = await start_claim(act.http, device, ALICE)
    assert started["status"] == "pending"
    await act.drain()
    assert len(act.messages()) == sent
    unlock = await act.admin.post(f"/api/v1/admin/devices/{device}/unlock")
    assert unlock.json()["was_locked"] is True
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE, count=21)
    assert (await verify(act.http, started, code)).status_code == 200


# Rule 8 ---------------------------------------------------------------------------------------

async def test_rule08_failures_per_account_are_capped_across_devices(
    start_act: StartAct, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    act = await start_act(activation={"max_failures_per_account": 3})
    caplog.set_level(logging.WARNING, logger="gateway.activation")
    for n in range(3):
        device = imei(80 + n)
        await provisioned(act, device, f"dealer{n}@example.com")
        started = await start_claim(act.http, device, "mallory@example.com")
        code = await act.code_for(f"dealer{n}@example.com")
        assert (await verify(act.http, started, wrong(code))).status_code == 400
    assert any("failure cap reached" in r.getMessage() for r in caplog.records)
    # The account is capped: even the right code for a fourth device fails, without a compare.
    device = imei(90)
    await seen(db, device)
    await provisioned(act, device, "dealer9@example.com")
    started = await start_claim(act.http, device, "mallory@example.com")
    code = await act.code_for("dealer9@example.com")
    before = act.comparisons
    assert (await verify(act.http, started, code)).status_code == 400
    assert act.comparisons == before
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "alert"})).json()
    assert [e["outcome"] for e in audit["entries"]] == ["account_cap"]


async def test_rule08_failures_per_client_address_are_capped(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"max_failures_per_client": 2})
    for n in range(2):
        device = imei(100 + n)
        await provisioned(act, device, f"d{n}@example.com")
        started = await start_claim(act.http, device, f"claimant{n}@example.com")
        code = await act.code_for(f"d{n}@example.com")
        assert (await verify(act.http, started, wrong(code))).status_code == 400
    device = imei(110)
    await seen(db, device)
    await provisioned(act, device, "d9@example.com")
    started = await start_claim(act.http, device, "fresh@example.com")
    code = await act.code_for("d9@example.com")
    assert (await verify(act.http, started, code)).status_code == 400
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "alert"})).json()
    assert [e["outcome"] for e in audit["entries"]] == ["client_cap"]


# Rule 9 and 17 --------------------------------------------------------------------------------

async def test_rule09_rule17_codes_never_in_the_database_or_logs_and_everything_audited(
    act: Act, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = imei(9)
    await seen(db, device)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    first = await act.code_for(ALICE)
    assert (await verify(act.http, started, wrong(first))).status_code == 400
    assert (await verify(act.http, started, first)).status_code == 200
    release = await act.http.post(f"/api/v1/devices/{device}/release", json={})
    second = await act.code_for(ALICE, "release")
    body = release.json()
    answer = await act.http.request("DELETE", f"/api/v1/devices/{device}", json={
        "challenge_id": body["challenge_id"], "token": body["token"], "code": second})
    assert answer.status_code == 200, answer.text
    await act.drain()

    dump = []
    async with db.engine.connect() as conn:
        for table in ("challenges", "audit_log", "owners", "web_sessions", "failure_counters",
                      "provisioned_devices", "devices", "bindings"):
            dump += [repr(tuple(row)) for row in (await conn.execute(
                text(f"SELECT * FROM {table}"))).all()]
        stored = await conn.scalar(select(Challenge.code_hmac)
                                   .where(Challenge.id == started["activation_id"]))
    everything = "\n".join(dump)
    logs = "\n".join(
        r.getMessage() + repr({k: v for k, v in vars(r).items() if k not in BOOKKEEPING})
        for r in caplog.records)
    for code in (first, second, wrong(first)):
        assert not leaks(code, everything)
        assert not leaks(code, logs)
    assert stored == codes.code_hmac(b"activation-test-key-0123456789abcdef",
                                     started["activation_id"], first)

    audit = (await act.admin.get("/api/v1/admin/audit", params={"imei": device})).json()
    actions = {(e["action"], e["outcome"]) for e in audit["entries"]}
    assert {("start", "ok"), ("send", "ok"), ("check", "wrong_code"), ("claim", "ok"),
            ("release", "ok")} <= actions


# What logging adds to every record by itself: clock readings and ids whose digits can contain
# any six-digit code (one CI run saw 'relativeCreated': 225008.0440044403 hold 044403).
BOOKKEEPING = frozenset({"created", "msecs", "relativeCreated", "thread", "process", "taskName"})


# Times, stored or logged with SQL parameters, end in microseconds that can equal a code.
TIMES = re.compile(r"(?<=\d\d:\d\d:\d\d)\.\d{1,6}|datetime\.datetime\([^)]*\)")


def leaks(code: str, text: str) -> bool:
    """`code` appears in `text` as a number of its own: not as a run inside a longer number, not
    as the microseconds of a time."""
    return re.search(rf"(?<!\d){code}(?!\d)", TIMES.sub("", text)) is not None


def test_leaks_finds_a_code_written_out_and_not_one_inside_a_number_or_a_time() -> None:
    assert leaks("044403", "sent code=044403 to alice")
    assert leaks("144403", "('144403',)")
    assert leaks("144403", "at 23:41:12 code 144403")
    assert not leaks("044403", "'relativeCreated': 225008.0440044403")
    assert not leaks("044403", "('2026-11-26 23:41:12.044403', 'x')")
    assert not leaks("144403", "2026-11-26T23:41:12.144403+00:00")
    assert not leaks("144403", "datetime.datetime(2026, 11, 26, 23, 41, 12, 144403, tzinfo=UTC)")
    assert not leaks("044403", "nothing here")


# Rule 10 --------------------------------------------------------------------------------------

async def test_rule10_comparison_uses_compare_digest(
    act: Act, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = codes.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    device = imei(10)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE)
    calls.clear()
    assert (await verify(act.http, started, wrong(code))).status_code == 400
    stored = codes.code_hmac(b"activation-test-key-0123456789abcdef", started["activation_id"],
                             code).encode()
    assert any(stored in pair for pair in calls)


# Rule 11 --------------------------------------------------------------------------------------

async def test_rule11_only_ascii_digits_leading_zeros_work(
    act: Act, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.activation import engine as engine_module

    monkeypatch.setattr(engine_module, "new_code", lambda digits: "000123")
    device = imei(11)
    await seen(db, device)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    assert await act.code_for(ALICE) == "000123"
    full_width = "".join(chr(0xFF10 + int(d)) for d in "000123")
    for bad in (full_width, "123", "00 0123", "000123\n", "٠٠٠١٢٣", "+00123", "0001230000"):
        assert (await verify(act.http, started, bad)).status_code == 400
    assert (await status_of(act.http, started))["attempts_left"] == 5
    assert (await verify(act.http, started, "000123")).status_code == 200


# Rule 12 --------------------------------------------------------------------------------------

async def _four_states(act: Act, db: Database, base: int, with_contact: bool) -> list[str]:
    unknown, unclaimed, owned, locked = (imei(base + n) for n in range(4))
    await seen(db, unclaimed)
    if with_contact:
        await claimed(act, db, owned, "owner@example.com")
    else:
        await claimed_by_signal(act, db, owned, "owner@example.com")
    await seen(db, locked)
    await db_lock(db, locked)
    if with_contact:
        for device in (unknown, unclaimed, locked):
            await provisioned(act, device, "dealer@example.com")
    return [unknown, unclaimed, owned, locked]


async def claimed_by_signal(act: Act, db: Database, device: str, contact: str) -> None:
    """Claimed with the device's SOS as the proof (no contact of record), pressed on the
    tracker's own connection, established before the claim (rule 23)."""
    link = await establish(act, device)
    try:
        started = await start_claim(act.http, device, contact)
        await press_sos(link, device)
        assert (await verify(act.http, started, await act.code_for(contact))).status_code == 200
    finally:
        await link.close()


async def db_lock(db: Database, device: str) -> None:
    from gateway.store.models import Device

    async with db.begin() as conn:
        await conn.execute(update(Device).where(Device.imei == device).values(state="locked"))


@pytest.mark.parametrize("with_contact", [False, True], ids=["device_signal", "contact"])
async def test_rule12_starting_a_claim_answers_alike_for_every_device_state(
    start_act: StartAct, db: Database, with_contact: bool
) -> None:
    act = await start_act(activation={"allow_device_signal": not with_contact})
    devices = await _four_states(act, db, 120 if with_contact else 130, with_contact)
    answers = [await act.http.post("/api/v1/activations",
                                   json={"imei": d, "contact": "mallory@example.com"})
               for d in devices]
    assert {a.status_code for a in answers} == {202}
    assert len({tuple(sorted(a.json())) for a in answers}) == 1
    assert len({a.json()["status"] for a in answers}) == 1
    assert len({tuple(sorted(k for k in a.headers if k not in ("date", "content-length")))
                for a in answers}) == 1
    assert len({len(a.json()["activation_id"]) for a in answers}) == 1
    await act.drain()
    assert not [m for m in act.messages() if m["to"] == "mallory@example.com"]


# Rule 13 --------------------------------------------------------------------------------------

async def test_rule13_a_claim_on_an_owned_device_never_changes_the_owner(
    act: Act, db: Database, link_factory
) -> None:
    from protocols import get_codec
    from protocols.codec import Fix

    device = imei(13)
    encoder = get_codec("gps103").device(device)
    link = await link_factory(act.gateway.tcp.ports["gps103"])
    await link.send(encoder.login())
    await link.expect(b"LOAD")
    await claimed(act, db, device, ALICE)
    binding = await current_binding(db, device)
    # An attacker claims the owned device, and even gets the device pressed (no proof helps).
    started = await start_claim(act.http, device, "mallory@example.com")
    sent = len(act.messages())
    await link.send(encoder.sos(Fix(datetime.now(UTC).replace(microsecond=0), 52.5, 13.4)))
    await link.expect(f"**,imei:{device},E;".encode())
    await act.drain()
    for guess in ("000000", "123456"):
        assert (await verify(act.http, started, guess)).status_code == 400
    await act.drain()
    assert [m for m in act.messages()[sent:] if m.get("code")] == []
    assert await current_binding(db, device) == binding


# Rule 14 --------------------------------------------------------------------------------------

async def test_rule14_two_concurrent_valid_claims_exactly_one_owner(
    act: Act, db: Database
) -> None:
    device = imei(14)
    await seen(db, device)
    await provisioned(act, device, "dealer@example.com")
    first = await start_claim(act.http, device, ALICE)
    code1 = await act.code_for("dealer@example.com")
    second = await start_claim(act.http, device, BOB)
    code2 = await act.code_for("dealer@example.com", count=2)
    async with act.client() as alice, act.client() as bob:
        answers = await asyncio.gather(verify(alice, first, code1), verify(bob, second, code2))
    assert sorted(a.status_code for a in answers) == [200, 400]
    binding = await current_binding(db, device)
    assert binding is not None
    # Rule 22: whoever wins, the device joins the account of the contact of record.
    assert binding.contact == "dealer@example.com"
    async with db.engine.connect() as conn:
        open_bindings = await conn.scalar(text(
            "SELECT count(*) FROM bindings WHERE ended_at IS NULL"))
    assert open_bindings == 1


# Rule 15 --------------------------------------------------------------------------------------

async def test_rule15_only_the_starting_client_can_verify(act: Act, db: Database) -> None:
    device = imei(15)
    await seen(db, device)
    await provisioned(act, device)
    started = await start_claim(act.http, device, ALICE)
    code = await act.code_for(ALICE)
    thief = {**started, "token": "stolen-or-guessed"}
    assert (await verify(act.http, thief, code)).status_code == 400
    assert (await act.http.get(f"/api/v1/activations/{started['activation_id']}",
                               headers={"Authorization": "Bearer nope"})).status_code == 400
    for _ in range(10):
        assert (await verify(act.http, thief, wrong(code))).status_code == 400
    assert (await status_of(act.http, started))["attempts_left"] == 5
    assert (await verify(act.http, started, code)).status_code == 200


# Rule 16 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    "35958601582980", "3595860158298021", "359586015829803", "35958601582980a",
    "３５９５８６０１５８２９８０２", " ", "",
])
async def test_rule16_malformed_imei_is_a_clear_422(act: Act, bad: str) -> None:
    response = await act.http.post("/api/v1/activations", json={"imei": bad, "contact": ALICE})
    assert response.status_code == 422
    assert response.json()["field"] == "imei"
    assert "IMEI" in response.json()["detail"] or "check digit" in response.json()["detail"]


async def test_rule16_422_comes_before_rate_limiting(start_act: StartAct) -> None:
    act = await start_act(activation={"starts_per_minute_per_client": 1})
    assert (await act.http.post("/api/v1/activations",
                                json={"imei": imei(16), "contact": ALICE})).status_code == 202
    limited = await act.http.post("/api/v1/activations", json={"imei": imei(16), "contact": ALICE})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert (await act.http.post("/api/v1/activations",
                                json={"imei": "123", "contact": ALICE})).status_code == 422


async def test_malformed_contact_is_a_clear_422(act: Act) -> None:
    for bad in ("not-an-address", "0170 1234567", "a@b", "+1 12"):
        response = await act.http.post("/api/v1/activations",
                                       json={"imei": imei(17), "contact": bad})
        assert response.status_code == 422, bad
        assert response.json()["field"] == "contact"


# Rule 18 --------------------------------------------------------------------------------------

async def test_rule18_claim_and_release_are_notified(act: Act, db: Database) -> None:
    device = imei(18)
    await claimed(act, db, device, ALICE)
    await act.drain()
    assert [m["to"] for m in act.messages() if m["purpose"] == "claimed_notice"] == [ALICE]
    started = (await act.http.post(f"/api/v1/devices/{device}/release", json={})).json()
    code = await act.code_for(ALICE, "release")
    answer = await act.http.request("DELETE", f"/api/v1/devices/{device}", json={
        "challenge_id": started["challenge_id"], "token": started["token"], "code": code})
    assert answer.status_code == 200
    await act.drain()
    notices = [m for m in act.messages() if m["purpose"] == "released_notice"]
    assert [m["to"] for m in notices] == [ALICE]
    assert all(m["code"] is None for m in notices)


async def test_rule18_claim_notice_goes_to_the_contact_of_record(act: Act, db: Database) -> None:
    device = imei(19)
    await seen(db, device)
    await provisioned(act, device, "dealer@example.com")
    started = await start_claim(act.http, device, BOB)
    assert (await verify(act.http, started, await act.code_for("dealer@example.com"))
            ).status_code == 200
    await act.drain()
    assert [m["to"] for m in act.messages() if m["purpose"] == "claimed_notice"] == [
        "dealer@example.com"]


# Rule 19 --------------------------------------------------------------------------------------

async def test_rule19_next_owner_never_sees_the_previous_owners_positions(
    act: Act, db: Database
) -> None:
    device = imei(190)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await claimed(act, db, device, ALICE)
    await send_position(db, device, t0, lat=1.0)
    started = (await act.http.post(f"/api/v1/devices/{device}/release", json={})).json()
    code = await act.code_for(ALICE, "release")
    assert (await act.http.request("DELETE", f"/api/v1/devices/{device}", json={
        "challenge_id": started["challenge_id"], "token": started["token"], "code": code})
    ).status_code == 200
    await send_position(db, device, t0 + timedelta(minutes=1), lat=2.0)  # nobody's: not kept

    async with act.client() as bob:
        await provisioned(act, device, BOB)
        claim = await start_claim(bob, device, BOB)
        assert (await verify(bob, claim, await act.code_for(BOB))).status_code == 200
        await send_position(db, device, t0 + timedelta(minutes=2), lat=3.0)
        bobs = (await bob.get(f"/api/v1/devices/{device}/positions")).json()["positions"]
        assert [p["lat"] for p in bobs] == [3.0]
        # Alice keeps her history of the device; Bob's positions are not hers.
        alices = (await act.http.get(f"/api/v1/devices/{device}/positions")).json()["positions"]
        assert [p["lat"] for p in alices] == [1.0]
        mine = (await act.http.get("/api/v1/devices")).json()["devices"]
        assert [(d["imei"], d["state"]) for d in mine] == [(device, "released")]


# Rule 20 --------------------------------------------------------------------------------------

async def test_rule20_challenge_states(start_act: StartAct, db: Database) -> None:
    act = await start_act(activation={"allow_device_signal": True})
    device = imei(200)
    started = await start_claim(act.http, device, ALICE)
    assert started["status"] == "awaiting_device_signal"
    view = await status_of(act.http, started)
    assert view["status"] == "awaiting_device_signal"
    assert "SOS" in view["hint"]
    # A second claim while one waits: the press could be anybody's, so both are canceled.
    other = await start_claim(act.http, device, BOB)
    await seen(db, device)
    await act.gateway.activation.device_signal(device, "gps103", datetime.now(UTC))
    assert (await status_of(act.http, started))["status"] == "canceled"
    assert (await status_of(act.http, other))["status"] == "canceled"
    # Alone, on the tracker's established connection, it goes pending, then approved.
    link = await establish(act, device)
    started = await start_claim(act.http, device, ALICE)
    await press_sos(link, device)
    code = await act.code_for(ALICE)  # the signal is handled once the SOS is stored
    await link.close()
    view = await status_of(act.http, started)
    assert view["status"] == "pending"
    assert view["hint"] == "Code sent to a***@e***.com."
    assert (await verify(act.http, started, code)).status_code == 200
    assert (await status_of(act.http, started))["status"] == "approved"


async def test_a_signal_before_the_claim_started_does_not_count(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"allow_device_signal": True})
    device = imei(201)
    before = datetime.now(UTC) - timedelta(seconds=5)
    started = await start_claim(act.http, device, ALICE)
    await seen(db, device)
    await act.gateway.activation.device_signal(device, "gps103", before)
    assert (await status_of(act.http, started))["status"] == "awaiting_device_signal"
