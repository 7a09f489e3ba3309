"""CPU time per frame of the device pipeline alone: decoding, the session rules, the group-commit
writer and SQLite, without sockets (to see where the gateway's per-frame cost goes).

    python bench/pipeline.py [--devices 2000] [--frames 20] [--protocol gl300] [--rounds 3]
                             [--store sqlite|none]

Each device is a pipeline stream fed its position frames one read at a time, round robin, as
2,000 connections sending a frame each would be; the replies go to a sink that only counts
them. Every device is bound, so each position is stored. The figure is process CPU time (every
thread) per acknowledged frame, best of --rounds.

`--store none` puts a store that commits nothing in the writer's place: it settles every item
of a round at once, after the round, as a commit of the whole round would. The figure is then
what the event-loop side costs per frame (framing, decoding, the session rules, the items and
their settlement, the replies) without the writer, SQLite or sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import Settings
from gateway.devices.pipeline import Pipeline
from gateway.metrics import Metrics
from gateway.store import queries
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from gateway.store.migrate import upgrade
from gateway.store.writer import Done, GroupCommitWriter, ItemStore
from protocols import Fix, Login, get_codec
from protocols.imei import complete_imei

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class SettlingStore:
    """A store that commits nothing: `settle` settles what was submitted, as a commit would."""

    saturated = False

    def __init__(self) -> None:
        self.done: list[Done] = []

    def submit_nowait(self, item: IngestItem, done: Done) -> None:
        self.done.append(done)

    def call_when_room(self, callback: Callable[[], None]) -> None:
        callback()

    def settle(self) -> None:
        done, self.done = self.done, []
        for callback in done:
            callback(None)


class CountingSink:
    __slots__ = ("replies",)

    def __init__(self) -> None:
        self.replies = 0

    def write(self, data: bytes) -> None:
        self.replies += 1

    def end(self, reason: str) -> None:
        raise SystemExit(f"a stream ended: {reason}")

    def settled(self) -> None:
        pass

    def identified(self) -> None:
        pass


async def run(args: argparse.Namespace, url: str) -> float:
    db = Database.create(url)
    imeis = [complete_imei(f"35{n:012d}") for n in range(args.devices)]
    now = datetime.now(UTC)
    await write_batch(db, [IngestItem(i, args.protocol, "bench", now, b"", (Login(i),))
                           for i in imeis], 0)
    for imei in imeis:
        await queries.bind_device(db, imei, f"{imei}@example.com")
    await db.dispose()
    writer_db = Database.create(url, pool_size=1, max_overflow=0, pre_ping=False)
    writer = GroupCommitWriter(writer_db, max_batch=1000, max_delay_ms=5.0)
    writer.start()
    settling = SettlingStore() if args.store == "none" else None
    store: ItemStore = settling if settling is not None else writer
    settings = Settings(protocols={args.protocol: {"sack": True}} if args.protocol == "gl300"
                        else {})
    pipeline = Pipeline(settings.protocols, max_frame_bytes=4096, max_frames_per_s=1e9,
                        metrics=Metrics(), store=store)
    codec = get_codec(args.protocol)
    devices = [codec.device(imei) for imei in imeis]
    sinks = [CountingSink() for _ in imeis]
    streams = [pipeline.open(sink, args.protocol, "192.0.2.1") for sink in sinks]
    for device, stream in zip(devices, streams, strict=True):
        stream.feed(device.login())
    if settling is not None:
        settling.settle()
    while writer.pending:
        await asyncio.sleep(0.01)
    frames = [[d.position(Fix(T0 + timedelta(seconds=i), 45 + i * 1e-5, 9.0, speed_kmh=40.0))
               for i in range(args.frames)] for d in devices]
    before = [s.replies for s in sinks]
    started = time.process_time()
    for i in range(args.frames):
        for stream, own in zip(streams, frames, strict=True):
            stream.feed(own[i])
        await asyncio.sleep(0)  # the loop runs the writer between reads, as with sockets
        if settling is not None:
            settling.settle()
    while writer.pending:
        await asyncio.sleep(0.001)
    used = time.process_time() - started
    acked = sum(s.replies for s in sinks) - sum(before)
    await writer.close()
    await writer_db.dispose()
    if acked != args.devices * args.frames:
        raise SystemExit(f"{acked} replies for {args.devices * args.frames} frames")
    return used / acked * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--protocol", default="gl300")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "none"), default="sqlite",
                        help="none: settle items without storing them (the loop side alone)")
    args = parser.parse_args()
    best = float("inf")
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite+aiosqlite:///{folder}/gateway.db"
            asyncio.run(upgrade(url))
            try:
                import uvloop

                figure = uvloop.run(run(args, url))
            except ImportError:
                figure = asyncio.run(run(args, url))
        best = min(best, figure)
        print(f"{args.protocol}: {figure:.1f} us CPU per acknowledged frame")
    what = ("pipeline alone, nothing stored" if args.store == "none"
            else "pipeline, writer, SQLite")
    print(f"best of {args.rounds}: {best:.1f} us CPU per frame ({what})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
