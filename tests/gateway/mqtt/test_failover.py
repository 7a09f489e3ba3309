"""Faults that used to lose MQTT messages: one of two instances sharing a subscription killed in
the middle of a stream, and a broker restart. With the shipped settings (a client id stable per
instance, a persistent session, a broker that keeps sessions on disk) nothing the broker took is
lost, and nothing is stored twice."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import pytest

from gateway.store import queries
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from protocols import Fix, Login, get_codec
from protocols.imei import complete_imei
from tests.gateway.e2e.conftest import free_port
from tests.gateway.e2e.process import GatewayProcess
from tests.gateway.mqtt.conftest import BROKER_PORT, eventually, mqtt_sections, wait_up
from tests.gateway.store.support import scalar

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 2, 1, tzinfo=UTC)


async def bound_devices(store_url: str, count: int, tag: int) -> list[str]:
    """`count` devices already seen and bound to an owner (their positions are kept)."""
    imeis = [complete_imei(f"86{tag:04d}{n:08d}") for n in range(count)]
    db = Database.create(store_url)
    try:
        now = datetime.now(UTC)
        await write_batch(db, [IngestItem(imei, "gl300", "test", now, b"login", (Login(imei),))
                               for imei in imeis], 0)
        for imei in imeis:
            await queries.bind_device(db, imei, f"owner-{imei}@example.com")
    finally:
        await db.dispose()
    return imeis


def position(imei: str, i: int) -> bytes:
    return get_codec("gl300").device(imei).position(
        Fix(fix_time=T0 + timedelta(seconds=i), lat=10 + i * 1e-5, lon=20.0))


async def positions(store_url: str) -> int:
    db = Database.create(store_url)
    try:
        return int(await scalar(db, "SELECT count(*) FROM positions"))
    finally:
        await db.dispose()


async def mqtt_up(process: GatewayProcess) -> bool:
    async with httpx.AsyncClient() as client:
        try:
            answer = await client.get(f"http://127.0.0.1:{process.http_port}/healthz")
        except httpx.HTTPError:
            return False
        return bool(answer.json().get("mqtt") == "up")


async def test_a_killed_instance_of_a_shared_subscription_loses_nothing(
    store_url: str, tmp_path: Path
) -> None:
    """SIGKILL one of two instances in the middle of a stream, then restart it: every message
    the broker routed to it waited in its session (fixed client id per instance) and is
    stored once it is back; the other instance never stopped."""
    prefix = f"test-{uuid.uuid4().hex[:12]}/trackers"
    group = f"g{uuid.uuid4().hex[:8]}"
    imeis = await bound_devices(store_url, 10, 1)
    settings = {"MQTT__ENABLED": "true", "MQTT__URL": f"mqtt://127.0.0.1:{BROKER_PORT}",
                "MQTT__TOPIC_PREFIX": prefix, "MQTT__SHARED_GROUP": group,
                "MQTT__RECONNECT_INITIAL_S": "0.1", "DATABASE__BATCH_DELAY_MS": "2"}
    workdirs = [tmp_path / "a", tmp_path / "b"]
    for workdir in workdirs:
        workdir.mkdir()
    first = GatewayProcess(store_url, workdirs[0], INSTANCE__NAME="failover-a", **settings)
    second = GatewayProcess(store_url, workdirs[1], INSTANCE__NAME="failover-b", **settings)
    restarted: GatewayProcess | None = None
    try:
        await first.start()
        await second.start()
        await eventually(lambda: mqtt_up(first))
        await eventually(lambda: mqtt_up(second))
        total = 600
        async with aiomqtt.Client("127.0.0.1", BROKER_PORT,
                                  protocol=aiomqtt.ProtocolVersion.V5) as client:
            for i in range(total):
                imei = imeis[i % len(imeis)]
                await client.publish(f"{prefix}/{imei}/up/gl300", position(imei, i), qos=1)
                if i == total // 3:
                    first.kill()  # SIGKILL: no drain, no PUBACK of what was in flight
                await asyncio.sleep(0.002)
        # The same instance comes back (its name, so its client id and broker session).
        restarted = GatewayProcess(store_url, workdirs[0], INSTANCE__NAME="failover-a",
                                   **settings)
        await restarted.start()

        async def all_stored() -> bool:
            return await positions(store_url) >= total

        await eventually(all_stored, timeout=60)
        await asyncio.sleep(0.5)  # a duplicate, if any, would land now
        assert await positions(store_url) == total
    finally:
        for process in (first, second, restarted):
            if process is not None:
                process.kill()


@pytest.fixture
async def private_broker() -> AsyncIterator[tuple[int, Path, Path]]:
    """A Mosquitto of its own, run with the shipped config/mosquitto.conf (its port and its
    persistence folder changed): (port, config file, folder)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    # Started as root, mosquitto drops to its own user, which must be able to reach and write
    # the folder: not under pytest's private temporary folders.
    folder = Path(tempfile.mkdtemp(prefix="gateway-broker-"))
    folder.chmod(0o777)
    shipped = (REPO / "config" / "mosquitto.conf").read_text()
    assert "persistence true" in shipped  # the setting this test is about
    conf = folder / "mosquitto.conf"
    conf.write_text(shipped.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
                    .replace("persistence_location data/", f"persistence_location {folder}/"))
    try:
        yield port, conf, Path(binary)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def start_broker(binary: Path, conf: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([str(binary), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            _r, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return proc
    proc.kill()
    raise AssertionError("the private mosquitto did not start")


async def test_a_broker_restart_loses_nothing_published_meanwhile(
    start_gateway, private_broker: tuple[int, Path, Path], store_url: str
) -> None:
    """The broker restarts; devices publish as soon as it is back, before the gateway has
    reconnected. The gateway's session (its subscription) came back from the broker's disk, so
    those messages wait for it and are all stored."""
    port, conf, binary = private_broker
    prefix = f"test-{uuid.uuid4().hex[:12]}/trackers"
    broker = await start_broker(binary, conf, port)
    try:
        imeis = await bound_devices(store_url, 5, 2)
        # A gateway that takes its time to come back (the back-off of a real outage).
        gateway = await start_gateway(mqtt=mqtt_sections(prefix, port, reconnect_initial_s=2.0,
                                                         reconnect_max_s=3.0))
        await wait_up(gateway)
        broker.send_signal(signal.SIGTERM)  # a clean restart: the broker saves its sessions
        broker.wait(10)
        broker = await start_broker(binary, conf, port)
        total = 100
        async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as c:
            for i in range(total):
                imei = imeis[i % len(imeis)]
                await c.publish(f"{prefix}/{imei}/up/gl300", position(imei, i), qos=1)
        assert gateway.mqtt is not None

        async def all_stored() -> bool:
            return await positions(store_url) >= total

        await eventually(all_stored, timeout=30)
        assert await positions(store_url) == total
    finally:
        broker.kill()
        broker.wait(10)
