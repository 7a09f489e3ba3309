"""Proof modes, the server key and the start-up warnings."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from gateway.activation.codes import load_server_key
from gateway.store.database import Database

from .conftest import StartAct, imei, seen, start_claim, status_of, verify


def test_server_key_is_created_once_with_private_permissions(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "server.key"
    key = load_server_key("", str(path))
    assert len(key) == 64
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_server_key("", str(path)) == key
    assert load_server_key("x" * 40, str(path)) == b"x" * 40
    with pytest.raises(ValueError, match="at least 32"):
        load_server_key("short", str(path))


async def test_contact_only_warns_and_sends_to_the_claimant(
    start_act: StartAct, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway")
    act = await start_act(activation={"proof": "contact_only"})
    assert any("contact_only" in r.getMessage() for r in caplog.records)
    assert any("outbox" in r.getMessage() for r in caplog.records)
    device = imei(600)
    await seen(db, device)
    started = await start_claim(act.http, device, "lab@example.com")
    assert started["status"] == "pending"
    assert (await verify(act.http, started, await act.code_for("lab@example.com"))
            ).status_code == 200


async def test_forced_device_signal_ignores_the_contact_of_record(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"proof": "device_signal", "allow_device_signal": True})
    device = imei(601)
    await act.admin.post("/api/v1/admin/devices", json={"imei": device,
                                                        "contact": "dealer@example.com"})
    started = await start_claim(act.http, device, "me@example.com")
    assert started["status"] == "awaiting_device_signal"


async def test_forced_contact_of_record_without_one_never_sends(
    start_act: StartAct, db: Database
) -> None:
    act = await start_act(activation={"proof": "contact_of_record"})
    device = imei(602)
    started = await start_claim(act.http, device, "me@example.com")
    assert started["status"] == "pending"
    view = await status_of(act.http, started)
    # The same hint as a device whose dealer did register a contact (rule 12).
    registered = imei(603)
    await act.admin.post("/api/v1/admin/devices", json={"imei": registered,
                                                        "contact": "dealer@example.com"})
    other = await status_of(act.http, await start_claim(act.http, registered, "me@example.com"))
    assert view["hint"] == other["hint"]
    assert "claim key" in view["hint"]
    await act.drain()
    assert [m["to"] for m in act.messages()] == ["dealer@example.com"]
