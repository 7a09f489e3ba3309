"""What an owner may read: their devices (current and released) and the positions and alarms
recorded under their own bindings only (rule 19)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from gateway.store.claiming import names_device
from gateway.store.database import Database
from gateway.store.models import Binding, Device, StoredAlarm, StoredPosition
from gateway.store.queries import AlarmInfo, LastFix, PositionInfo


@dataclass(frozen=True, slots=True)
class OwnedDevice:
    imei: str
    protocol: str
    #: True while the device is the owner's; False for one they released (history kept).
    current: bool
    claimed_at: datetime
    released_at: datetime | None
    last_seen: datetime
    #: The last fix, only when it was recorded while the device was the owner's.
    last_fix: LastFix | None
    binding_ids: tuple[int, ...]


def _matches(key: str):  # type: ignore[no-untyped-def]
    """Devices named by `key`: their id, or (a 15-digit IMEI) an id their protocol derives
    from it."""
    if len(key) == 15:
        return names_device(key)
    return Device.imei == key


async def owned_devices(db: Database, owner_id: int, key: str | None = None) -> list[OwnedDevice]:
    """The owner's devices, current ones first; with `key`, only that device."""
    b, d = Binding, Device
    stmt = (select(d.imei, d.protocol, d.last_seen, d.last_fix_time, d.last_lat, d.last_lon,
                   d.last_speed_kmh, d.last_course_deg, d.last_valid, b.id, b.started_at,
                   b.ended_at)
            .join(b, b.device_id == d.id).where(b.owner_id == owner_id)
            .order_by(b.started_at))
    if key is not None:
        stmt = stmt.where(_matches(key))
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    by_imei: dict[str, OwnedDevice] = {}
    for row in rows:
        current = row.ended_at is None
        fix = None
        if (row.last_fix_time is not None and row.last_lat is not None
                and row.last_lon is not None and row.last_fix_time >= row.started_at
                and (current or row.last_fix_time < row.ended_at)):
            fix = LastFix(row.last_fix_time, row.last_lat, row.last_lon, row.last_speed_kmh,
                          row.last_course_deg, row.last_valid)
        previous = by_imei.get(row.imei)
        ids = (previous.binding_ids if previous else ()) + (row.id,)
        by_imei[row.imei] = OwnedDevice(
            imei=row.imei, protocol=row.protocol, current=current,
            claimed_at=previous.claimed_at if previous else row.started_at,
            released_at=row.ended_at, last_seen=row.last_seen,
            last_fix=fix or (previous.last_fix if previous else None), binding_ids=ids)
    return sorted(by_imei.values(), key=lambda device: (not device.current, device.imei))


async def owner_positions(
    db: Database, binding_ids: tuple[int, ...], *, since: datetime | None = None,
    until: datetime | None = None, limit: int = 1000, newest_first: bool = False,
) -> list[PositionInfo]:
    """Positions stored under the given bindings (the owner's own, all of one device), by fix
    time."""
    if not binding_ids:
        return []
    p = StoredPosition
    # Read through the (device_id, fix_time) key (a binding has no index of its own): every
    # binding given is one of the same device.
    device = select(Binding.device_id).where(Binding.id == binding_ids[0]).scalar_subquery()
    stmt = select(p.fix_time, p.received_at, p.lat, p.lon, p.valid, p.speed_kmh, p.course_deg,
                  p.altitude_m, p.satellites, p.hdop, p.attributes).where(
        p.device_id == device, p.binding_id.in_(binding_ids))
    if since is not None:
        stmt = stmt.where(p.fix_time >= since)
    if until is not None:
        stmt = stmt.where(p.fix_time < until)
    stmt = stmt.order_by(p.fix_time.desc() if newest_first else p.fix_time).limit(limit)
    async with db.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    return [PositionInfo(*row[:-1], attributes=row[-1] or {}) for row in rows]


async def owner_alarms(
    db: Database, binding_ids: tuple[int, ...], *, since: datetime | None = None,
    limit: int = 100,
) -> list[AlarmInfo]:
    """Alarms stored under the given bindings (the owner's own), newest first."""
    a = StoredAlarm
    stmt = select(a.alarm_type, a.raw_code, a.event_time, a.lat, a.lon, a.received_at,
                  a.binding_id).where(a.binding_id.in_(binding_ids))
    if since is not None:
        stmt = stmt.where(a.event_time >= since)
    stmt = stmt.order_by(a.event_time.desc(), a.id.desc()).limit(limit)
    async with db.engine.connect() as conn:
        return [AlarmInfo(*row) for row in (await conn.execute(stmt)).all()]
