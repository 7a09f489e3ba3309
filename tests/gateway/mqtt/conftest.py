"""MQTT tests: the real Mosquitto on 127.0.0.1:1883, a unique topic prefix per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import pytest

from gateway.server import Gateway
from tests.gateway.e2e.conftest import (  # the in-process gateway fixtures, on both databases
    StartGateway,
    bind_when_seen,
    eventually,
    gateway_settings,
    start_gateway,
)
from tests.gateway.store.proxy import TcpProxy

__all__ = ["BROKER_PORT", "Device", "bind_when_seen", "eventually", "gateway_settings",
           "start_gateway"]

BROKER_PORT = 1883


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}/trackers"


def mqtt_sections(prefix: str, port: int = BROKER_PORT, **more: Any) -> dict[str, Any]:
    return {"enabled": True, "url": f"mqtt://127.0.0.1:{port}", "topic_prefix": prefix,
            "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5, **more}


class Device:
    """A device on the broker: publishes on its up topic, collects what comes on its down one."""

    def __init__(self, client: aiomqtt.Client, prefix: str, imei: str) -> None:
        self.client = client
        self.up = f"{prefix}/{imei}/up"
        self.down = f"{prefix}/{imei}/down"
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    async def send(self, payload: bytes, topic: str | None = None) -> None:
        await self.client.publish(topic or self.up, payload, qos=1)

    async def expect(self, data: bytes, timeout: float = 10.0) -> None:
        got = await asyncio.wait_for(self.received.get(), timeout)
        assert got == data

    async def next(self, timeout: float = 10.0) -> bytes:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def nothing_more(self, wait: float = 0.3) -> None:
        await asyncio.sleep(wait)
        assert self.received.empty(), self.received.get_nowait()


@pytest.fixture
async def devices(prefix: str) -> AsyncIterator[Any]:
    """`await devices(imei)` -> a Device sharing one broker connection with the others."""
    client = aiomqtt.Client("127.0.0.1", BROKER_PORT, protocol=aiomqtt.ProtocolVersion.V5)
    await client.__aenter__()
    by_topic: dict[str, Device] = {}

    async def pump() -> None:
        async for message in client.messages:
            device = by_topic.get(message.topic.value)
            if device is not None:
                assert isinstance(message.payload, bytes)
                device.received.put_nowait(message.payload)

    task = asyncio.create_task(pump())

    async def make(imei: str) -> Device:
        device = Device(client, prefix, imei)
        by_topic[device.down] = device
        await client.subscribe(device.down, qos=1)
        return device

    yield make
    task.cancel()
    await client.__aexit__(None, None, None)


@pytest.fixture
async def mqtt_gateway(start_gateway: StartGateway, prefix: str) -> Gateway:
    gateway = await start_gateway(mqtt=mqtt_sections(prefix))
    await wait_up(gateway)
    return gateway


async def wait_up(gateway: Gateway) -> None:
    async def up() -> bool:
        return gateway.mqtt is not None and gateway.mqtt.state == "up"

    await eventually(up)


@pytest.fixture
async def broker_proxy() -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", BROKER_PORT)
    await proxy.start()
    yield proxy
    await proxy.close()
