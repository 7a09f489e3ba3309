"""Migration 0003 (proof of possession) on a database that already holds 0002 data, on each
dialect: nothing is lost, the new columns and table are there, and it goes back down."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from gateway.store.database import Database
from gateway.store.migrate import alembic_config, current_revision

T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_db(
    request: pytest.FixtureRequest, tmp_path: Path, pg_admin_dsn: str
) -> AsyncIterator[Database]:
    """A database with no schema at all (PostgreSQL: a scratch database of its own)."""
    if request.param == "sqlite":
        db = Database.create(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
        yield db
        await db.dispose()
        return
    name = f"gateway_mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg_admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(pg_admin_dsn).set(drivername="postgresql+asyncpg", database=name)
    db = Database.create(url)
    try:
        yield db
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def migrate(db: Database, target: str, down: bool = False) -> None:
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, target)

    async with db.begin() as conn:
        await conn.run_sync(run)


async def test_0003_keeps_0002_data_and_goes_back_down(empty_db: Database) -> None:
    db = empty_db
    await migrate(db, "0002")
    async with db.begin() as conn:
        await conn.execute(text(
            "INSERT INTO provisioned_devices (imei, contact, provisioned_at) "
            "VALUES ('359586015829802', 'buyer@example.com', :t)"), {"t": T0})
        await conn.execute(text(
            "INSERT INTO owners (contact, created_at, totp_secret) "
            "VALUES ('o@example.com', :t, 'JBSWY3DPEHPK3PXP')"), {"t": T0})
        await conn.execute(text(
            "INSERT INTO challenges (id, purpose, imei, deliver_to, claimant, proof, decoy, "
            "token_hash, status, attempts, max_attempts, sends, created_at, expires_at) VALUES "
            "('c1', 'activation', '359586015829802', 'buyer@example.com', 'x@example.com', "
            "'contact_of_record', false, 'h', 'pending', 0, 5, 1, :t, :t)"), {"t": T0})
    await migrate(db, "0003")
    assert await current_revision(db) == "0003"
    async with db.engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT contact, claim_key_hmac FROM provisioned_devices"))).one()
        owner = (await conn.execute(text(
            "SELECT totp_secret, totp_last_step FROM owners"))).one()
        with_key = await conn.scalar(text("SELECT with_key FROM challenges"))
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        # A device may now be provisioned with a claim key only.
        await conn.execute(text(
            "INSERT INTO provisioned_devices (imei, contact, provisioned_at, claim_key_hmac) "
            "VALUES ('359586015829810', NULL, :t, :h)"), {"t": T0, "h": "a" * 64})
        await conn.execute(text("INSERT INTO owners (contact, created_at, totp_secret) "
                                "VALUES ('long@example.com', :t, :s)"),
                           {"t": T0, "s": "v1:" + "x" * 120})
        await conn.commit()
    assert tuple(row) == ("buyer@example.com", None)
    assert tuple(owner) == ("JBSWY3DPEHPK3PXP", None)  # sealed by the gateway at its start
    assert with_key in (False, 0)
    assert "device_locks" in tables
    await migrate(db, "0002", down=True)
    assert await current_revision(db) == "0002"
    async with db.engine.connect() as conn:
        imeis = (await conn.execute(text(
            "SELECT imei FROM provisioned_devices"))).scalars().all()
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        secrets = dict((await conn.execute(text(
            "SELECT contact, totp_secret FROM owners"))).all())
    assert imeis == ["359586015829802"]
    # A sealed secret means nothing to an older gateway: that owner enrols the app again.
    assert secrets == {"o@example.com": "JBSWY3DPEHPK3PXP", "long@example.com": None}
    assert "device_locks" not in tables
