"""The database goes away under a running gateway: connections stay, acks are withheld, and
everything lands once the database is back."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy.engine import make_url

from gateway.server import Gateway
from gateway.store import queries
from protocols import Fix, get_codec
from tests.gateway.e2e.conftest import (
    DeviceLink,
    StartGateway,
    bind_when_seen,
    eventually,
)
from tests.gateway.store.proxy import TcpProxy
from tests.gateway.store.support import count_positions

IMEI = "359586015829802"


@contextmanager
def sqlite_write_lock(url: str) -> Iterator[None]:
    conn = sqlite3.connect(make_url(url).database, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@asynccontextmanager
async def database_away(store_url: str, proxy: TcpProxy | None) -> AsyncIterator[None]:
    """The database is unreachable inside the block: SQLite write-locked by another connection,
    PostgreSQL cut off at the proxy in front of it."""
    if proxy is None:
        with sqlite_write_lock(store_url):
            yield
        return
    await proxy.cut()
    try:
        yield
    finally:
        await proxy.restore()


@asynccontextmanager
async def outage_capable_gateway(
    store_url: str, start_gateway: StartGateway
) -> AsyncIterator[tuple[Gateway, TcpProxy | None]]:
    url = make_url(store_url)
    if url.get_backend_name() == "sqlite":
        yield await start_gateway(), None
        return
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        yield await start_gateway(database={"url": proxied}), proxy
    finally:
        await proxy.close()


async def test_outage_withholds_acks_then_recovers(
    store_url: str, start_gateway: StartGateway, link_factory
) -> None:
    async with outage_capable_gateway(store_url, start_gateway) as (gateway, proxy):
        device = get_codec("gl300").device(IMEI)
        link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
        await link.send(device.heartbeat())
        await link.expect_prefix(b"+SACK:GTHBD,")
        await bind_when_seen(gateway.db, IMEI)
        tk = get_codec("tk103").device(IMEI)
        tk_link: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])

        fixes = [Fix(fix_time=datetime(2026, 3, 1, 0, 0, s, tzinfo=UTC), lat=1.0 + s,
                     lon=2.0) for s in range(5)]

        async with database_away(store_url, proxy):
            # Data frames arrive while the database is away: no ack may go out.
            await tk_link.send(tk.login())
            await link.send(device.report(fixes))
            await link.send(device.heartbeat())
            await tk_link.nothing_more(1.0)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
                if proxy is not None:
                    health = await client.get("/healthz")
                    assert health.status_code == 503
                    assert health.json()["database"] == "down"
                metrics = (await client.get("/metrics")).text
            assert "gateway_acks_pending 1.0" in metrics
            assert gateway.writer is not None and gateway.writer.pending >= 2
        # The database is back: the withheld acks go out, in order, and the data is stored.
        await tk_link.expect(f"({IMEI[-12:]}AP05)".encode(), timeout=30)
        await link.expect_prefix(b"+SACK:GTHBD,", timeout=30)
        assert await count_positions(gateway.db, IMEI) == 5
        assert gateway.tcp.connection_count == 2
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
            assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_gateway_starts_while_postgresql_is_down(
    store_url: str, link_factory, start_gateway: StartGateway  # type: ignore[no-untyped-def]
) -> None:
    url = make_url(store_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    await proxy.cut()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    # The fixture takes fresh ports if one was taken meanwhile (and stops the gateway again).
    gateway = await start_gateway(database={"url": proxied})
    try:
        link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
        # A heartbeat's SACK acknowledges no data: it goes out with the database away.
        await link.send(b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$")
        await link.expect(b"+SACK:GTHBD,1A0401,11F0$")
        # A position's SACK waits for the database, which then comes up.
        tk: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
        await tk.send(get_codec("tk103").device(IMEI).login())
        await tk.nothing_more(0.5)
        await proxy.restore()
        await tk.expect(f"({IMEI[-12:]}AP05)".encode(), timeout=30)
        assert await queries.get_device(gateway.db, IMEI[-12:]) is not None
    finally:
        await gateway.stop()
        await proxy.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_health_answers_while_postgresql_is_black_holed(
    store_url: str, start_gateway: StartGateway, link_factory
) -> None:
    """Packets to the database are dropped, not refused: queries hang. /healthz and /readyz
    still answer at once (a bounded probe, the writer's last outcome), saying why."""
    async with outage_capable_gateway(store_url, start_gateway) as (gateway, proxy):
        assert proxy is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}",
                                     timeout=2.5) as client:
            assert (await client.get("/readyz")).status_code == 200
            proxy.blackhole()
            tk: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
            await tk.send(get_codec("tk103").device(IMEI).login())  # a write that will hang
            for _ in range(3):  # again and again: checks do not pile up or slow down
                health = await client.get("/healthz")
                assert health.status_code == 503
                assert health.json()["database"] == "unreachable"
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["ready"] is False
                await asyncio.sleep(1.1)
            await proxy.restore()

            async def healthy() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await eventually(healthy, timeout=90)
        await tk.expect(f"({IMEI[-12:]}AP05)".encode(), timeout=90)
