"""Shared fixtures of the gateway tests: a migrated database on each dialect.

* `store_url`: the URL of an empty, migrated database; parametrized over `sqlite` (a fresh temp
  file per test) and `postgresql` (one database per test session on the real server, created
  with a unique name, migrated once, emptied before each test, dropped at the end).
* `db`: a connected `Database` on that URL.
* `pg_admin_dsn`: where the real PostgreSQL server is (env `GATEWAY_TEST_PG`, default
  `postgresql://postgres@127.0.0.1:5432/test`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from gateway.store.database import Database
from gateway.store.migrate import upgrade

PG_ADMIN_DSN = os.environ.get("GATEWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

#: Tables emptied between tests on the shared PostgreSQL database.
_TABLES = ("device_commands, positions, alarms, device_frames, device_links, bindings, "
           "web_sessions, owners, "
           "devices, provisioned_devices, device_locks, challenges, audit_log, failure_counters, "
           "server_secrets")


def _run_apart(work: Callable[[], Awaitable[None]]) -> None:
    """Run async set-up work on an event loop of its own, in a thread of its own.

    Session fixtures may first be requested from inside a test's running loop, where
    asyncio.run() is not allowed; and engines must not outlive the loop that made them.
    """

    async def main() -> None:
        await work()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, main()).result()


@pytest.fixture(scope="session")
def pg_admin_dsn() -> str:
    return PG_ADMIN_DSN


@pytest.fixture(scope="session")
def pg_session_url(pg_admin_dsn: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session; dropped afterwards."""
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    _run_apart(lambda: admin(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_admin_dsn).set(drivername="postgresql+asyncpg", database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        _run_apart(lambda: upgrade(rendered))
        yield rendered
    finally:
        _run_apart(lambda: admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database at the latest schema, on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'store' / 'gateway.db'}"
        await upgrade(url)
        return url
    url = request.getfixturevalue("pg_session_url")
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False))
    try:
        await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    return str(url)


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    """A connected Database on `store_url` (short lock waits, so lock tests stay quick)."""
    database = Database.create(store_url, sqlite_busy_timeout_ms=200)
    try:
        yield database
    finally:
        await database.dispose()
