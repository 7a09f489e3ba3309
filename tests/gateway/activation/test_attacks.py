"""The other findings of issue 12, each reproduced the way the attack pass did it against the
real gateway (rules 12, 24-31, admin hardening, configuration)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from sqlalchemy import text, update

from gateway.config import ConfigError, load_settings
from gateway.store.database import Database
from gateway.store.models import DeviceLock, Owner
from gateway.store.queries import bind_device, current_binding
from tests.gateway.e2e.conftest import ADMIN_TOKEN, eventually

from .conftest import Act, StartAct, imei, seen, start_claim, status_of, verify

VICTIM = "victim@example.com"
DEALER = "dealer@example.com"
MALLORY = "mallory@example.net"


async def provision(act: Act, device: str, **fields: str) -> dict:
    answer = await act.admin.post("/api/v1/admin/devices", json={"imei": device, **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def claimed(act: Act, db: Database, device: str, contact: str) -> None:
    await seen(db, device)
    await provision(act, device, contact=contact)
    started = await start_claim(act.http, device, contact)
    assert (await verify(act.http, started, await act.code_for(contact))).status_code == 200


def shape(view: dict) -> tuple:
    return (view["status"], view["hint"], view["attempts_left"], view["delivery"])


def sign_in_code(act: Act, contact: str) -> list[str]:
    return [m["code"] for m in act.messages() if m["to"] == contact
            and m["purpose"] == "sign_in"]


# Rule 12: enumeration -------------------------------------------------------------------------

async def test_every_field_of_a_claim_is_the_same_for_every_kind_of_imei(
    act: Act, db: Database
) -> None:
    unknown, unclaimed, owned, locked, with_record, with_key = (imei(1300 + n) for n in range(6))
    await seen(db, unclaimed)
    await claimed(act, db, owned, "owner@example.com")
    await seen(db, locked)
    async with db.begin() as conn:
        await conn.execute(text("UPDATE devices SET state = 'locked' WHERE imei = :i"),
                           {"i": locked})
    await provision(act, with_record, contact=DEALER)
    await provision(act, with_key, claim_key="generate")
    devices = [unknown, unclaimed, owned, locked, with_record, with_key]
    answers = [await act.http.post("/api/v1/activations",
                                   json={"imei": d, "contact": MALLORY}) for d in devices]
    assert {a.status_code for a in answers} == {202}
    assert len({tuple(sorted(a.json())) for a in answers}) == 1
    assert {a.json()["status"] for a in answers} == {"pending"}
    assert len({tuple(sorted(a.headers.keys())) for a in answers}) == 1
    # At once (while a real code may still be on its way) and after every delivery finished.
    early = {shape(await status_of(act.http, a.json())) for a in answers}
    await act.drain()
    late = {shape(await status_of(act.http, a.json())) for a in answers}
    assert len(early) == 1 and early == late
    [(status, hint, attempts, delivery)] = late
    assert (status, attempts, delivery) == ("pending", 5, "sent")
    assert "d***" not in hint  # the contact of record is never hinted at


async def test_sign_in_looks_the_same_for_known_and_unknown_contacts(
    act: Act, db: Database
) -> None:
    await claimed(act, db, imei(1310), "known@example.com")
    async with act.client() as browser:
        known = (await browser.post("/api/v1/sessions",
                                    json={"contact": "known@example.com"})).json()
        unknown = (await browser.post("/api/v1/sessions",
                                      json={"contact": "unknown@example.com"})).json()
        early = [shape(await status_of(browser, {"activation_id": s["session_id"],
                                                 "token": s["token"]}))
                 for s in (known, unknown)]
        await act.drain()
        late = [shape(await status_of(browser, {"activation_id": s["session_id"],
                                                "token": s["token"]}))
                for s in (known, unknown)]
    assert early[0][2:] == early[1][2:] == late[0][2:] == late[1][2:] == (5, "sent")
    assert early[0][1].replace("k***", "u***") == early[1][1]


# Rule 24: code flooding -----------------------------------------------------------------------

async def test_two_hundred_claims_from_ten_addresses_send_five_codes(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(http={"trusted_proxies": ["127.0.0.1"]},
                          activation={"device_lock_failures": 10_000})
    device = imei(1320)
    await seen(db, device)
    await provision(act, device, contact=DEALER)
    answers = []
    for n in range(200):
        answers.append(await act.http.post(
            "/api/v1/activations", json={"imei": device, "contact": f"x{n}@example.net"},
            headers={"X-Forwarded-For": f"198.51.100.{n % 10}"}))
    assert {a.status_code for a in answers} == {202}
    await act.drain()
    assert len([m for m in act.messages() if m["to"] == DEALER]) == 5
    # Silently: the 200th claimant sees what the first saw.
    assert shape(await status_of(act.http, answers[0].json())) == shape(
        await status_of(act.http, answers[-1].json()))
    audit = (await act.admin.get("/api/v1/admin/audit",
                                 params={"action": "send", "limit": 1000})).json()["entries"]
    assert len([e for e in audit if e["outcome"] == "capped"]) == 195
    metrics = (await act.http.get("/metrics")).text
    assert 'gateway_activation_codes_capped_total{purpose="activation"} 195.0' in metrics


async def test_sign_ins_are_capped_per_day_too(start_act: StartAct, db: Database) -> None:
    act = await start_act(activation={"max_codes_per_destination_15min": 100})
    await claimed(act, db, imei(1321), VICTIM)
    async with act.client() as stranger:  # not the owner's browser (test_known_browser.py)
        for _ in range(25):
            assert (await stranger.post("/api/v1/sessions", json={"contact": VICTIM})
                    ).status_code == 202
    await act.drain()
    # 20 a day, the claim's code included.
    assert len(sign_in_code(act, VICTIM)) == 19


async def test_over_the_cap_a_challenge_can_never_succeed(act: Act, db: Database) -> None:
    await claimed(act, db, imei(1322), VICTIM)
    started = []
    async with act.client() as stranger:  # not the owner's browser (test_known_browser.py)
        for _ in range(6):
            started.append((await stranger.post("/api/v1/sessions", json={"contact": VICTIM})
                            ).json())
        await act.drain()
        codes = sign_in_code(act, VICTIM)
        assert len(codes) == 4  # the claim's code was the first of five
        last = started[-1]
        for code in codes:
            answer = await stranger.post(f"/api/v1/sessions/{last['session_id']}/verify",
                                         json={"token": last["token"], "code": code})
            assert answer.status_code == 400


# Rule 25: victim lock-out ---------------------------------------------------------------------

async def test_failures_an_attacker_causes_never_stop_the_victims_own_code(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(http={"trusted_proxies": ["127.0.0.1"]})
    await seen(db, imei(1330))
    await bind_device(db, imei(1330), VICTIM)  # an owner who got no code yet
    attacker = {"X-Forwarded-For": "203.0.113.66"}
    async with act.client() as evil:
        for _ in range(4):  # 20 wrong codes: the account cap of rule 8
            started = (await evil.post("/api/v1/sessions", json={"contact": VICTIM},
                                       headers=attacker)).json()
            for guess in range(5):
                answer = await evil.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                         json={"token": started["token"],
                                               "code": f"{guess:06d}"}, headers=attacker)
                assert answer.status_code == 400
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "alert"})).json()
    assert [e["outcome"] for e in audit["entries"]] == ["account_cap"]
    async with act.client() as victim:
        own = (await victim.post("/api/v1/sessions", json={"contact": VICTIM},
                                 headers={"X-Forwarded-For": "192.0.2.10"})).json()
        await act.drain()
        code = sign_in_code(act, VICTIM)[-1]
        answer = await victim.post(f"/api/v1/sessions/{own['session_id']}/verify",
                                   json={"token": own["token"], "code": code},
                                   headers={"X-Forwarded-For": "192.0.2.10"})
        assert answer.status_code == 200, answer.text


async def test_guessing_an_account_stays_bounded_by_the_codes_it_was_sent(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"max_failures_per_client": 10_000})
    await claimed(act, db, imei(1331), VICTIM)
    before = act.comparisons
    async with act.client() as stranger:  # not the owner's browser (test_known_browser.py)
        for _ in range(30):
            started = (await stranger.post("/api/v1/sessions", json={"contact": VICTIM})).json()
            for guess in range(5):
                await stranger.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                    json={"token": started["token"], "code": f"{guess:06d}"})
    await act.drain()
    live = len(sign_in_code(act, VICTIM))
    assert live == 4  # 5 per 15 minutes, the claim's code included
    # Every guess was compared, but only 4 x 5 of them against a code that exists anywhere.
    assert act.comparisons - before == 150
    async with db.engine.connect() as conn:
        real = await conn.scalar(text(
            "SELECT count(*) FROM challenges WHERE purpose = 'sign_in' AND NOT decoy"))
    assert real == live


# Rule 26: TOTP replay -------------------------------------------------------------------------

async def test_a_totp_code_works_once(act: Act, db: Database) -> None:
    device = imei(1340)
    await claimed(act, db, device, VICTIM)
    # The codes below are told apart by their 30-second step: start early in a step, so that
    # the step does not change between taking them and using them (the code of the step before
    # would then be out of the window: a wrong code, not a replay).
    left = 30 - time.time() % 30
    if left < 15:
        await asyncio.sleep(left + 0.1)
    enrol = (await act.http.post("/api/v1/account/totp", json={})).json()
    totp = pyotp.TOTP(pyotp.parse_uri(enrol["uri"]).secret)
    confirm = totp.at(time.time() - 30)
    assert (await act.http.post("/api/v1/account/totp/confirm",
                                json={"code": confirm})).status_code == 200
    code = totp.now()

    async def sign_in(client: httpx.AsyncClient, code: str) -> int:
        started = (await client.post("/api/v1/sessions",
                                     json={"contact": VICTIM, "method": "totp"})).json()
        return (await client.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                  json={"token": started["token"], "code": code})).status_code

    async with act.client() as first, act.client() as second:
        assert await sign_in(first, code) == 200
        assert await sign_in(second, code) == 400  # the same code again
        assert await sign_in(second, confirm) == 400  # an earlier step
        release = (await first.post(f"/api/v1/devices/{device}/release",
                                    json={"method": "totp"})).json()
        replay = await first.request("DELETE", f"/api/v1/devices/{device}", json={
            "challenge_id": release["challenge_id"], "token": release["token"], "code": code})
        assert replay.status_code == 400
        assert await current_binding(db, device) is not None
        assert await sign_in(second, totp.at(time.time() + 30)) == 200
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "check"})).json()
    assert [e["outcome"] for e in audit["entries"]].count("totp_replay") == 3


# Rule 27: forged X-Forwarded-For --------------------------------------------------------------

async def test_a_forged_forwarded_for_does_not_escape_the_per_address_limit(
    start_act: StartAct,
) -> None:
    act = await start_act(activation={"starts_per_minute_per_client": 3})
    answers = [await act.http.post("/api/v1/activations", json={
        "imei": imei(1350), "contact": MALLORY}, headers={"X-Forwarded-For": f"10.9.9.{n}"})
        for n in range(5)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429, 429]
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "start"})).json()
    assert {e["client_addr"] for e in audit["entries"]} == {"127.0.0.1"}


async def test_forwarded_for_is_believed_only_from_a_trusted_proxy(start_act: StartAct) -> None:
    act = await start_act(http={"trusted_proxies": ["127.0.0.0/8"]},
                          activation={"starts_per_minute_per_client": 1})
    for n in range(3):
        # Rightmost address that is not a trusted proxy: what the proxy itself saw.
        answer = await act.http.post(
            "/api/v1/activations", json={"imei": imei(1351), "contact": MALLORY},
            headers={"X-Forwarded-For": f"6.6.6.6, 198.51.100.{n}, 127.0.0.2"})
        assert answer.status_code == 202
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "start"})).json()
    assert sorted(e["client_addr"] for e in audit["entries"]) == [
        "198.51.100.0", "198.51.100.1", "198.51.100.2"]


# Rule 28: body limits -------------------------------------------------------------------------

def raw_request(port: int, head: bytes, chunks: list[bytes]) -> bytes:
    """Send `head`, then `chunks` until the server answers; return the whole answer (the
    gateway closes the connection after a 413, whose body it never reads)."""
    import select

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0.05)[0]:
                break  # answered already: the rest is never sent
            try:
                sock.sendall(chunk)
            except OSError:
                break
        answer = b""
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                return answer
            if not part:
                return answer
            answer += part


async def test_a_300_mb_body_gets_413_before_it_is_read(act: Act) -> None:
    port = act.gateway.http_port
    head = (b"POST /api/v1/activations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n")
    # Nothing of the body is sent: the answer can only come from Content-Length.
    answer = await asyncio.to_thread(raw_request, port, head, [b"{"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"http.max_body_bytes" in answer or b"content-length" in answer.lower()


async def test_a_streamed_body_is_cut_off_at_the_limit(act: Act) -> None:
    port = act.gateway.http_port
    head = (b"POST /api/v1/activations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"  # 16 KiB chunks, no end
    answer = await asyncio.to_thread(raw_request, port, head, [chunk] * 16)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # The gateway is still fine.
    assert (await act.http.get("/healthz")).status_code == 200


async def test_csv_uploads_have_their_own_larger_limit(act: Act) -> None:
    # ~100 KB (over the JSON limit) in 1,100 rows: long contacts, fewer provisionings to wait for
    rows = "imei,contact\n" + f"{imei(1360)},{'a' * 64}@example.com\n" * 1100
    assert len(rows) > 96_000
    ok = await act.admin.post("/api/v1/admin/devices/import",
                              files={"file": ("d.csv", rows, "text/csv")})
    assert ok.status_code == 200 and ok.json()["provisioned"] == 1100
    head = (b"POST /api/v1/admin/devices/import HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: 6291456\r\n\r\n")
    answer = await asyncio.to_thread(raw_request, act.gateway.http_port, head, [b"--x\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    body = b'{"imei": "' + b"1" * 70_000 + b'"}'
    head = (b"POST /api/v1/activations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
    answer = await asyncio.to_thread(raw_request, act.gateway.http_port, head, [body])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# Rule 29: CSRF and headers --------------------------------------------------------------------

async def test_cross_site_writes_with_the_session_cookie_are_refused(
    act: Act, db: Database
) -> None:
    device = imei(1370)
    await claimed(act, db, device, VICTIM)
    evil = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    sent = len(act.messages())
    plain = await act.http.post(f"/api/v1/devices/{device}/release", content=b"{}",
                                headers={**evil, "Content-Type": "text/plain"})
    form = await act.http.post("/api/v1/account/totp", data={"x": "1"}, headers=evil)
    bare = await act.http.post(f"/api/v1/devices/{device}/release")
    json_cross = await act.http.post(f"/api/v1/devices/{device}/release", json={},
                                     headers={"Origin": "https://evil.example"})
    fetch_cross = await act.http.post("/api/v1/account/totp", json={},
                                      headers={"Sec-Fetch-Site": "cross-site"})
    assert [r.status_code for r in (plain, form, bare, json_cross, fetch_cross)] == [
        415, 415, 415, 403, 403]
    await act.drain()
    assert len(act.messages()) == sent  # no release code went out
    async with db.engine.connect() as conn:
        pending = await conn.scalar(text("SELECT totp_pending_secret FROM owners"))
        releases = await conn.scalar(text(
            "SELECT count(*) FROM challenges WHERE purpose = 'release'"))
    assert pending is None and releases == 0
    # The same requests from the site itself work.
    base = str(act.http.base_url).rstrip("/")
    same = await act.http.post(f"/api/v1/devices/{device}/release", json={},
                               headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 202


@pytest.mark.parametrize("path", ["/", "/claim", "/api/v1/account", "/healthz"])
async def test_every_answer_carries_the_security_headers(act: Act, path: str) -> None:
    answer = await act.http.get(path)
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(("n", "public_url", "secure"), [
    (1, "http://127.0.0.1:8000", False), (2, "http://localhost:8000", False),
    (3, "https://track.example.com", True), (4, "http://track.example.com", True),
])
async def test_the_session_cookie_is_secure_except_on_plain_http_loopback(
    start_act: StartAct, db: Database, n: int, public_url: str, secure: bool
) -> None:
    act = await start_act(http={"public_url": public_url})
    device = imei(1371 + n)
    await seen(db, device)
    await provision(act, device, contact=VICTIM)
    started = await start_claim(act.http, device, VICTIM)
    answer = await verify(act.http, started, await act.code_for(VICTIM))
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("gw_session=")
    assert ("Secure" in cookie) is secure


# Rule 30: secrets at rest, admin token --------------------------------------------------------

async def test_totp_secrets_are_encrypted_at_rest(act: Act, db: Database) -> None:
    await claimed(act, db, imei(1380), VICTIM)
    enrol = (await act.http.post("/api/v1/account/totp", json={})).json()
    secret = pyotp.parse_uri(enrol["uri"]).secret
    assert (await act.http.post("/api/v1/account/totp/confirm",
                                json={"code": pyotp.TOTP(secret).now()})).status_code == 200
    async with db.engine.connect() as conn:
        stored = await conn.scalar(text("SELECT totp_secret FROM owners"))
    assert stored.startswith("v1:") and secret not in stored


async def test_secrets_stored_in_clear_are_sealed_at_start(
    start_act: StartAct, db: Database
) -> None:
    secret = pyotp.random_base32()
    async with db.begin() as conn:
        await conn.execute(Owner.__table__.insert().values(
            contact=VICTIM, created_at=datetime.now(UTC), totp_secret=secret))
    act = await start_act()

    async def sealed() -> bool:
        async with db.engine.connect() as conn:
            stored = await conn.scalar(text("SELECT totp_secret FROM owners"))
        return bool(stored.startswith("v1:") and secret not in stored)

    await eventually(sealed)
    # And the owner's app still signs them in.
    started = (await act.http.post("/api/v1/sessions",
                                   json={"contact": VICTIM, "method": "totp"})).json()
    answer = await act.http.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                 json={"token": started["token"],
                                       "code": pyotp.TOTP(secret).now()})
    assert answer.status_code == 200


async def test_database_file_folder_and_outbox_are_owner_only(tmp_path: Path) -> None:
    from gateway.notify import Message
    from gateway.notify.outbox import OutboxNotifier

    path = tmp_path / "data" / "gateway.db"
    db = await Database.connect(f"sqlite+aiosqlite:///{path}")
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        async with db.begin() as conn:
            await conn.execute(text("SELECT 1"))
        wal = path.with_name("gateway.db-wal")
        assert not wal.exists() or stat.S_IMODE(wal.stat().st_mode) == 0o600
    finally:
        await db.dispose()
    old = tmp_path / "old.db"
    old.touch(mode=0o644)
    os.chmod(old, 0o644)
    db = await Database.connect(f"sqlite+aiosqlite:///{old}")
    await db.dispose()
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    outbox = tmp_path / "out" / "outbox.jsonl"
    await OutboxNotifier(outbox).send(Message(to="a@example.com", purpose="sign_in", imei=None,
                                              code="123456"))
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600


def test_a_short_admin_token_stops_start_up_naming_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN__TOKEN", "x")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "admin.token" in message and "GATEWAY_ADMIN__TOKEN" in message
    assert "at least 32 characters" in message
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "gateway.cli", "run"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60,
                          env={**os.environ, "GATEWAY_ADMIN__TOKEN": "short"})
    assert done.returncode == 2 and "admin.token" in done.stderr
    monkeypatch.setenv("GATEWAY_ADMIN__TOKEN", "t" * 32)
    assert load_settings().admin.token == "t" * 32


async def test_wrong_admin_tokens_are_throttled_and_logged(
    act: Act, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.web")
    async with act.client() as client:
        codes = [(await client.get("/api/v1/admin/devices",
                                   headers={"Authorization": f"Bearer wrong-{n}"})).status_code
                 for n in range(12)]
        assert codes == [401] * 10 + [429] * 2
        # Throttled per address: for a minute even the right token waits.
        assert (await act.admin.get("/api/v1/admin/devices")).status_code == 429
    failures = [r for r in caplog.records if r.getMessage() == "authentication failed"]
    assert len(failures) == 10
    assert all(r.remote == "127.0.0.1" for r in failures)
    metrics = (await act.http.get("/metrics")).text
    assert "gateway_admin_auth_failures_total 10.0" in metrics


async def test_metrics_token_protects_metrics(start_act: StartAct) -> None:
    token = "metrics-token-0123456789abcdef-0123"
    act = await start_act(metrics={"token": token})
    assert (await act.http.get("/metrics")).status_code == 401
    answer = await act.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and "gateway_code_comparisons_total" in answer.text


# Rule 31: the lock as a weapon ----------------------------------------------------------------

async def test_a_lock_lapses_with_a_growing_back_off_and_is_notified(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"device_lock_failures": 5,
                                      "max_codes_per_destination_15min": 1000,
                                      "max_codes_per_destination_day": 1000})
    device = imei(1390)
    await seen(db, device)
    await provision(act, device, contact=DEALER, claim_key="generate")
    expected_hours = [1, 4, 24, 24]
    for lock, hours in enumerate(expected_hours, start=1):
        before = datetime.now(UTC)
        for n in range(5):
            answer = await act.http.post("/api/v1/activations", json={
                "imei": device, "contact": MALLORY, "claim_key": f"{n}{lock}" * 5})
            assert answer.status_code == 202
        await act.drain()
        notices = [m for m in act.messages() if m["purpose"] == "locked_notice"]
        assert len(notices) == lock and notices[-1]["to"] == DEALER
        until = datetime.fromisoformat(notices[-1]["until"])
        assert before + timedelta(hours=hours) <= until <= datetime.now(UTC) + timedelta(
            hours=hours)
        listed = (await act.admin.get("/api/v1/admin/devices", params={"state": "locked"})
                  ).json()["devices"]
        assert [d["imei"] for d in listed] == [device]
        # Locked: the contact of record gets no code.
        sent = len(act.messages())
        await start_claim(act.http, device, "x@example.com")
        await act.drain()
        assert len(act.messages()) == sent
        # Time passes: the lock lapses by itself, no admin needed.
        async with db.begin() as conn:
            await conn.execute(update(DeviceLock).values(
                locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    sent = len([m for m in act.messages() if m["to"] == DEALER and m["code"]])
    started = await start_claim(act.http, device, "x@example.com")
    code = await act.code_for(DEALER, count=sent + 1)
    assert (await verify(act.http, started, code)).status_code == 200
    assert (await current_binding(db, device)).contact == DEALER


async def test_the_lock_notice_says_until_when(act: Act) -> None:
    from gateway.notify.base import Message

    until = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    body = Message(to=DEALER, purpose="locked_notice", imei=imei(1391), until=until).body
    assert "2026-11-26 13:00 UTC" in body and imei(1391) in body


# Configuration --------------------------------------------------------------------------------

def test_code_digits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ACTIVATION__CODE_DIGITS", "8")
    assert load_settings().activation.code_digits == 8
    monkeypatch.setenv("GATEWAY_ACTIVATION__CODE_DIGITS", "7")
    with pytest.raises(ConfigError, match=r"activation\.code_digits.*6 or 8"):
        load_settings()


def test_device_signal_proof_needs_it_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ACTIVATION__PROOF", "device_signal")
    with pytest.raises(ConfigError, match="allow_device_signal"):
        load_settings()
    monkeypatch.setenv("GATEWAY_ACTIVATION__ALLOW_DEVICE_SIGNAL", "true")
    assert load_settings().activation.proof == "device_signal"

