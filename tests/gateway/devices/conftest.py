"""One device's view of the gateway, over TCP or through the broker: the same behaviour tests
run on both transports (and on both databases).

* `channel(transport, gateway, imei, protocol)`: send frames, read the replies.
* `transport_gateway`: a gateway whose database can be taken away (`away()`), with MQTT on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt
import pytest

from gateway.server import Gateway
from tests.gateway.e2e.conftest import (  # noqa: F401 (fixtures)
    DeviceLink,
    StartGateway,
    eventually,
    link_factory,
    start_gateway,
)
from tests.gateway.e2e.test_database_outage import database_away, outage_capable_gateway
from tests.gateway.mqtt.conftest import (  # noqa: F401 (fixtures)
    BROKER_PORT,
    mqtt_sections,
    prefix,
    wait_up,
)

__all__ = ["Channel", "TransportGateway", "channel_factory", "eventually", "transport_gateway"]


class Channel(Protocol):
    async def send(self, data: bytes) -> None: ...

    async def reply(self, timeout: float = 10.0) -> bytes:
        """The next reply: a TCP read of what arrived, or one MQTT down message."""
        ...

    async def nothing_more(self, wait: float = 0.5) -> None: ...


class TcpChannel:
    def __init__(self, link: DeviceLink) -> None:
        self.link = link

    async def send(self, data: bytes) -> None:
        await self.link.send(data)

    async def reply(self, timeout: float = 10.0) -> bytes:
        data = await asyncio.wait_for(self.link.reader.read(65536), timeout)
        assert data, "the gateway closed the connection"
        return data

    async def nothing_more(self, wait: float = 0.5) -> None:
        await self.link.nothing_more(wait)

    async def closed_by_gateway(self, timeout: float = 10.0) -> bool:
        """True when the gateway closes the connection, having sent nothing more."""
        try:
            rest = await asyncio.wait_for(self.link.reader.read(), timeout)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        assert rest == b"", f"unexpected bytes before the close: {rest!r}"
        return True


class MqttChannel:
    def __init__(self, client: aiomqtt.Client, up: str, down: str) -> None:
        self.client = client
        self.up = up
        self.down = down
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    async def send(self, data: bytes) -> None:
        await self.client.publish(self.up, data, qos=1)

    async def reply(self, timeout: float = 10.0) -> bytes:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def nothing_more(self, wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        assert self.received.empty(), self.received.get_nowait()


@dataclass
class TransportGateway:
    gateway: Gateway
    store_url: str
    proxy: Any
    prefix: str

    def away(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The database is unreachable inside the block (acks must wait)."""
        return database_away(self.store_url, self.proxy)


@pytest.fixture
async def transport_gateway(
    store_url: str, start_gateway: StartGateway, prefix: str,  # noqa: F811 (fixtures)
) -> AsyncIterator[Callable[..., Awaitable[TransportGateway]]]:
    """`await transport_gateway(**sections)`: a gateway with MQTT on whose database can be cut."""
    stack = contextlib.AsyncExitStack()

    async def start(**sections: Any) -> TransportGateway:
        mqtt = {**mqtt_sections(prefix), **sections.pop("mqtt", {})}

        async def starter(**more: Any) -> Gateway:
            return await start_gateway(mqtt=mqtt, **sections, **more)

        gateway, proxy = await stack.enter_async_context(
            outage_capable_gateway(store_url, starter))
        # Stopped before the proxy in front of its database closes (it would otherwise wait
        # out its shutdown timeout for a database that is gone).
        stack.push_async_callback(gateway.stop)
        await wait_up(gateway)
        return TransportGateway(gateway, store_url, proxy, prefix)

    yield start
    await stack.aclose()


@pytest.fixture
async def channel_factory(
    link_factory: Callable[[int], Awaitable[DeviceLink]],  # noqa: F811 (fixture)
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """`await channel_factory(transport, tg, imei, protocol)`: one device's channel."""
    clients: list[tuple[aiomqtt.Client, asyncio.Task[None]]] = []

    async def make(transport: str, tg: TransportGateway, imei: str, protocol: str,
                   *, listener: str | None = None, topic_protocol: bool = True) -> Any:
        if transport == "tcp":
            assert tg.gateway.tcp is not None
            return TcpChannel(await link_factory(tg.gateway.tcp.ports[listener or protocol]))
        client = aiomqtt.Client("127.0.0.1", BROKER_PORT, protocol=aiomqtt.ProtocolVersion.V5)
        await client.__aenter__()
        up = f"{tg.prefix}/{imei}/up" + (f"/{protocol}" if topic_protocol else "")
        channel = MqttChannel(client, up, f"{tg.prefix}/{imei}/down")

        async def pump() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                channel.received.put_nowait(message.payload)

        await client.subscribe(channel.down, qos=1)
        clients.append((client, asyncio.create_task(pump())))
        return channel

    yield make
    for client, task in clients:
        task.cancel()
        await client.__aexit__(None, None, None)
