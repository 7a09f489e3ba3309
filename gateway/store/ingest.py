"""The write path: what the transports received, stored in one transaction per batch.

`write_batch` merges the items of a batch per device in Python, then issues one bulk statement
per table: no ORM object and no round trip per row, so a batch of a thousand frames costs four
or five statements and one commit. The statements are built with SQLAlchemy Core, compiled once,
and run with plain values (`exec_driver_sql`): executemany on SQLite; on PostgreSQL each column
is sent as one array and the rows are made server-side by `unnest`
(`INSERT ... SELECT * FROM unnest($1::bigint[], ...)`), so a statement has a dozen parameters
instead of 13,000 and asyncpg encodes them in C.

Every statement is idempotent, so that re-running a batch whose commit outcome was unknown (the
connection died during COMMIT) stores nothing twice that matters: positions are unique per
(device, fix_time) and alarms per (device, type, event_time), both inserted with
ON CONFLICT DO NOTHING; only the diagnostic frame ring may show such a frame twice.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Integer,
    LargeBinary,
    Table,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from gateway.store.database import Database
from gateway.store.models import Device as DeviceModel
from gateway.store.models import DeviceFrame, DeviceState, StoredAlarm, StoredPosition
from protocols.events import Alarm, Event, Position, Rejected

_devices = DeviceModel.__table__
_positions = StoredPosition.__table__
_alarms = StoredAlarm.__table__
_frames = DeviceFrame.__table__

_FIX_COLUMNS = (
    "last_fix_time", "last_lat", "last_lon", "last_speed_kmh", "last_course_deg", "last_valid",
)


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One frame a transport received from a device, with what the decoder made of it.

    Everything is stored under `device_id` (the id the connection is locked to), whatever the
    events say. `rejected_reason` marks a frame the gateway refused: it is kept in the device's
    frame ring for diagnostics and updates last_seen, and its events are still stored.
    """

    device_id: str
    protocol: str
    remote_addr: str | None
    received_at: datetime
    raw: bytes
    events: tuple[Event, ...]
    rejected_reason: str | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What one committed batch changed."""

    items: int = 0
    devices: int = 0
    positions_stored: int = 0
    #: Positions already stored (a resend after a lost ack, or twice in the batch).
    positions_duplicate: int = 0
    #: Positions of devices without an open binding: not kept (only their last fix is).
    positions_unbound: int = 0
    alarms_stored: int = 0
    alarms_duplicate: int = 0
    frames_stored: int = 0


@dataclass(slots=True)
class _Fix:
    """A position to store, with where it came from."""

    position: Position
    received_at: datetime
    alarm: str | None = None


@dataclass(slots=True)
class _DeviceBatch:
    """Everything a batch holds for one device, merged."""

    imei: str
    protocol: str
    remote_addr: str | None
    first_seen: datetime
    last_seen: datetime
    fixes: dict[datetime, _Fix] = field(default_factory=dict)
    duplicates: int = 0
    latest_fix: Position | None = None
    alarms: dict[tuple[str, datetime], dict[str, Any]] = field(default_factory=dict)
    alarm_duplicates: int = 0
    frames: list[dict[str, Any]] = field(default_factory=list)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} {value!r} is naive: events must carry aware UTC datetimes")
    return value


def _merge(items: Iterable[IngestItem]) -> dict[str, _DeviceBatch]:
    devices: dict[str, _DeviceBatch] = {}
    for item in items:
        received = _aware(item.received_at, "received_at")
        acc = devices.get(item.device_id)
        if acc is None:
            acc = devices[item.device_id] = _DeviceBatch(
                imei=item.device_id,
                protocol=item.protocol,
                remote_addr=item.remote_addr,
                first_seen=received,
                last_seen=received,
            )
        else:
            acc.protocol = item.protocol
            if item.remote_addr is not None:
                acc.remote_addr = item.remote_addr
            acc.first_seen = min(acc.first_seen, received)
            acc.last_seen = max(acc.last_seen, received)
        reason = item.rejected_reason
        for event in item.events:
            if isinstance(event, Position):
                _add_fix(acc, _Fix(event, received))
            elif isinstance(event, Alarm):
                _add_alarm(acc, event, received)
            elif isinstance(event, Rejected) and reason is None:
                reason = event.reason
        acc.frames.append({
            "received_at": received,
            "raw": item.raw,
            "remote_addr": item.remote_addr,
            "result": "ok" if reason is None else f"rejected: {reason}",
        })
    return devices


def _add_fix(acc: _DeviceBatch, fix: _Fix) -> None:
    fix_time = _aware(fix.position.fix_time, "fix_time")
    if fix_time in acc.fixes:
        acc.duplicates += 1
    else:
        acc.fixes[fix_time] = fix
    if acc.latest_fix is None or fix_time > acc.latest_fix.fix_time:
        acc.latest_fix = fix.position


def _add_alarm(acc: _DeviceBatch, alarm: Alarm, received: datetime) -> None:
    position = alarm.position
    if position is not None:
        # The fix an alarm frame carried is a position like any other (it is acknowledged
        # with the alarm and the device will not send it again).
        _add_fix(acc, _Fix(position, received, alarm=alarm.alarm.value))
    event_time = alarm.event_time or (position.fix_time if position else None) or received
    key = (alarm.alarm.value, _aware(event_time, "event_time"))
    if key in acc.alarms:
        acc.alarm_duplicates += 1
        return
    acc.alarms[key] = {
        "alarm_type": alarm.alarm.value,
        "raw_code": alarm.raw_code,
        "event_time": event_time,
        "lat": position.lat if position else None,
        "lon": position.lon if position else None,
        "received_at": received,
    }


#: The columns each bulk statement writes, with their kinds: a datetime (`_TIMESTAMP`) is
#: sent as text on SQLite, a JSON value (None) as JSON text; the rest is passed as it is.
#: On PostgreSQL they are also the element types of the arrays given to `unnest`.
_TIMESTAMP = DateTime(timezone=True)
_DEVICE_TYPES: dict[str, TypeEngine[Any] | None] = {
    "imei": Text(), "protocol": Text(), "state": Text(), "first_seen": _TIMESTAMP,
    "last_seen": _TIMESTAMP, "remote_addr": Text(), "last_fix_time": _TIMESTAMP,
    "last_lat": Double(), "last_lon": Double(), "last_speed_kmh": Double(),
    "last_course_deg": Double(), "last_valid": Boolean(), "frame_seq": BigInteger(),
}
_POSITION_TYPES: dict[str, TypeEngine[Any] | None] = {
    "device_id": BigInteger(), "binding_id": BigInteger(), "fix_time": _TIMESTAMP,
    "received_at": _TIMESTAMP, "lat": Double(), "lon": Double(), "valid": Boolean(),
    "speed_kmh": Double(), "course_deg": Double(), "altitude_m": Double(),
    "satellites": Integer(), "hdop": Double(), "attributes": None,
}
_ALARM_TYPES: dict[str, TypeEngine[Any] | None] = {
    "device_id": BigInteger(), "binding_id": BigInteger(), "alarm_type": Text(),
    "raw_code": Text(), "event_time": _TIMESTAMP, "lat": Double(), "lon": Double(),
    "received_at": _TIMESTAMP,
}
_FRAME_TYPES: dict[str, TypeEngine[Any] | None] = {
    "device_id": BigInteger(), "slot": Integer(), "seq": BigInteger(),
    "received_at": _TIMESTAMP, "raw": LargeBinary(), "remote_addr": Text(), "result": Text(),
}


def _sqlite_time(value: datetime | None) -> str | None:
    """A datetime as the store keeps it on SQLite (see models.UTCDateTime): naive UTC text in
    one fixed format, microseconds always written."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # "YYYY-MM-DD HH:MM:SS.ffffff+00:00" without its offset: one call per value (a hot path).
    return value.isoformat(" ", "microseconds")[:-6]


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


@dataclass(frozen=True, slots=True)
class _Bulk:
    """One bulk statement as driver SQL, and how to turn row dicts into its parameters.

    The statements are built with SQLAlchemy Core and compiled once; each batch then goes to
    the driver as plain values (`exec_driver_sql`). SQLAlchemy's per-value bind processing
    cost more than the database work itself at a few thousand rows per second.

    SQLite: rows go as tuples (executemany, one call into the driver's thread).
    PostgreSQL: `INSERT ... SELECT * FROM unnest(<one array per column>)`: a dozen parameters
    per statement whatever the number of rows, encoded by asyncpg in C.
    """

    sql: str
    keys: tuple[str, ...]
    convert: tuple[Callable[[Any], Any] | None, ...]
    postgresql: bool

    def params(self, rows: list[dict[str, Any]]) -> Any:
        if self.postgresql:
            return tuple(
                [row[key] for row in rows] if convert is None
                else [convert(row[key]) for row in rows]
                for key, convert in zip(self.keys, self.convert, strict=True))
        values = operator.itemgetter(*self.keys)
        converted = [(index, convert) for index, convert in enumerate(self.convert)
                     if convert is not None]
        if not converted:
            return [values(row) for row in rows]
        out = []
        for row in rows:
            params = list(values(row))
            for index, convert in converted:
                params[index] = convert(params[index])
            out.append(tuple(params))
        return out


def _bulk(dialect: Dialect, stmt: Any, types: dict[str, TypeEngine[Any] | None]) -> _Bulk:
    compiled = stmt.compile(dialect=dialect, column_keys=list(types))
    keys = tuple(compiled.positiontup or ())
    postgresql_ = dialect.name == "postgresql"
    convert: list[Callable[[Any], Any] | None] = []
    for key in keys:
        kind = types[key]
        if kind is None:
            convert.append(_json_text)
        elif kind is _TIMESTAMP and not postgresql_:
            convert.append(_sqlite_time)
        else:
            convert.append(None)
    return _Bulk(str(compiled), keys, tuple(convert), postgresql_)


def _bulk_source(
    dialect: str, table: Table, types: dict[str, TypeEngine[Any] | None]
) -> Any:
    """The INSERT of many rows into `table`, before its ON CONFLICT clause: plain on SQLite
    (executed once per row), from `unnest` of one array per column on PostgreSQL."""
    if dialect != "postgresql":
        return sqlite.insert(table)
    names = list(types)
    arrays = [bindparam(name, type_=postgresql.ARRAY(kind if kind is not None else Text()))
              for name, kind in types.items()]
    source = func.unnest(*arrays).table_valued(*names).render_derived()
    columns = [source.c[name] if types[name] is not None
               else cast(source.c[name], postgresql.JSONB) for name in names]
    return postgresql.insert(table).from_select(names, select(*columns))


@dataclass(frozen=True, slots=True)
class _Statements:
    #: The device upsert; on PostgreSQL it returns (id, imei, current_binding_id, frame_seq).
    devices: _Bulk
    #: SQLite: (id, imei, current_binding_id, frame_seq) of the devices named in a JSON array
    #: (executemany cannot return rows there). None on PostgreSQL.
    device_ids: str | None
    positions: _Bulk
    alarms: _Bulk
    frames: _Bulk


_STATEMENTS: dict[str, _Statements] = {}


def _statements(dialect: Dialect) -> _Statements:
    """The statements of a batch, built and compiled once per dialect."""
    cached = _STATEMENTS.get(dialect.name)
    if cached is not None:
        return cached
    name = dialect.name
    stmt = _bulk_source(name, _devices, _DEVICE_TYPES)
    new = stmt.excluded
    old = _devices.c
    newer_fix = and_(
        new.last_fix_time.is_not(None),
        or_(old.last_fix_time.is_(None), new.last_fix_time > old.last_fix_time),
    )
    updates: dict[str, Any] = {
        "protocol": new.protocol,
        # Batches from another gateway process may commit out of order: never go back in time.
        "last_seen": case((new.last_seen > old.last_seen, new.last_seen), else_=old.last_seen),
        "remote_addr": func.coalesce(new.remote_addr, old.remote_addr),
        "frame_seq": old.frame_seq + new.frame_seq,
    }
    for column in _FIX_COLUMNS:
        # The latest fix_time wins, whatever order the fixes arrive in.
        updates[column] = case((newer_fix, new[column]), else_=old[column])
    devices = stmt.on_conflict_do_update(index_elements=[old.imei], set_=updates)
    device_ids = None
    if name == "postgresql":
        devices = devices.returning(old.id, old.imei, old.current_binding_id, old.frame_seq)
    else:
        device_ids = ("SELECT id, imei, current_binding_id, frame_seq FROM devices "
                      "WHERE imei IN (SELECT value FROM json_each(?))")
    positions = (_bulk_source(name, _positions, _POSITION_TYPES)
                 .on_conflict_do_nothing(index_elements=["device_id", "fix_time"]))
    alarms = (_bulk_source(name, _alarms, _ALARM_TYPES)
              .on_conflict_do_nothing(index_elements=["device_id", "alarm_type", "event_time"]))
    frames = _bulk_source(name, _frames, _FRAME_TYPES)
    frames = frames.on_conflict_do_update(
        index_elements=["device_id", "slot"],
        set_={column: frames.excluded[column]
              for column in ("seq", "received_at", "raw", "remote_addr", "result")},
    )
    statements = _STATEMENTS[name] = _Statements(
        _bulk(dialect, devices, _DEVICE_TYPES), device_ids,
        _bulk(dialect, positions, _POSITION_TYPES), _bulk(dialect, alarms, _ALARM_TYPES),
        _bulk(dialect, frames, _FRAME_TYPES))
    return statements


async def _insert_counted(conn: AsyncConnection, bulk: _Bulk, rows: list[dict[str, Any]]) -> int:
    """Run an INSERT ... ON CONFLICT DO NOTHING; return how many rows it inserted."""
    result = await conn.exec_driver_sql(bulk.sql, bulk.params(rows))
    return int(result.rowcount)


async def write_batch(
    db: Database, items: Sequence[IngestItem], frames_per_device: int
) -> BatchResult:
    """Store `items` in one transaction; return what changed.

    Registers unseen devices (unclaimed), updates last_seen / remote_addr / last fix (latest
    fix_time wins), puts every frame in its device's ring of `frames_per_device` slots (0: keep
    no frames), stores positions of devices with an open binding under that binding (once per
    device and fix_time) and stores alarms. Raises whatever the database raises; nothing is
    committed then.
    """
    if frames_per_device < 0:
        raise ValueError("frames_per_device must be >= 0")
    if not items:
        return BatchResult()
    merged = _merge(items)
    # A fixed order of device rows: two gateway processes writing the same devices lock them in
    # the same order and cannot deadlock.
    batches = [merged[imei] for imei in sorted(merged)]

    device_rows = []
    for acc in batches:
        fix = acc.latest_fix
        device_rows.append({
            "imei": acc.imei,
            "protocol": acc.protocol,
            "state": DeviceState.UNCLAIMED.value,
            "first_seen": acc.first_seen,
            "last_seen": acc.last_seen,
            "remote_addr": acc.remote_addr,
            "last_fix_time": fix.fix_time if fix else None,
            "last_lat": fix.lat if fix else None,
            "last_lon": fix.lon if fix else None,
            "last_speed_kmh": fix.speed_kmh if fix else None,
            "last_course_deg": fix.course_deg if fix else None,
            "last_valid": fix.valid if fix else None,
            "frame_seq": len(acc.frames) if frames_per_device else 0,
        })

    statements = _statements(db.engine.dialect)
    async with db.begin() as conn:
        upsert = statements.devices
        result = await conn.exec_driver_sql(upsert.sql, upsert.params(device_rows))
        if statements.device_ids is not None:
            result = await conn.exec_driver_sql(
                statements.device_ids, (json.dumps([acc.imei for acc in batches]),))
        by_imei = {row.imei: row for row in result.all()}

        position_rows: list[dict[str, Any]] = []
        alarm_rows: list[dict[str, Any]] = []
        frame_rows: list[dict[str, Any]] = []
        unbound = 0
        for acc in batches:
            row = by_imei[acc.imei]
            device_id, binding_id = row.id, row.current_binding_id
            if binding_id is None:
                unbound += len(acc.fixes)
            else:
                position_rows.extend(_position_row(device_id, binding_id, fix)
                                     for fix in acc.fixes.values())
            for alarm in acc.alarms.values():
                alarm_rows.append({**alarm, "device_id": device_id, "binding_id": binding_id})
            if frames_per_device:
                frame_rows.extend(_ring_rows(device_id, row.frame_seq, acc.frames,
                                             frames_per_device))

        stored = await _insert_counted(conn, statements.positions, position_rows) \
            if position_rows else 0
        alarms_stored = await _insert_counted(conn, statements.alarms, alarm_rows) \
            if alarm_rows else 0
        if frame_rows:
            frames = statements.frames
            await conn.exec_driver_sql(frames.sql, frames.params(frame_rows))

    return BatchResult(
        items=len(items),
        devices=len(batches),
        positions_stored=stored,
        positions_duplicate=(sum(acc.duplicates for acc in batches)
                             + len(position_rows) - stored),
        positions_unbound=unbound,
        alarms_stored=alarms_stored,
        alarms_duplicate=(sum(acc.alarm_duplicates for acc in batches)
                          + len(alarm_rows) - alarms_stored),
        frames_stored=len(frame_rows),
    )


def _position_row(device_id: int, binding_id: int, fix: _Fix) -> dict[str, Any]:
    p = fix.position
    attributes: dict[str, Any] = dict(p.attributes)
    if fix.alarm is not None:
        attributes["alarm"] = fix.alarm
    return {
        "device_id": device_id,
        "binding_id": binding_id,
        "fix_time": p.fix_time,
        "received_at": fix.received_at,
        "lat": p.lat,
        "lon": p.lon,
        "valid": p.valid,
        "speed_kmh": p.speed_kmh,
        "course_deg": p.course_deg,
        "altitude_m": p.altitude_m,
        "satellites": p.satellites,
        "hdop": p.hdop,
        "attributes": attributes or None,
    }


def _ring_rows(
    device_id: int, seq_after: int, frames: list[dict[str, Any]], size: int
) -> list[dict[str, Any]]:
    """Ring slots for a device's frames of this batch; `seq_after` is its frame count after it.

    Only the last `size` frames are written: older ones would be overwritten in the same
    statement (which PostgreSQL refuses: one row may not be updated twice by one upsert).
    """
    first_seq = seq_after - len(frames) + 1
    kept = frames[-size:]
    first_kept = first_seq + len(frames) - len(kept)
    return [
        {**frame, "device_id": device_id, "seq": seq, "slot": seq % size}
        for seq, frame in enumerate(kept, start=first_kept)
    ]


async def trim_frame_rings(db: Database, frames_per_device: int) -> int:
    """Delete ring slots beyond `frames_per_device` (after the setting was lowered).

    The ring never grows by itself; this only matters when N shrinks. Returns rows deleted.
    """
    async with db.begin() as conn:
        result = await conn.execute(_frames.delete().where(_frames.c.slot >= frames_per_device))
        return int(result.rowcount or 0)
