"""GroupCommitWriter: acks after commit, group commit, outages, backpressure, close, poison."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime

import pytest
from sqlalchemy.engine import make_url

from gateway.store.database import Database
from gateway.store.ingest import write_batch
from gateway.store.queries import bind_device
from gateway.store.writer import GroupCommitWriter, ItemRejected, WriterClosed

from .proxy import TcpProxy
from .support import count_positions, fix_item, imei, item

#: How long a test waits for something that must happen (liveness, not performance).
PATIENCE_S = 20.0


async def eventually(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.01)


async def bound(db: Database, *devices: str) -> None:
    await write_batch(db, [item(d) for d in devices], 20)
    for d in devices:
        await bind_device(db, d, f"owner-{d}@example.org")


def fast_writer(db: Database, **options: object) -> GroupCommitWriter:
    settings: dict[str, object] = {"retry_initial_s": 0.01, "retry_max_s": 0.1}
    settings.update(options)
    return GroupCommitWriter(db, **settings)  # type: ignore[arg-type]


async def test_submit_returns_once_committed(db: Database, store_url: str) -> None:
    device = imei(1)
    await bound(db, device)
    observer = Database.create(store_url)  # a separate engine: sees only committed data
    try:
        async with fast_writer(db, max_delay_ms=20) as writer:
            await writer.submit(fix_item(device, 1))
            assert await count_positions(observer, device) == 1
            assert writer.pending == 0 and writer.healthy
            assert writer.stats.committed == 1
    finally:
        await observer.dispose()


async def test_concurrent_submitters_share_batches(db: Database) -> None:
    devices = [imei(n) for n in range(20)]
    await bound(db, *devices)
    sizes: list[int] = []
    async with fast_writer(db, on_commit=lambda size, _seconds: sizes.append(size)) as writer:
        await asyncio.gather(*(writer.submit(fix_item(d, s))
                               for s in range(10) for d in devices))
    assert sum(sizes) == 200
    assert len(sizes) < 20  # 200 submissions, a handful of transactions
    assert writer.stats.largest_batch > 1
    assert await count_positions(db) == 200


async def test_max_batch_is_respected(db: Database) -> None:
    device = imei(1)
    await bound(db, device)
    async with fast_writer(db, max_batch=7) as writer:
        await asyncio.gather(*(writer.submit(fix_item(device, s)) for s in range(50)))
    assert writer.stats.largest_batch <= 7
    assert writer.stats.committed == 50
    assert await count_positions(db, device) == 50


@dataclass
class Outage:
    """Make the database unavailable to `url` and back."""

    url: str
    cut: Callable[[], object]
    restore: Callable[[], object]


@pytest.fixture
async def outage(store_url: str) -> AsyncIterator[Outage]:
    """SQLite: another connection holds the write lock. PostgreSQL: a proxy is cut."""
    parsed = make_url(store_url)
    if parsed.get_backend_name() == "sqlite":
        holder: list[sqlite3.Connection] = []

        async def lock() -> None:
            conn = sqlite3.connect(parsed.database or "", isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            holder.append(conn)

        async def unlock() -> None:
            conn = holder.pop()
            conn.execute("ROLLBACK")
            conn.close()

        yield Outage(store_url, lock, unlock)
        for conn in holder:
            conn.close()
        return
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    await proxy.start()
    url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        yield Outage(url, proxy.cut, proxy.restore)
    finally:
        await proxy.close()


async def _call(action: Callable[[], object]) -> None:
    result = action()
    if asyncio.iscoroutine(result):
        await result


async def test_outage_withholds_acks_and_loses_nothing(db: Database, outage: Outage) -> None:
    devices = [imei(n) for n in range(5)]
    await bound(db, *devices)
    failures: list[BaseException] = []
    away = Database.create(outage.url, sqlite_busy_timeout_ms=50, connect_timeout_s=2)
    writer = fast_writer(away, on_failure=failures.append)
    writer.start()
    try:
        await writer.submit(fix_item(devices[0], 0))  # the path works before the outage
        await _call(outage.cut)
        first = [asyncio.ensure_future(writer.submit(fix_item(d, s)))
                 for s in range(1, 4) for d in devices]
        await eventually(lambda: not writer.healthy, "the writer notices the outage")
        # More frames arrive while the database is away.
        later = [asyncio.ensure_future(writer.submit(fix_item(d, s)))
                 for s in range(4, 6) for d in devices]
        await eventually(lambda: writer.stats.failures >= 3, "several retries")
        assert not any(task.done() for task in first + later)  # no ack, and no failure
        assert writer.pending == 25
        assert failures
        await _call(outage.restore)
        await asyncio.wait_for(asyncio.gather(*first, *later), PATIENCE_S)
        assert writer.healthy and writer.pending == 0
    finally:
        await writer.close(drain=False)
        await away.dispose()
    assert await count_positions(db) == 26


async def test_items_that_waited_during_a_write_are_not_held_again(
        db: Database, outage: Outage) -> None:
    """`max_delay_ms` is how long an item may wait for others to join its batch, counted from
    its arrival: one that arrived while the batch before was being written (here held up by a
    locked database for longer than the delay) is written as soon as that batch commits."""
    devices = [imei(n) for n in range(3)]
    await bound(db, *devices)
    away = Database.create(outage.url, sqlite_busy_timeout_ms=50, connect_timeout_s=2)
    loop = asyncio.get_running_loop()
    commits: list[tuple[int, float]] = []
    writer = fast_writer(away, max_batch=2, max_delay_ms=1000,
                         on_commit=lambda size, _s: commits.append((size, loop.time())))
    writer.start()
    try:
        await _call(outage.cut)
        # A full batch goes at once, and is held by the outage.
        held = [asyncio.ensure_future(writer.submit(fix_item(d, 1))) for d in devices[:2]]
        await eventually(lambda: not writer.healthy, "the first batch meets the outage")
        late = asyncio.ensure_future(writer.submit(fix_item(devices[2], 1)))
        await asyncio.sleep(1.5)  # longer than max_delay: the late item has waited enough
        assert not late.done()
        await _call(outage.restore)
        await asyncio.wait_for(asyncio.gather(*held, late), PATIENCE_S)
    finally:
        await writer.close(drain=False)
        await away.dispose()
    assert [size for size, _ in commits] == [2, 1]
    # Held again for max_delay, it would commit a second after the first batch.
    assert commits[1][1] - commits[0][1] < 0.8
    assert await count_positions(db) == 3


# A SQLite write cannot lose its connection half-way: this case exists on PostgreSQL only.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_connection_lost_during_a_batch(db: Database, outage: Outage) -> None:
    """The server goes away while a batch is in flight (the commit never happens)."""
    device = imei(1)
    await bound(db, device)
    failures: list[BaseException] = []
    away = Database.create(outage.url, connect_timeout_s=2)
    writer = fast_writer(away, on_failure=failures.append)
    writer.start()
    try:
        await writer.submit(fix_item(device, 0))
        # Another transaction holds the device row: the writer's batch blocks in its upsert.
        async with db.begin() as blocker:
            await blocker.exec_driver_sql(
                f"SELECT id FROM devices WHERE imei = '{device}' FOR UPDATE")
            task = asyncio.ensure_future(writer.submit(fix_item(device, 1)))
            await eventually(lambda: writer.stats.submitted == 2, "the item is taken")
            await asyncio.sleep(0.2)  # the batch reaches the locked row
            await _call(outage.cut)
            await eventually(lambda: bool(failures), "the lost connection is seen")
            assert not task.done()
        await _call(outage.restore)
        await asyncio.wait_for(task, PATIENCE_S)
    finally:
        await writer.close(drain=False)
        await away.dispose()
    assert await count_positions(db, device) == 2


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
async def test_concurrent_batches_do_not_wait_for_a_stuck_one(db: Database) -> None:
    """With concurrency 2 a batch blocked in the database (a row locked by someone else)
    holds up only its own items: the next batch commits meanwhile."""
    stuck, free = imei(1), imei(2)
    await bound(db, stuck, free)
    async with fast_writer(db, concurrency=2, max_delay_ms=0) as writer:
        async with db.begin() as blocker:
            await blocker.exec_driver_sql(
                f"SELECT id FROM devices WHERE imei = '{stuck}' FOR UPDATE")
            blocked = asyncio.ensure_future(writer.submit(fix_item(stuck, 1)))
            await eventually(lambda: writer.stats.submitted == 1, "the first batch is taken")
            await asyncio.sleep(0.2)  # it reaches the locked row
            await asyncio.wait_for(writer.submit(fix_item(free, 1)), PATIENCE_S)
            assert not blocked.done()
            assert await count_positions(db, free) == 1
        await asyncio.wait_for(blocked, PATIENCE_S)
    assert await count_positions(db, stuck) == 1


async def test_sqlite_writes_one_batch_at_a_time(db: Database) -> None:
    writer = GroupCommitWriter(db, concurrency=4)
    assert writer.concurrency == (1 if db.dialect == "sqlite" else 4)


async def test_backpressure_bounds_pending_items(db: Database, outage: Outage) -> None:
    device = imei(1)
    await bound(db, device)
    away = Database.create(outage.url, sqlite_busy_timeout_ms=50, connect_timeout_s=2)
    writer = fast_writer(away, max_pending=4)
    writer.start()
    try:
        await _call(outage.cut)
        tasks = [asyncio.ensure_future(writer.submit(fix_item(device, s))) for s in range(10)]
        await eventually(lambda: not writer.healthy, "the writer notices the outage")
        await eventually(lambda: writer.stats.failures >= 2, "retries")
        assert writer.pending == 4  # the other six submitters wait for room
        assert writer.stats.submitted == 4
        await _call(outage.restore)
        await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE_S)
        assert writer.stats.submitted == 10 and writer.pending == 0
    finally:
        await writer.close(drain=False)
        await away.dispose()
    assert await count_positions(db, device) == 10


async def test_submit_nowait_reports_commits_and_saturation(
    db: Database, outage: Outage
) -> None:
    """The callback form used by TCP connections: `done(None)` after the commit, `saturated`
    once max_pending items pend, and `call_when_room` when they drop below it again."""
    device = imei(1)
    await bound(db, device)
    away = Database.create(outage.url, sqlite_busy_timeout_ms=50, connect_timeout_s=2)
    writer = fast_writer(away, max_pending=3)
    writer.start()
    outcomes: list[tuple[int, BaseException | None]] = []
    room: list[bool] = []
    try:
        await _call(outage.cut)
        for s in range(4):  # never waits: one beyond the bound is queued all the same
            writer.submit_nowait(fix_item(device, s), lambda e, s=s: outcomes.append((s, e)))
        assert writer.saturated and writer.pending == 4
        writer.call_when_room(lambda: room.append(writer.saturated))
        await eventually(lambda: writer.stats.failures >= 2, "retries during the outage")
        assert outcomes == [] and room == []  # nothing acknowledged, still no room
        await _call(outage.restore)
        await eventually(lambda: len(outcomes) == 4, "every item settled")
        await eventually(lambda: bool(room), "told there is room")
        assert sorted(outcomes, key=lambda o: o[0]) == [(s, None) for s in range(4)]
        assert room == [False] and not writer.saturated
    finally:
        await writer.close(drain=False)
        await away.dispose()
    assert await count_positions(db, device) == 4
    # Closed: the callback is told at once, nothing is queued.
    errors: list[BaseException | None] = []
    writer.submit_nowait(fix_item(device, 9), errors.append)
    assert len(errors) == 1 and isinstance(errors[0], WriterClosed)


async def test_close_drains_everything_submitted(db: Database) -> None:
    devices = [imei(n) for n in range(10)]
    await bound(db, *devices)
    writer = fast_writer(db, max_batch=16)
    writer.start()
    outcomes: list[BaseException | None] = []
    for s in range(30):
        for d in devices:
            writer.submit_nowait(fix_item(d, s), outcomes.append)
    await writer.close(drain=True)
    assert outcomes == [None] * 300
    assert await count_positions(db) == 300
    with pytest.raises(WriterClosed):
        await writer.submit(fix_item(devices[0], 1000))


async def test_close_during_outage_waits_then_gives_up(db: Database, outage: Outage) -> None:
    device = imei(1)
    await bound(db, device)
    away = Database.create(outage.url, sqlite_busy_timeout_ms=50, connect_timeout_s=2)
    writer = fast_writer(away)
    writer.start()
    try:
        await _call(outage.cut)
        task = asyncio.ensure_future(writer.submit(fix_item(device, 1)))
        await eventually(lambda: not writer.healthy, "the writer notices the outage")
        await writer.close(drain=True, timeout=0.2)
        with pytest.raises(WriterClosed):
            await task
        assert writer.pending == 0
    finally:
        await _call(outage.restore)
        await away.dispose()


async def test_drain_waits_for_the_database_to_return(db: Database, outage: Outage) -> None:
    device = imei(1)
    await bound(db, device)
    away = Database.create(outage.url, sqlite_busy_timeout_ms=50, connect_timeout_s=2)
    writer = fast_writer(away)
    writer.start()
    try:
        await _call(outage.cut)
        tasks = [asyncio.ensure_future(writer.submit(fix_item(device, s))) for s in range(3)]
        await eventually(lambda: not writer.healthy, "the writer notices the outage")
        closing = asyncio.ensure_future(writer.close(drain=True))
        await asyncio.sleep(0.1)
        assert not closing.done()
        await _call(outage.restore)
        await asyncio.wait_for(closing, PATIENCE_S)
        await asyncio.gather(*tasks)
    finally:
        await away.dispose()
    assert await count_positions(db, device) == 3


async def test_poison_item_fails_alone(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    devices = [imei(n) for n in range(8)]
    await bound(db, *devices)
    good = [fix_item(d, s) for s in range(5) for d in devices]
    poison = fix_item(devices[3], 99, lat=123.0)  # violates the latitude CHECK
    naive = replace(fix_item(devices[5], 98), received_at=datetime(2024, 1, 1))  # no tzinfo
    items = [*good[:17], poison, *good[17:30], naive, *good[30:]]
    async with fast_writer(db) as writer:
        results = await asyncio.gather(*(writer.submit(i) for i in items),
                                       return_exceptions=True)
        # The writer keeps working afterwards.
        await writer.submit(fix_item(devices[0], 100))
    failed = [r for r in results if isinstance(r, BaseException)]
    assert len(failed) == 2 and all(isinstance(f, ItemRejected) for f in failed)
    assert results[17] is failed[0] and results[31] is failed[1]
    assert writer.stats.rejected == 2
    assert await count_positions(db) == len(good) + 1
    assert any("rejected" in record.getMessage() for record in caplog.records)


async def test_cancelled_submitter_is_still_stored(db: Database) -> None:
    device = imei(1)
    await bound(db, device)
    async with fast_writer(db, max_delay_ms=50) as writer:
        task = asyncio.ensure_future(writer.submit(fix_item(device, 1)))
        await asyncio.sleep(0)
        task.cancel()
        await writer.submit(fix_item(device, 2))
    assert await count_positions(db, device) == 2
    assert writer.pending == 0
