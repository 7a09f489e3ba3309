"""What live updates cost the write path, and how fast they cross instances.

    python bench/live.py [--items 200000] [--database postgresql+asyncpg://postgres@127.0.0.1/test]

1. `LiveHub.stored(item)` runs in `Gateway.on_stored` for every committed frame. Timed per
   item, for a position of a device nobody watches (the common case), of a device watched by
   one local browser (its queue drained as a stream would), and, with --database, of a device
   watched on another instance (JSON built once, queued for the next NOTIFY). Next to a
   baseline: a call of an empty method.
2. With --database (PostgreSQL; any database, nothing is written): two `PgLiveBus` links on
   it, one publishing `--rate` events per second of a device the other watches, for
   `--seconds`; prints events delivered, NOTIFYs used, and the delay from publish to delivery
   (p50, p99, max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import WebSettings
from gateway.metrics import Metrics
from gateway.outbound.live import LiveHub
from gateway.store.ingest import IngestItem
from gateway.store.live_bus import PgLiveBus
from protocols.events import Position

DEVICE = "359586015829802"


def item(n: int, device: str = DEVICE) -> IngestItem:
    when = datetime.fromtimestamp(1_700_000_000 + n, UTC)
    return IngestItem(device, "gps103", "127.0.0.1", when, b"frame",
                      (Position(device, when, True, 52.5 + n * 1e-6, 13.4, speed_kmh=30.0),))


class _Empty:
    def stored(self, _item: IngestItem) -> None:
        return None


def per_item_ns(call, items: list[IngestItem], after_each_1000=None) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter_ns()
    for n, one in enumerate(items):
        call(one)
        if after_each_1000 is not None and n % 1000 == 999:
            after_each_1000()
    return (time.perf_counter_ns() - start) / len(items)


async def hub_costs(items: int, database: str | None) -> None:
    batch = [item(n) for n in range(items)]
    baseline = per_item_ns(_Empty().stored, batch)
    hub = LiveHub(WebSettings(live_queue_max=10_000), Metrics())
    unwatched = per_item_ns(hub.stored, batch)
    sub = await hub.subscribe(DEVICE, owner_id=1)

    def drain() -> None:
        sub._queue.clear()  # what the stream's writer does, without the socket

    watched = per_item_ns(hub.stored, batch, drain)
    hub.unsubscribe(sub)
    print(f"stored() per committed item, {items} items:")
    print(f"  baseline (empty method)          {baseline:8.0f} ns")
    print(f"  device nobody watches            {unwatched:8.0f} ns")
    print(f"  device watched by a browser here {watched:8.0f} ns")
    if database is None:
        return
    remote = LiveHub(WebSettings(), Metrics())
    bus = PgLiveBus(database, deliver=remote.remote_event, watched=lambda: [],
                    resync=lambda: None)
    remote.bus = bus
    await bus.start()
    try:
        while not bus.up:
            await asyncio.sleep(0.01)
        bus._remote[DEVICE] = time.monotonic() + 3600  # as if announced by another instance
        elsewhere = per_item_ns(remote.stored, batch, lambda: bus._pending.clear())
        print(f"  device watched on another instance {elsewhere:6.0f} ns (NOTIFY not counted)")
    finally:
        await bus.stop()


async def across(database: str, rate: int, seconds: float) -> None:
    delays: list[float] = []
    notifies = 0

    def delivered(_device: str, body: dict[str, object]) -> None:
        delays.append(time.perf_counter() - float(str(body["sent"])))

    watcher = PgLiveBus(database, deliver=delivered, watched=lambda: [DEVICE],
                        resync=lambda: None)
    sender = PgLiveBus(database, deliver=lambda _d, _b: None, watched=lambda: [],
                       resync=lambda: None)
    await watcher.start()
    await sender.start()
    try:
        while not (watcher.up and sender.up):
            await asyncio.sleep(0.01)
        while not sender.wants(DEVICE):
            await asyncio.sleep(0.01)
        original = sender._payloads

        def counting() -> list[str]:
            nonlocal notifies
            payloads = original()
            notifies += sum('"events"' in p for p in payloads)
            return payloads

        sender._payloads = counting  # type: ignore[method-assign]
        body = {"type": "position", "imei": DEVICE, "protocol": "gps103", "lat": 52.5,
                "lon": 13.4, "fix_time": "2026-05-04T09:30:00+00:00", "valid": True,
                "speed_kmh": 30.0, "course_deg": 90.0, "altitude_m": 34.0}
        sent = 0
        start = time.perf_counter()
        tick = 0.01
        while time.perf_counter() - start < seconds:
            due = int((time.perf_counter() - start) * rate)
            while sent < due:
                sender.publish(DEVICE, json.dumps({**body, "sent": time.perf_counter()}))
                sent += 1
            await asyncio.sleep(tick)
        await asyncio.sleep(1.0)
    finally:
        await sender.stop()
        await watcher.stop()
    delays.sort()
    print(f"across instances: {sent} events at {rate}/s for {seconds:.0f} s: "
          f"{len(delays)} delivered in {notifies} NOTIFYs")
    if delays:
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(f"  publish to delivery: p50 {statistics.median(delays) * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--database", help="a PostgreSQL URL for the cross-instance figures")
    parser.add_argument("--rate", type=int, default=2000, help="events per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    await hub_costs(args.items, args.database)
    if args.database:
        await across(args.database, args.rate, args.seconds)


if __name__ == "__main__":
    asyncio.run(main())
