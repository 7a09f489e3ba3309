"""Commands through the owner API, against the real gateway and simulated trackers on real
sockets, on SQLite and PostgreSQL: every status a command can reach, offline queueing,
engine stop behind a fresh code, and other owners kept out."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.store import audit, queries
from gateway.store.commands import CHANGED_HANDS
from gateway.store.database import Database
from protocols import Command, CommandType
from protocols.jt808.wire import parse

from .conftest import (
    ALICE,
    BOB,
    FAST,
    Act,
    StartAct,
    connect,
    eventually,
    fix_now,
    imei,
    owner_of,
    status_of,
    wait_status,
)


async def _post(act: Act, device: str, body: dict[str, Any]) -> Any:
    return await act.http.post(f"/api/v1/devices/{device}/commands", json=body)


async def owned_then_offline(act: Act, db: Database, link_factory: Any, device: str) -> None:
    """A gl300 tracker logs in, becomes an owner's device, and goes away (the gateway sees it
    offline)."""
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)
    await tracker.link.close()

    async def offline() -> bool:
        assert act.gateway.pipeline is not None
        return device not in act.gateway.pipeline.online

    await eventually(offline)


async def test_position_request_is_queued_sent_and_acknowledged(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(**FAST)
    device = imei(800)
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)

    answer = await _post(act, device, {"type": "position_single"})
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["status"] == "queued" and queued["type"] == "position_single"
    assert queued["requested_by"] == "owner" and queued["params"] == {}

    sent = tracker.codec.encode_command(device, Command(CommandType.POSITION_SINGLE))
    assert sent == b"AT+GTRTO=,1,,,,,,FFFF$"
    await tracker.expect(sent)
    command = await wait_status(act.http, device, queued["id"], "sent")
    assert command["sent_at"] is not None and command["answered_at"] is None

    reply = tracker.device.command_answer(sent, fix_now())
    assert reply is not None and reply.startswith(b"+ACK:GTRTO")
    await tracker.send(reply)
    command = await wait_status(act.http, device, queued["id"], "acknowledged")
    assert command["result"] == "RTL"
    listed = (await act.http.get(f"/api/v1/devices/{device}/commands")).json()
    assert listed["supported"] == ["position_single", "report_interval", "engine_stop",
                                   "engine_resume", "reboot"]
    assert sorted(listed["confirm"]) == ["engine_resume", "engine_stop"]


async def test_a_command_queued_while_offline_goes_out_when_the_device_reconnects(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(**FAST)
    device = imei(801)
    await owned_then_offline(act, db, link_factory, device)
    answer = await _post(act, device, {"type": "report_interval",
                                       "params": {"interval_s": 120}})
    assert answer.status_code == 202, answer.text
    command_id = answer.json()["id"]
    await asyncio.sleep(0.6)  # three polls: nobody to send it to
    assert (await status_of(act.http, device, command_id))["status"] == "queued"

    again = await connect(act, link_factory, "gl300", device)
    await again.send(again.device.position(fix_now()))
    sent = again.codec.encode_command(device, Command(CommandType.REPORT_INTERVAL,
                                                      interval_s=120))
    await again.expect(sent)
    command = await wait_status(act.http, device, command_id, "sent")
    assert command["params"] == {"interval_s": 120}
    await again.send(again.device.command_answer(sent, fix_now()) or b"")
    command = await wait_status(act.http, device, command_id, "acknowledged")
    await again.link.nothing_more(0.5)  # sent once


async def test_a_command_nobody_takes_expires(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(commands={"poll_s": 0.2, "ttl_s": 1.0})
    device = imei(802)
    await owned_then_offline(act, db, link_factory, device)
    answer = await _post(act, device, {"type": "reboot"})
    command = await wait_status(act.http, device, answer.json()["id"], "expired")
    assert command["sent_at"] is None
    late = await connect(act, link_factory, "gl300", device)
    await late.send(late.device.position(fix_now()))
    await late.link.nothing_more(0.8)  # an expired command never leaves


async def test_a_refusing_device_fails_the_command(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    """JT/T 808 answers each command by its serial, with a result code: 3 is "not
    supported"."""
    act = await start_act(**FAST)
    device = imei(803)
    tracker = await connect(act, link_factory, "jt808", device)
    await tracker.login()
    await tracker.next_message()  # the registration answer
    await owner_of(act, db, device)
    answer = await _post(act, device, {"type": "report_interval", "params": {"interval_s": 30}})
    assert answer.status_code == 202, answer.text
    sent = await tracker.next_message()
    header = parse(sent)
    assert header.msg_id == 0x8103
    refusal = tracker.device.frame(  # type: ignore[attr-defined]
        0x0001, header.serial.to_bytes(2, "big") + b"\x81\x03\x03")
    await tracker.send(refusal)
    command = await wait_status(act.http, device, answer.json()["id"], "failed")
    assert command["result"] == "not supported"


async def test_a_command_waiting_when_the_device_changes_hands_is_never_sent(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(**FAST)
    device = imei(804)
    await owned_then_offline(act, db, link_factory, device)
    command_id = (await _post(act, device, {"type": "position_single"})).json()["id"]
    await queries.release_device(db, device)
    await queries.bind_device(db, device, BOB)
    command = await wait_status(act.http, device, command_id, "failed")
    assert command["result"] == CHANGED_HANDS
    back = await connect(act, link_factory, "gl300", device)
    await back.send(back.device.position(fix_now()))
    await back.link.nothing_more(0.8)


async def test_engine_stop_is_refused_without_a_fresh_code_and_audited_with_one(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(**FAST)
    device = imei(805)
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)

    refused = await _post(act, device, {"type": "engine_stop"})
    assert refused.status_code == 403
    assert "fresh code" in refused.json()["detail"]
    assert f"/api/v1/devices/{device}/commands/confirmations" in refused.json()["detail"]

    started = await act.http.post(f"/api/v1/devices/{device}/commands/confirmations",
                                  json={"type": "engine_stop"})
    assert started.status_code == 202, started.text
    challenge = started.json()
    code = await act.code_for(ALICE, "engine_stop")
    [message] = [m for m in act.messages() if m["purpose"] == "engine_stop"]
    assert message["imei"] == device and "stop the engine" in message["text"]
    confirm = {"challenge_id": challenge["challenge_id"], "token": challenge["token"]}

    wrong = await _post(act, device, {"type": "engine_stop", "confirm": {
        **confirm, "code": f"{(int(code) + 1) % 10**6:06d}"}})
    assert wrong.status_code == 400
    # A code for engine_stop does not resume the engine.
    other = await _post(act, device, {"type": "engine_resume",
                                      "confirm": {**confirm, "code": code}})
    assert other.status_code == 400
    await tracker.link.nothing_more(0.5)  # nothing reached the vehicle

    done = await _post(act, device, {"type": "engine_stop", "confirm": {**confirm,
                                                                         "code": code}})
    assert done.status_code == 202, done.text
    await tracker.expect(b"AT+GTOUT=,1,,,0,0,0,0,0,0,0,,,,,,,FFFF$")
    again = await _post(act, device, {"type": "engine_stop", "confirm": {**confirm,
                                                                          "code": code}})
    assert again.status_code == 400  # a code works once

    entries = await audit.read(db, imei=device, action="command")
    assert [(e.outcome, (e.detail or {}).get("type")) for e in entries] == [
        ("queued", "engine_stop"), ("code_required", "engine_stop")]
    assert entries[0].challenge_id == challenge["challenge_id"]
    assert entries[0].owner_id is not None and entries[0].client_addr == "127.0.0.1"


async def test_another_owners_device_is_a_404(
    act: Act, db: Database, link_factory: Any,
) -> None:
    device = imei(806)
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)
    other = imei(807)
    bob_tracker = await connect(act, link_factory, "gl300", other)
    await bob_tracker.login()
    async with act.client() as bob:
        await owner_of(act, db, other, BOB, http=bob)
        for method, path, body in [
            ("GET", f"/api/v1/devices/{device}/commands", None),
            ("POST", f"/api/v1/devices/{device}/commands", {"type": "position_single"}),
            ("POST", f"/api/v1/devices/{device}/commands/confirmations",
             {"type": "engine_stop"}),
            ("GET", f"/api/v1/devices/{device}/alarms", None),
        ]:
            answer = await bob.request(method, path, json=body)
            assert answer.status_code == 404, (path, answer.text)
        assert (await bob.get(f"/api/v1/devices/{other}/commands")).status_code == 200
    async with act.client() as stranger:
        answer = await stranger.post(f"/api/v1/devices/{device}/commands",
                                     json={"type": "position_single"})
        assert answer.status_code == 401
    await tracker.link.nothing_more(0.3)


async def test_what_a_protocol_cannot_do_is_a_422_listing_what_it_can(
    act: Act, db: Database, link_factory: Any,
) -> None:
    watch_imei, h02_imei = imei(808), imei(809)
    watch = await connect(act, link_factory, "watch", watch_imei)
    await watch.login()
    await owner_of(act, db, watch_imei)
    answer = await _post(act, watch_imei, {"type": "engine_stop"})
    assert answer.status_code == 422
    assert answer.json() == {
        "detail": "watch devices cannot do engine_stop; watch devices take: position_single, "
                  "report_interval, reboot",
        "field": "type", "supported": ["position_single", "report_interval", "reboot"]}
    confirm = await act.http.post(f"/api/v1/devices/{watch_imei}/commands/confirmations",
                                  json={"type": "engine_stop"})
    assert confirm.status_code == 422  # no code is sent for what the device cannot do
    unknown = await _post(act, watch_imei, {"type": "self_destruct"})
    assert unknown.status_code == 422 and unknown.json()["field"] == "type"
    too_long = await _post(act, watch_imei, {"type": "report_interval",
                                             "params": {"interval_s": 100_000}})
    assert too_long.status_code == 422
    assert too_long.json()["field"] == "params.interval_s"
    assert "1..86400" in too_long.json()["detail"]
    missing = await _post(act, watch_imei, {"type": "report_interval"})
    assert missing.status_code == 422 and "interval_s" in missing.json()["detail"]

    h02 = await connect(act, link_factory, "h02", h02_imei)
    await h02.login()
    await owner_of(act, db, h02_imei)
    answer = await _post(act, h02_imei, {"type": "position_single"})
    assert answer.status_code == 422
    assert answer.json()["supported"] == ["report_interval", "engine_stop", "engine_resume"]
    assert not [m for m in act.messages() if m["purpose"].startswith("engine")]


async def test_a_command_queued_on_one_instance_reaches_a_device_on_another(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    first = await start_act(**FAST)
    second = await start_act(**FAST)
    device = imei(810)
    tracker = await connect(second, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(first, db, device)
    answer = await _post(first, device, {"type": "position_single"})
    assert answer.status_code == 202, answer.text
    await tracker.expect(b"AT+GTRTO=,1,,,,,,FFFF$")
    await wait_status(first.http, device, answer.json()["id"], "sent")
    await tracker.link.nothing_more(0.6)  # once, though both instances poll


async def test_an_owner_cannot_flood_a_device(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(commands={"poll_s": 0.2, "max_per_minute": 3})
    device = imei(811)
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)
    for _ in range(3):
        assert (await _post(act, device, {"type": "position_single"})).status_code == 202
    flood = await _post(act, device, {"type": "position_single"})
    assert flood.status_code == 429
    assert 1 <= int(flood.headers["retry-after"]) <= 61
    assert "more than 3 commands a minute" in flood.json()["detail"]
    await tracker.expect(b"AT+GTRTO=,1,,,,,,FFFF$" * 3)
    await tracker.link.nothing_more(0.5)


async def test_openapi_documents_the_command_and_alarm_api(act: Act) -> None:
    paths = (await act.http.get("/openapi.json")).json()["paths"]
    for path, method in [
        ("/api/v1/devices/{imei}/commands", "post"), ("/api/v1/devices/{imei}/commands", "get"),
        ("/api/v1/devices/{imei}/commands/confirmations", "post"),
        ("/api/v1/devices/{imei}/alarms", "get"),
        ("/api/v1/admin/devices/{imei}/commands", "post"),
        ("/api/v1/admin/devices/{imei}/commands", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert "/devices/{imei}/commands" not in paths  # the page's form is not API
