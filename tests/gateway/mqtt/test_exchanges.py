"""Each protocol's exchange over the real broker: replies on the down topic, acks after commit,
topic/IMEI mismatch and malformed messages refused and counted, SOS as the activation signal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from gateway.server import Gateway
from gateway.store import queries
from protocols import Fix, get_codec
from tests.gateway.mqtt.conftest import bind_when_seen, eventually
from tests.gateway.store.support import count_positions

IMEI = "359586015829802"
OTHER = "352848027543210"
T0 = datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC)


def fix(seconds: int) -> Fix:
    return Fix(fix_time=T0 + timedelta(seconds=seconds), lat=-33.86, lon=151.21, speed_kmh=36.0,
               course_deg=180.0, altitude_m=12.0)


def rejected(gateway: Gateway, protocol: str, kind: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "gateway_rejected_frames_total", {"protocol": protocol, "reason": kind})
    return value or 0.0


async def test_gps103_login_heartbeat_position_sos(mqtt_gateway: Gateway, devices) -> None:
    gateway = mqtt_gateway
    encoder = get_codec("gps103").device(IMEI)
    device = await devices(IMEI)
    await device.send(b"##,imei:359586015829802,A;")
    await device.expect(b"LOAD")
    await device.send(b"359586015829802;")
    await device.expect(b"ON")
    await bind_when_seen(gateway.db, IMEI)
    await device.send(encoder.position(fix(0)))
    await device.send(encoder.sos(fix(5)))
    await device.expect(b"**,imei:359586015829802,E;")
    assert await count_positions(gateway.db, IMEI) == 2
    alarms = await queries.alarms_of_device(gateway.db, IMEI)
    assert [a.alarm_type for a in alarms] == ["sos"]


async def test_tk103_ack_after_commit_with_12_digit_id(mqtt_gateway: Gateway, devices) -> None:
    gateway = mqtt_gateway
    encoder = get_codec("tk103").device(IMEI)
    dev_id = IMEI[-12:]
    # The topic carries the full IMEI; the frames its last 12 digits (the documented rule).
    device = await devices(IMEI)
    await device.send(encoder.heartbeat())
    await device.expect(f"({dev_id}AP01HSO)".encode())
    await bind_when_seen(gateway.db, dev_id)
    await device.send(encoder.position(fix(0)) + encoder.position(fix(10)) + encoder.login())
    await device.expect(f"({dev_id}AP05)".encode())
    # Acknowledged means committed.
    assert await count_positions(gateway.db, dev_id) >= 2


async def test_gl300_heartbeat_and_sack_after_commit(start_gateway, prefix, devices) -> None:
    from tests.gateway.mqtt.conftest import mqtt_sections, wait_up

    gateway = await start_gateway(mqtt=mqtt_sections(prefix), protocols={"gl300": {"sack": True}})
    await wait_up(gateway)
    encoder = get_codec("gl300").device(IMEI)
    device = await devices(IMEI)
    heartbeat = encoder.heartbeat()
    await device.send(heartbeat)
    count = heartbeat.rstrip(b"$").rsplit(b",", 1)[1]
    assert (await device.next()).startswith(b"+SACK:GTHBD,")
    await bind_when_seen(gateway.db, IMEI)
    for seconds in range(0, 30, 10):
        frame = encoder.position(fix(seconds))
        await device.send(frame)
        count = frame.rstrip(b"$").rsplit(b",", 1)[1]
        await device.expect(b"+SACK:" + count + b"$")
        assert await count_positions(gateway.db, IMEI) == seconds // 10 + 1


async def test_protocol_set_by_topic(mqtt_gateway: Gateway, devices, prefix: str) -> None:
    device = await devices(IMEI)
    await device.send(b"##,imei:359586015829802,A;", topic=f"{prefix}/{IMEI}/up/gps103")
    await device.expect(b"LOAD")
    # A protocol the topic names but the bytes do not speak: the decoder refuses the frame.
    await device.send(b"##,imei:359586015829802,A;", topic=f"{prefix}/{IMEI}/up/nope")
    await device.nothing_more()
    assert rejected(mqtt_gateway, "unknown", "bad_message") == 1


async def test_topic_imei_mismatch_is_refused_and_counted(
    mqtt_gateway: Gateway, devices
) -> None:
    gateway = mqtt_gateway
    device = await devices(OTHER)
    # OTHER's topic, IMEI's frames: one device cannot speak for another.
    await device.send(b"##,imei:359586015829802,A;")
    await device.send(get_codec("tk103").device(IMEI).heartbeat())
    await device.nothing_more()
    assert rejected(gateway, "gps103", "topic_mismatch") == 1
    assert rejected(gateway, "tk103", "topic_mismatch") == 1
    assert await queries.get_device(gateway.db, IMEI) is None
    assert await queries.get_device(gateway.db, IMEI[-12:]) is None
    # The topic's own device is still served on that topic afterwards.
    await device.send(f"##,imei:{OTHER},A;".encode())
    await device.expect(b"LOAD")


async def test_malformed_messages_are_refused_and_counted(
    mqtt_gateway: Gateway, devices, prefix: str
) -> None:
    gateway = mqtt_gateway
    device = await devices(IMEI)
    await device.send(b"GET / HTTP/1.1\r\n\r\n")          # no protocol
    await device.send(b"")                                  # empty
    await device.send(b"$GPRMC,1,2,3*00\r\n")             # NMEA: not served
    await device.send(b"x" * 70_000)                        # over max_payload_bytes
    await device.send(b"+RESP:GTFRI,1A0401," + b"9" * 5000 + b"$")  # over max_frame_bytes
    await device.send(b"+RESP:GTFRI,1A0401,35958601582")   # cut off
    await device.send(b"(0880BP05)")                        # not decodable
    await device.send(b"hello", topic=f"{prefix}/bad id!/up")
    # The gateway is still serving the device normally.
    await device.send(b"##,imei:359586015829802,A;")
    await device.expect(b"LOAD")
    await device.nothing_more()
    assert rejected(gateway, "unknown", "bad_message") == 5
    assert rejected(gateway, "gl300", "framing") == 2
    assert gateway.metrics.registry.get_sample_value(
        "gateway_frames_total", {"protocol": "tk103", "result": "rejected"}) == 1
    messages = gateway.metrics.registry.get_sample_value(
        "gateway_mqtt_messages_total", {"result": "rejected"})
    assert messages == 5


async def test_sos_over_mqtt_is_the_activation_signal(
    start_gateway, prefix: str, devices
) -> None:
    from tests.gateway.e2e.conftest import ADMIN_TOKEN
    from tests.gateway.mqtt.conftest import mqtt_sections, wait_up

    # signal_over_mqtt: the operator says the broker authenticates each device.
    gateway = await start_gateway(mqtt=mqtt_sections(prefix),
                                  activation={"proof": "device_signal",
                                              "allow_device_signal": True,
                                              "signal_over_mqtt": True})
    await wait_up(gateway)
    encoder = get_codec("gps103").device(IMEI)
    device = await devices(IMEI)
    await device.send(b"##,imei:359586015829802,A;")
    await device.expect(b"LOAD")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        started = await http.post("/api/v1/activations",
                                  json={"imei": IMEI, "contact": "owner@example.com"})
        assert started.status_code in (200, 201, 202), started.text

        await device.send(encoder.sos(fix(0)))
        await device.expect(b"**,imei:359586015829802,E;")

        from gateway.activation import audit

        async def audited() -> bool:
            rows = await audit.read(gateway.db, imei=IMEI, action="signal")
            return [row.outcome for row in rows] == ["ok"]

        # The stored SOS reached the same Gateway.on_stored path as on TCP, on the device's
        # established stream (its login came before the claim).
        await eventually(audited)


async def test_health_and_metrics_show_mqtt_state(mqtt_gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{mqtt_gateway.http_port}") as http:
        health = (await http.get("/healthz")).json()
        assert health["mqtt"] == "up"
        metrics = (await http.get("/metrics")).text
        assert "gateway_mqtt_up 1.0" in metrics
