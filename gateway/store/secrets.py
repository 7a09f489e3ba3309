"""Secrets every instance of a deployment must share, kept in the database."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.store.database import Database
from gateway.store.models import ServerSecret

_S = ServerSecret.__table__
SERVER_KEY = "server_key"


async def server_key(db: Database, seed: str | None = None) -> tuple[str, bool]:
    """The deployment's server key, created on first use (from `seed` when given, else 256
    random bits); (key, True when this call created it). Race-free: concurrent first calls from
    several instances all get the one key that was stored first."""
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    async with db.begin() as conn:
        created = await conn.execute(
            insert(_S).values(name=SERVER_KEY, value=seed or secrets.token_hex(32),
                              created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=["name"]))
        value = await conn.scalar(select(_S.c.value).where(_S.c.name == SERVER_KEY))
    assert value is not None
    return str(value), bool(created.rowcount)
