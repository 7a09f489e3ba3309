"""The broker going away (at start or in the middle of traffic) and several gateways sharing
one subscription: nothing acknowledged is lost, nothing is stored twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx

from gateway.server import Gateway
from protocols import Fix, get_codec
from protocols.imei import complete_imei
from tests.gateway.e2e.conftest import DeviceLink
from tests.gateway.mqtt.conftest import bind_when_seen, eventually, mqtt_sections, wait_up
from tests.gateway.store.proxy import TcpProxy
from tests.gateway.store.support import count_positions, scalar

T0 = datetime(2026, 1, 31, 23, 59, 0, tzinfo=UTC)


def position(encoder, i: int) -> bytes:
    return encoder.position(Fix(fix_time=T0 + timedelta(seconds=i), lat=10 + i * 1e-4, lon=20.0,
                                speed_kmh=30.0))


async def test_broker_outage_in_the_middle_of_traffic_loses_nothing(
    start_gateway, prefix: str, devices, broker_proxy: TcpProxy
) -> None:
    gateway = await start_gateway(mqtt=mqtt_sections(prefix, broker_proxy.port),
                                  protocols={"gl300": {"sack": True}})
    await wait_up(gateway)
    imei = complete_imei("86000000000001")
    encoder = get_codec("gl300").device(imei)
    device = await devices(imei)
    await device.send(encoder.heartbeat())
    # The replies to one message come as one message: here +SACK:GTHBD,...$ then +SACK:<n>$.
    assert (await device.next()).startswith(b"+SACK:GTHBD,")
    await bind_when_seen(gateway.db, imei)
    acked: set[bytes] = set()
    sent = 0

    async def send(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            await device.send(position(encoder, sent))
            sent += 1
            await asyncio.sleep(0.002)

    async def collect() -> None:
        while True:
            reply = await device.received.get()
            acked.add(reply)

    collector = asyncio.create_task(collect())
    try:
        await send(100)
        await broker_proxy.cut()
        # Messages published while the gateway is away wait in its broker session.
        await send(100)
        assert gateway.mqtt is not None

        async def down() -> bool:
            return gateway.mqtt is not None and gateway.mqtt.state != "up"

        await eventually(down)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
            health = (await http.get("/healthz")).json()
        assert health["mqtt"] in ("down", "connecting")
        assert health["database"] == "up"
        # TCP keeps working meanwhile.
        link = await DeviceLink.open(gateway.tcp.ports["gps103"])
        await link.send(b"##,imei:359586015829802,A;")
        await link.expect(b"LOAD")
        await link.close()
        await broker_proxy.restore()
        await wait_up(gateway)
        await send(100)

        async def all_stored() -> bool:
            return await count_positions(gateway.db, imei) == sent

        # Every position the broker accepted is stored, acknowledged or not.
        await eventually(all_stored, timeout=20)
    finally:
        collector.cancel()
    # And every ack a device got names a message that is stored (acks only after commit).
    assert acked
    assert gateway.mqtt.connects >= 2


async def test_broker_down_at_start_does_not_stop_the_gateway(
    start_gateway, prefix: str, devices, broker_proxy: TcpProxy
) -> None:
    await broker_proxy.cut()
    gateway: Gateway = await start_gateway(mqtt=mqtt_sections(prefix, broker_proxy.port))
    assert gateway.mqtt is not None and gateway.mqtt.state != "up"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as http:
        health = await http.get("/healthz")
        assert health.status_code == 200
        assert health.json()["mqtt"] in ("down", "connecting")
        assert "gateway_mqtt_up 0.0" in (await http.get("/metrics")).text
    link = await DeviceLink.open(gateway.tcp.ports["gps103"])
    await link.send(b"##,imei:359586015829802,A;")
    await link.expect(b"LOAD")
    await link.close()
    await broker_proxy.restore()
    await wait_up(gateway)
    device = await devices("359586015829802")
    await device.send(b"##,imei:359586015829802,A;")
    await device.expect(b"LOAD")


async def test_two_gateways_on_one_shared_subscription_store_each_message_once(
    start_gateway, prefix: str, devices
) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    sections = {"mqtt": mqtt_sections(prefix, shared_group=group),
                "database": {"frames_per_device": 1000}}
    first = await start_gateway(**sections)
    second = await start_gateway(**sections)
    await wait_up(first)
    await wait_up(second)
    imeis = [complete_imei(f"8600000000001{n}") for n in range(4)]
    encoders = [get_codec("gl300").device(imei) for imei in imeis]
    senders = [await devices(imei) for imei in imeis]
    per_device = 50
    for i in range(per_device):
        for encoder, sender in zip(encoders, senders, strict=True):
            await sender.send(position(encoder, i))
    total = per_device * len(imeis)

    async def all_frames_stored() -> bool:
        return int(await scalar(first.db, "SELECT count(*) FROM device_frames")) >= total

    await eventually(all_frames_stored, timeout=20)
    await asyncio.sleep(0.3)  # a duplicate, if any, would land now
    assert int(await scalar(first.db, "SELECT count(*) FROM device_frames")) == total

    def handled(gateway: Gateway) -> float:
        return gateway.metrics.registry.get_sample_value(
            "gateway_mqtt_messages_total", {"result": "accepted"}) or 0.0

    assert handled(first) + handled(second) == total
    assert handled(first) > 0 and handled(second) > 0
