"""Counters kept in the database, so that every gateway instance sees the same limits."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import case, delete, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.models import FailureCounter, UTCDateTime

_t = FailureCounter.__table__


async def bump(
    conn: AsyncConnection, scope: str, key: str, now: datetime, window_s: float | None
) -> tuple[int, datetime]:
    """Add one to (scope, key) atomically; return the new count and its window start.

    With `window_s`, a count older than the window starts again at 1 (fixed window).
    """
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(_t).values(scope=scope, key=key, count=1, window_start=now)
    if window_s is None:
        updates = {"count": _t.c.count + 1}
    else:
        stale = _t.c.window_start <= now - timedelta(seconds=window_s)
        updates = {
            "count": case((stale, 1), else_=_t.c.count + 1),
            # Typed literal: SQLite keeps datetimes as text in one fixed format.
            "window_start": case((stale, literal(now, UTCDateTime())), else_=_t.c.window_start),
        }
    stmt = stmt.on_conflict_do_update(index_elements=["scope", "key"], set_=updates).returning(
        _t.c.count, _t.c.window_start)
    row = (await conn.execute(stmt)).one()
    return int(row[0]), row[1]


async def current(
    conn: AsyncConnection, scope: str, key: str, now: datetime, window_s: float | None
) -> int:
    """The count of (scope, key) now (0 when absent or when its window has passed)."""
    row = (await conn.execute(
        select(_t.c.count, _t.c.window_start).where(_t.c.scope == scope, _t.c.key == key)
    )).first()
    if row is None:
        return 0
    if window_s is not None and row.window_start <= now - timedelta(seconds=window_s):
        return 0
    return int(row.count)


async def reset(conn: AsyncConnection, scope: str, key: str) -> None:
    await conn.execute(delete(_t).where(_t.c.scope == scope, _t.c.key == key))
