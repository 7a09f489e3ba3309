"""Commands to devices: the queue every instance shares, and each command's life.

A command is inserted `queued`; whoever sends it first claims it with one conditional UPDATE
(`claim`), so that two instances never both send it; the device's answer settles it
(`settle`). Commands that waited past their expiry, or whose device changed hands meanwhile,
are closed by `close_stale`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from gateway.store.claiming import names_device
from gateway.store.database import Database
from gateway.store.models import Device, DeviceCommand

QUEUED = "queued"
SENT = "sent"
ACKNOWLEDGED = "acknowledged"
FAILED = "failed"
EXPIRED = "expired"
STATUSES = (QUEUED, SENT, ACKNOWLEDGED, FAILED, EXPIRED)

#: Why a command waiting for its device was closed when the device changed hands.
CHANGED_HANDS = "not sent: the device changed owner before it came online"
#: Longest answer text kept.
MAX_RESULT_CHARS = 500

_c = DeviceCommand.__table__
_d = Device.__table__


@dataclass(frozen=True, slots=True)
class Target:
    """A device as a command needs it."""

    id: int
    imei: str
    protocol: str
    remote_addr: str | None
    current_binding_id: int | None


@dataclass(frozen=True, slots=True)
class CommandInfo:
    """A command as its requester sees it."""

    id: int
    imei: str
    type: str
    interval_s: int | None
    status: str
    requested_by: str
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None
    result: str | None
    #: The bytes sent (admins only: what exactly the device got).
    payload: bytes | None


@dataclass(frozen=True, slots=True)
class Due:
    """A queued command that may go out now, with what sending it needs."""

    id: int
    imei: str
    protocol: str
    remote_addr: str | None
    type: str
    interval_s: int | None


@dataclass(frozen=True, slots=True)
class Waiting:
    """A sent command of a device, waiting for its answer."""

    id: int
    payload: bytes


def _binding_unchanged() -> ColumnElement[bool]:
    """The command was asked under the device's current binding (both NULL: unbound)."""
    # An alias of its own: the queries around it join `devices` too.
    d = _d.alias("command_device")
    return _c.c.binding_id.is_not_distinct_from(
        select(d.c.current_binding_id).where(d.c.id == _c.c.device_id).scalar_subquery())


async def target(conn: AsyncConnection, key: str) -> Target | None:
    """The device `key` names (its stored id, or a 15-digit IMEI its protocol derives an id
    from), or None."""
    condition = names_device(key) if len(key) == 15 else _d.c.imei == key
    rows = (await conn.execute(
        select(_d.c.id, _d.c.imei, _d.c.protocol, _d.c.remote_addr, _d.c.current_binding_id)
        .where(condition))).all()
    exact = [row for row in rows if row.imei == key]
    row = (exact or rows or [None])[0]
    return None if row is None else Target(*row)


async def insert_command(
    conn: AsyncConnection, device: Target, *, type: str, interval_s: int | None,
    requested_by: str, owner_id: int | None, now: datetime, expires_at: datetime,
) -> int:
    """Queue a command for `device` under its current binding; its id."""
    command_id = await conn.scalar(insert(_c).values(
        device_id=device.id, binding_id=device.current_binding_id, type=type,
        interval_s=interval_s, status=QUEUED, requested_by=requested_by, owner_id=owner_id,
        created_at=now, expires_at=expires_at).returning(_c.c.id))
    assert command_id is not None
    return int(command_id)


def _info_columns() -> tuple[ColumnElement[object], ...]:
    return (_c.c.id, _d.c.imei, _c.c.type, _c.c.interval_s, _c.c.status, _c.c.requested_by,
            _c.c.created_at, _c.c.expires_at, _c.c.sent_at, _c.c.answered_at, _c.c.result,
            _c.c.payload)


def _info(row: Sequence[object], now: datetime | None) -> CommandInfo:
    info = CommandInfo(*row)  # type: ignore[arg-type]
    if now is not None and info.status == QUEUED and info.expires_at <= now:
        # Expired already; the next sweep writes it down.
        return replace(info, status=EXPIRED)
    return info


async def get_command(db: Database, command_id: int, now: datetime | None = None
                      ) -> CommandInfo | None:
    async with db.engine.connect() as conn:
        row = (await conn.execute(select(*_info_columns()).join(_d, _d.c.id == _c.c.device_id)
                                  .where(_c.c.id == command_id))).first()
    return None if row is None else _info(row, now)


async def commands_of_bindings(
    db: Database, binding_ids: Collection[int], *, limit: int = 50, now: datetime | None = None,
) -> list[CommandInfo]:
    """Commands asked while the device was under one of these bindings (an owner's), newest
    first."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(
            select(*_info_columns()).join(_d, _d.c.id == _c.c.device_id)
            .where(_c.c.binding_id.in_(list(binding_ids)))
            .order_by(_c.c.id.desc()).limit(limit))).all()
    return [_info(row, now) for row in rows]


async def commands_of_device(
    db: Database, imei: str, *, limit: int = 50, now: datetime | None = None,
) -> list[CommandInfo]:
    """Every command of the device `imei` names (admins), newest first."""
    async with db.engine.connect() as conn:
        device = await target(conn, imei)
        if device is None:
            return []
        rows = (await conn.execute(
            select(*_info_columns()).join(_d, _d.c.id == _c.c.device_id)
            .where(_c.c.device_id == device.id)
            .order_by(_c.c.id.desc()).limit(limit))).all()
    return [_info(row, now) for row in rows]


async def due(
    db: Database, now: datetime, *, imeis: Collection[str] | None = None, limit: int = 500,
) -> list[Due]:
    """Queued commands that may go out now (not expired, device still in the same hands),
    oldest first; with `imeis`, only those devices'."""
    stmt = (select(_c.c.id, _d.c.imei, _d.c.protocol, _d.c.remote_addr, _c.c.type,
                   _c.c.interval_s)
            .join(_d, _d.c.id == _c.c.device_id)
            .where(_c.c.status == QUEUED, _c.c.expires_at > now, _binding_unchanged())
            .order_by(_c.c.id).limit(limit))
    if imeis is not None:
        stmt = stmt.where(_d.c.imei.in_(list(imeis)))
    async with db.engine.connect() as conn:
        return [Due(*row) for row in (await conn.execute(stmt)).all()]


async def close_stale(db: Database, now: datetime) -> tuple[int, int]:
    """Mark queued commands past their expiry `expired`, and those whose device changed
    hands `failed`; (expired, failed). Looks before it writes: usually nothing is stale, and
    then no write transaction is taken."""
    stale = or_(_c.c.expires_at <= now, ~_binding_unchanged())
    async with db.engine.connect() as conn:
        found = (await conn.execute(select(_c.c.id).where(_c.c.status == QUEUED, stale)
                                    .limit(1))).first()
    if found is None:
        return 0, 0
    async with db.begin() as conn:
        expired = await conn.execute(update(_c).where(
            _c.c.status == QUEUED, _c.c.expires_at <= now).values(status=EXPIRED))
        failed = await conn.execute(update(_c).where(
            _c.c.status == QUEUED, ~_binding_unchanged()).values(
            status=FAILED, answered_at=now, result=CHANGED_HANDS))
    return int(expired.rowcount or 0), int(failed.rowcount or 0)


async def claim(db: Database, command_id: int, payload: bytes, now: datetime,
                instance: str) -> bool:
    """Take a queued command for sending (False: another instance took it, it expired, or
    the device changed hands). The caller sends `payload` only after a True."""
    async with db.begin() as conn:
        result = await conn.execute(update(_c).where(
            _c.c.id == command_id, _c.c.status == QUEUED, _c.c.expires_at > now,
            _binding_unchanged()).values(status=SENT, sent_at=now, payload=payload,
                                         sent_by=instance[:64]))
    return bool(result.rowcount == 1)


async def unclaim(db: Database, command_id: int) -> None:
    """Put back a command claimed but not sent after all (its stream closed meanwhile)."""
    async with db.begin() as conn:
        await conn.execute(update(_c).where(_c.c.id == command_id, _c.c.status == SENT).values(
            status=QUEUED, sent_at=None, payload=None, sent_by=None))


async def fail(db: Database, command_id: int, reason: str, now: datetime) -> None:
    """A queued command that cannot be sent (its bytes could not be made)."""
    async with db.begin() as conn:
        await conn.execute(update(_c).where(_c.c.id == command_id, _c.c.status == QUEUED).values(
            status=FAILED, answered_at=now, result=reason[:MAX_RESULT_CHARS]))


async def waiting(db: Database, imei: str, since: datetime) -> list[Waiting]:
    """The device's commands sent since `since` and not answered yet, oldest first."""
    async with db.engine.connect() as conn:
        rows = (await conn.execute(
            select(_c.c.id, _c.c.payload).join(_d, _d.c.id == _c.c.device_id)
            .where(_d.c.imei == imei, _c.c.status == SENT, _c.c.sent_at >= since,
                   _c.c.payload.is_not(None))
            .order_by(_c.c.id))).all()
    return [Waiting(row.id, bytes(row.payload)) for row in rows]


async def settle(db: Database, command_id: int, status: str, result: str, now: datetime
                 ) -> bool:
    """Record the device's answer to a sent command (False: it was answered meanwhile)."""
    assert status in (ACKNOWLEDGED, FAILED)
    async with db.begin() as conn:
        done = await conn.execute(update(_c).where(
            _c.c.id == command_id, _c.c.status == SENT).values(
            status=status, answered_at=now, result=result[:MAX_RESULT_CHARS]))
    return bool(done.rowcount == 1)
