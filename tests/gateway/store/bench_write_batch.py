"""Time write_batch: batches of 1000 items from 100 bound devices, on SQLite and PostgreSQL.

Not a test (no assertions on time). Run from the repository root:

    .venv/bin/python -m tests.gateway.store.bench_write_batch [--batches 20] [--pg DSN]

PostgreSQL: a scratch database is created on the server of DSN and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from gateway.store.migrate import upgrade
from gateway.store.queries import bind_device
from protocols.events import Position, attrs

from .support import T0, imei

DEVICES = 100


def make_batch(number: int, size: int) -> list[IngestItem]:
    items = []
    for i in range(size):
        device = imei(i % DEVICES)
        fix_time = T0 + timedelta(seconds=number * size + i)
        raw = (f"imei:{device},tracker,240501120000,,F,120000.000,A,5230.0000,N,01324.0000,E,"
               f"10.5,90;").encode()
        pos = Position(device_id=device, fix_time=fix_time, valid=True, lat=52.5 + i * 1e-5,
                       lon=13.4, speed_kmh=10.5, course_deg=90.0, altitude_m=35.0, satellites=8,
                       hdop=0.9, attributes=attrs(battery=87, ignition=True))
        items.append(IngestItem(device, "gps103", "192.0.2.1:40000", fix_time, raw, (pos,)))
    return items


async def bench(url: str, batches: int, size: int) -> list[float]:
    await upgrade(url)
    db = Database.create(url)
    try:
        await write_batch(db, [IngestItem(imei(n), "gps103", None, T0, b"", ())
                               for n in range(DEVICES)], 20)
        for n in range(DEVICES):
            await bind_device(db, imei(n), f"owner{n}@example.org")
        await write_batch(db, make_batch(0, size), 20)  # warm-up: pool, prepared statements
        times = []
        for number in range(1, batches + 1):
            items = make_batch(number, size)
            started = time.perf_counter()
            result = await write_batch(db, items, 20)
            times.append(time.perf_counter() - started)
            assert result.positions_stored == size
        return times
    finally:
        await db.dispose()


def report(name: str, times: list[float], size: int) -> None:
    median = statistics.median(times)
    print(f"{name:10s} batch of {size}: median {median * 1000:6.1f} ms, "
          f"min {min(times) * 1000:6.1f} ms, max {max(times) * 1000:6.1f} ms "
          f"-> {size / median:8.0f} positions/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        report("sqlite", await bench(url, args.batches, args.size), args.size)
    name = f"gateway_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.pg)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(args.pg).set(drivername="postgresql+asyncpg", database=name)
        times = await bench(url.render_as_string(hide_password=False), args.batches, args.size)
        report("postgresql", times, args.size)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
