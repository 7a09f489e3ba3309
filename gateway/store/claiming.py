"""Devices as activation sees them: provisioning (contact of record, claim key), locks, and the
binding changes of a claim or a release.

IMEIs here are the 15 digits an owner types. Devices that send their IMEI are stored under it;
a device whose protocol names it otherwise (the protocol's `wire_ids`: for instance the last 12
digits of the IMEI) matches under that id and protocol too (the exact IMEI wins when both
exist).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Database
from gateway.store.ingest import LINK_MARK_INTERVAL
from gateway.store.models import (
    Binding,
    Device,
    DeviceLink,
    DeviceLock,
    DeviceState,
    ProvisionedDevice,
)
from protocols.registry import wire_ids

_D = Device.__table__
_B = Binding.__table__
_P = ProvisionedDevice.__table__
_L = DeviceLock.__table__
_K = DeviceLink.__table__


async def resolve_device(
    conn: AsyncConnection, imei: str, *, lock: bool = True
) -> Row[Any] | None:
    """The device row a 15-digit IMEI names, locked for the transaction with `lock`
    (PostgreSQL; SQLite's write transaction already holds the whole database)."""
    stmt = (select(_D.c.id, _D.c.imei, _D.c.protocol, _D.c.state, _D.c.current_binding_id,
                   _D.c.contact_of_record)
            .where(names_device(imei)))
    rows = (await conn.execute(stmt.with_for_update() if lock else stmt)).all()
    if len(rows) > 1:
        # An installer's recorded pair wins (the unit never names itself by the IMEI, so a row
        # of that exact id is somebody else's login), then the exact id.
        recorded = await conn.scalar(select(_P.c.wire_id).where(_P.c.imei == imei))
        paired = [row for row in rows if recorded is not None and row.imei == recorded]
        exact = [row for row in rows if row.imei == imei]
        return (paired or exact or rows)[0]
    return rows[0] if rows else None


def names_device(imei: str) -> ColumnElement[bool]:
    """The device rows a 15-digit IMEI names: its own; one stored under an id its protocol
    derives from the IMEI (`Codec.wire_ids`); one stored under the id an installer recorded
    for it (`provisioned_devices.wire_id`).

    Not the IMEI a device's login reported (`devices.reported_imei`): any connection can send
    a login in a device's id reporting any IMEI, so a claim key of the attacker's own IMEI
    would reach the device whose row "reported" it. The admin list shows it, for an installer
    to record the pair."""
    recorded = select(_P.c.wire_id).where(_P.c.imei == imei, _P.c.wire_id.is_not(None))
    return or_(_D.c.imei == imei, _D.c.imei.in_(recorded),
               *(and_(_D.c.imei == wire_id, _D.c.protocol == protocol)
                 for protocol, wire_id in wire_ids(imei)))


async def signal_link_problem(
    conn: AsyncConnection, imei: str, link_id: str, claim_started: datetime,
    signal_at: datetime, exclusive_s: float,
) -> str | None:
    """Why a device signal on `link_id` does not prove possession for a claim of `imei`
    started at `claim_started` (rule 23), or None when it does.

    It must come on the device's established connection: opened, and having named the device
    in a valid frame, before the claim started; and the only connection that named the device
    from `exclusive_s` before the claim until the signal (a link's last naming is recorded to
    within LINK_MARK_INTERVAL, so the window starts that much earlier).
    """
    devices = select(_D.c.id).where(names_device(imei)).scalar_subquery()
    own = (await conn.execute(select(_K.c.device_id, _K.c.opened_at, _K.c.first_frame_at)
                              .where(_K.c.id == link_id))).first()
    if own is None or not await conn.scalar(
            select(func.count()).select_from(_D).where(_D.c.id == own.device_id,
                                                       names_device(imei))):
        return "unknown_link"
    if own.opened_at >= claim_started or own.first_frame_at >= claim_started:
        return "link_newer_than_claim"
    since = claim_started - timedelta(seconds=exclusive_s) - LINK_MARK_INTERVAL
    others = await conn.scalar(select(func.count()).select_from(_K).where(
        _K.c.device_id.in_(devices), _K.c.id != link_id, _K.c.last_frame_at >= since,
        _K.c.first_frame_at <= signal_at))
    return "second_link" if others else None


async def forget_old_links(db: Database, before: datetime) -> int:
    """Drop link records not seen since `before` (the signal window is minutes long)."""
    async with db.begin() as conn:
        result = await conn.execute(delete(_K).where(_K.c.last_frame_at < before))
    return int(result.rowcount or 0)


def is_owned(device: Row[Any] | None) -> bool:
    return device is not None and (
        device.current_binding_id is not None or device.state == DeviceState.CLAIMED)


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What a dealer or installer registered for an IMEI."""

    contact: str | None
    claim_key_hmac: str | None


async def provisioning(
    conn: AsyncConnection, imei: str, device: Row[Any] | None
) -> Provisioning:
    row = (await conn.execute(select(_P.c.contact, _P.c.claim_key_hmac)
                              .where(_P.c.imei == imei))).first()
    contact = row.contact if row is not None else None
    if not contact and device is not None:
        contact = device.contact_of_record
    return Provisioning(contact or None, row.claim_key_hmac if row is not None else None)


async def provision(
    conn: AsyncConnection, imei: str, *, contact: str | None, claim_key_hmac: str | None,
    now: datetime, wire_id: str | None = None,
) -> None:
    """Register (or replace) what was given; a value left None keeps the stored one."""
    existing = (await conn.execute(select(_P.c.contact, _P.c.claim_key_hmac)
                                   .where(_P.c.imei == imei))).first()
    if existing is None:
        await conn.execute(insert(_P).values(imei=imei, contact=contact,
                                             claim_key_hmac=claim_key_hmac, provisioned_at=now,
                                             wire_id=wire_id))
    else:
        values: dict[str, Any] = {"provisioned_at": now}
        if contact is not None:
            values["contact"] = contact
        if claim_key_hmac is not None:
            values["claim_key_hmac"] = claim_key_hmac
        if wire_id is not None:
            values["wire_id"] = wire_id
        await conn.execute(update(_P).where(_P.c.imei == imei).values(**values))
    if contact is not None:
        device = await resolve_device(conn, imei)
        if device is not None:
            await conn.execute(update(_D).where(_D.c.id == device.id)
                               .values(contact_of_record=contact))


async def register_device(conn: AsyncConnection, imei: str, now: datetime) -> int:
    """A provisioned device that never connected: a row now, so its first positions are
    stored under the new binding."""
    device_id = await conn.scalar(insert(_D).values(
        imei=imei, protocol="unknown", state=DeviceState.UNCLAIMED, first_seen=now,
        last_seen=now, frame_seq=0).returning(_D.c.id))
    assert device_id is not None
    return int(device_id)


async def claim(conn: AsyncConnection, device_id: int, owner_id: int, now: datetime) -> bool:
    """Open a binding and take the device, only if nobody holds it (rule 14)."""
    binding_id = await conn.scalar(insert(_B).values(
        device_id=device_id, owner_id=owner_id, started_at=now).returning(_B.c.id))
    claimed = await conn.execute(update(_D).where(
        _D.c.id == device_id, _D.c.current_binding_id.is_(None),
        _D.c.state == DeviceState.UNCLAIMED.value,
    ).values(state=DeviceState.CLAIMED.value, current_binding_id=binding_id))
    return bool(claimed.rowcount == 1)


@dataclass(frozen=True, slots=True)
class OpenBinding:
    binding_id: int
    device_id: int


async def owners_binding(conn: AsyncConnection, imei: str, owner_id: int) -> OpenBinding | None:
    """The open binding of `imei` if `owner_id` holds it."""
    device = await resolve_device(conn, imei)
    if device is None or device.current_binding_id is None:
        return None
    owner = await conn.scalar(select(_B.c.owner_id).where(_B.c.id == device.current_binding_id))
    if owner != owner_id:
        return None
    return OpenBinding(device.current_binding_id, device.id)


async def release(conn: AsyncConnection, binding: OpenBinding, now: datetime) -> bool:
    await conn.execute(update(_B).where(_B.c.id == binding.binding_id, _B.c.ended_at.is_(None))
                       .values(ended_at=now))
    released = await conn.execute(update(_D).where(
        _D.c.id == binding.device_id, _D.c.current_binding_id == binding.binding_id,
    ).values(state=DeviceState.UNCLAIMED.value, current_binding_id=None))
    return bool(released.rowcount == 1)


# Locks (rules 7, 31) ---------------------------------------------------------------------------

async def lock_until(conn: AsyncConnection, imei: str) -> datetime | None:
    """When the IMEI's current or last lock lapses (None: never locked since its last claim)."""
    until = await conn.scalar(select(_L.c.locked_until).where(_L.c.imei == imei))
    return until if isinstance(until, datetime) else None


async def lock(
    conn: AsyncConnection, imei: str, now: datetime, durations_s: list[float]
) -> tuple[int, datetime]:
    """Lock self-service claiming of `imei`; each lock lasts longer. Returns (n, until)."""
    locks = await conn.scalar(select(_L.c.locks).where(_L.c.imei == imei))
    n = int(locks or 0) + 1
    until = now + timedelta(seconds=durations_s[min(n, len(durations_s)) - 1])
    if locks is None:
        await conn.execute(insert(_L).values(imei=imei, locks=n, locked_at=now,
                                             locked_until=until))
    else:
        await conn.execute(update(_L).where(_L.c.imei == imei)
                           .values(locks=n, locked_at=now, locked_until=until))
    device = await resolve_device(conn, imei)
    if device is not None:
        await conn.execute(update(_D).where(
            _D.c.id == device.id, _D.c.state == DeviceState.UNCLAIMED.value,
        ).values(state=DeviceState.LOCKED.value))
    return n, until


async def end_lock(conn: AsyncConnection, imei: str, now: datetime) -> bool:
    """An admin unlock: the lock ends now (the count stays, so the next one lasts longer).
    True when a lock was in force."""
    result = await conn.execute(update(_L).where(_L.c.imei == imei, _L.c.locked_until > now)
                                .values(locked_until=now))
    device = await resolve_device(conn, imei)
    was_locked = bool(result.rowcount)
    if device is not None and device.state == DeviceState.LOCKED:
        was_locked = True
        await conn.execute(update(_D).where(_D.c.id == device.id)
                           .values(state=DeviceState.UNCLAIMED.value))
    return was_locked


async def forget_locks(conn: AsyncConnection, imei: str) -> None:
    """After a successful claim the back-off starts again from the first duration."""
    await conn.execute(delete(_L).where(_L.c.imei == imei))


async def lapsed(conn: AsyncConnection, device_id: int) -> None:
    """The device's lock has lapsed: it is claimable again."""
    await conn.execute(update(_D).where(_D.c.id == device_id,
                                        _D.c.state == DeviceState.LOCKED.value)
                       .values(state=DeviceState.UNCLAIMED.value))


async def lapse_locks(db: Database, now: datetime) -> int:
    """Devices whose lock has lapsed become claimable again (state `unclaimed`)."""
    lapsed = select(_L.c.imei).where(_L.c.locked_until <= now).scalar_subquery()
    async with db.begin() as conn:
        result = await conn.execute(update(_D).where(
            _D.c.state == DeviceState.LOCKED.value, _D.c.imei.in_(lapsed),
        ).values(state=DeviceState.UNCLAIMED.value))
    return int(result.rowcount or 0)
