"""Simulated devices over MQTT: the real gateway (MQTT enabled, both databases) and the real
Mosquitto on 127.0.0.1:1883, a unique topic prefix per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from gateway.server import Gateway
from gateway.store import queries
from simulators import DeviceConfig, MqttLink, Scheduler, SimDevice, State
from simulators.cli import build_parser
from simulators.routes import Route, RouteSource
from tests.gateway.e2e.conftest import StartGateway, bind_when_seen
from tests.gateway.store.proxy import TcpProxy
from tests.simulators.conftest import FAST, SteppingClock, stored_positions, until

BROKER = "mqtt://127.0.0.1:1883"


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}/trackers"


async def mqtt_gateway(start_gateway: StartGateway, prefix: str, **sections: Any) -> Gateway:
    gateway = await start_gateway(mqtt={
        "enabled": True, "url": BROKER, "topic_prefix": prefix,
        "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5}, **sections)
    await until(lambda: gateway.mqtt is not None and gateway.mqtt.state == "up",
                what="gateway on the broker")
    return gateway


class MqttSim:
    """Devices on MQTT links; all stopped at the end of the test."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.scheduler = Scheduler()
        self.links: list[MqttLink] = []
        self.events: dict[str, list[tuple[str, str, bytes | None]]] = {}

    def device(self, protocol: str, url: str = BROKER, **config: Any) -> MqttLink:
        events: list[tuple[str, str, bytes | None]] = []
        device = SimDevice(protocol, config=DeviceConfig(**{**FAST, **config}),
                           source=RouteSource(Route.generated()), clock=SteppingClock(),
                           trace=lambda e, d, b: events.append((e, d, b)))
        self.events[device.imei] = events
        link = MqttLink(device, self.scheduler, url=url, topic_prefix=self.prefix)
        link.backoff.first = 0.05
        link.backoff.cap = 0.2
        self.links.append(link)
        return link

    async def close(self) -> None:
        for link in self.links:
            link.stop()
        for link in self.links:
            await link.wait_closed()
        self.scheduler.close()


@pytest.fixture
async def msim(prefix: str) -> AsyncIterator[MqttSim]:
    s = MqttSim(prefix)
    yield s
    await s.close()


@pytest.fixture
async def down_watch(prefix: str) -> AsyncIterator[Any]:
    """`await down_watch(imei)` -> a list collecting every payload on that device's down topic."""
    client = aiomqtt.Client("127.0.0.1", 1883, protocol=aiomqtt.ProtocolVersion.V5)
    await client.__aenter__()
    seen: dict[str, list[bytes]] = {}

    async def pump() -> None:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            seen.setdefault(message.topic.value, []).append(message.payload)

    task = asyncio.create_task(pump())

    async def watch(imei: str) -> list[bytes]:
        topic = f"{prefix}/{imei}/down"
        await client.subscribe(topic, qos=1)
        return seen.setdefault(topic, [])

    yield watch
    task.cancel()
    await client.__aexit__(None, None, None)


async def test_gl300_with_sack_logs_in_reports_and_sends_sos(
        start_gateway: StartGateway, prefix: str, msim: MqttSim, down_watch: Any) -> None:
    gateway = await mqtt_gateway(start_gateway, prefix, protocols={"gl300": {"sack": True}})
    link = msim.device("gl300", sack=True, position_interval_s=0.2)
    device = link.device
    downs = await down_watch(device.imei)
    link.start()
    await until(lambda: device.state is State.ONLINE, what="online")
    assert device.stats.logins_acked == 1
    await bind_when_seen(gateway.db, device.imei)
    await until(lambda: device.stats.positions_sent >= 4, what="positions")
    # Every report is SACKed on the down topic, the device takes each SACK as its ack.
    await until(lambda: device.stats.frames_acked >= 5 and not device.in_flight,
                what="acks")
    assert any(d.startswith(b"+SACK:") for d in downs)
    assert device.stats.retransmits == 0 and device.stats.gave_up == 0
    assert len(await stored_positions(gateway.db, device.imei)) >= 3

    device.press_sos()

    async def has_sos() -> bool:
        alarms = await queries.alarms_of_device(gateway.db, device.imei)
        return any(a.alarm_type == "sos" for a in alarms)

    for _ in range(500):
        if await has_sos():
            break
        await asyncio.sleep(0.02)
    assert await has_sos()
    assert device.stats.sos_sent == 1
    await until(lambda: not any(o.kind.value == "sos" for o in device.in_flight),
                what="SOS acknowledged")


async def test_gps103_login_gets_load(start_gateway: StartGateway, prefix: str,
                                      msim: MqttSim) -> None:
    await mqtt_gateway(start_gateway, prefix)
    link = msim.device("gps103")
    link.start()
    await until(lambda: link.device.stats.logins_acked == 1, what="LOAD")
    assert link.device.state is State.ONLINE
    received = [b for e, _, b in msim.events[link.device.imei] if e == "recv"]
    assert received[0] == b"LOAD"


async def test_device_reconnects_after_the_link_drops(
        start_gateway: StartGateway, prefix: str, msim: MqttSim) -> None:
    await mqtt_gateway(start_gateway, prefix)
    link = msim.device("gps103")
    link.start()
    await until(lambda: link.device.state is State.ONLINE, what="online")
    link.drop()
    await until(lambda: link.device.stats.disconnects == 1, what="down")
    await until(lambda: link.device.stats.logins_acked == 2, what="second LOAD")
    assert link.device.stats.connects == 2


async def test_broker_going_away_buffers_then_replays(
        start_gateway: StartGateway, prefix: str, msim: MqttSim) -> None:
    gateway = await mqtt_gateway(start_gateway, prefix, protocols={"gl300": {"sack": True}})
    proxy = TcpProxy("127.0.0.1", 1883)  # between the device and the broker only
    await proxy.start()
    try:
        link = msim.device("gl300", url=f"mqtt://127.0.0.1:{proxy.port}", sack=True,
                           position_interval_s=0.1)
        device = link.device
        link.start()
        await until(lambda: device.state is State.ONLINE, what="online")
        await bind_when_seen(gateway.db, device.imei)
        await proxy.cut()
        await until(lambda: device.state is State.OFFLINE, what="offline")
        await until(lambda: device.stats.connect_failures >= 2 and device.stats.fixes_buffered
                    >= 3, what="retrying while buffering")
        # What waits now is replayed once the broker is back (the frames carry whole seconds;
        # fixes a tenth of a second apart can share one, and are then one stored position).
        waiting = {b.fix.fix_time.replace(microsecond=0) for b in device.buffer}
        await proxy.restore()
        await until(lambda: device.stats.connects == 2 and device.state is State.ONLINE,
                    what="back online")
        await until(lambda: not device.buffer and not device.in_flight
                    and device.stats.fixes_replayed >= 3, what="buffer replayed and acked")
        device.quiesce()
        await until(lambda: not device.in_flight, what="all acked")
        assert device.stats.buffer_dropped == 0
        stored = await stored_positions(gateway.db, device.imei)
        assert len(waiting) >= 2
        assert waiting <= stored, sorted(waiting - stored)
    finally:
        await proxy.close()


def test_cli_device_takes_the_mqtt_options() -> None:
    args = build_parser().parse_args([
        "device", "--protocol", "gps103", "--transport", "mqtt",
        "--mqtt-url", "mqtt://broker.example:1884", "--topic-prefix", "fleet/a"])
    assert (args.transport, args.mqtt_url, args.topic_prefix) == (
        "mqtt", "mqtt://broker.example:1884", "fleet/a")
    assert build_parser().parse_args(["device"]).transport == "tcp"
