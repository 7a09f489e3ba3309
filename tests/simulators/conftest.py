"""Simulators against the real gateway (in-process, on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.server import Gateway
from gateway.store.database import Database
from simulators import DeviceConfig, Scheduler, SimDevice, TcpLink
from simulators.routes import Route, RouteSource

# The gateway fixtures (store_url on both dialects, start_gateway, gateway).
from tests.gateway.conftest import pg_admin_dsn, pg_session_url, store_url  # noqa: F401
from tests.gateway.e2e.conftest import bind_when_seen, gateway_settings
from tests.gateway.e2e.conftest import gateway as gateway
from tests.gateway.e2e.conftest import start_gateway as start_gateway

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)

#: Fast timers for tests: behaviour is the same, only quicker.
FAST = {"position_interval_s": 0.1, "heartbeat_interval_s": 0.3, "ack_timeout_s": 0.5,
        "replay_pause_s": 0.02}


class SteppingClock:
    """Fix times one second apart per call: distinct positions at any test speed (the gateway
    keeps one position per device and second)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still false after {timeout} s: {what or check}")
        await asyncio.sleep(0.01)


class Sim:
    """Builds devices on TCP links and stops them all at the end of the test."""

    def __init__(self) -> None:
        self.scheduler = Scheduler()
        self.links: list[TcpLink] = []
        self.events: dict[str, list[tuple[str, str, bytes | None]]] = {}

    def device(self, protocol: str, port: int, *, imei: str | None = None,
               host: str = "127.0.0.1", **config: Any) -> TcpLink:
        settings = {**FAST, **config}
        events: list[tuple[str, str, bytes | None]] = []
        device = SimDevice(protocol, imei, config=DeviceConfig(**settings),
                           source=RouteSource(Route.generated()), clock=SteppingClock(),
                           trace=lambda e, d, b: events.append((e, d, b)))
        self.events[device.imei] = events
        link = TcpLink(device, host, port, self.scheduler)
        link.backoff.first = 0.05
        link.backoff.cap = 0.2
        self.links.append(link)
        return link

    async def close(self) -> None:
        for link in self.links:
            link.stop()
        await asyncio.sleep(0.05)
        self.scheduler.close()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    s = Sim()
    yield s
    await s.close()


async def stored_positions(db: Database, imei: str) -> set[datetime]:
    from sqlalchemy import text

    async with db.engine.connect() as conn:
        rows = (await conn.execute(text(
            "SELECT p.fix_time FROM positions p JOIN devices d ON d.id = p.device_id "
            "WHERE d.imei = :imei"), {"imei": imei})).all()
    out = set()
    for (value,) in rows:
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        out.add(value)
    return out




@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:  # noqa: F811
    database = Database.create(store_url)
    try:
        yield database
    finally:
        await database.dispose()


__all__ = ["Gateway", "bind_when_seen", "gateway_settings"]
