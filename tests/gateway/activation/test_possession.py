"""Proof of possession (issue 12, rules 21 and 22): the attacks of the issue against the real
gateway, each of which took a device before.

* the spoofed SOS: anyone who knows an IMEI could open a TCP connection, send an SOS in the
  device's name and receive the code;
* the typo-buyer: the device went to the address the claimant typed, not to the contact the code
  was sent to;
* claim keys: only the right key sends a code, a wrong one answers the same and counts toward
  the device lock, the database keeps only an HMAC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.activation import claim_keys
from gateway.activation.claim_keys import claim_key_hmac, normalize_claim_key
from gateway.store.database import Database
from gateway.store.queries import current_binding
from protocols import get_codec

from .conftest import Act, StartAct, imei, seen, start_claim, status_of, verify, wrong

KEY = "activation-test-key-0123456789abcdef"
BUYER = "buyer@example.com"
MALLORY = "mallory@example.net"


async def provision(act: Act, device: str, **fields: str) -> dict:
    answer = await act.admin.post("/api/v1/admin/devices", json={"imei": device, **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def view_shape(view: dict) -> tuple:
    """What a claimant can compare between two claims (ids and times differ by nature)."""
    return (view["status"], view["hint"], view["attempts_left"], view["delivery"])


# The spoofed SOS ------------------------------------------------------------------------------

@pytest.mark.parametrize("real_device", ["online", "offline"])
async def test_a_spoofed_sos_on_a_second_connection_gets_no_code(
    act: Act, db: Database, link_factory, real_device: str
) -> None:
    """The attack of issue 12: a device without a contact of record, an attacker who knows its
    IMEI, a claim with the attacker's address and an SOS sent in the device's name."""
    device = imei(1200 if real_device == "online" else 1201)
    encoder = get_codec("gps103").device(device)
    port = act.gateway.tcp.ports["gps103"]
    if real_device == "online":
        tracker = await link_factory(port)
        await tracker.send(encoder.login())
        await tracker.expect(b"LOAD")
    else:
        await seen(db, device)
    started = await start_claim(act.http, device, MALLORY)
    # No claim waits for a device signal unless an operator allowed it.
    assert started["status"] == "pending"
    impostor = await link_factory(port)
    now = datetime.now(UTC).replace(microsecond=0)
    await impostor.send(f"imei:{device},help me,{now:%y%m%d%H%M%S},,F,{now:%H%M%S}.000,A,"
                        "5230.0000,N,01324.0000,E,0.00,0;".encode())
    await impostor.expect(f"**,imei:{device},E;".encode())
    await act.drain()
    assert [m for m in act.messages() if m["to"] == MALLORY] == []
    assert (await status_of(act.http, started))["status"] == "pending"
    for guess in ("000000", "123456", "999999"):
        assert (await verify(act.http, started, guess)).status_code == 400
    assert await current_binding(db, device) is None


async def test_without_any_proof_a_device_cannot_be_claimed_by_self_service(
    act: Act, db: Database
) -> None:
    device = imei(1202)
    await seen(db, device)
    started = await start_claim(act.http, device, "owner@example.com")
    await act.gateway.activation.device_signal(device, "gps103", datetime.now(UTC))
    await act.drain()
    assert act.messages() == []
    assert started["status"] == "pending"
    async with db.engine.connect() as conn:
        proof = await conn.scalar(text("SELECT proof FROM challenges"))
    assert proof == "none"


# The typo-buyer (rule 22) ---------------------------------------------------------------------

async def test_the_device_joins_the_account_the_code_was_sent_to(act: Act, db: Database) -> None:
    device = imei(1210)
    await seen(db, device)
    await provision(act, device, contact=BUYER)
    started = await start_claim(act.http, device, "typo-buyer@example.com")
    answer = await verify(act.http, started, await act.code_for(BUYER))
    assert answer.status_code == 200, answer.text
    assert answer.json()["owner"] == BUYER
    binding = await current_binding(db, device)
    assert binding is not None and binding.contact == BUYER
    async with db.engine.connect() as conn:
        owners = (await conn.execute(text("SELECT contact FROM owners"))).scalars().all()
    assert owners == [BUYER]
    # The signed-in browser is the buyer's account, which now holds the device.
    mine = (await act.http.get("/api/v1/devices")).json()["devices"]
    assert [d["imei"] for d in mine] == [device]


# Claim keys (rule 21) -------------------------------------------------------------------------

async def test_the_right_claim_key_sends_the_code_to_the_claimant(act: Act, db: Database) -> None:
    device = imei(1220)
    await seen(db, device)
    made = await provision(act, device, claim_key="generate")
    key = made["claim_key"]
    assert len(key) == 11 and key[5] == "-"  # two groups of five
    assert made == {"imei": device, "contact_of_record": None, "claim_key_set": True,
                    "claim_key": key}
    # Typed the way people type it: lower case, no hyphen.
    started = (await act.http.post("/api/v1/activations", json={
        "imei": device, "contact": "owner@example.com",
        "claim_key": key.replace("-", "").lower()})).json()
    answer = await verify(act.http, started, await act.code_for("owner@example.com"))
    assert answer.status_code == 200, answer.text
    binding = await current_binding(db, device)
    assert binding is not None and binding.contact == "owner@example.com"


async def test_a_wrong_claim_key_answers_like_a_right_one_and_sends_nothing(
    act: Act, db: Database
) -> None:
    right_device, wrong_device = imei(1221), imei(1222)
    for device in (right_device, wrong_device):
        await seen(db, device)
    key_a = (await provision(act, right_device, claim_key="generate"))["claim_key"]
    key_b = (await provision(act, wrong_device, claim_key="generate"))["claim_key"]
    a = await act.http.post("/api/v1/activations", json={
        "imei": right_device, "contact": MALLORY, "claim_key": key_a})
    b = await act.http.post("/api/v1/activations", json={
        "imei": wrong_device, "contact": MALLORY, "claim_key": key_a if key_a != key_b
        else "0000000000"})
    assert a.status_code == b.status_code == 202
    assert sorted(a.json()) == sorted(b.json())
    assert a.json()["status"] == b.json()["status"] == "pending"
    assert sorted(a.headers.keys()) == sorted(b.headers.keys())
    await act.drain()
    assert view_shape(await status_of(act.http, a.json())) == view_shape(
        await status_of(act.http, b.json()))
    assert [m["imei"] for m in act.messages()] == [right_device]
    # The wrong one can never succeed: the guesses are compared and fail.
    for guess in ("000000", "111111", "222222"):
        assert (await verify(act.http, b.json(), guess)).status_code == 400
    audit = (await act.admin.get("/api/v1/admin/audit",
                                 params={"action": "claim_key"})).json()["entries"]
    assert [(e["imei"], e["outcome"]) for e in audit] == [(wrong_device, "wrong")]


async def test_wrong_claim_keys_count_toward_the_device_lock(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"device_lock_failures": 3})
    device = imei(1223)
    await seen(db, device)
    key = (await provision(act, device, claim_key="generate"))["claim_key"]
    for n in range(3):
        await start_claim_with_key(act, device, MALLORY, f"{n}" * 10)
    listed = (await act.admin.get("/api/v1/admin/devices", params={"state": "locked"})).json()
    assert [d["imei"] for d in listed["devices"]] == [device]
    # Locked: even the right key sends nothing now (same answer).
    started = await start_claim_with_key(act, device, "owner@example.com", key)
    assert started["status"] == "pending"
    await act.drain()
    assert act.messages() == []


async def start_claim_with_key(act: Act, device: str, contact: str, key: str) -> dict:
    answer = await act.http.post("/api/v1/activations", json={
        "imei": device, "contact": contact, "claim_key": key})
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


async def test_a_claim_key_is_stored_only_as_its_hmac_and_compared_in_constant_time(
    act: Act, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    device = imei(1224)
    key = (await provision(act, device, claim_key="generate"))["claim_key"]
    canonical = normalize_claim_key(key)
    dump = []
    async with db.engine.connect() as conn:
        for table in ("provisioned_devices", "audit_log", "challenges"):
            dump += [repr(tuple(r)) for r in (await conn.execute(
                text(f"SELECT * FROM {table}"))).all()]
        stored = await conn.scalar(text("SELECT claim_key_hmac FROM provisioned_devices"))
    everything = "\n".join(dump)
    assert canonical not in everything and key not in everything
    assert stored == claim_key_hmac(KEY.encode(), device, canonical)
    # The admin API never shows it again.
    listed = (await act.admin.get("/api/v1/admin/audit", params={"imei": device})).text
    assert canonical not in listed and key not in listed

    calls: list[tuple[bytes, bytes]] = []
    real = claim_keys.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(claim_keys.hmac, "compare_digest", spy)
    await start_claim_with_key(act, device, MALLORY, "ABCDEFGHJK")
    assert any(stored.encode() in pair for pair in calls)


@pytest.mark.parametrize("bad", ["ABC", "K7M2Q-9XHCU", "ÄBCDE-FGHJK", "x" * 40])
async def test_a_malformed_claim_key_is_a_clear_422(act: Act, bad: str) -> None:
    answer = await act.http.post("/api/v1/activations", json={
        "imei": imei(1225), "contact": MALLORY, "claim_key": bad})
    assert answer.status_code == 422
    assert answer.json()["field"] == "claim_key"
    assert "label" in answer.json()["detail"]


async def test_with_a_contact_of_record_and_a_key_the_code_goes_to_the_record(
    act: Act, db: Database
) -> None:
    device = imei(1226)
    await seen(db, device)
    key = (await provision(act, device, contact=BUYER, claim_key="generate"))["claim_key"]
    started = await start_claim_with_key(act, device, "someone@example.com", key)
    answer = await verify(act.http, started, await act.code_for(BUYER))
    assert answer.status_code == 200
    assert (await current_binding(db, device)).contact == BUYER
    assert [m["to"] for m in act.messages() if m["purpose"] == "activation"] == [BUYER]


async def test_wrong_code_after_a_right_key_still_counts(act: Act, db: Database) -> None:
    device = imei(1227)
    await seen(db, device)
    key = (await provision(act, device, claim_key="generate"))["claim_key"]
    started = await start_claim_with_key(act, device, "owner@example.com", key)
    code = await act.code_for("owner@example.com")
    assert (await verify(act.http, started, wrong(code))).status_code == 400
    assert (await status_of(act.http, started))["attempts_left"] == 4
    assert (await verify(act.http, started, code)).status_code == 200


# Provisioning: admin API, CSV, CLI, labels -----------------------------------------------------

async def test_csv_import_takes_an_optional_claim_key_column(act: Act, db: Database) -> None:
    rows = (f"imei,claim_key,contact\n{imei(1230)},K7M2Q-9XHCD,\n"
            f"{imei(1231)},,dealer@example.com\n{imei(1232)},short,\n")
    result = (await act.admin.post("/api/v1/admin/devices/import",
                                   files={"file": ("d.csv", rows, "text/csv")})).json()
    assert result["provisioned"] == 2
    assert [(e["line"], e["detail"].split(":")[0]) for e in result["errors"]] == [
        (4, "claim_key")]
    started = await start_claim_with_key(act, imei(1230), "owner@example.com", "k7m2q9xhcd")
    assert (await verify(act.http, started, await act.code_for("owner@example.com"))
            ).status_code == 200


def run_cli(tmp_path: Path, store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_DATABASE__URL": store_url,
           "GATEWAY_ACTIVATION__SERVER_KEY": KEY,
           "GATEWAY_HTTP__PUBLIC_URL": "https://track.example.com"}
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=120)


async def test_cli_provisions_a_generated_claim_key_and_prints_it_once(
    start_act: StartAct, db: Database, tmp_path: Path, store_url: str
) -> None:
    device = imei(1240)
    done = run_cli(tmp_path, store_url, "provision", device, "--contact", "Dealer@Example.com",
                   "--generate-claim-key")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    key = out.pop("claim_key")
    assert out == {"imei": device, "contact_of_record": "dealer@example.com",
                   "claim_key_set": True}
    given = run_cli(tmp_path, store_url, "provision", imei(1241), "--claim-key", "K7M2Q-9XHCD")
    assert json.loads(given.stdout) == {"imei": imei(1241), "contact_of_record": None,
                                        "claim_key_set": True}
    both = run_cli(tmp_path, store_url, "provision", imei(1242), "--claim-key", "K7M2Q-9XHCD",
                   "--generate-claim-key")
    assert both.returncode == 2 and "not allowed with" in both.stderr
    # The key the CLI printed is the one the running gateway accepts.
    act = await start_act()
    await seen(db, imei(1241))
    started = await start_claim_with_key(act, imei(1241), "owner@example.com", "K7M2Q-9XHCD")
    assert (await verify(act.http, started, await act.code_for("owner@example.com"))
            ).status_code == 200
    assert normalize_claim_key(key)


@pytest.mark.parametrize("kind", ["pdf", "png"])
def test_cli_prints_a_sheet_of_labels(tmp_path: Path, store_url: str, kind: str) -> None:
    rows = "".join(f"{imei(1250 + n)},K7M2Q9XH{n:02d}\n" for n in range(25))
    (tmp_path / "labels.csv").write_text("imei,claim_key\n" + rows)
    done = run_cli(tmp_path, store_url, "labels", "labels.csv", "--out", f"labels.{kind}")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["labels"] == 25
    files = [tmp_path / f for f in out["files"]]
    assert len(files) == (1 if kind == "pdf" else 2)  # 21 labels a sheet
    head = files[0].read_bytes()[:8]
    assert head.startswith(b"%PDF") if kind == "pdf" else head == b"\x89PNG\r\n\x1a\n"
    if kind == "png":
        import zxingcpp
        from PIL import Image

        found = sorted(r.text for r in zxingcpp.read_barcodes(Image.open(files[1])))
        assert found == [f"https://track.example.com/claim?imei={imei(1250 + n)}"
                         f"&key=K7M2Q-9XH{n:02d}" for n in range(21, 25)]
    bad = run_cli(tmp_path, store_url, "labels", "labels.csv", "--out", "labels.txt")
    assert bad.returncode == 1 and ".pdf or .png" in bad.stderr
