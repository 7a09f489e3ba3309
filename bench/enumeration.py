"""Does the time a claim or sign-in takes to answer tell what kind of IMEI or contact it was?

    python bench/enumeration.py [--rounds 5] [--per-class 40] [--database URL]

Rule 12: starting a claim answers alike (status, body, timing) for unknown, unclaimed, owned and
locked IMEIs, and, with issue 12, for IMEIs with a contact of record or a claim key; sign-ins
alike for known and unknown contacts. A real gateway runs in this process (SQLite in a
temporary folder by default); one client sends one request at a time over loopback HTTP, the
classes interleaved in a random order each round, so that drift (cache, WAL growth, the machine)
falls on every class alike. It prints, per class, the median and the 10th/90th percentiles of
the answer time, and the largest difference between two classes' medians next to the spread
within a class. Claims are timed without a claim key and with a wrong one (what an attacker
can type).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import text

from gateway.config import Settings
from gateway.server import Gateway
from gateway.store.ingest import IngestItem, write_batch
from gateway.store.queries import bind_device
from protocols.events import Login
from protocols.imei import complete_imei

TOKEN = "bench-admin-token-0123456789abcdef-xyz"
CLASSES = ("unknown", "unclaimed", "owned", "locked", "contact_of_record", "claim_key")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main(rounds: int, per_class: int, database: str | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-enumeration-"))
    url = database or f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
    gateway = Gateway(Settings(
        database={"url": url}, tcp={"gps103_port": 0, "tk103_port": 0, "gl300_port": 0},
        http={"host": "127.0.0.1", "port": 0}, admin={"token": TOKEN},
        notify={"outbox_path": str(workdir / "outbox.jsonl")},
        activation={"server_key": "bench-server-key-0123456789abcdefgh",
                    "server_key_file": str(workdir / "server.key"),
                    "starts_per_minute_per_client": 10_000_000,
                    "max_failures_per_client": 10_000_000, "device_lock_failures": 10_000_000}))
    await gateway.start()
    assert gateway.db is not None
    db = gateway.db
    run = random.randrange(10**6)
    base = f"http://127.0.0.1:{gateway.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            admin = {"Authorization": f"Bearer {TOKEN}"}
            devices: dict[str, list[str]] = {}
            known: list[str] = []
            serial = 0
            for kind in CLASSES:
                devices[kind] = []
                for _ in range(per_class):
                    serial += 1
                    imei = complete_imei(f"87{run:06d}{serial:06d}")
                    devices[kind].append(imei)
                    if kind != "unknown":
                        await write_batch(db, [IngestItem(
                            imei, "gps103", "127.0.0.1", datetime.now(UTC), b"login",
                            (Login(imei),))], 10)
                    if kind == "owned":
                        known.append(f"owner{serial}@example.com")
                        await bind_device(db, imei, known[-1])
                    if kind == "locked":
                        async with db.begin() as conn:
                            await conn.execute(text(
                                "UPDATE devices SET state = 'locked' WHERE imei = :i"),
                                {"i": imei})
                    if kind == "contact_of_record":
                        (await client.post("/api/v1/admin/devices", headers=admin, json={
                            "imei": imei, "contact": f"record{serial}@example.com"})
                         ).raise_for_status()
                    if kind == "claim_key":
                        (await client.post("/api/v1/admin/devices", headers=admin, json={
                            "imei": imei, "claim_key": "generate"})).raise_for_status()

            async def timed(path: str, body: dict[str, str]) -> float:
                began = time.perf_counter()
                answer = await client.post(path, json=body)
                elapsed = time.perf_counter() - began
                if answer.status_code != 202:
                    raise RuntimeError(answer.text)
                return elapsed * 1000

            for with_key in (False, True):
                samples: dict[str, list[float]] = {kind: [] for kind in CLASSES}
                for _ in range(rounds):
                    order = [(kind, imei) for kind in CLASSES for imei in devices[kind]]
                    random.shuffle(order)
                    for kind, imei in order:
                        body = {"imei": imei, "contact": "prober@example.net"}
                        if with_key:
                            body["claim_key"] = "ZZZZZ-ZZZZZ"
                        samples[kind].append(await timed("/api/v1/activations", body))
                report(f"claim start, {'a wrong claim key' if with_key else 'no claim key'}",
                       samples)
            if gateway.activation is not None:
                await gateway.activation.drain()
            contacts = {"known": known, "unknown": [f"nobody{n}@example.com"
                                                    for n in range(len(known))]}
            samples = {kind: [] for kind in contacts}
            for _ in range(rounds):
                order = [(kind, c) for kind, cs in contacts.items() for c in cs]
                random.shuffle(order)
                for kind, contact in order:
                    samples[kind].append(await timed("/api/v1/sessions", {"contact": contact}))
            report("sign-in start", samples)
    finally:
        await gateway.stop()
    dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"database: {dialect}; {rounds} rounds; {per_class} per class; one request at a "
          "time over loopback HTTP")


def report(title: str, samples: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"  {'class':20} {'n':>5} {'p10 ms':>8} {'median':>8} {'p90 ms':>8}")
    medians = {}
    for kind, values in samples.items():
        medians[kind] = statistics.median(values)
        print(f"  {kind:20} {len(values):5d} {percentile(values, 0.1):8.2f} "
              f"{medians[kind]:8.2f} {percentile(values, 0.9):8.2f}")
    spread = max(medians.values()) - min(medians.values())
    within = statistics.median(percentile(v, 0.9) - percentile(v, 0.1)
                               for v in samples.values())
    print(f"  largest difference between medians: {spread:.2f} ms; "
          f"p10-p90 spread within a class: {within:.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--database", help="database URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.per_class, args.database))
