"""Alarms reach the owner: a simulated tracker's SOS (and other alarms) become messages with
purpose "alarm" in the outbox, at most one per device and type per `alarms.min_interval_s`;
the owner sees the alarms recorded while the device was theirs, nobody else does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.store import queries
from gateway.store.database import Database
from protocols import AlarmType, Fix
from simulators.alarms import alarm_builder

from .conftest import ALICE, BOB, Act, StartAct, Tracker, connect, eventually, imei, owner_of

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def alarms_sent(act: Act) -> list[dict[str, Any]]:
    return [m for m in act.messages() if m["purpose"] == "alarm"]


async def stored_alarms(db: Database, device: str, count: int) -> None:
    async def stored() -> bool:
        return len(await queries.alarms_of_device(db, device)) >= count

    await eventually(stored)


async def settle(act: Act) -> None:
    """Every notification the gateway started is done."""
    assert act.gateway.alarms is not None
    await act.gateway.alarms.drain()


async def gps103(act: Act, link_factory: Any, device: str) -> Tracker:
    tracker = await connect(act, link_factory, "gps103", device)
    await tracker.login()
    await tracker.expect(b"LOAD")
    return tracker


async def test_an_sos_reaches_the_owner_once_per_interval_and_other_alarms_too(
    act: Act, db: Database, link_factory: Any,
) -> None:
    device = imei(850)
    tracker = await gps103(act, link_factory, device)
    await owner_of(act, db, device)

    await tracker.send(tracker.device.sos(Fix(T0, 48.8570, 2.3530)))

    async def one_message() -> bool:
        return len(alarms_sent(act)) == 1

    await eventually(one_message)
    [message] = alarms_sent(act)
    assert message["to"] == ALICE and message["imei"] == device and message["alarm"] == "sos"
    assert message["at"] == T0.isoformat()
    assert f"Device {device} reported SOS" in message["text"]
    assert "48.85700, 2.35300" in message["text"]
    assert message["text"].endswith(f"http://127.0.0.1:8000/devices/{device}")

    # The same alarm again within alarms.min_interval_s: stored and shown, not sent.
    await tracker.send(tracker.device.sos(Fix(T0 + timedelta(seconds=30), 48.8571, 2.3531)))
    await stored_alarms(db, device, 2)
    low_battery = alarm_builder(tracker.codec, tracker.device, AlarmType.LOW_BATTERY)
    await tracker.send(low_battery(Fix(T0 + timedelta(seconds=60), 48.8572, 2.3532)))
    await stored_alarms(db, device, 3)
    await settle(act)
    assert [m["alarm"] for m in alarms_sent(act)] == ["sos", "low_battery"]

    listed = await act.http.get(f"/api/v1/devices/{device}/alarms")
    assert listed.status_code == 200
    alarms = listed.json()["alarms"]
    assert [a["alarm_type"] for a in alarms] == ["low_battery", "sos", "sos"]
    assert alarms[2]["event_time"].startswith(T0.strftime("%Y-%m-%dT%H:%M:%S"))
    assert alarms[2]["lat"] == 48.857
    metrics = (await act.http.get("/metrics")).text
    assert 'gateway_alarm_notifications_total{result="suppressed"} 1.0' in metrics
    assert 'gateway_alarm_notifications_total{result="sent"} 2.0' in metrics

    page = await act.http.get(f"/devices/{device}")
    assert page.status_code == 200
    assert page.text.count('class="alarm alarm-sos"') == 2
    assert "low battery" in page.text


async def test_only_the_owner_of_the_time_hears_and_sees_an_alarm(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(alarms={"min_interval_s": 0})
    device = imei(851)
    tracker = await gps103(act, link_factory, device)
    await tracker.send(tracker.device.sos(Fix(T0, 48.0, 2.0)))  # nobody's device yet
    await stored_alarms(db, device, 1)
    await settle(act)
    assert alarms_sent(act) == []

    await queries.bind_device(db, device, BOB)
    for second in (10, 20):  # min_interval_s = 0: every alarm is sent
        await tracker.send(tracker.device.sos(Fix(T0 + timedelta(seconds=second), 48.0, 2.0)))
    await stored_alarms(db, device, 3)
    await settle(act)
    assert [(m["to"], m["alarm"]) for m in alarms_sent(act)] == [(BOB, "sos"), (BOB, "sos")]

    await queries.release_device(db, device)
    await owner_of(act, db, device)  # now Alice's
    listed = await act.http.get(f"/api/v1/devices/{device}/alarms")
    assert listed.json()["alarms"] == []  # Bob's time is Bob's
    await tracker.send(tracker.device.sos(Fix(T0 + timedelta(seconds=30), 48.0, 2.0)))
    await stored_alarms(db, device, 4)
    await settle(act)
    assert alarms_sent(act)[-1]["to"] == ALICE
    listed = await act.http.get(f"/api/v1/devices/{device}/alarms")
    assert [a["event_time"][:19] for a in listed.json()["alarms"]] == [
        (T0 + timedelta(seconds=30)).strftime("%Y-%m-%dT%H:%M:%S")]


async def test_alarm_messages_can_be_turned_off(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(alarms={"notify": False})
    device = imei(852)
    tracker = await gps103(act, link_factory, device)
    await owner_of(act, db, device)
    await tracker.send(tracker.device.sos(Fix(T0, 48.0, 2.0)))
    await stored_alarms(db, device, 1)
    await settle(act)
    assert alarms_sent(act) == []
    listed = await act.http.get(f"/api/v1/devices/{device}/alarms")
    assert [a["alarm_type"] for a in listed.json()["alarms"]] == ["sos"]


async def test_alarms_of_every_type_in_a_burst_are_capped_per_device_but_sos_never(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    """Attack pass: frames in a bound device's name, one per alarm type, sent its owner one
    message each (14 at once). Beyond `alarms.max_per_device_hour` the other types are stored
    and shown but not sent; an SOS still is."""
    from simulators.alarms import supported_alarms

    act = await start_act(alarms={"max_per_device_hour": 3})
    device = imei(852)
    tracker = await gps103(act, link_factory, device)
    await owner_of(act, db, device)
    kinds = [k for k in supported_alarms(tracker.codec) if k is not AlarmType.SOS]
    assert len(kinds) > 3
    for n, kind in enumerate(kinds):
        build = alarm_builder(tracker.codec, tracker.device, kind)
        await tracker.send(build(Fix(T0 + timedelta(seconds=n), 48.0, 2.0)))
    await stored_alarms(db, device, len(kinds))
    await tracker.send(tracker.device.sos(Fix(T0 + timedelta(seconds=60), 48.0, 2.0)))
    await stored_alarms(db, device, len(kinds) + 1)
    await settle(act)
    told = [m["alarm"] for m in alarms_sent(act)]
    assert len(told) == 4 and told.count("sos") == 1, told
    metrics = (await act.http.get("/metrics")).text
    assert f'gateway_alarm_notifications_total{{result="capped"}} {len(kinds) - 3}.0' in metrics
    listed = (await act.http.get(f"/api/v1/devices/{device}/alarms")).json()["alarms"]
    assert len(listed) == len(kinds) + 1  # every alarm stored and shown


async def test_quiet_alarm_types_are_stored_and_shown_but_never_sent(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(alarms={"quiet_types": ["low_battery"]})
    device = imei(853)
    tracker = await gps103(act, link_factory, device)
    await owner_of(act, db, device)
    low_battery = alarm_builder(tracker.codec, tracker.device, AlarmType.LOW_BATTERY)
    await tracker.send(low_battery(Fix(T0, 48.0, 2.0)))
    await tracker.send(tracker.device.sos(Fix(T0 + timedelta(seconds=1), 48.0, 2.0)))
    await stored_alarms(db, device, 2)
    await settle(act)
    assert [m["alarm"] for m in alarms_sent(act)] == ["sos"]
    listed = (await act.http.get(f"/api/v1/devices/{device}/alarms")).json()["alarms"]
    assert sorted(a["alarm_type"] for a in listed) == ["low_battery", "sos"]
    metrics = (await act.http.get("/metrics")).text
    assert 'gateway_alarm_notifications_total{result="quiet"} 1.0' in metrics
