"""The audit log: one row per start, send, check, claim, release, unlock. Never a code."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Database
from gateway.store.models import AuditEntry

log = logging.getLogger("gateway.audit")


async def record(
    conn: AsyncConnection,
    action: str,
    outcome: str,
    *,
    imei: str | None = None,
    owner_id: int | None = None,
    challenge_id: str | None = None,
    client_addr: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row in the caller's transaction, and log the same facts."""
    await conn.execute(insert(AuditEntry).values(
        at=datetime.now(UTC), action=action, outcome=outcome, imei=imei, owner_id=owner_id,
        challenge_id=challenge_id, client_addr=client_addr, detail=detail))
    log.info("audit", extra={"action": action, "outcome": outcome, "imei": imei,
                             "owner_id": owner_id, "challenge": challenge_id,
                             "remote": client_addr})


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    action: str
    outcome: str
    imei: str | None
    owner_id: int | None
    challenge_id: str | None
    client_addr: str | None
    detail: dict[str, Any] | None


async def read(
    db: Database, *, imei: str | None = None, action: str | None = None, limit: int = 100
) -> list[AuditRow]:
    """Newest first."""
    a = AuditEntry
    stmt = select(a.id, a.at, a.action, a.outcome, a.imei, a.owner_id, a.challenge_id,
                  a.client_addr, a.detail).order_by(a.id.desc()).limit(limit)
    if imei is not None:
        stmt = stmt.where(a.imei == imei)
    if action is not None:
        stmt = stmt.where(a.action == action)
    async with db.engine.connect() as conn:
        return [AuditRow(*row) for row in (await conn.execute(stmt)).all()]
