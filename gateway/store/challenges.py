"""The `challenges` table: one row per one-time-code flow (claim, sign-in, release).

Every statement that changes a challenge is conditional on the state it expects, so that two
requests racing on one challenge cannot both act on it (rules 3, 5, 6).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Database
from gateway.store.models import Challenge
from protocols.registry import matches_imei

_C = Challenge.__table__

AWAITING = "awaiting_device_signal"
PENDING = "pending"
APPROVED = "approved"
EXPIRED = "expired"
MAX_ATTEMPTS = "max_attempts_reached"
CANCELED = "canceled"


async def insert_challenge(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(_C).values(**values))


async def load(db: Database, challenge_id: str) -> Row[Any] | None:
    async with db.engine.connect() as conn:
        return (await conn.execute(select(_C).where(_C.c.id == challenge_id[:32]))).first()


async def count_attempt(conn: AsyncConnection, challenge_id: str, now: datetime) -> Row[Any] | None:
    """Spend one attempt of a pending, unexpired challenge with attempts left (rule 5).

    Returns the new attempt count, the code HMAC and the limit; None when no attempt was left
    to spend (the comparison must then not happen).
    """
    return (await conn.execute(
        update(_C).where(
            _C.c.id == challenge_id, _C.c.status == PENDING,
            _C.c.attempts < _C.c.max_attempts, _C.c.expires_at > now,
        ).values(attempts=_C.c.attempts + 1)
        .returning(_C.c.attempts, _C.c.code_hmac, _C.c.max_attempts, _C.c.decoy)
    )).first()


async def move(conn: AsyncConnection, challenge_id: str, from_status: str, to_status: str) -> bool:
    result = await conn.execute(update(_C).where(
        _C.c.id == challenge_id, _C.c.status == from_status).values(status=to_status))
    return bool(result.rowcount == 1)


async def expire_if_due(conn: AsyncConnection, challenge_id: str, now: datetime) -> None:
    await conn.execute(update(_C).where(
        _C.c.id == challenge_id, _C.c.status.in_((PENDING, AWAITING)),
        _C.c.expires_at <= now).values(status=EXPIRED))


async def approve(conn: AsyncConnection, challenge_id: str, code_hmac: str | None) -> bool:
    """Mark the challenge used, if it is still pending with the same code (rule 3)."""
    same_code = _C.c.code_hmac.is_(None) if code_hmac is None else _C.c.code_hmac == code_hmac
    result = await conn.execute(update(_C).where(
        _C.c.id == challenge_id, _C.c.status == PENDING, same_code).values(status=APPROVED))
    return bool(result.rowcount == 1)


async def cancel(conn: AsyncConnection, challenge_id: str) -> None:
    await conn.execute(update(_C).where(_C.c.id == challenge_id).values(status="canceled"))


async def new_code(
    conn: AsyncConnection, challenge_id: str, *, expected_sends: int, code_hmac: str,
    sends: int, window_start: datetime, now: datetime, expires_at: datetime,
) -> bool:
    """A resend: the new code replaces the old one, attempts are kept (rule 6)."""
    result = await conn.execute(update(_C).where(
        _C.c.id == challenge_id, _C.c.status == PENDING, _C.c.sends == expected_sends,
    ).values(code_hmac=code_hmac, sends=sends, sends_window_start=window_start,
             last_sent_at=now, expires_at=expires_at, delivery="sending", delivery_error=None))
    return bool(result.rowcount == 1)


async def record_delivery(
    conn: AsyncConnection, challenge_id: str, delivery: str, error: str | None
) -> None:
    values: dict[str, Any] = {"delivery": delivery, "delivery_error": error}
    if delivery == "capped":
        # The code reached nobody: the challenge can never succeed.
        values["decoy"] = True
    await conn.execute(update(_C).where(_C.c.id == challenge_id).values(**values))


async def waiting_for_signal(
    conn: AsyncConnection, device_id: str, protocol: str, at: datetime, now: datetime
) -> list[Row[Any]]:
    """Claims waiting for this device's signal that started before the signal arrived (a
    claim names an IMEI; the device may name itself otherwise on the wire: the protocol's
    `matches_imei` decides). Waiting claims are few and short-lived: they are read, then
    matched here."""
    rows = (await conn.execute(
        select(_C.c.id, _C.c.imei, _C.c.deliver_to, _C.c.decoy, _C.c.created_at).where(
            _C.c.purpose == "activation", _C.c.status == AWAITING,
            _C.c.created_at <= at, _C.c.expires_at > now))).all()
    return [row for row in rows
            if row.imei is not None and matches_imei(protocol, device_id, row.imei)]


async def cancel_waiting(conn: AsyncConnection, ids: list[str]) -> None:
    await conn.execute(update(_C).where(_C.c.id.in_(ids), _C.c.status == AWAITING)
                       .values(status=CANCELED))


async def signal_arrived(
    conn: AsyncConnection, challenge_id: str, *, code_hmac: str, decoy: bool, now: datetime,
    expires_at: datetime,
) -> bool:
    result = await conn.execute(update(_C).where(
        _C.c.id == challenge_id, _C.c.status == AWAITING).values(
        status=PENDING, code_hmac=code_hmac, decoy=decoy, expires_at=expires_at, sends=1,
        sends_window_start=now, last_sent_at=now, delivery="sending"))
    return bool(result.rowcount == 1)
