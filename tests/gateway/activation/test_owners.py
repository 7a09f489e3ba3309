"""Owners: sign-in by code or authenticator app, their devices, release, admin and CLI tools."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pyotp

from gateway.store.database import Database
from gateway.store.queries import current_binding

from .conftest import Act, imei, seen, start_claim, verify

ALICE = "alice@example.com"


async def claim(act: Act, db: Database, device: str, contact: str = ALICE) -> None:
    await seen(db, device)
    await act.admin.post("/api/v1/admin/devices", json={"imei": device, "contact": contact})
    started = await start_claim(act.http, device, contact)
    assert (await verify(act.http, started, await act.code_for(contact))).status_code == 200


async def test_session_cookie_is_httponly_and_samesite(act: Act, db: Database) -> None:
    device = imei(500)
    await seen(db, device)
    await act.admin.post("/api/v1/admin/devices", json={"imei": device, "contact": ALICE})
    started = await start_claim(act.http, device, ALICE)
    answer = await verify(act.http, started, await act.code_for(ALICE))
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert answer.json()["device"] == {"imei": device}
    assert answer.json()["owner"] == ALICE


async def test_sign_in_with_a_code_and_unknown_contacts_answer_alike(
    act: Act, db: Database
) -> None:
    await claim(act, db, imei(501))
    async with act.client() as browser:
        assert (await browser.get("/api/v1/devices")).status_code == 401
        known = await browser.post("/api/v1/sessions", json={"contact": ALICE})
        unknown = await browser.post("/api/v1/sessions", json={"contact": "nobody@example.com"})
        assert known.status_code == unknown.status_code == 202
        assert sorted(known.json()) == sorted(unknown.json()) == [
            "expires_at", "session_id", "token"]
        await act.drain()
        assert not [m for m in act.messages() if m["to"] == "nobody@example.com"]
        code = await act.code_for(ALICE, "sign_in")
        body = known.json()
        answer = await browser.post(f"/api/v1/sessions/{body['session_id']}/verify",
                                    json={"token": body["token"], "code": code})
        assert answer.status_code == 200
        devices = (await browser.get("/api/v1/devices")).json()["devices"]
        assert [d["imei"] for d in devices] == [imei(501)]
        # Another owner's device is a 404.
        assert (await browser.get(f"/api/v1/devices/{imei(599)}")).status_code == 404
        await browser.delete("/api/v1/sessions/current")
        assert (await browser.get("/api/v1/devices")).status_code == 401


def step_code(secret: str, offset: int) -> str:
    """The app's code `offset` time steps from now (the gateway accepts one step of drift, and
    each step once: rule 26)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset)


async def test_totp_enrolment_sign_in_and_release(act: Act, db: Database) -> None:
    device = imei(502)
    await claim(act, db, device)
    enrol = (await act.http.post("/api/v1/account/totp", json={})).json()
    assert enrol["qr_svg"].startswith("<svg")
    secret = pyotp.parse_uri(enrol["uri"]).secret
    wrong = await act.http.post("/api/v1/account/totp/confirm", json={"code": "000000"})
    if pyotp.TOTP(secret).verify("000000", valid_window=1):
        wrong = await act.http.post("/api/v1/account/totp/confirm", json={"code": "0000001"})
    assert wrong.status_code == 400
    assert (await act.http.post("/api/v1/account/totp/confirm",
                                json={"code": step_code(secret, -1)})).status_code == 200
    assert (await act.http.get("/api/v1/account")).json()["totp_enabled"] is True

    async with act.client() as phone:
        await act.drain()  # the notice that the app was set up
        assert [m["purpose"] for m in act.messages()][-1] == "totp_on_notice"
        sent = len(act.messages())
        started = (await phone.post("/api/v1/sessions",
                                    json={"contact": ALICE, "method": "totp"})).json()
        await act.drain()
        assert len(act.messages()) == sent  # nothing sent: the app is the second factor
        answer = await phone.post(f"/api/v1/sessions/{started['session_id']}/verify",
                                  json={"token": started["token"],
                                        "code": step_code(secret, 0)})
        assert answer.status_code == 200
        release = (await phone.post(f"/api/v1/devices/{device}/release",
                                    json={"method": "totp"})).json()
        answer = await phone.request("DELETE", f"/api/v1/devices/{device}", json={
            "challenge_id": release["challenge_id"], "token": release["token"],
            "code": step_code(secret, 1)})
        assert answer.status_code == 200, answer.text
    assert await current_binding(db, device) is None


async def test_release_needs_a_fresh_code_and_only_the_owner_can(act: Act, db: Database) -> None:
    device = imei(503)
    await claim(act, db, device)
    async with act.client() as stranger:
        assert (await stranger.request("DELETE", f"/api/v1/devices/{device}", json={
            "challenge_id": "x", "token": "y", "code": "123456"})).status_code == 401
    started = (await act.http.post(f"/api/v1/devices/{device}/release", json={})).json()
    code = await act.code_for(ALICE, "release")
    bad = await act.http.request("DELETE", f"/api/v1/devices/{device}", json={
        "challenge_id": started["challenge_id"], "token": started["token"],
        "code": f"{(int(code) + 1) % 10**6:06d}"})
    assert bad.status_code == 400
    assert await current_binding(db, device) is not None
    good = await act.http.request("DELETE", f"/api/v1/devices/{device}", json={
        "challenge_id": started["challenge_id"], "token": started["token"], "code": code})
    assert good.status_code == 200
    listed = (await act.admin.get("/api/v1/admin/devices",
                                  params={"state": "unclaimed"})).json()["devices"]
    assert device in [d["imei"] for d in listed]


async def test_admin_provision_csv_frames_and_auth(act: Act, db: Database) -> None:
    assert (await act.http.post("/api/v1/admin/devices",
                                json={"imei": imei(510), "contact": ALICE})).status_code == 401
    bad = await act.admin.post("/api/v1/admin/devices", json={"imei": "1234", "contact": ALICE})
    assert bad.status_code == 422 and bad.json()["field"] == "imei"
    csv = f"imei,contact\n{imei(511)},a@example.com\n{imei(512)},+447911123456\n123,x@y.z\n"
    result = await act.admin.post("/api/v1/admin/devices/import",
                                  files={"file": ("devices.csv", csv, "text/csv")})
    assert result.json()["provisioned"] == 2
    assert [e["line"] for e in result.json()["errors"]] == [4]
    started = await start_claim(act.http, imei(512), "someone@example.com")
    assert started["status"] == "pending"
    await act.code_for("+447911123456")
    await seen(db, imei(513))
    listed = (await act.admin.get("/api/v1/admin/devices",
                                  params={"state": "unclaimed", "frames": 5})).json()
    [device] = listed["devices"]
    assert device["frames"][0]["text"] == "login"


def test_cli_provision_import_unlock_audit(tmp_path: Path, store_url: str) -> None:
    env_url = {"GATEWAY_DATABASE__URL": store_url}

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run([sys.executable, "-m", "gateway.cli", *args],
                              capture_output=True, text=True, env={**os.environ, **env_url},
                              cwd=tmp_path, timeout=60)

    done = gateway("provision", imei(520), "Dealer@Example.com")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"imei": imei(520), "contact_of_record":
                                       "dealer@example.com", "claim_key_set": False}
    wrong = gateway("provision", "12345", "x@example.com")
    assert wrong.returncode == 1 and "15 digits" in wrong.stderr
    (tmp_path / "d.csv").write_text(f"{imei(521)},a@example.com\nbad,row\n")
    imported = gateway("import-devices", "d.csv")
    assert imported.returncode == 1 and "d.csv:2" in imported.stderr
    assert json.loads(imported.stdout) == {"provisioned": 1, "errors": 1}
    assert gateway("unlock", imei(520)).stdout.strip() == f"{imei(520)} was not locked"
    audit = [json.loads(line) for line in gateway("audit").stdout.splitlines()]
    assert [a["action"] for a in audit] == ["unlock", "provision", "provision"]


async def test_openapi_documents_the_contract(act: Act) -> None:
    spec = (await act.http.get("/openapi.json")).json()
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/activations", "post"), ("/api/v1/activations/{activation_id}", "get"),
        ("/api/v1/activations/{activation_id}/verify", "post"),
        ("/api/v1/activations/{activation_id}/resend", "post"), ("/api/v1/sessions", "post"),
        ("/api/v1/sessions/{session_id}/verify", "post"), ("/api/v1/devices", "get"),
        ("/api/v1/devices/{imei}", "get"), ("/api/v1/devices/{imei}", "delete"),
        ("/api/v1/devices/{imei}/positions", "get"), ("/api/v1/admin/devices", "post"),
        ("/api/v1/admin/devices", "get"), ("/api/v1/admin/devices/{imei}/frames", "get"),
        ("/api/v1/admin/devices/{imei}/unlock", "post"), ("/api/v1/admin/audit", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert "/claim" not in paths  # pages are not part of the API
    assert (await act.http.get("/docs")).status_code == 200
