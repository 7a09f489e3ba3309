"""The schema: migrations, dialect setup, timestamps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from gateway.store.database import Database, normalize_url
from gateway.store.ingest import write_batch
from gateway.store.migrate import current_revision, head_revision, upgrade
from gateway.store.models import Base
from gateway.store.queries import get_device

from .support import T0, fix_item, imei, scalar

TABLES = {"devices", "owners", "bindings", "positions", "alarms", "device_frames"}


async def test_migrations_create_the_schema(db: Database) -> None:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert names >= TABLES
    assert await current_revision(db) == head_revision()


async def test_upgrade_is_idempotent(db: Database, store_url: str) -> None:
    await upgrade(store_url)
    await upgrade(store_url)
    assert await current_revision(db) == head_revision()


async def test_migrations_match_the_models(db: Database) -> None:
    def diff(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(sync_conn)  # type: ignore[arg-type]
        return compare_metadata(context, Base.metadata)

    async with db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == []


async def test_sqlite_file_is_created_with_durable_settings(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "gateway.db"
    db = await Database.connect(f"sqlite:///{path}", sqlite_busy_timeout_ms=1234)
    try:
        assert path.exists()
        assert await current_revision(db) == head_revision()  # migrated on start
        assert await scalar(db, "PRAGMA journal_mode") == "wal"
        assert await scalar(db, "PRAGMA synchronous") == 2  # FULL
        assert await scalar(db, "PRAGMA busy_timeout") == 1234
        assert await scalar(db, "PRAGMA foreign_keys") == 1
        assert await db.ping()
    finally:
        await db.dispose()


async def test_the_batch_writers_connection_is_as_durable_and_keeps_temp_data_in_memory(
        tmp_path: Path) -> None:
    db = await Database.connect(f"sqlite:///{tmp_path / 'gateway.db'}",
                                sqlite_busy_timeout_ms=1234)
    try:
        assert db.sqlite_writer is not None
        settings = await db.sqlite_writer.write(lambda connection: [
            connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys",
                         "temp_store")])
        # temp_store 2 (MEMORY): the bulk statements' statement journals are not spilled to
        # a temp file written and deleted per batch.
        assert settings == ["wal", 2, 1234, 1, 2]
    finally:
        await db.dispose()


async def test_postgresql_is_not_migrated_implicitly(store_url: str) -> None:
    db = await Database.connect(store_url, auto_upgrade=None)
    try:
        assert await db.ping()
        assert db.dialect in ("sqlite", "postgresql")
    finally:
        await db.dispose()


async def test_ping_is_false_when_the_server_is_away() -> None:
    db = Database.create("postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_timeout_s=2)
    try:
        assert await db.ping() is False
    finally:
        await db.dispose()


def test_urls_get_their_async_driver() -> None:
    assert normalize_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert normalize_url("postgresql://u@h/d").drivername == "postgresql+asyncpg"
    with pytest.raises(ValueError):
        normalize_url("mysql://u@h/d")


async def test_timestamps_come_back_aware_utc(db: Database) -> None:
    device = imei(1)
    berlin = timezone(timedelta(hours=2))
    await write_batch(db, [replace(fix_item(device, 0), received_at=T0.astimezone(berlin))], 20)
    info = await get_device(db, device)
    assert info is not None
    assert info.first_seen == T0 and info.first_seen.tzinfo == UTC
    assert info.last_fix is not None and info.last_fix.fix_time.utcoffset() == timedelta(0)


async def test_naive_datetimes_are_refused(db: Database) -> None:
    naive = replace(fix_item(imei(1), 0), received_at=datetime(2024, 1, 1))
    with pytest.raises(ValueError):
        await write_batch(db, [naive], 20)
    assert await scalar(db, "SELECT count(*) FROM devices") == 0


async def test_the_raw_schema_has_the_unique_keys(db: Database) -> None:
    async with db.engine.connect() as conn:
        uniques = await conn.run_sync(
            lambda c: {tuple(u["column_names"]) for u in inspect(c).get_unique_constraints(
                "positions")})
    assert ("device_id", "fix_time") in uniques
