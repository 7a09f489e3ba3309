"""Ingestion throughput of the real gateway over TCP, next to a bare asyncio ceiling.

    python bench/ingest.py [--devices 200] [--seconds 10] [--window 64] [--idle 10000]
                           [--dialects sqlite,postgresql] [--pg postgresql://postgres@127.0.0.1/test]

For each database dialect, the gateway runs as its own process (`gateway run`, SACK enabled so
that every GL300 position is acknowledged after its commit). A load process (another process
again) opens --devices connections, each a bound GL300 keeping --window positions in flight,
and counts the `+SACK:<count>$` acknowledgements. It prints:

- positions committed per second (acknowledged, and cross-checked against the positions table);
- ack latency p50/p99 at full load, and at 5,000 positions/s sent the way a real fleet sends
  them: 5,000 simulated devices (the `simulators` fleet, as `trackersim fleet` runs it) at one
  position per second each, once all are connected (the target), and over the whole run with
  the connection ramp (5,000 devices connecting at 2,000/s, each logging in);
- gateway RSS per idle connection (--idle connections that sent one heartbeat each);
- the same load against a bare asyncio server that only splits frames and acknowledges them
  at once, measured in the same run: the ceiling, with the gateway's ratio to it;
- the store alone on the same database (`bench/store.py`): positions per second through
  write_batch and through the bare driver inserting position rows only, without network and
  decoding: how much of the ceiling any gateway that commits before it acknowledges could reach;
- CPU time per committed position (the gateway, plus its PostgreSQL backends) against a bare
  uvloop server that frames and acks the same bytes, under the same paced load (2,000 GL300
  connections x 5 frames/s; `bench/cpu.py`), as a ratio;
- with `--instances 2`, the throughput of two instances behind HAProxy next to one.

Targets on a 2-core machine: 20,000 positions/s to PostgreSQL, at least half the ceiling,
p99 ack latency under 100 ms at 5,000 positions/s, idle connections under 20 KB each.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store import DEVICES, driver_rate, scratch_pg, store_rate
from protocols import Fix, get_codec, names
from protocols.imei import complete_imei

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def imei_of(n: int) -> str:
    return complete_imei(f"35{n:012d}")


# --- load process -----------------------------------------------------------------------------


@dataclass
class LoadResult:
    acked: int
    seconds: float
    latencies_ms: list[float]
    exhausted: int = 0


def _frames_for(n: int, count: int) -> list[bytes]:
    """Position frames of device n, with distinct fix times."""
    device = get_codec("gl300").device(imei_of(n))
    frames = []
    for i in range(count):
        frame = device.position(Fix(fix_time=T0 + timedelta(seconds=i), lat=45 + i * 1e-6,
                                    lon=9 + n * 1e-4, speed_kmh=40.0, course_deg=90.0))
        frames.append(frame)
    return frames


#: Above any rate this machine reaches, so that no device runs out of prepared frames.
MAX_TOTAL_RATE = 60_000


class _DeviceClient(asyncio.Protocol):
    """One device connection. Acks come back in frame order, so latency is tracked with a FIFO
    of send times, and each ack lets one more frame go out (a window of frames in flight)."""

    def __init__(self, frames: list[bytes], window: int, stop_at: float,
                 result: LoadResult, done: asyncio.Future[None], cycle: bool) -> None:
        self.frames = frames
        #: Start again from the first frame when all were sent (the bare server stores nothing,
        #: so repeats cost it nothing; against the gateway they would be duplicates).
        self.cycle = cycle
        self.next = 0
        self.window = window
        self.stop_at = stop_at
        self.result = result
        self.done = done
        self.sent_at: collections.deque[float] = collections.deque()
        self.transport: asyncio.WriteTransport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop.call_later(max(0.0, self.stop_at - time.perf_counter()), self._check_done)
        self._fill()

    def _send(self, count: int) -> None:
        assert self.transport is not None
        if self.cycle and self.next + count > len(self.frames):
            self.next = 0
        end = min(self.next + count, len(self.frames))
        if end <= self.next:
            self.result.exhausted += 1 if self.next >= len(self.frames) else 0
            return
        now = time.perf_counter()
        self.sent_at.extend([now] * (end - self.next))
        self.transport.write(b"".join(self.frames[self.next:end]))
        self.next = end

    def _fill(self) -> None:
        if time.perf_counter() < self.stop_at:
            self._send(self.window - len(self.sent_at))

    def _check_done(self) -> None:
        if time.perf_counter() < self.stop_at:
            self.loop.call_later(self.stop_at - time.perf_counter(), self._check_done)
        elif not self.sent_at and not self.done.done():
            self.done.set_result(None)

    def data_received(self, data: bytes) -> None:
        acks = data.count(b"$")
        now = time.perf_counter()
        latencies = self.result.latencies_ms
        for _ in range(min(acks, len(self.sent_at))):
            latencies.append((now - self.sent_at.popleft()) * 1000)
        self.result.acked += acks
        self._fill()
        if not self.sent_at and now >= self.stop_at and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _load(port: int, devices: int, seconds: float, window: int,
                cycle: bool, first: int = 0) -> LoadResult:
    result = LoadResult(0, 0.0, [])
    frames_needed = int(seconds * MAX_TOTAL_RATE * 1.5 / devices) + window + 10
    prepared = [_frames_for(first + n, frames_needed) for n in range(devices)]
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    stop_at = start + seconds
    waits = []
    transports = []
    for frames in prepared:
        done: asyncio.Future[None] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda f=frames, d=done: _DeviceClient(f, window, stop_at, result, d, cycle),
            "127.0.0.1", port)
        transports.append(transport)
        waits.append(done)
    await asyncio.wait(waits, timeout=seconds + 60)
    result.seconds = time.perf_counter() - start
    for transport in transports:
        transport.close()
    if result.exhausted:
        print(f"warning: {result.exhausted} devices ran out of prepared frames", file=sys.stderr)
    return result


def _load_process(port: int, devices: int, seconds: float, window: int, cycle: bool,
                  queue: multiprocessing.Queue[LoadResult], first: int = 0) -> None:
    raise_fd_limit()
    main = _load(port, devices, seconds, window, cycle, first)
    try:
        import uvloop

        result = uvloop.run(main)
    except ImportError:
        result = asyncio.run(main)
    queue.put(result)


def run_load(port: int, devices: int, seconds: float, window: int,
             cycle: bool = False, first: int = 0) -> LoadResult:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[LoadResult] = ctx.Queue()
    proc = ctx.Process(target=_load_process,
                       args=(port, devices, seconds, window, cycle, queue, first))
    proc.start()
    result = queue.get(timeout=seconds + 120)
    proc.join()
    return result


def _fleet_process(port: int, devices: int, seconds: float, first_index: int,
                   queue: multiprocessing.Queue[dict[str, float]]) -> None:
    """A realistic paced load: `devices` simulated GL300s at one position per second each, with
    SACK, as `trackersim fleet` runs them; reports the ack latency the devices saw."""
    from simulators import FleetConfig, run_fleet

    raise_fd_limit()
    config = FleetConfig(protocol="gl300", port=port, devices=devices, rate_per_s=1.0,
                         duration_s=seconds, sack=True, first_index=first_index)
    try:
        import uvloop

        summary = uvloop.run(run_fleet(config))
    except ImportError:
        summary = asyncio.run(run_fleet(config))
    queue.put({
        "acked": summary.stats.frames_acked,
        "expecting": summary.stats.frames_expecting_ack,
        "rate": summary.steady_frames_per_s,
        "p50": (summary.percentile(50) or float("nan")) * 1000,
        "p99": (summary.percentile(99) or float("nan")) * 1000,
        "steady_p50": (summary.percentile(50, steady=True) or float("nan")) * 1000,
        "steady_p99": (summary.percentile(99, steady=True) or float("nan")) * 1000,
    })


def run_paced_fleet(port: int, devices: int, seconds: float,
                    first_index: int = 0) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[dict[str, float]] = ctx.Queue()
    proc = ctx.Process(target=_fleet_process, args=(port, devices, seconds, first_index, queue))
    proc.start()
    result = queue.get(timeout=seconds + 300)
    proc.join()
    return result


async def _bind_fleet(url: str, devices: int, first_index: int) -> None:
    """Bind the simulated fleet's devices (already seen by the gateway) to owners."""
    from gateway.store import queries
    from gateway.store.database import Database
    from simulators import imei_for

    db = Database.create(url)
    # SQLite has one writer: binding concurrently with the gateway's own writes only queues up.
    limit = asyncio.Semaphore(1 if db.dialect == "sqlite" else 8)

    async def bind(index: int) -> None:
        async with limit:
            imei = imei_for(first_index + index)
            await queries.bind_device(db, imei, f"fleet{first_index + index}@example.com")

    try:
        await asyncio.gather(*(bind(i) for i in range(devices)))
    finally:
        await db.dispose()


async def _open_idle(port: int, count: int, hold: float) -> None:
    conns = []
    for i in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get_codec("gl300").device(imei_of(100_000 + i)).heartbeat())
        conns.append((reader, writer))
    for reader, _writer in conns:
        await reader.readuntil(b"$")
    await asyncio.sleep(hold)
    for _reader, writer in conns:
        writer.close()


def _idle_process(port: int, count: int, hold: float) -> None:
    raise_fd_limit()
    asyncio.run(_open_idle(port, count, hold))


# --- the servers under test ------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class GatewayUnderTest:
    def __init__(self, url: str, workdir: Path, **extra: str) -> None:
        self.port = free_port()
        self.http_port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        env.update({
            "GATEWAY_DATABASE__URL": url,
            # Only the gl300 listener, with SACK on; every other protocol's listener off.
            **{f"GATEWAY_PROTOCOLS__{name.upper()}__PORT": "0" for name in names()},
            "GATEWAY_PROTOCOLS__GL300__PORT": str(self.port),
            "GATEWAY_PROTOCOLS__GL300__SACK": "true",
            "GATEWAY_TCP__MAX_CONNECTIONS_PER_ADDR": "50000",
            "GATEWAY_TCP__MAX_FRAMES_PER_S": "100000",
            "GATEWAY_TCP__MAX_PENDING_PER_CONNECTION": "5000",
            "GATEWAY_HTTP__PORT": str(self.http_port),
            "GATEWAY_LOG__LEVEL": "WARNING",
            **{f"GATEWAY_{key}": value for key, value in extra.items()},
        })
        self.log = (workdir / "gateway.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run"], env=env,
                                     cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"gateway exited: see {workdir / 'gateway.log'}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gateway did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _bare_server(port: int, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while data := await reader.read(65536):
            buf += data
            *frames, buf = buf.split(b"$")
            writer.write(b"".join(b"+SACK:" + f.rsplit(b",", 1)[1] + b"$" for f in frames))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    ready.set()  # type: ignore[attr-defined]
    async with server:
        await server.serve_forever()


def _bare_process(port: int, ready: multiprocessing.Event) -> None:  # type: ignore[valid-type]
    raise_fd_limit()
    try:
        import uvloop

        uvloop.run(_bare_server(port, ready))
    except ImportError:
        asyncio.run(_bare_server(port, ready))


# --- database set-up -------------------------------------------------------------------------


async def _bind_devices(url: str, port: int, devices: int, first: int = 0) -> None:
    from gateway.store import queries
    from gateway.store.database import Database

    for n in range(first, first + devices):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(get_codec("gl300").device(imei_of(n)).heartbeat())
        await reader.readuntil(b"$")
        await reader.readuntil(b"$")  # the generic SACK (a heartbeat's is sent at once)
        writer.close()
    db = Database.create(url)
    try:
        for n in range(first, first + devices):
            while True:  # the heartbeat's registration may still be on its way to a commit
                try:
                    await queries.bind_device(db, imei_of(n), f"fleet{n}@example.com")
                    break
                except queries.DeviceAlreadyBound:  # an earlier phase on this database
                    break
                except queries.DeviceNotFound:
                    await asyncio.sleep(0.01)
    finally:
        await db.dispose()


async def _count_positions(url: str) -> int:
    from sqlalchemy import text

    from gateway.store.database import Database

    db = Database.create(url)
    try:
        async with db.engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM positions"))).scalar())
    finally:
        await db.dispose()


def haproxy_in_front(ports: list[tuple[int, int]],
                     workdir: Path) -> tuple[int, subprocess.Popen[bytes]]:
    """The shipped config/haproxy.cfg in front of gateways at (device port, http port): the
    balancer's port and process."""
    import re

    front = free_port()
    text = (REPO / "config" / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:5004", f"bind 127.0.0.1:{front}")
    servers = iter(ports)

    def server(match: re.Match[str]) -> str:
        port, http = next(servers)
        return f"server {match.group(1)} 127.0.0.1:{port} check port {http}"

    text = re.sub(r"server (\S+) 127\.0\.0\.1:\d+ check port \d+", server, text)
    conf = workdir / "haproxy.cfg"
    conf.write_text(text)
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proc = subprocess.Popen([binary, "-db", "-f", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", front), timeout=1).close()
            return front, proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("haproxy did not start (apt install haproxy)") from None
            time.sleep(0.05)


def bench_instances(url: str, args: argparse.Namespace, workdir: Path) -> dict[int, float]:
    """Positions committed per second through HAProxy with one instance, then with
    --instances instances, on the same database (the same full load)."""
    rates: dict[int, float] = {}
    for count in sorted({1, args.instances}):
        gateways = [GatewayUnderTest(url, workdir / f"instance-{count}-{i}",
                                     TCP__PROXY_PROTOCOL="v2",
                                     TCP__TRUSTED_PROXIES='["127.0.0.1"]')
                    for i in range(count)]
        # config/haproxy.cfg names two servers: with one instance, both lines point at it.
        targets = [(g.port, g.http_port) for g in gateways] * (2 // count or 1)
        front, balancer = haproxy_in_front(targets[:2] if count <= 2 else targets, workdir)
        try:
            # Devices of their own: positions already stored by an earlier phase would be
            # acknowledged duplicates, not new rows.
            first = 200_000 * count
            asyncio.run(_bind_devices(url, front, args.devices, first))
            before = asyncio.run(_count_positions(url))
            load = run_load(front, args.devices, args.seconds, args.window, first=first)
            committed = asyncio.run(_count_positions(url)) - before
            if committed < load.acked:
                raise SystemExit(f"{load.acked} acks but only {committed} positions stored")
            rates[count] = load.acked / load.seconds
        finally:
            balancer.terminate()
            balancer.wait(10)
            for gateway in gateways:
                gateway.stop()
    return rates


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# --- main ------------------------------------------------------------------------------------


def bench_dialect(name: str, url: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    if name == "postgresql":
        from gateway.store.migrate import upgrade

        asyncio.run(upgrade(url))
    gateway = GatewayUnderTest(url, workdir)
    try:
        asyncio.run(_bind_devices(url, gateway.port, args.devices))
        before = asyncio.run(_count_positions(url))
        full = run_load(gateway.port, args.devices, args.seconds, args.window)
        committed = asyncio.run(_count_positions(url)) - before
        if committed < full.acked:
            raise SystemExit(f"{name}: {full.acked} acks but only {committed} positions stored")
        # 5,000 positions/s as a real fleet sends them: 5,000 devices at one per second.
        fleet_first = 500_000
        run_paced_fleet(gateway.port, args.paced_devices, 3.0, fleet_first)  # registers them
        asyncio.run(_bind_fleet(url, args.paced_devices, fleet_first))
        paced = run_paced_fleet(gateway.port, args.paced_devices, args.seconds, fleet_first)
        if paced["acked"] < paced["expecting"]:
            print(f"warning: {name}: {paced['expecting'] - paced['acked']:.0f} frames of the "
                  "paced fleet were not acknowledged", file=sys.stderr)
        base_rss = rss_kb(gateway.proc.pid)
        ctx = multiprocessing.get_context("spawn")
        hold = 5.0 + args.idle / 2000
        idle = ctx.Process(target=_idle_process, args=(gateway.port, args.idle, hold))
        idle.start()
        peak_rss = base_rss
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline and idle.is_alive():
            peak_rss = max(peak_rss, rss_kb(gateway.proc.pid))
            time.sleep(0.2)
        idle.join()
    finally:
        gateway.stop()
    # The store alone on the same database (other devices): what write_batch and the bare
    # driver take without network and decoding (see bench/store.py).
    store = asyncio.run(store_rate(url, first_device=900_000))
    driver = asyncio.run(driver_rate(url, first_device=900_000 + DEVICES))
    return {
        "store": store,
        "driver": driver,
        "rate": full.acked / full.seconds,
        "p50": percentile(full.latencies_ms, 50),
        "p99": percentile(full.latencies_ms, 99),
        "paced_rate": paced["rate"],
        "paced_p50": paced["p50"],
        "paced_p99": paced["p99"],
        "paced_steady_p50": paced["steady_p50"],
        "paced_steady_p99": paced["steady_p99"],
        "idle_kb": (peak_rss - base_rss) / args.idle if args.idle else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=64,
                        help="positions each device keeps in flight (unacknowledged)")
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--paced-devices", type=int, default=5000,
                        help="simulated devices at 1 position/s for the latency run")
    parser.add_argument("--dialects", default="sqlite,postgresql")
    parser.add_argument("--cpu-devices", type=int, default=2000,
                        help="connections of the CPU-per-position comparison (0: skip it)")
    parser.add_argument("--cpu-rate", type=float, default=5.0,
                        help="frames per second per connection in that comparison")
    parser.add_argument("--instances", type=int, default=1,
                        help="also measure this many instances behind HAProxy (config/"
                             "haproxy.cfg, PROXY protocol v2) next to one, on PostgreSQL")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL server where a scratch database is created")
    args = parser.parse_args()
    fd_limit = raise_fd_limit()
    if args.idle + 100 > fd_limit:
        raise SystemExit(f"--idle {args.idle} needs more file descriptors than {fd_limit}")

    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    bare = ctx.Process(target=_bare_process, args=(port, ready), daemon=True)
    bare.start()
    ready.wait(30)
    ceiling = run_load(port, args.devices, args.seconds, args.window, cycle=True)
    bare.terminate()
    ceiling_rate = ceiling.acked / ceiling.seconds
    print(f"load: {args.devices} GL300 connections, {args.window} positions in flight each, "
          f"{args.seconds:g} s per run")
    print(f"bare asyncio splitter (ceiling): {ceiling_rate:,.0f} acks/s, "
          f"p50 {percentile(ceiling.latencies_ms, 50):.1f} ms, "
          f"p99 {percentile(ceiling.latencies_ms, 99):.1f} ms")

    ok = True
    for name in args.dialects.split(","):
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-ingest-{name}-"))
        pg_name = f"bench_ingest_{uuid.uuid4().hex[:10]}"
        if name == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"
        else:
            asyncio.run(scratch_pg(args.pg, True, pg_name))
            from sqlalchemy.engine import make_url

            url = make_url(args.pg).set(drivername="postgresql+asyncpg", database=pg_name) \
                .render_as_string(hide_password=False)
        try:
            r = bench_dialect(name, url, args, workdir)
            if args.instances > 1 and name == "postgresql":
                behind = bench_instances(url, args, workdir)
                print(f"  behind HAProxy: 1 instance {behind[1]:,.0f} positions/s, "
                      f"{args.instances} instances {behind[args.instances]:,.0f} positions/s "
                      f"({behind[args.instances] / behind[1]:.2f}x)")
        finally:
            if name == "postgresql":
                asyncio.run(scratch_pg(args.pg, False, pg_name))
            shutil.rmtree(workdir, ignore_errors=True)
        ratio = r["rate"] / ceiling_rate
        print(f"{name}: {r['rate']:,.0f} positions/s committed ({ratio:.0%} of the ceiling), "
              f"ack p50 {r['p50']:.1f} ms p99 {r['p99']:.1f} ms; "
              f"at {r['paced_rate']:,.0f}/s: p50 {r['paced_steady_p50']:.1f} ms "
              f"p99 {r['paced_steady_p99']:.1f} ms once all devices are online "
              f"(whole run with the connection ramp: p50 {r['paced_p50']:.1f} ms "
              f"p99 {r['paced_p99']:.1f} ms); idle connection {r['idle_kb']:.1f} KB")
        print(f"  the store alone on this database: write_batch {r['store']:,.0f} positions/s "
              f"(the gateway reaches {r['rate'] / r['store']:.0%} of it), the bare driver "
              f"inserting position rows only {r['driver']:,.0f}/s "
              f"({r['driver'] / ceiling_rate:.0%} of the ceiling)")
        if name == "postgresql":
            checks = {
                ">= 20,000 positions/s": r["rate"] >= 20_000,
                ">= 50% of the ceiling": ratio >= 0.5,
                "p99 < 100 ms at 5,000/s": r["paced_steady_p99"] < 100,
                "idle < 20 KB": r["idle_kb"] < 20,
            }
            for label, passed in checks.items():
                print(f"  target {label}: {'ok' if passed else 'MISSED'}")
                ok &= passed
    if args.cpu_devices:
        # CPU time per position against a bare uvloop server, same paced load (bench/cpu.py).
        from bench import cpu

        paced = argparse.Namespace(devices=args.cpu_devices, rate=args.cpu_rate,
                                   seconds=args.seconds, pg=args.pg)
        bare_cpu = cpu.bare_figures(paced)
        print(f"CPU per frame, {args.cpu_devices} GL300 x {args.cpu_rate:g}/s: bare uvloop "
              f"server {bare_cpu.us_per_frame:.1f} us")
        for name in args.dialects.split(","):
            ok &= cpu.report(name, paced, bare_cpu)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
