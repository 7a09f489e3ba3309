"""The gateway process under SIGKILL and SIGTERM: nothing it acknowledged is ever lost."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.store.database import Database
from protocols import Fix, get_codec
from protocols.imei import complete_imei
from tests.gateway.e2e.conftest import bind_when_seen
from tests.gateway.e2e.process import GatewayProcess
from tests.gateway.store.support import rows

T0 = datetime(2026, 1, 31, 23, 59, 0, tzinfo=UTC)


class AckingDevice:
    """A GL300 with SACK enabled: every message is answered `+SACK:<count>$` once stored."""

    def __init__(self, n: int, port: int) -> None:
        self.imei = complete_imei(f"86{n:012d}")
        self.port = port
        self.encoder = get_codec("gl300").device(self.imei)
        self.sent: dict[str, datetime] = {}
        self.acked: set[str] = set()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect_and_register(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(self.encoder.heartbeat())
        await self.writer.drain()
        assert (await self.reader.readuntil(b"$")).startswith(b"+SACK:GTHBD,")
        assert (await self.reader.readuntil(b"$")).startswith(b"+SACK:")

    async def send_positions(self, stop: asyncio.Event, pace_s: float = 0.002) -> None:
        assert self.writer is not None
        i = 0
        try:
            while not stop.is_set():
                when = T0 + timedelta(seconds=i)
                frame = self.encoder.position(
                    Fix(fix_time=when, lat=10 + i * 1e-4, lon=20.0, speed_kmh=30.0))
                self.sent[frame.rstrip(b"$").rsplit(b",", 1)[1].decode()] = when
                self.writer.write(frame)
                await self.writer.drain()
                i += 1
                await asyncio.sleep(pace_s)
        except (ConnectionError, OSError):
            return

    async def read_acks(self) -> None:
        assert self.reader is not None
        try:
            while True:
                ack = await self.reader.readuntil(b"$")
                assert ack.startswith(b"+SACK:")
                self.acked.add(ack[6:-1].decode())
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return


async def bind_all(store_url: str, devices: list[AckingDevice]) -> None:
    db = Database.create(store_url)
    try:
        for device in devices:
            await bind_when_seen(db, device.imei, f"{device.imei}@example.com")
    finally:
        await db.dispose()


async def stored_fix_times(store_url: str) -> dict[str, set[datetime]]:
    db = Database.create(store_url)
    try:
        result: dict[str, set[datetime]] = {}
        for imei, fix_time in await rows(
            db, "SELECT d.imei, p.fix_time FROM positions p JOIN devices d ON d.id = p.device_id"
        ):
            if isinstance(fix_time, str):  # SQLite hands raw text to a text() query
                fix_time = datetime.fromisoformat(fix_time)
            if fix_time.tzinfo is None:
                fix_time = fix_time.replace(tzinfo=UTC)
            result.setdefault(imei, set()).add(fix_time)
        return result
    finally:
        await db.dispose()


async def test_sigkill_under_load_loses_nothing_acknowledged(
    store_url: str, tmp_path: Path
) -> None:
    process = GatewayProcess(store_url, tmp_path, PROTOCOLS__GL300__SACK="true")
    await process.start()
    try:
        devices = [AckingDevice(n, process.ports["gl300"]) for n in range(20)]
        await asyncio.gather(*(d.connect_and_register() for d in devices))
        await bind_all(store_url, devices)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(d.send_positions(stop)) for d in devices]
        readers = [asyncio.create_task(d.read_acks()) for d in devices]
        # Let acknowledged traffic flow, then kill in the middle of it.
        while sum(len(d.acked) for d in devices) < 2000:
            await asyncio.sleep(0.05)
        process.signal(signal.SIGKILL)
        await process.wait()
        stop.set()
        await asyncio.gather(*tasks, *readers)
    finally:
        process.kill()

    acked_total = sum(len(d.acked) for d in devices)
    assert acked_total >= 2000
    # Restart on the same database: it comes back, and every acknowledged position is there.
    restarted = GatewayProcess(store_url, tmp_path)
    await restarted.start()
    restarted.signal(signal.SIGTERM)
    assert await restarted.wait() == 0
    stored = await stored_fix_times(store_url)
    for device in devices:
        acked_times = {device.sent[count] for count in device.acked}
        missing = acked_times - stored.get(device.imei, set())
        assert not missing, f"{device.imei}: {len(missing)} acknowledged positions lost"


async def test_sigterm_drains_received_frames_and_sends_their_acks(
    store_url: str, tmp_path: Path
) -> None:
    # A long batch delay keeps frames received-but-uncommitted when SIGTERM arrives.
    process = GatewayProcess(
        store_url, tmp_path, PROTOCOLS__GL300__SACK="true", DATABASE__BATCH_DELAY_MS="400")
    await process.start()
    try:
        devices = [AckingDevice(n, process.ports["gl300"]) for n in range(5)]
        await asyncio.gather(*(d.connect_and_register() for d in devices))
        await bind_all(store_url, devices)
        for device in devices:
            assert device.writer is not None
            frames = b"".join(
                device.encoder.position(Fix(fix_time=T0 + timedelta(seconds=i), lat=1.0, lon=2.0))
                for i in range(50))
            for frame in frames.split(b"$")[:-1]:
                device.sent[frame.rsplit(b",", 1)[1].decode()] = T0
            device.writer.write(frames)
            await device.writer.drain()
        await asyncio.sleep(0.2)  # received by the gateway, not yet committed
        process.signal(signal.SIGTERM)
        await asyncio.gather(*(d.read_acks() for d in devices))  # until the gateway closes
        assert await process.wait() == 0
    finally:
        process.kill()
    for device in devices:
        assert device.acked == set(device.sent), "every received frame is stored and acked"
    stored = await stored_fix_times(store_url)
    assert all(len(stored[d.imei]) == 50 for d in devices)
    log = process.log_path.read_text()
    assert '"msg": "gateway stopped"' in log
