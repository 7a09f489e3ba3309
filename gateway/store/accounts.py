"""Owners, their web sessions and their authenticator-app (TOTP) state.

TOTP secrets arrive here already sealed (encrypted) by `gateway.activation.sealed`; this module
never sees one in clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Database
from gateway.store.models import Owner, WebSession

_O = Owner.__table__
_S = WebSession.__table__


async def owner_by_contact(conn: AsyncConnection, contact: str) -> Row[Any] | None:
    return (await conn.execute(select(_O.c.id, _O.c.contact, _O.c.totp_secret)
                               .where(_O.c.contact == contact))).first()


async def ensure_owner(conn: AsyncConnection, contact: str, now: datetime) -> int:
    """The owner with `contact`, created on first claim (the code proved the contact)."""
    owner_id = await conn.scalar(select(_O.c.id).where(_O.c.contact == contact))
    if owner_id is None:
        owner_id = await conn.scalar(insert(_O).values(contact=contact, created_at=now)
                                     .returning(_O.c.id))
    assert owner_id is not None
    return int(owner_id)


async def add_session(
    conn: AsyncConnection, token_hash: str, owner_id: int, now: datetime, expires_at: datetime
) -> None:
    await conn.execute(insert(_S).values(token_hash=token_hash, owner_id=owner_id,
                                         created_at=now, expires_at=expires_at))


async def session_owner(db: Database, token_hash: str, now: datetime) -> Row[Any] | None:
    async with db.engine.connect() as conn:
        return (await conn.execute(
            select(_O.c.id, _O.c.contact, _O.c.totp_secret)
            .join(_S, _S.c.owner_id == _O.c.id)
            .where(_S.c.token_hash == token_hash, _S.c.expires_at > now))).first()


async def end_session(db: Database, token_hash: str) -> None:
    async with db.begin() as conn:
        await conn.execute(_S.delete().where(_S.c.token_hash == token_hash))


async def set_pending_totp(conn: AsyncConnection, owner_id: int, sealed: str) -> None:
    await conn.execute(update(_O).where(_O.c.id == owner_id).values(totp_pending_secret=sealed))


async def pending_totp(conn: AsyncConnection, owner_id: int) -> str | None:
    value = await conn.scalar(select(_O.c.totp_pending_secret).where(_O.c.id == owner_id))
    return str(value) if value is not None else None


async def enable_totp(conn: AsyncConnection, owner_id: int, sealed: str, step: int) -> None:
    await conn.execute(update(_O).where(_O.c.id == owner_id).values(
        totp_secret=sealed, totp_pending_secret=None, totp_last_step=step))


async def disable_totp(conn: AsyncConnection, owner_id: int) -> None:
    await conn.execute(update(_O).where(_O.c.id == owner_id).values(
        totp_secret=None, totp_pending_secret=None))


async def totp_of(conn: AsyncConnection, contact: str) -> Row[Any] | None:
    """The owner's id and sealed secret, for checking a TOTP code."""
    return (await conn.execute(select(_O.c.id, _O.c.totp_secret)
                               .where(_O.c.contact == contact))).first()


async def accept_totp_step(conn: AsyncConnection, owner_id: int, step: int) -> bool:
    """Take `step` as the owner's last accepted time step, if it is later than the last one
    (rule 26). One conditional UPDATE: two requests with the same code cannot both pass."""
    result = await conn.execute(update(_O).where(
        _O.c.id == owner_id,
        or_(_O.c.totp_last_step.is_(None), _O.c.totp_last_step < step),
    ).values(totp_last_step=step))
    return bool(result.rowcount == 1)


async def secrets_to_seal(conn: AsyncConnection, prefix: str) -> list[Row[Any]]:
    """Owners whose TOTP secrets are still stored in clear (before migration 0003)."""
    return list((await conn.execute(
        select(_O.c.id, _O.c.totp_secret, _O.c.totp_pending_secret).where(or_(
            _O.c.totp_secret.not_like(f"{prefix}%"),
            _O.c.totp_pending_secret.not_like(f"{prefix}%"))))).all())


async def store_sealed(
    conn: AsyncConnection, owner_id: int, secret: str | None, pending: str | None
) -> None:
    await conn.execute(update(_O).where(_O.c.id == owner_id).values(
        totp_secret=secret, totp_pending_secret=pending))
