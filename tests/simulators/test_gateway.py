"""Simulated devices against the real gateway: acks, resends, buffered replay, SOS, fleet."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.server import Gateway
from gateway.store import queries
from gateway.store.database import Database
from simulators import FleetConfig, State, run_fleet
from tests.gateway.e2e.conftest import StartGateway, bind_when_seen
from tests.simulators.conftest import Sim, stored_positions, until


async def test_each_protocol_logs_in_and_gets_its_acks(gateway: Gateway, sim: Sim,
                                                       db: Database) -> None:
    links = [sim.device(p, gateway.tcp.ports[p]) for p in ("gps103", "tk103", "gl300")]
    for link in links:
        link.start()
    for link in links:
        d = link.device
        await until(lambda d=d: d.stats.logins_acked or (
            d.state is State.ONLINE and d.stats.frames_acked >= 1), what=f"{d.codec.name} ack")
        await until(lambda d=d: d.stats.positions_sent >= 3, what="positions")
        await bind_when_seen(db, d.device_id, f"{d.imei}@example.com")
    for link in links:
        d = link.device
        await until(lambda d=d: d.stats.frames_acked >= 2, what="heartbeat acks")
        sent_before = d.stats.positions_sent
        await until(lambda d=d, n=sent_before: d.stats.positions_sent >= n + 3)
    for link in links:
        d = link.device
        assert d.stats.retransmits == 0 and d.stats.gave_up == 0
        assert d.stats.frames_no_ack > 0  # gps103/tk103 positions, GL300 reports without SACK
        found = await stored_positions(db, d.device_id)
        assert len(found) >= 2, d.codec.name


async def test_sos_frames_reach_the_gateway(gateway: Gateway, sim: Sim, db: Database) -> None:
    links = [sim.device(p, gateway.tcp.ports[p], position_interval_s=0.5)
             for p in ("gps103", "tk103", "gl300")]
    for link in links:
        link.start()
    for link in links:
        await until(lambda d=link.device: d.state is State.ONLINE)
        link.device.press_sos()
    for link in links:
        imei = link.device.device_id

        async def has_sos(imei: str = imei) -> bool:
            return any(a.alarm_type == "sos" for a in await queries.alarms_of_device(db, imei))

        for _ in range(500):
            if await has_sos():
                break
            await asyncio.sleep(0.02)
        assert await has_sos(), link.device.codec.name
    # gps103 defines an SOS acknowledgement: the device saw it.
    gps = links[0].device
    await until(lambda: not any(o.kind.value == "sos" for o in gps.in_flight))


class DroppingProxy:
    """Between device and gateway; drops the first reply that is exactly `drop`."""

    def __init__(self, upstream_port: int, drop: bytes) -> None:
        self.upstream_port = upstream_port
        self.drop = drop
        self.dropped = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter,
                       replies: bool) -> None:
            buf = b""
            try:
                while data := await src.read(4096):
                    if replies:
                        buf += data
                        if not self.dropped and self.drop in buf:
                            buf = buf.replace(self.drop, b"", 1)
                            self.dropped += 1
                        data, buf = buf, b""
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, False), pump(up_reader, writer, True))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 1)


async def test_a_dropped_ack_makes_the_device_resend(start_gateway: StartGateway, sim: Sim,
                                                     db: Database) -> None:
    gateway = await start_gateway(protocols={"gl300": {"sack": True}})
    # The count numbers go 0000 (power-on), 0001, ...: drop the SACK of the report 0002.
    proxy = DroppingProxy(gateway.tcp.ports["gl300"], b"+SACK:0002$")
    await proxy.start()
    try:
        link = sim.device("gl300", proxy.port, sack=True, heartbeat_interval_s=0)
        device = link.device
        link.start()
        await until(lambda: device.stats.retransmits >= 1, what="a resend")
        await until(lambda: device.stats.frames_acked >= 5 and not any(
            o.frame.endswith(b",0002$") for o in device.in_flight), what="resent frame acked")
        assert proxy.dropped == 1
        assert device.stats.gave_up == 0
        frames = [f for e, _, f in sim.events[device.imei] if e == "resend"]
        assert frames and frames[0].endswith(b",0002$")
    finally:
        await proxy.close()


async def test_buffered_fixes_are_replayed_after_a_gateway_restart(
        start_gateway: StartGateway, sim: Sim, db: Database) -> None:
    first = await start_gateway(protocols={"gl300": {"sack": True}})
    link = sim.device("gl300", first.tcp.ports["gl300"], sack=True, heartbeat_interval_s=0)
    device = link.device
    link.start()
    await until(lambda: device.stats.positions_sent >= 2)
    await bind_when_seen(db, device.imei, "owner@example.com")
    await first.stop()  # the gateway goes away; the device buffers
    await until(lambda: device.state is State.OFFLINE and len(device.buffer) >= 5,
                what="fixes buffered while the gateway is down")
    buffered = {b.fix.fix_time for b in device.buffer}
    second = Gateway(first.settings)  # same ports, same database
    await second.start()
    try:
        await until(lambda: device.state is State.ONLINE and not device.buffer
                    and not device.in_flight, timeout=15, what="buffer replayed and acked")
        assert device.stats.fixes_replayed >= len(buffered)
        frames = await queries.recent_frames(db, device.imei, limit=200)
        assert any(f.raw.startswith(b"+BUFF:GTFRI") for f in frames)
        stored = await stored_positions(db, device.imei)
        assert buffered <= stored
    finally:
        link.stop()
        await second.stop()


async def test_a_small_fleet_runs_against_the_gateway(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(protocols={"gl300": {"sack": True}})
    summary = await run_fleet(FleetConfig(
        protocol="gl300", port=gateway.tcp.ports["gl300"], devices=20, rate_per_s=5.0,
        duration_s=1.5, sack=True, connect_rate=200.0, settle_s=3.0))
    stats = summary.stats
    assert summary.online_at_end == 20
    assert stats.frames_sent > 20 and stats.frames_acked == stats.frames_expecting_ack
    assert summary.percentile(50) is not None
    # The steady window (all 20 online) holds part of the acks, never more than the run.
    assert 0 < len(summary.steady_latencies) < len(summary.latencies)
    assert summary.percentile(99, steady=True) is not None
    text = summary.render()
    assert "simulator CPU" in text and "% of one core" in text and "p99" in text


async def test_positions_without_ack_are_said_so(start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    summary = await run_fleet(FleetConfig(
        protocol="gps103", port=gateway.tcp.ports["gps103"], devices=5, rate_per_s=5.0,
        duration_s=1.0, connect_rate=100.0, settle_s=1.0))
    assert summary.stats.frames_no_ack >= 5
    assert "gps103 positions have no ack in the protocol" in summary.render()

