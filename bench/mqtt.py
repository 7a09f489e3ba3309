"""Positions committed per second through MQTT, next to a bare aiomqtt subscriber's receive rate.

    python bench/mqtt.py [--devices 100] [--messages 20000] [--rounds 3] [--live]
                         [--broker HOST:PORT] [--dialect sqlite|postgresql] [--pg URL]

One broker, two consumers of the same stream: --messages GL300 position frames (QoS 1, one
frame per message, round-robin over --devices bound devices), published by a process of its own.

1. A bare aiomqtt subscriber (MQTT 5, QoS 1, automatic acks, the gateway's Receive Maximum,
   does nothing with a message) receives the stream: messages per second from its first to its
   last message.
2. The real gateway (MQTT enabled, broker acks only after commit) receives the same stream:
   positions committed per second from its first message to the last commit; the position rows
   stored for the round's devices are counted afterwards.

By default each consumer's persistent broker session is made first, the stream is published
while the consumer is away, and the consumer then drains its session's queue: the figure is
the consumer's own capacity, with the broker on the other core. With --live the stream is
published while the consumer receives: on a small machine the publisher then competes with the
consumer for the cores, and the bare subscriber's rate is mostly the publisher's pace.

Each consumer runs in a process of its own (the gateway's start-up changes the garbage
collector's settings, which would weigh on a bare subscriber run after it in the same process).
The rounds alternate bare subscriber and gateway; each prints both rates and the CPU time the
consumer's process spent per message (all its threads). Target: the median ratio >= 80%.

The broker must hold the whole stream for a consumer: by default the bench starts its own
Mosquitto on a free loopback port with a per-client queue as long as the stream (Mosquitto's
default of 1,000 queued messages would drop the rest). With --broker, that broker's limits
apply, and a run that loses messages says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocols import Fix, get_codec
from protocols.imei import complete_imei

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T = TypeVar("T")
#: Seconds without progress after which a run is reported as stalled.
STALL_S = 3.0


@dataclass(frozen=True)
class Rate:
    per_s: float
    #: CPU seconds this process spent per message while measuring (all its threads).
    cpu_per_message: float


def imeis(count: int, first: int = 0) -> list[str]:
    return [complete_imei(f"86{n:012d}") for n in range(first, first + count)]


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` on the loop `gateway run` uses (uvloop where installed)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def frames(devices: int, messages: int, first: int = 0) -> list[tuple[str, bytes]]:
    encoders = [get_codec("gl300").device(imei) for imei in imeis(devices, first)]
    out = []
    for i in range(messages):
        encoder = encoders[i % devices]
        fix = Fix(fix_time=T0 + timedelta(seconds=i // devices), lat=10 + (i % 1000) * 1e-4,
                  lon=20.0, speed_kmh=30.0)
        out.append((encoder.imei, encoder.position(fix)))
    return out


async def _publish(host: str, port: int, topic_prefix: str, stream: list[tuple[str, bytes]],
                   first: list[bytes], go: Any) -> None:
    async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V5,
                              max_inflight_messages=1000) as client:
        client.pending_calls_threshold = 10_000
        for payload in first:  # one heartbeat per device before the stream (registration)
            imei = payload.split(b",")[2].decode()
            await client.publish(f"{topic_prefix}/{imei}/up", payload, qos=1)
        if go is not None:  # the devices are being bound: the stream starts when they are
            await asyncio.to_thread(go.wait)
        pending: set[asyncio.Task[None]] = set()
        for imei, payload in stream:
            task = asyncio.create_task(
                client.publish(f"{topic_prefix}/{imei}/up", payload, qos=1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if len(pending) >= 500:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.wait(pending)


def publisher(host: str, port: int, topic_prefix: str, devices: int, messages: int,
              first_imei: int, go: Any) -> None:
    stream = frames(devices, messages, first_imei)
    first = [get_codec("gl300").device(imei).heartbeat()
             for imei in imeis(devices, first_imei)] if go is not None else []
    run(_publish(host, port, topic_prefix, stream, first, go))


def start_publisher(args: argparse.Namespace, topic_prefix: str, go: Any = None
                    ) -> multiprocessing.Process:
    """The publisher process. With `go` (an Event), it first sends one heartbeat per device
    (registration) and starts the stream once `go` is set."""
    host, port = args.broker.split(":")
    process = multiprocessing.get_context("spawn").Process(
        target=publisher,
        args=(host, int(port), topic_prefix, args.devices, args.messages, args.first_imei, go),
        daemon=True)  # a phase that fails must not wait forever for its publisher on exit
    process.start()
    return process


def session_properties() -> Properties:
    """A persistent session with the gateway's default flow-control window (Receive Maximum):
    the broker has as many messages in flight to the bare subscriber as to the gateway."""
    from gateway.config import MqttSettings

    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 600
    properties.ReceiveMaximum = MqttSettings.model_fields["receive_maximum"].default
    return properties


async def wait_publisher(process: multiprocessing.Process) -> None:
    await asyncio.to_thread(process.join)
    if process.exitcode != 0:
        raise SystemExit(f"the publisher failed (exit code {process.exitcode})")


async def bare(args: argparse.Namespace) -> Rate:
    host, port = args.broker.split(":")
    topic_prefix = f"bench-{uuid.uuid4().hex[:8]}/trackers"

    def connect() -> aiomqtt.Client:
        # A persistent session: what is published while it is away is queued for it.
        return aiomqtt.Client(host, int(port), identifier=f"bench-bare-{topic_prefix[6:14]}",
                              protocol=aiomqtt.ProtocolVersion.V5, clean_start=False,
                              properties=session_properties())

    process = None
    if not args.live:
        async with connect() as client:
            await client.subscribe(f"{topic_prefix}/+/up/#", qos=1)
        await wait_publisher(start_publisher(args, topic_prefix))
    async with connect() as client:
        if args.live:
            await client.subscribe(f"{topic_prefix}/+/up/#", qos=1)
            process = start_publisher(args, topic_prefix)
        received = 0
        started = last = 0.0
        cpu = [0.0, 0.0]

        async def receive() -> None:
            # Nothing but the documented iterator: the per-message cost is aiomqtt's own.
            nonlocal received, started, last
            async for _ in client.messages:
                last = time.perf_counter()
                if received == 0:
                    started = last
                    cpu[0] = time.process_time()
                received += 1
                if received == args.messages:
                    break
            cpu[1] = time.process_time()

        # Stall detection watches from the side, not with a timeout around every message.
        receiver = asyncio.create_task(receive())
        seen, seen_at = 0, time.perf_counter()
        while not receiver.done():
            await asyncio.wait([receiver], timeout=0.5)
            if received != seen:
                seen, seen_at = received, time.perf_counter()
            elif time.perf_counter() - seen_at > STALL_S and received:
                receiver.cancel()
                print(f"bare subscriber: stalled after {received} of {args.messages} messages "
                      "(the broker dropped the rest)")
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
    if process is not None:
        await wait_publisher(process)
    return Rate((received - 1) / (last - started), (cpu[1] - cpu[0]) / max(received - 1, 1))


async def gateway_rate(args: argparse.Namespace, url: str) -> Rate:
    from sqlalchemy import text

    from gateway.config import Settings
    from gateway.server import Gateway
    from gateway.store import queries
    from protocols import names

    topic_prefix = f"bench-{uuid.uuid4().hex[:8]}/trackers"
    settings = Settings(
        database={"url": url},
        protocols={name: {"port": 0} for name in names()},
        http={"port": 0},
        mqtt={"enabled": True, "url": f"mqtt://{args.broker}", "topic_prefix": topic_prefix,
              "client_id": f"bench-gateway-{topic_prefix[6:14]}", "session_expiry_s": 600},
        activation={"server_key": "bench-server-key-0123456789abcdef"},
        log={"level": "WARNING"},
    )
    gateway = Gateway(settings)
    await gateway.start()
    try:
        assert gateway.mqtt is not None and gateway.db is not None
        while gateway.mqtt.state != "up":
            await asyncio.sleep(0.01)
        # Registration: one heartbeat per device, then every device is bound.
        go = multiprocessing.get_context("spawn").Event()
        process = start_publisher(args, topic_prefix, go)
        for imei in imeis(args.devices, args.first_imei):
            while True:
                try:
                    await queries.bind_device(gateway.db, imei, f"{imei}@example.com")
                    break
                except queries.DeviceNotFound:
                    await asyncio.sleep(0.01)
        heartbeats = args.devices
        if not args.live:
            # Away while the stream is published: its broker session queues it, and a new
            # gateway process (same client id) drains it.
            await gateway.stop()
            go.set()
            await wait_publisher(process)
            gateway = Gateway(settings)
            await gateway.start()
            heartbeats = 0
        else:
            go.set()
        assert gateway.mqtt is not None and gateway.writer is not None
        accepted = gateway.metrics.mqtt_messages.labels("accepted")
        # Each message is one frame, so one committed item: heartbeats, then the positions.
        target = heartbeats + args.messages
        while accepted._value.get() <= heartbeats:  # the first position message arrived
            await asyncio.sleep(0.0002)
        started = time.perf_counter()
        cpu_started = cpu_last = time.process_time()
        last, last_change = gateway.writer.stats.committed, time.perf_counter()
        while gateway.writer.stats.committed < target:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            if gateway.writer.stats.committed != last:
                last, last_change = gateway.writer.stats.committed, now
                cpu_last = time.process_time()
            elif now - last_change > STALL_S:
                # The broker drops QoS 1 messages beyond its per-client queue
                # (mosquitto max_queued_messages): say so rather than wait forever.
                print(f"stalled: {last - heartbeats} of {args.messages} positions committed "
                      "(the rest was dropped by the broker's per-client queue limit)")
                break
        elapsed = last_change - started
        if args.live:
            await wait_publisher(process)
        positions = last - heartbeats
        # Committed items are only a proxy: count the position rows of this round's devices.
        devices = imeis(args.devices, args.first_imei)
        async with gateway.db.engine.connect() as conn:
            stored = (await conn.execute(text(
                "SELECT count(*) FROM positions JOIN devices ON devices.id = positions.device_id"
                " WHERE devices.imei BETWEEN :low AND :high"),
                {"low": devices[0], "high": devices[-1]})).scalar_one()
        if stored != positions:
            print(f"gateway: {positions} items committed but {stored} positions stored")
        return Rate(positions / elapsed, (cpu_last - cpu_started) / max(positions, 1))
    finally:
        await gateway.stop()


def _phase(kind: str, args: argparse.Namespace, url: str, out: Any) -> None:
    rate = run(bare(args)) if kind == "bare" else run(gateway_rate(args, url))
    out.send((rate.per_s, rate.cpu_per_message))


def in_process(kind: str, args: argparse.Namespace, url: str) -> Rate:
    """Run one consumer in a process of its own: what one phase leaves behind in a process
    (the gateway's garbage collector settings, imported modules, memory) must not weigh on
    the next."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_phase, args=(kind, args, url, sender))
    process.start()
    sender.close()
    try:
        per_s, cpu = receiver.recv()
    except EOFError:
        raise SystemExit(f"the {kind} phase failed (exit code {process.join() or process.exitcode})"
                         ) from None
    process.join()
    return Rate(per_s, cpu)


def start_broker(messages: int, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private Mosquitto on a free loopback port whose queues hold the whole stream."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(mosquitto).exists():
        raise SystemExit("mosquitto not found: install it (apt install mosquitto) or pass "
                         "--broker HOST:PORT")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"max_queued_messages {messages * 2 + 1000}\n")
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the private mosquitto did not start") from None
            time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="",
                        help="HOST:PORT of a running broker (default: start a private one)")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--dialect", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
                        help="a migrated database (gateway db upgrade); its tables get rows")
    parser.add_argument("--live", action="store_true",
                        help="publish while the consumer receives (default: publish first, "
                             "then the consumer drains its queued session)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare then gateway, this many times; the target is checked on the "
                             "median ratio (single runs swing with the machine's load)")
    args = parser.parse_args()
    broker = None
    results: list[tuple[Rate, Rate]] = []
    base = random.randrange(10**11 // args.devices) * args.devices
    with tempfile.TemporaryDirectory() as tmp:
        if not args.broker:
            broker, args.broker = start_broker(args.messages, Path(tmp))
        try:
            for n in range(args.rounds):
                # New devices each round and each run: they get bound, and a PostgreSQL
                # database keeps the devices of earlier runs.
                args.first_imei = base + n * args.devices
                bare_rate = in_process("bare", args, "")
                if args.dialect == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(tmp) / f'bench-{n}.db'}"
                else:
                    url = args.pg
                results.append((bare_rate, in_process("gateway", args, url)))
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(10)
    print(f"messages: {args.messages} over {args.devices} devices, QoS 1, broker {args.broker}")
    ratios = []
    for n, (bare_rate, gw_rate) in enumerate(results, start=1):
        ratio = gw_rate.per_s / bare_rate.per_s
        ratios.append(ratio)
        print(f"round {n}: bare aiomqtt subscriber {bare_rate.per_s:8.0f} messages/s received "
              f"({bare_rate.cpu_per_message * 1e6:.0f} us CPU each); gateway ({args.dialect}) "
              f"{gw_rate.per_s:8.0f} positions/s committed "
              f"({gw_rate.cpu_per_message * 1e6:.0f} us CPU each): {ratio:.0%}")
    ratio = statistics.median(ratios)
    print(f"median ratio: {ratio:.0%} (target >= 80%) {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
