"""The write path: what the transports received, stored in one transaction per batch.

`write_batch` merges the items of a batch per device in Python, then issues one bulk statement
per table: no ORM object and no round trip per row, so a batch of a thousand frames costs a
few statements and one commit. The statements are built with SQLAlchemy Core, compiled once, and
run with plain values (`exec_driver_sql`): up to 256 rows per INSERT on SQLite; on PostgreSQL
the rows are sent as one array of a composite type (migration 0007) and unnested server-side
(`INSERT ... SELECT ... FROM unnest($1::ingest_positions[])`), so a statement has one parameter
instead of 13,000 and asyncpg encodes it row by row in C.

A batch is a plan (`_plan`): a generator of driver statements that is told each one's result.
On a SQLite file the whole plan runs on the batch writer's own thread and plain `sqlite3`
connection (`database.SqliteWriter`): one thread hop per batch. Elsewhere (PostgreSQL, an
in-memory SQLite) each statement goes through SQLAlchemy's async connection.

Every statement is idempotent, so that re-running a batch whose commit outcome was unknown (the
connection died during COMMIT) stores nothing twice that matters: positions are unique per
(device, fix_time) and alarms per (device, type, event_time), both inserted with
ON CONFLICT DO NOTHING; only the diagnostic frame ring may show such a frame twice.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import UserDefinedType

from gateway.store.database import Database
from gateway.store.models import Device as DeviceModel
from gateway.store.models import (
    DeviceFrame,
    DeviceLink,
    DeviceState,
    StoredAlarm,
    StoredPosition,
)
from protocols.events import Alarm, Event, Login, Position, Rejected
from protocols.imei import is_valid_imei

_devices = DeviceModel.__table__
_links = DeviceLink.__table__
_positions = StoredPosition.__table__
_alarms = StoredAlarm.__table__
_frames = DeviceFrame.__table__

_FIX_COLUMNS = (
    "last_fix_time", "last_lat", "last_lon", "last_speed_kmh", "last_course_deg", "last_valid",
)


@dataclass(slots=True)
class Link:
    """A connection or MQTT stream, as `device_links` records it (the device-signal proof asks
    which links named a device, and when)."""

    #: `<instance>:<random>`: unique across instances.
    id: str
    #: "tcp" or "mqtt".
    transport: str
    opened_at: datetime
    #: When the stream next records that it still names its device (its first identified frame
    #: always does): the stream updates it, at most once per `LINK_MARK_INTERVAL`.
    next_mark: datetime


#: How often a link's "still naming its device" time is recorded, at most.
LINK_MARK_INTERVAL = timedelta(seconds=30)


@dataclass(slots=True)
class IngestItem:
    """One frame a transport received from a device, with what the decoder made of it.

    Everything is stored under `device_id` (the id the connection is locked to), whatever the
    events say. `rejected_reason` marks a frame the gateway refused: it is kept in the device's
    frame ring for diagnostics and updates last_seen, and its events are still stored.
    Built once per frame and never changed (not frozen for speed: see `protocols.events`).
    """

    device_id: str
    protocol: str
    remote_addr: str | None
    received_at: datetime
    raw: bytes
    events: tuple[Event, ...]
    rejected_reason: str | None = None
    #: The connection or stream the frame came on.
    link: Link | None = None
    #: Record that `link` names this device at `received_at` (first frame, then periodically).
    mark: bool = False


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


#: A value as the dialect's driver takes it: SQLite text for a datetime (`_sqlite_time`),
#: the datetime itself for asyncpg.
TimeValue = Callable[[datetime], Any]
#: One row of a bulk statement, its values in the order of the statement's columns.
Row = tuple[Any, ...]


@dataclass(slots=True)
class _DeviceBatch:
    """Everything a batch holds for one device, merged.

    `fixes` maps fix_time to (position, fix_time and received_at as the driver takes them, alarm
    or None); `frames` holds (received_at, raw, remote_addr, result) per frame, in arrival
    order. Every datetime is converted for the driver once (`*_value`): on SQLite that is text
    formatting, and a batch would otherwise format the same instant up to five times.
    """

    imei: str
    protocol: str
    remote_addr: str | None
    first_seen: datetime
    last_seen: datetime
    first_seen_value: Any
    last_seen_value: Any
    fixes: dict[datetime, tuple[Position, Any, Any, str | None]] = field(default_factory=dict)
    duplicates: int = 0
    latest_fix: Position | None = None
    latest_fix_value: Any = None
    #: (link, received_at) of the frames that mark their link.
    links: list[tuple[Link, datetime]] = field(default_factory=list)
    #: The IMEI the device's login reported, when its id on the wire is something else.
    reported_imei: str | None = None
    alarms: dict[tuple[str, datetime], tuple[Alarm, datetime, Any]] = field(
        default_factory=dict)
    alarm_duplicates: int = 0
    frames: list[Row] = field(default_factory=list)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is not UTC and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{what} {value!r} is naive: events must carry aware UTC datetimes")
    return value


def _merge(items: Iterable[IngestItem], time: TimeValue) -> dict[str, _DeviceBatch]:
    devices: dict[str, _DeviceBatch] = {}
    for item in items:
        received = _aware(item.received_at, "received_at")
        # Converted once per item: its position, alarm and frame rows share it.
        received_value = time(received)
        acc = devices.get(item.device_id)
        if acc is None:
            # Positional: ~400 ns against ~670 for the keyword form, once per device of every
            # batch.
            acc = devices[item.device_id] = _DeviceBatch(
                item.device_id, item.protocol, item.remote_addr, received, received,
                received_value, received_value)
        else:
            acc.protocol = item.protocol
            if item.remote_addr is not None:
                acc.remote_addr = item.remote_addr
            if received < acc.first_seen:
                acc.first_seen, acc.first_seen_value = received, received_value
            if received > acc.last_seen:
                acc.last_seen, acc.last_seen_value = received, received_value
        if item.mark and item.link is not None:
            acc.links.append((item.link, received))
        reason = item.rejected_reason
        for event in item.events:
            if isinstance(event, Position):
                _add_fix(acc, event, received_value, None, time)
            elif isinstance(event, Alarm):
                _add_alarm(acc, event, received, received_value, time)
            elif isinstance(event, Rejected) and reason is None:
                reason = event.reason
            elif isinstance(event, Login):
                # A device that names itself by an IMEI on the wire is that IMEI: another one
                # in its login (any connection can send one in its name) must not let a claim
                # of that other IMEI find it.
                imei = event.attributes.get("imei")
                if (isinstance(imei, str) and imei != item.device_id and is_valid_imei(imei)
                        and not is_valid_imei(item.device_id)):
                    acc.reported_imei = imei
        acc.frames.append((received_value, item.raw, item.remote_addr,
                           "ok" if reason is None else f"rejected: {reason}"))
    return devices


def _add_fix(acc: _DeviceBatch, position: Position, received: Any, alarm: str | None,
             time: TimeValue) -> None:
    fix_time = _aware(position.fix_time, "fix_time")
    if fix_time in acc.fixes:
        acc.duplicates += 1
        return
    fix_value = time(fix_time)
    acc.fixes[fix_time] = (position, fix_value, received, alarm)
    latest = acc.latest_fix
    if latest is None or fix_time > latest.fix_time:
        acc.latest_fix = position
        acc.latest_fix_value = fix_value


def _add_alarm(acc: _DeviceBatch, alarm: Alarm, received: datetime, received_value: Any,
               time: TimeValue) -> None:
    position = alarm.position
    if position is not None:
        # The fix an alarm frame carried is a position like any other (it is acknowledged
        # with the alarm and the device will not send it again).
        _add_fix(acc, position, received_value, alarm.alarm.value, time)
    event_time = alarm.event_time or (position.fix_time if position else None) or received
    key = (alarm.alarm.value, _aware(event_time, "event_time"))
    if key in acc.alarms:
        acc.alarm_duplicates += 1
        return
    acc.alarms[key] = (alarm, event_time, received_value)


#: The columns each bulk statement writes, in the order of the values of its rows (the row
#: builders below give datetimes as `TimeValue` makes them and attributes as JSON text). On
#: PostgreSQL they are the fields, in order, of the composite type `ingest_<table>` (migration
#: 0007) whose array is given to `unnest`.
_DEVICE_COLUMNS = (
    "imei", "protocol", "state", "first_seen", "last_seen", "remote_addr", "last_fix_time",
    "last_lat", "last_lon", "last_speed_kmh", "last_course_deg", "last_valid", "frame_seq",
)
_POSITION_COLUMNS = (
    "device_id", "binding_id", "fix_time", "received_at", "lat", "lon", "valid", "speed_kmh",
    "course_deg", "altitude_m", "satellites", "hdop", "attributes",
)
_ALARM_COLUMNS = (
    "device_id", "binding_id", "alarm_type", "raw_code", "event_time", "lat", "lon",
    "received_at",
)
_FRAME_COLUMNS = ("device_id", "slot", "seq", "received_at", "raw", "remote_addr", "result")


#: "YYYY-MM-DD HH:MM:" of the minutes formatted lately, by POSIX minute (see _sqlite_time).
_MINUTES: dict[int, str] = {}
_MINUTES_KEPT = 4096


def _sqlite_time(value: datetime) -> str:
    """A datetime as the store keeps it on SQLite (see models.UTCDateTime): naive UTC text in
    one fixed format, microseconds always written.

    A hot path (two or three values per position): the text of the minute is formatted once
    and kept, since the times of a batch fall in a few minutes (fixes a second apart too);
    ~820 ns a value against ~980 for `isoformat`, measured over fixes a second apart."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    minute = int(value.timestamp() // 60)
    head = _MINUTES.get(minute)
    if head is None:
        if len(_MINUTES) >= _MINUTES_KEPT:
            _MINUTES.clear()
        head = _MINUTES[minute] = value.replace(
            second=0, microsecond=0, tzinfo=None).isoformat(" ")[:-2]
    # %-formatting: ~240 ns here against ~370 for the f-string with two format specs.
    return "%s%02d.%06d" % (head, value.second, value.microsecond)  # noqa: UP031


def _same_time(value: datetime) -> datetime:
    return value


def _not_json(value: object) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


#: Attributes as JSON chunks (compact; they come from the decoders, which never make cycles):
#: the C encoder made once (`JSONEncoder.encode` makes one per call, a third of its cost).
_json_chunks = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True,
) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
_json_slow = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode


def _attributes_json(attributes: dict[str, Any]) -> str:
    """A dict of attributes as compact JSON text."""
    if _json_chunks is None:  # pragma: no cover - CPython without its _json accelerator
        return _json_slow(attributes)
    return "".join(_json_chunks(attributes, 0))


#: Most rows in one SQLite statement: 256 rows of 13 values stay far below SQLite's limit of
#: 32,766 parameters (since 3.32).
SQLITE_ROWS_PER_STATEMENT = 256


@dataclass(frozen=True, slots=True)
class _Step:
    """One statement of a batch's plan, as driver SQL and its parameters.

    Answered with the rows it returns (`fetch`), nothing (`many`: `params` is a list of rows,
    executed once per row), or else the count of rows it changed.
    """

    sql: str
    params: Any
    fetch: bool = False
    many: bool = False


@dataclass(frozen=True, slots=True)
class _Bulk:
    """One bulk statement as driver SQL, and how its rows reach the driver.

    The statements are built with SQLAlchemy Core and compiled once; each batch then goes to
    the driver as plain values (`exec_driver_sql`). SQLAlchemy's per-value bind processing
    cost more than the database work itself at a few thousand rows per second, and so did
    building a dict per row: rows are tuples made in the statement's column order, with their
    values already as the driver takes them (see `TimeValue`).

    SQLite: `INSERT ... VALUES (...), (...), ...` with up to `SQLITE_ROWS_PER_STATEMENT` rows
    per statement (the text for each row count is made once). executemany would step once per
    row, and the driver's thread takes Python's GIL back after every step: under load that
    was hundreds of hand-overs per batch with the event loop's thread, which stalled it more
    than the database work cost.
    PostgreSQL: `INSERT ... SELECT ... FROM unnest(<one array of rows>)`: one parameter per
    statement whatever the number of rows, encoded by asyncpg in C (an array per column would
    have each element checked against `collections.abc` in Python).
    """

    sql: str
    postgresql: bool
    #: SQLite: the text before and after the one VALUES group of `sql`, and that group.
    head: str = ""
    group: str = ""
    tail: str = ""
    #: SQLite: the statement for n rows, made when first needed.
    texts: dict[int, str] = field(default_factory=dict)

    def params(self, rows: list[Row]) -> Any:
        """PostgreSQL: the rows as the one array given to unnest."""
        return (rows,)

    def text(self, count: int) -> str:
        text = self.texts.get(count)
        if text is None:
            text = self.texts[count] = (
                self.head + ", ".join([self.group] * count) + self.tail)
        return text

    def steps(self, rows: list[Row]) -> Iterator[_Step]:
        """The statements that write `rows` (each answered with the count of rows it changed:
        inserted, for an INSERT ... ON CONFLICT DO NOTHING)."""
        if self.postgresql:
            yield _Step(self.sql, self.params(rows))
            return
        for start in range(0, len(rows), SQLITE_ROWS_PER_STATEMENT):
            chunk = rows[start:start + SQLITE_ROWS_PER_STATEMENT]
            yield _Step(self.text(len(chunk)), tuple(itertools.chain.from_iterable(chunk)))


def _bulk(dialect: Dialect, stmt: Any, columns: tuple[str, ...]) -> _Bulk:
    compiled = stmt.compile(dialect=dialect, column_keys=list(columns))
    keys = tuple(compiled.positiontup or ())
    sql = str(compiled)
    if dialect.name == "postgresql":
        if keys != ("rows",):
            raise AssertionError(f"{stmt.table.name}: parameters {keys} are not ('rows',)")
        return _Bulk(sql, True)
    if keys != columns:  # the row builders below rely on this order
        raise AssertionError(f"{stmt.table.name}: parameters {keys} are not {columns}")
    group = "(" + ", ".join(["?"] * len(keys)) + ")"
    head, found, tail = sql.partition(" VALUES " + group)
    if not found or group in tail:
        raise AssertionError(f"{stmt.table.name}: no single VALUES group in {sql!r}")
    return _Bulk(sql, False, head + " VALUES ", group, tail)


class _Rows(UserDefinedType[Any]):
    """An array of a composite type of migration 0007 (`ingest_<table>[]`): the rows of one
    bulk statement, sent by asyncpg as one value."""

    cache_ok = True

    def __init__(self, composite: str) -> None:
        self.composite = composite

    def get_col_spec(self, **_kw: Any) -> str:
        return f"{self.composite}[]"


def _bulk_source(dialect: str, table: Table, columns: tuple[str, ...]) -> Any:
    """The INSERT of many rows into `table`, before its ON CONFLICT clause: plain on SQLite
    (VALUES groups, see `_Bulk`), from `unnest` of one array of rows on PostgreSQL (the
    composite type `ingest_<table>` of migration 0007, whose fields are `columns` in order)."""
    if dialect != "postgresql":
        return sqlite.insert(table)
    names = list(columns)
    rows = cast(bindparam("rows"), _Rows(f"ingest_{table.name}"))
    source = func.unnest(rows).table_valued(*names).render_derived()
    return postgresql.insert(table).from_select(names, select(*[source.c[n] for n in names]))


@dataclass(frozen=True, slots=True)
class _Statements:
    #: The device upsert; on PostgreSQL it returns (id, imei, current_binding_id, frame_seq).
    devices: _Bulk
    #: SQLite: (id, imei, current_binding_id, frame_seq) of the devices named in a JSON array,
    #: read after the upsert (RETURNING needs SQLite 3.35, newer than some systems ship), as
    #: one row holding a JSON array of them: the driver releases Python's GIL for every row it
    #: steps, and with the event loop's thread waiting for it, each of hundreds of rows per
    #: batch was a hand-over between the two threads. None on PostgreSQL.
    device_ids: str | None
    positions: _Bulk
    alarms: _Bulk
    frames: _Bulk
    #: The device_links upsert (a link's last time only moves forward), parameters in
    #: `_LINK_COLUMNS` order, executed once per row.
    links: str
    #: A device's reported IMEI: parameters (reported_imei, id).
    reported_imei: str


_STATEMENTS: dict[str, _Statements] = {}


def _statements(dialect: Dialect) -> _Statements:
    """The statements of a batch, built and compiled once per dialect."""
    cached = _STATEMENTS.get(dialect.name)
    if cached is not None:
        return cached
    name = dialect.name
    stmt = _bulk_source(name, _devices, _DEVICE_COLUMNS)
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
        device_ids = ("SELECT json_group_array(json_array(id, imei, current_binding_id, "
                      "frame_seq)) FROM devices WHERE imei IN (SELECT value FROM json_each(?))")
    positions = (_bulk_source(name, _positions, _POSITION_COLUMNS)
                 .on_conflict_do_nothing(index_elements=["device_id", "fix_time"]))
    alarms = (_bulk_source(name, _alarms, _ALARM_COLUMNS)
              .on_conflict_do_nothing(index_elements=["device_id", "alarm_type", "event_time"]))
    frames = _bulk_source(name, _frames, _FRAME_COLUMNS)
    frames = frames.on_conflict_do_update(
        index_elements=["device_id", "slot"],
        set_={column: frames.excluded[column]
              for column in ("seq", "received_at", "raw", "remote_addr", "result")},
    )
    insert = postgresql.insert if name == "postgresql" else sqlite.insert
    links = insert(_links)
    links = links.on_conflict_do_update(
        index_elements=["id"],
        set_={"last_frame_at": case(
            (links.excluded.last_frame_at > _links.c.last_frame_at, links.excluded.last_frame_at),
            else_=_links.c.last_frame_at)})
    reported = update(_devices).where(_devices.c.id == bindparam("b_row_id")).values(
        reported_imei=bindparam("b_imei"))
    statements = _STATEMENTS[name] = _Statements(
        _bulk(dialect, devices, _DEVICE_COLUMNS), device_ids,
        _bulk(dialect, positions, _POSITION_COLUMNS), _bulk(dialect, alarms, _ALARM_COLUMNS),
        _bulk(dialect, frames, _FRAME_COLUMNS),
        _driver_sql(dialect, links, _LINK_COLUMNS),
        _driver_sql(dialect, reported, ("b_imei", "b_row_id")))
    return statements


_LINK_COLUMNS = ("id", "device_id", "transport", "remote_addr", "opened_at", "first_frame_at",
                 "last_frame_at")


def _driver_sql(dialect: Dialect, stmt: Any, keys: Sequence[str]) -> str:
    """`stmt` as driver SQL taking its parameters in the order of `keys`."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    if tuple(compiled.positiontup or ()) != tuple(keys):
        raise AssertionError(f"parameters {compiled.positiontup} are not {tuple(keys)}")
    return str(compiled)


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
    statements = _statements(db.engine.dialect)
    if db.sqlite_writer is not None:
        return await db.sqlite_writer.write(
            lambda connection: _run_sqlite(connection, _plan(statements, items,
                                                             frames_per_device)))
    async with db.begin() as conn:
        return await _run_async(conn, _plan(statements, items, frames_per_device))


#: A batch's statements, each sent the answer to the one before (see `_Step`); returns what
#: the batch changed.
Plan = Generator[_Step, Any, BatchResult]


def _run_sqlite(connection: sqlite3.Connection, plan: Plan) -> BatchResult:
    """Run `plan` on a plain sqlite3 connection (in its transaction)."""
    cursor = connection.cursor()
    try:
        step = next(plan)
        while True:
            if step.many:
                cursor.executemany(step.sql, step.params)
                answer: Any = None
            else:
                cursor.execute(step.sql, step.params)
                answer = cursor.fetchall() if step.fetch else cursor.rowcount
            step = plan.send(answer)
    except StopIteration as done:
        result: BatchResult = done.value
        return result
    finally:
        cursor.close()


async def _run_async(conn: AsyncConnection, plan: Plan) -> BatchResult:
    """Run `plan` on SQLAlchemy's async connection (in its transaction)."""
    try:
        step = next(plan)
        while True:
            result = await conn.exec_driver_sql(step.sql, step.params)
            if step.many:
                answer: Any = None
            elif step.fetch:
                answer = [tuple(row) for row in result.all()]
            else:
                answer = int(result.rowcount)
            step = plan.send(answer)
    except StopIteration as done:
        batch: BatchResult = done.value
        return batch


def _plan(statements: _Statements, items: Sequence[IngestItem], frames_per_device: int) -> Plan:
    """The statements that store `items` (see `write_batch`)."""
    time = _same_time if statements.devices.postgresql else _sqlite_time
    merged = _merge(items, time)
    # A fixed order of device rows: two gateway processes writing the same devices lock them in
    # the same order and cannot deadlock.
    batches = [merged[imei] for imei in sorted(merged)]

    state = DeviceState.UNCLAIMED.value
    device_rows: list[Row] = []
    for acc in batches:
        fix = acc.latest_fix
        frame_count = len(acc.frames) if frames_per_device else 0
        first_seen, last_seen = acc.first_seen_value, acc.last_seen_value
        if fix is None:
            device_rows.append((acc.imei, acc.protocol, state, first_seen, last_seen,
                                acc.remote_addr, None, None, None, None, None, None,
                                frame_count))
        else:
            device_rows.append((acc.imei, acc.protocol, state, first_seen, last_seen,
                                acc.remote_addr, acc.latest_fix_value, fix.lat, fix.lon,
                                fix.speed_kmh, fix.course_deg, fix.valid, frame_count))

    upsert = statements.devices
    if statements.device_ids is None:  # PostgreSQL: the upsert returns the rows
        device_ids = yield _Step(upsert.sql, upsert.params(device_rows), fetch=True)
    else:
        for step in upsert.steps(device_rows):
            yield step
        found = yield _Step(statements.device_ids,
                            (json.dumps([acc.imei for acc in batches]),), fetch=True)
        device_ids = json.loads(found[0][0])
    # (id, imei, current_binding_id, frame_seq) per device
    by_imei = {row[1]: row for row in device_ids}

    position_rows: list[Row] = []
    alarm_rows: list[Row] = []
    frame_rows: list[Row] = []
    link_rows: list[Row] = []
    reported: list[Row] = []
    unbound = 0
    for acc in batches:
        device_id, _, binding_id, frame_seq = by_imei[acc.imei]
        for link, received_at in acc.links:
            link_rows.append((link.id, device_id, link.transport, acc.remote_addr,
                              time(link.opened_at), time(received_at), time(received_at)))
        if acc.reported_imei is not None:
            reported.append((acc.reported_imei, device_id))
        if binding_id is None:
            unbound += len(acc.fixes)
        else:
            for stored_fix in acc.fixes.values():
                position_rows.append(_position_row(device_id, binding_id, stored_fix))
        for alarm, event_time, received in acc.alarms.values():
            position = alarm.position
            alarm_rows.append((
                device_id, binding_id, alarm.alarm.value, alarm.raw_code, time(event_time),
                position.lat if position else None, position.lon if position else None,
                received))
        if frames_per_device:
            frame_rows.extend(_ring_rows(device_id, frame_seq, acc.frames, frames_per_device))

    stored = 0
    for step in statements.positions.steps(position_rows) if position_rows else ():
        stored += yield step
    alarms_stored = 0
    for step in statements.alarms.steps(alarm_rows) if alarm_rows else ():
        alarms_stored += yield step
    for step in statements.frames.steps(frame_rows) if frame_rows else ():
        yield step
    # Rare (a connection's first frame, then twice a minute; logins): one row at a time.
    if link_rows:
        yield _Step(statements.links, link_rows, many=True)
    if reported:
        yield _Step(statements.reported_imei, reported, many=True)

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


def _position_row(device_id: int, binding_id: int,
                  fix: tuple[Position, Any, Any, str | None]) -> Row:
    p, fix_value, received, alarm = fix
    attributes = None
    if alarm is not None:
        attributes = _attributes_json({**p.attributes, "alarm": alarm})
    elif p.attributes:
        values = p.attributes  # a dict, or a read-only mapping the encoder does not take
        attributes = _attributes_json(values if type(values) is dict else dict(values))
    return (device_id, binding_id, fix_value, received, p.lat, p.lon, p.valid,
            p.speed_kmh, p.course_deg, p.altitude_m, p.satellites, p.hdop, attributes)


def _ring_rows(device_id: int, seq_after: int, frames: list[Row], size: int) -> list[Row]:
    """Ring slots for a device's frames of this batch; `seq_after` is its frame count after it.

    Only the last `size` frames are written: older ones would be overwritten in the same
    statement (which PostgreSQL refuses: one row may not be updated twice by one upsert).
    """
    if len(frames) == 1:  # the usual case: one frame of the device in the batch
        return [(device_id, seq_after % size, seq_after, *frames[0])]
    first_seq = seq_after - len(frames) + 1
    kept = frames[-size:]
    first_kept = first_seq + len(frames) - len(kept)
    return [(device_id, seq % size, seq, *frame)
            for seq, frame in enumerate(kept, start=first_kept)]


async def trim_frame_rings(db: Database, frames_per_device: int) -> int:
    """Delete ring slots beyond `frames_per_device` (after the setting was lowered).

    The ring never grows by itself; this only matters when N shrinks. Returns rows deleted.
    """
    async with db.begin() as conn:
        result = await conn.execute(_frames.delete().where(_frames.c.slot >= frames_per_device))
        return int(result.rowcount or 0)
