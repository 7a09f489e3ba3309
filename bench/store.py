"""The store alone: positions per second through write_batch, next to the bare driver.

    python bench/store.py [--batches 20] [--size 1000] [--devices 100] [--spread]
                          [--dialects sqlite,postgresql]
                          [--pg postgresql://postgres@127.0.0.1:5432/test]

Batches of --size GL300 positions (decoded from real frames, over --devices bound devices,
every frame also kept in its device's frame ring) are written with
`gateway.store.ingest.write_batch`: what the gateway's group-commit writer does per batch,
without network and without decoding. No test asserts on these figures.

Baseline, in the same run and database: the same position rows inserted by the bare driver into
the same `positions` table, one transaction per batch (sqlite3 `executemany`; asyncpg
`copy_records_to_table`, PostgreSQL's fastest bulk path). The baseline does only that: no device
upsert, no frame ring, no duplicate check.

PostgreSQL: a scratch database is created on the server of --pg and dropped afterwards.
`bench/ingest.py` prints this store-alone rate next to the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from gateway.store.migrate import upgrade
from gateway.store.queries import bind_device
from protocols import Fix, Position, get_codec
from protocols.imei import complete_imei

DEVICES = 100
#: Spread each batch over the fleet as the paced load does (one frame per device per batch),
#: instead of round-robin over the first devices.
SPREAD = False
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECEIVED = datetime(2026, 1, 2, tzinfo=UTC)


def imei_of(n: int) -> str:
    return complete_imei(f"87{n:012d}")


def make_batch(first_device: int, number: int, size: int) -> list[IngestItem]:
    """Batch `number`: `size` position frames round-robin over the devices, new fix times."""
    codec = get_codec("gl300")
    items = []
    for i in range(size):
        if SPREAD:
            # As bench/cpu.py's paced load sends: device n in slot n % 20 of each period.
            slot, rank = divmod(number * size + i, max(DEVICES // 20, 1))
            index = (slot % 20 + 20 * rank) % DEVICES
        else:
            index = i % DEVICES
        device = codec.device(imei_of(first_device + index))
        fix = Fix(fix_time=T0 + timedelta(seconds=number * size + i), lat=45 + i * 1e-6,
                  lon=9.0, speed_kmh=40.0, course_deg=90.0)
        raw = device.position(fix)
        decoded = codec.decode(raw)
        items.append(IngestItem(device.imei, "gl300", "192.0.2.1:40000", RECEIVED, raw,
                                decoded.events))
    return items


async def _prepare(url: str, first_device: int, size: int) -> Database:
    db = Database.create(url)
    await write_batch(db, [IngestItem(imei_of(first_device + n), "gl300", None, RECEIVED, b"", ())
                           for n in range(DEVICES)], 20)
    for n in range(first_device, first_device + DEVICES):
        await bind_device(db, imei_of(n), f"store-bench-{n}@example.org")
    await write_batch(db, make_batch(first_device, 0, size), 20)  # warm-up
    return db


async def _time_batches(batches: int, write: Callable[[int], Awaitable[None]],
                        cpu: list[float] | None = None) -> float:
    """The median seconds of `batches` calls of write(number); with `cpu`, the process CPU
    seconds of all of them (every thread: SQLite's writer runs on its own) are appended."""
    times = []
    cpu_started = time.process_time()
    for number in range(1, batches + 1):
        started = time.perf_counter()
        await write(number)
        times.append(time.perf_counter() - started)
    if cpu is not None:
        cpu.append(time.process_time() - cpu_started)
    return statistics.median(times)


async def store_rate(url: str, batches: int = 20, size: int = 1000,
                     first_device: int = 0, cpu: list[float] | None = None) -> float:
    """Positions per second written by write_batch (from the median batch) into a migrated
    database at `url`. Its devices are imei_of(first_device...), bound here. With `cpu`, the
    CPU seconds of the timed batches are appended to it."""
    db = await _prepare(url, first_device, size)
    prepared = {n: make_batch(first_device, n, size) for n in range(1, batches + 1)}

    async def write(number: int) -> None:
        result = await write_batch(db, prepared[number], 20)
        if result.positions_stored != size:
            raise SystemExit(f"write_batch stored {result.positions_stored} of {size}")

    try:
        return size / await _time_batches(batches, write, cpu)
    finally:
        await db.dispose()


async def driver_rate(url: str, batches: int = 20, size: int = 1000,
                      first_device: int = 0) -> float:
    """The baseline: the same position rows, inserted by the bare driver."""
    db = await _prepare(url, first_device, size)
    async with db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql(
            "SELECT imei, id, current_binding_id FROM devices")).all()
    await db.dispose()
    ids = {imei: (device_id, binding_id) for imei, device_id, binding_id in rows}
    columns = ("device_id", "binding_id", "fix_time", "received_at", "lat", "lon", "valid",
               "speed_kmh", "course_deg", "altitude_m", "satellites", "hdop")

    def position_rows(number: int) -> list[tuple[Any, ...]]:
        out = []
        # Later fix times than anything write_batch stored for these devices.
        for item in make_batch(first_device, number + batches + 1, size):
            p = item.events[0]
            assert isinstance(p, Position)
            device_id, binding_id = ids[item.device_id]
            out.append((device_id, binding_id, p.fix_time, item.received_at, p.lat, p.lon,
                        p.valid, p.speed_kmh, p.course_deg, p.altitude_m, p.satellites, p.hdop))
        return out

    prepared = {n: position_rows(n) for n in range(1, batches + 1)}
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        connection.execute("PRAGMA synchronous = FULL")  # as the gateway's connections
        sql = (f"INSERT INTO positions ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' * len(columns))})")

        def text(value: Any) -> Any:  # the gateway's SQLite datetime text
            return value.isoformat(" ", "microseconds")[:-6] if isinstance(value, datetime) \
                else value

        async def write_sqlite(number: int) -> None:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(sql, [tuple(map(text, row)) for row in prepared[number]])
            connection.execute("COMMIT")

        try:
            return size / await _time_batches(batches, write_sqlite)
        finally:
            connection.close()

    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    pg = await asyncpg.connect(dsn)

    async def write_pg(number: int) -> None:
        async with pg.transaction():
            await pg.copy_records_to_table("positions", records=prepared[number],
                                           columns=columns)

    try:
        return size / await _time_batches(batches, write_pg)
    finally:
        await pg.close()


async def scratch_pg(admin_dsn: str, create: bool, name: str) -> None:
    """Create (or drop) the scratch database `name` on the server of `admin_dsn`."""
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        if create:
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def bench(dialect: str, args: argparse.Namespace) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as folder:
        name = f"bench_store_{uuid.uuid4().hex[:10]}"
        if dialect == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(folder) / 'store.db'}"
        else:
            from sqlalchemy.engine import make_url

            await scratch_pg(args.pg, True, name)
            url = make_url(args.pg).set(drivername="postgresql+asyncpg", database=name) \
                .render_as_string(hide_password=False)
        try:
            await upgrade(url)
            cpu: list[float] = []
            gateway = await store_rate(url, args.batches, args.size, first_device=0, cpu=cpu)
            bare = await driver_rate(url, args.batches, args.size, first_device=DEVICES)
            return gateway, bare, cpu[0] / (args.batches * args.size)
        finally:
            if dialect == "postgresql":
                await scratch_pg(args.pg, False, name)


def main() -> int:
    global DEVICES, SPREAD
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=100,
                        help="bound devices the positions are spread over")
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server where a scratch database is created")
    parser.add_argument("--spread", action="store_true",
                        help="each batch takes one frame of each of --size devices spread over "
                             "the fleet, as bench/cpu.py's paced load (default: round-robin)")
    args = parser.parse_args()
    DEVICES = args.devices
    SPREAD = args.spread
    print(f"batches of {args.size} GL300 positions over {DEVICES} bound devices"
          f"{' (spread as the paced load)' if SPREAD else ''}, median of {args.batches}")
    for dialect in args.dialects.split(","):
        gateway, bare, cpu = asyncio.run(bench(dialect, args))
        side = " (client side only)" if dialect == "postgresql" else ""
        print(f"{dialect:10s} write_batch {gateway:8,.0f} positions/s, {cpu * 1e6:.1f} us CPU "
              f"per position{side}; bare driver inserting the position rows only "
              f"{bare:8,.0f}/s; ratio {gateway / bare:.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
