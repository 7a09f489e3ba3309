"""Claims started and codes verified per second, with latency percentiles, next to a baseline.

    python bench/activation.py [--claims 500] [--concurrency 32] [--database URL]

A real gateway runs in this process (SQLite in a temporary folder by default, or --database,
e.g. postgresql+asyncpg://postgres@127.0.0.1/bench, which must exist and be migrated). Clients
talk to it over loopback HTTP with --concurrency requests in flight:

- baseline: `GET /ping` of a trivial FastAPI app served by uvicorn in the same process and loop,
  i.e. what HTTP + FastAPI + the client cost without any gateway work;
- start: `POST /api/v1/activations` for provisioned devices (rate limit, device lookup,
  challenge insert, audit row; the code goes to the outbox in the background);
- verify: `POST /api/v1/activations/{id}/verify` with the right code (attempt counted, HMAC
  compared, owner created, binding opened, device claimed, session created, audit row).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import uvicorn
from fastapi import FastAPI

from gateway.config import Settings
from gateway.server import Gateway
from protocols import names
from protocols.imei import complete_imei

TOKEN = "bench-admin-token-0123456789abcdef-xyz"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run_phase(
    name: str, count: int, concurrency: int, request: Callable[[int], Awaitable[None]]
) -> dict[str, Any]:
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            await request(index)
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return {"phase": name, "requests": count, "per_s": count / elapsed,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000}


async def baseline_server() -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None,
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


async def main(claims: int, concurrency: int, database: str | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-activation-"))
    url = database or f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
    outbox = workdir / "outbox.jsonl"
    settings = Settings(
        database={"url": url},
        protocols={name: {"port": 0} for name in names()},
        http={"host": "127.0.0.1", "port": 0},
        admin={"token": TOKEN},
        notify={"outbox_path": str(outbox)},
        activation={"server_key": "bench-server-key-0123456789abcdefgh",
                    "starts_per_minute_per_client": 10_000_000,
                    "max_failures_per_client": 10_000_000},
    )
    gateway = Gateway(settings)
    await gateway.start()
    server, task, baseline_port = await baseline_server()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    base = f"http://127.0.0.1:{gateway.http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{baseline_port}", limits=limits,
                                  timeout=60) as plain:
            imeis = [complete_imei(f"86{n:012d}") for n in range(claims)]
            for n, imei in enumerate(imeis):
                response = await client.post(
                    "/api/v1/admin/devices", json={"imei": imei, "contact": f"u{n}@example.com"},
                    headers={"Authorization": f"Bearer {TOKEN}"})
                response.raise_for_status()

            async def ping(_index: int) -> None:
                (await plain.get("/ping")).raise_for_status()

            started: list[dict[str, Any]] = [{} for _ in imeis]

            async def start(index: int) -> None:
                response = await client.post("/api/v1/activations", json={
                    "imei": imeis[index], "contact": f"claimant{index}@example.com"})
                if response.status_code != 202:
                    raise RuntimeError(response.text)
                started[index] = response.json()

            results = [await run_phase("baseline GET /ping (trivial FastAPI)", claims * 2,
                                       concurrency, ping)]
            results.append(await run_phase("start  POST /api/v1/activations", claims,
                                           concurrency, start))
            assert gateway.activation is not None
            await gateway.activation.drain()
            codes = {line["to"]: line["code"] for line in map(
                json.loads, outbox.read_text().splitlines())}
            # Each verify needs its own client: the session cookie it gets must not leak into
            # the next request's measurement (it would not change the work, but keep it clean).

            async def verify(index: int) -> None:
                body = started[index]
                response = await client.post(
                    f"/api/v1/activations/{body['activation_id']}/verify",
                    json={"token": body["token"], "code": codes[f"u{index}@example.com"]})
                if response.status_code != 200:
                    raise RuntimeError(response.text)
                client.cookies.clear()

            results.append(await run_phase("verify POST /api/v1/activations/{id}/verify",
                                           claims, concurrency, verify))
    finally:
        server.should_exit = True
        await task
        await gateway.stop()

    dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
    print(f"database: {dialect}; {claims} claims; concurrency {concurrency}; loopback HTTP")
    print(f"{'phase':46} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r['phase']:46} {r['per_s']:9.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database", help="database URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    asyncio.run(main(args.claims, args.concurrency, args.database))
