"""A real gateway on loopback for end-to-end tests, on each database dialect."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.server import Gateway
from protocols import names

ADMIN_TOKEN = "test-admin-token-0123456789abcdef-xyz"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_settings(store_url: str, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "database": {"url": store_url, "batch_delay_ms": 2.0},
        "tcp": {"host": "127.0.0.1", "auto_port": free_port()},
        # Every protocol of the registry on a port of its own.
        "protocols": {name: {"port": free_port()} for name in names()},
        "http": {"host": "127.0.0.1", "port": 0},
        "admin": {"token": ADMIN_TOKEN},
        # A fixed key: no key file is created in the working directory by tests.
        "activation": {"server_key": "e2e-test-server-key-0123456789abcdef"},
    }
    for name, values in sections.items():
        if name == "protocols":  # per protocol: merge into its table
            for protocol, table in values.items():
                base[name][protocol] = {**base[name].get(protocol, {}), **table}
            continue
        base[name] = {**base.get(name, {}), **values}
    return Settings(**base)


StartGateway = Callable[..., Awaitable[Gateway]]


async def start_on_free_ports(store_url: str, **sections: dict[str, Any]) -> Gateway:
    """A started gateway (`gateway_settings` with `sections`); the caller stops it."""
    # free_port() can race with other processes on this host: retry with fresh ports.
    for attempt in range(3):
        gateway = Gateway(gateway_settings(store_url, **sections))
        try:
            await gateway.start()
        except OSError as exc:
            await gateway.stop()
            if exc.errno != errno.EADDRINUSE or attempt == 2:
                raise
            continue
        return gateway
    raise AssertionError("unreachable")


@pytest.fixture
async def start_gateway(store_url: str) -> AsyncIterator[StartGateway]:
    """Start gateways with settings overrides; all are stopped at the end of the test."""
    started: list[Gateway] = []

    async def start(**sections: dict[str, Any]) -> Gateway:
        gateway = await start_on_free_ports(store_url, **sections)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.fixture
async def gateway(start_gateway: StartGateway) -> Gateway:
    return await start_gateway()


@pytest.fixture
async def http(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gateway.http_port}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    ) as client:
        yield client


class DeviceLink:
    """A raw TCP connection playing a device: exact bytes out, exact bytes expected back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> DeviceLink:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def expect(self, data: bytes, timeout: float = 10.0) -> None:
        got = await asyncio.wait_for(self.reader.readexactly(len(data)), timeout)
        assert got == data

    async def expect_prefix(self, prefix: bytes, end: bytes = b"$", timeout: float = 10.0) -> bytes:
        """The next reply (up to and including `end`) starts with `prefix`; returns it."""
        got = await asyncio.wait_for(self.reader.readuntil(end), timeout)
        assert got.startswith(prefix), got
        return got

    async def nothing_more(self, wait: float = 0.3) -> None:
        """No reply arrives within `wait` seconds (and the connection stays open)."""
        try:
            got = await asyncio.wait_for(self.reader.read(1), wait)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected bytes from the gateway: {got!r}")

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True when the gateway closes the connection within `timeout` seconds."""
        try:
            await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def link_factory() -> AsyncIterator[Callable[[int], Awaitable[DeviceLink]]]:
    links: list[DeviceLink] = []

    async def open_link(port: int) -> DeviceLink:
        link = await DeviceLink.open(port)
        links.append(link)
        return link

    yield open_link
    for link in links:
        await link.close()


async def bind_when_seen(db: Any, imei: str, contact: str = "owner@example.com") -> None:
    """Bind a device once its first frame is stored (a handshake reply may come before that)."""
    from gateway.store import queries

    deadline = asyncio.get_running_loop().time() + 10
    while True:
        try:
            await queries.bind_device(db, imei, contact)
            return
        except queries.DeviceNotFound:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.02)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Wait until `check()` is true: for effects no reply acknowledges (gps103 positions,
    heartbeats), which the gateway stores within a group-commit delay."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {timeout} s: {check.__name__}")
        await asyncio.sleep(0.02)
