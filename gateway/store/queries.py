"""The read side (small), and the binding changes used by admin commands and test fixtures.

Results are plain frozen dataclasses, not ORM objects, so that callers (the web app) never
trigger lazy loads or hold sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Database
from gateway.store.models import (
    AuditEntry,
    Binding,
    Device,
    DeviceCommand,
    DeviceFrame,
    DeviceLink,
    DeviceState,
    Owner,
    ProvisionedDevice,
    StoredAlarm,
    StoredPosition,
)


class DeviceNotFound(LookupError):
    """No device with this IMEI has ever been seen."""


class DeviceAlreadyBound(RuntimeError):
    """The device already has an open binding (or is locked)."""


@dataclass(frozen=True, slots=True)
class LastFix:
    fix_time: datetime
    lat: float
    lon: float
    speed_kmh: float | None
    course_deg: float | None
    valid: bool | None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as the admin list shows it."""

    imei: str
    protocol: str
    state: DeviceState
    first_seen: datetime
    last_seen: datetime
    remote_addr: str | None
    last_fix: LastFix | None
    current_binding_id: int | None
    #: The IMEI this device's last login reported, when it names itself otherwise (a JT/T 808
    #: terminal phone): unauthenticated, shown so that an installer can record the pair.
    reported_imei: str | None = None


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """A recent raw frame of a device."""

    seq: int
    received_at: datetime
    raw: bytes
    remote_addr: str | None
    result: str


@dataclass(frozen=True, slots=True)
class PositionInfo:
    fix_time: datetime
    received_at: datetime
    lat: float
    lon: float
    valid: bool
    speed_kmh: float | None
    course_deg: float | None
    altitude_m: float | None
    satellites: int | None
    hdop: float | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlarmInfo:
    alarm_type: str
    raw_code: str
    event_time: datetime
    lat: float | None
    lon: float | None
    received_at: datetime
    binding_id: int | None


@dataclass(frozen=True, slots=True)
class BindingInfo:
    id: int
    imei: str
    owner_id: int
    contact: str
    started_at: datetime
    ended_at: datetime | None


def _device_info(d: Device) -> DeviceInfo:
    last_fix = None
    if d.last_fix_time is not None and d.last_lat is not None and d.last_lon is not None:
        last_fix = LastFix(d.last_fix_time, d.last_lat, d.last_lon, d.last_speed_kmh,
                           d.last_course_deg, d.last_valid)
    return DeviceInfo(d.imei, d.protocol, d.state, d.first_seen, d.last_seen, d.remote_addr,
                      last_fix, d.current_binding_id, d.reported_imei)


async def list_devices(
    db: Database, state: DeviceState | None = None, *, limit: int = 100, offset: int = 0
) -> list[DeviceInfo]:
    """Devices (optionally in one state) with their last fix, most recently seen first."""
    stmt = select(Device).order_by(Device.last_seen.desc(), Device.id.desc())
    if state is not None:
        stmt = stmt.where(Device.state == state)
    async with db.sessionmaker() as session:
        devices = (await session.scalars(stmt.limit(limit).offset(offset))).all()
        return [_device_info(d) for d in devices]


async def count_devices(db: Database, state: DeviceState | None = None) -> int:
    """How many devices (optionally in one state) `list_devices` pages through."""
    stmt = select(func.count()).select_from(Device)
    if state is not None:
        stmt = stmt.where(Device.state == state)
    async with db.engine.connect() as conn:
        return int((await conn.execute(stmt)).scalar_one())


async def get_device(db: Database, imei: str) -> DeviceInfo | None:
    """One device by IMEI, or None if it was never seen."""
    async with db.sessionmaker() as session:
        device = await session.scalar(select(Device).where(Device.imei == imei))
        return None if device is None else _device_info(device)


async def recent_frames(db: Database, imei: str, *, limit: int = 20) -> list[FrameInfo]:
    """The device's most recent raw frames, newest first (at most the ring size)."""
    stmt = (
        select(DeviceFrame.seq, DeviceFrame.received_at, DeviceFrame.raw,
               DeviceFrame.remote_addr, DeviceFrame.result)
        .join(Device, Device.id == DeviceFrame.device_id)
        .where(Device.imei == imei)
        .order_by(DeviceFrame.seq.desc())
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        return [FrameInfo(*row) for row in (await conn.execute(stmt)).all()]


async def positions_for_binding(
    db: Database,
    binding_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[PositionInfo]:
    """Positions stored under one binding, oldest first, with since <= fix_time < until."""
    p = StoredPosition
    # Through the (device_id, fix_time) key: the binding has no index of its own.
    device = select(Binding.device_id).where(Binding.id == binding_id).scalar_subquery()
    stmt = select(p.fix_time, p.received_at, p.lat, p.lon, p.valid, p.speed_kmh, p.course_deg,
                  p.altitude_m, p.satellites, p.hdop, p.attributes).where(
        p.device_id == device, p.binding_id == binding_id)
    if since is not None:
        stmt = stmt.where(p.fix_time >= since)
    if until is not None:
        stmt = stmt.where(p.fix_time < until)
    stmt = stmt.order_by(p.fix_time).limit(limit)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [PositionInfo(*row[:-1], attributes=row[-1] or {}) for row in rows]


async def alarms_of_device(db: Database, imei: str, *, limit: int = 100) -> list[AlarmInfo]:
    """The device's alarms, newest first."""
    a = StoredAlarm
    stmt = (
        select(a.alarm_type, a.raw_code, a.event_time, a.lat, a.lon, a.received_at, a.binding_id)
        .join(Device, Device.id == a.device_id)
        .where(Device.imei == imei)
        .order_by(a.event_time.desc())
        .limit(limit)
    )
    async with db.engine.connect() as conn:
        return [AlarmInfo(*row) for row in (await conn.execute(stmt)).all()]


async def current_binding(db: Database, imei: str) -> BindingInfo | None:
    """The device's open binding, or None."""
    stmt = (
        select(Binding.id, Device.imei, Owner.id, Owner.contact, Binding.started_at,
               Binding.ended_at)
        .join(Device, Device.current_binding_id == Binding.id)
        .join(Owner, Owner.id == Binding.owner_id)
        .where(Device.imei == imei)
    )
    async with db.engine.connect() as conn:
        row = (await conn.execute(stmt)).first()
    return None if row is None else BindingInfo(*row)


async def _lock_device(conn: AsyncConnection, imei: str) -> Row[Any] | None:
    # FOR UPDATE on PostgreSQL serialises binding changes against each other and against the
    # write path's upsert of the same row (ignored on SQLite, where BEGIN IMMEDIATE already
    # holds the write lock).
    return (await conn.execute(
        select(Device.id, Device.state, Device.current_binding_id)
        .where(Device.imei == imei).with_for_update()
    )).first()


async def bind_device(
    db: Database, imei: str, contact: str, *, now: datetime | None = None
) -> BindingInfo:
    """Bind a seen, unbound device to the owner with `contact` (created if needed).

    Opens a binding and marks the device claimed; positions received from then on are stored
    under this binding. Raises DeviceNotFound or DeviceAlreadyBound.
    """
    now = now or datetime.now(UTC)
    async with db.begin() as conn:
        device = await _lock_device(conn, imei)
        if device is None:
            raise DeviceNotFound(imei)
        if device.current_binding_id is not None or device.state != DeviceState.UNCLAIMED:
            raise DeviceAlreadyBound(f"{imei} is {device.state.value}")
        owner_id = await conn.scalar(select(Owner.id).where(Owner.contact == contact))
        if owner_id is None:
            owner_id = await conn.scalar(
                Owner.__table__.insert().values(contact=contact, created_at=now)
                .returning(Owner.__table__.c.id)
            )
        binding_id = await conn.scalar(
            Binding.__table__.insert()
            .values(device_id=device.id, owner_id=owner_id, started_at=now)
            .returning(Binding.__table__.c.id)
        )
        await conn.execute(
            update(Device.__table__).where(Device.__table__.c.id == device.id)
            .values(state=DeviceState.CLAIMED, current_binding_id=binding_id)
        )
    assert owner_id is not None and binding_id is not None
    return BindingInfo(binding_id, imei, owner_id, contact, now, None)


async def release_device(
    db: Database, imei: str, *, now: datetime | None = None
) -> BindingInfo | None:
    """Close the device's open binding and mark it unclaimed; return the closed binding.

    Positions received afterwards are no longer stored (until the next binding), and the next
    owner never sees this binding's history. Returns None when the device had no binding.
    Raises DeviceNotFound.
    """
    now = now or datetime.now(UTC)
    async with db.begin() as conn:
        device = await _lock_device(conn, imei)
        if device is None:
            raise DeviceNotFound(imei)
        closed = None
        if device.current_binding_id is not None:
            row = (await conn.execute(
                select(Binding.owner_id, Binding.started_at, Owner.contact)
                .join(Owner, Owner.id == Binding.owner_id)
                .where(Binding.id == device.current_binding_id)
            )).one()
            await conn.execute(
                update(Binding.__table__).where(Binding.__table__.c.id == device.current_binding_id)
                .values(ended_at=now)
            )
            closed = BindingInfo(device.current_binding_id, imei, row.owner_id, row.contact,
                                 row.started_at, now)
        await conn.execute(
            update(Device.__table__).where(Device.__table__.c.id == device.id)
            .values(state=DeviceState.UNCLAIMED, current_binding_id=None)
        )
    return closed


async def forget_unclaimed_device(db: Database, imei: str) -> bool:
    """Delete a device that never belonged to anyone, with its frames and alarms: True when
    it was deleted. A device that is claimed or locked, was ever bound, or is provisioned is
    kept (False)."""
    async with db.begin() as conn:
        device = (await conn.execute(
            select(Device.id, Device.state, Device.current_binding_id)
            .where(Device.imei == imei).with_for_update()
        )).first()
        if (device is None or device.state != DeviceState.UNCLAIMED
                or device.current_binding_id is not None):
            return False
        ever_bound = await conn.scalar(
            select(func.count()).select_from(Binding).where(Binding.device_id == device.id))
        provisioned = await conn.scalar(
            select(func.count()).select_from(ProvisionedDevice)
            .where(ProvisionedDevice.imei == imei))
        if ever_bound or provisioned:
            return False
        await _delete_devices(conn, [device.id])
    return True


async def _delete_devices(conn: AsyncConnection, ids: list[int]) -> None:
    """Delete these device rows with their frames, alarms, links and commands."""
    for table in (DeviceFrame.__table__, StoredAlarm.__table__, DeviceLink.__table__,
                  DeviceCommand.__table__):
        await conn.execute(delete(table).where(table.c.device_id.in_(ids)))
    await conn.execute(delete(Device.__table__).where(Device.__table__.c.id.in_(ids)))


async def forget_stale_devices(db: Database, seen_before: datetime, *, limit: int = 1000) -> int:
    """Delete up to `limit` devices never claimed, bound, locked nor provisioned (by IMEI or
    recorded wire id) and not seen since `seen_before`, with their frames, alarms, links and
    commands. Returns how many. Any connection can create a device row by naming a new IMEI:
    without this, a script naming IMEI after IMEI grows the table for ever."""
    d, b, p = Device.__table__, Binding.__table__, ProvisionedDevice.__table__
    async with db.begin() as conn:
        ids = list((await conn.scalars(
            select(d.c.id).where(
                d.c.state == DeviceState.UNCLAIMED, d.c.current_binding_id.is_(None),
                d.c.last_seen < seen_before,
                ~select(b.c.id).where(b.c.device_id == d.c.id).exists(),
                ~select(p.c.imei).where((p.c.imei == d.c.imei) | (p.c.wire_id == d.c.imei))
                .exists())
            .order_by(d.c.last_seen).limit(limit))).all())
        if ids:
            await _delete_devices(conn, ids)
    return len(ids)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    action: str
    outcome: str
    imei: str | None


async def last_audit_id(db: Database) -> int:
    """The newest audit row's id (0 when the log is empty)."""
    async with db.engine.connect() as conn:
        return int((await conn.execute(select(func.max(AuditEntry.id)))).scalar() or 0)


async def audit_events_after(
    db: Database, after_id: int, actions: tuple[str, ...], *, limit: int = 1000
) -> list[AuditEvent]:
    """Audit rows of `actions` newer than `after_id`, oldest first."""
    a = AuditEntry
    async with db.engine.connect() as conn:
        rows = (await conn.execute(
            select(a.id, a.at, a.action, a.outcome, a.imei)
            .where(a.id > after_id, a.action.in_(actions)).order_by(a.id).limit(limit))).all()
    return [AuditEvent(*row) for row in rows]
