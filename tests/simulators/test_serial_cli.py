"""Serial over a pseudo-terminal pair, the installer check, and the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
import tty
from collections.abc import Iterator

import pytest

from gateway.server import Gateway
from protocols import Fix, get_codec
from protocols.nmea import NmeaFramer, NmeaReader, encode_gga, encode_rmc
from simulators import DeviceConfig, Scheduler, SimDevice, State
from simulators.check import FAIL, PASS, run_check
from simulators.routes import LiveSource, Route, RouteSource
from simulators.serial_link import NmeaInput, NmeaOutput, SerialLink
from tests.gateway.e2e.conftest import StartGateway, free_port
from tests.simulators.conftest import T0, SteppingClock, until


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path): the test holds the master, the simulator opens the slave."""
    master, slave = os.openpty()
    tty.setraw(master)
    path = os.ttyname(slave)
    os.set_blocking(master, False)
    try:
        yield master, path
    finally:
        os.close(master)
        os.close(slave)


async def read_master(master: int, until_bytes: int, timeout: float = 5.0) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    data = b""
    while len(data) < until_bytes and loop.time() < deadline:
        try:
            data += os.read(master, 4096)
        except BlockingIOError:
            await asyncio.sleep(0.01)
    return data


async def test_nmea_out_acts_as_a_gps_receiver(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    route = Route.from_nmea("config/routes/johannesburg-loop.nmea")
    output = NmeaOutput(path, RouteSource(route), interval_s=0.05, clock=SteppingClock())
    written = await output.run(count=4)
    assert written == 4
    data = await read_master(master, 1)
    data += await read_master(master, 10_000, timeout=0.3)
    reader, framer = NmeaReader(), NmeaFramer()
    fixes = [fix for s in framer.feed(data) if isinstance(s, bytes)
             if (fix := reader.feed_sentence(s)) is not None]
    assert len(fixes) == 4 and reader.errors == 0
    assert fixes[0].lat == pytest.approx(route.points[0].lat, abs=1e-4)
    assert fixes[0].satellites is not None  # GGA merged into the RMC


async def test_nmea_in_feeds_live_positions_to_a_device(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    live = LiveSource()
    nmea = NmeaInput(path, source=live)
    nmea.open()
    try:
        fix = Fix(fix_time=T0, lat=-33.9249, lon=18.4241, speed_kmh=12.0, satellites=8,
                  hdop=0.9, altitude_m=20.0)
        os.write(master, encode_gga(fix) + encode_rmc(fix))
        await until(lambda: live.latest is not None, what="a fix from the pty")
        assert live.latest is not None
        assert live.latest.lat == pytest.approx(-33.9249, abs=1e-5)
        # A device on that source reports the receiver's position.
        device = SimDevice("gl300", source=live,
                           config=DeviceConfig(position_interval_s=1, heartbeat_interval_s=0))
        device.connected(0.0)
        device.take_output()
        device.tick(1.0)
        frame = device.take_output()
        decoded = get_codec("gl300").decode(frame)
        assert any(getattr(e, "lat", None) == pytest.approx(-33.9249, abs=1e-5)
                   for e in decoded.events)
    finally:
        nmea.close()


async def test_a_device_speaks_its_protocol_over_a_serial_line(
        pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    scheduler = Scheduler()
    device = SimDevice("gps103", source=RouteSource(Route.generated()), clock=SteppingClock(),
                       config=DeviceConfig(position_interval_s=0.1, heartbeat_interval_s=0,
                                           ack_timeout_s=0.3))
    link = SerialLink(device, path, scheduler)
    link.start()
    try:
        login = await read_master(master, 1)
        assert login.startswith(b"##,imei:")
        await asyncio.sleep(0.4)
        resent = await read_master(master, 1)
        assert login in resent  # no LOAD over the line: the login is sent again
        os.write(master, b"LOAD")
        await until(lambda: device.state is State.ONLINE)
        await until(lambda: device.stats.positions_sent + device.stats.fixes_replayed >= 2)
        os.write(master, f"**,imei:{device.imei},B;".encode())
        await until(lambda: device.stats.commands_answered == 1)
    finally:
        link.stop()
        scheduler.close()


async def test_check_passes_against_the_gateway(start_gateway: StartGateway) -> None:
    gateway: Gateway = await start_gateway(protocols={"gl300": {"sack": True}})
    result = await run_check("127.0.0.1", gateway.tcp.ports["gl300"], "gl300", timeout=5)
    assert result.ok, result.render()
    names = {s.name: s.status for s in result.steps}
    assert names["position"] == PASS and names["sos"] == PASS and names["heartbeat"] == PASS
    gps = await run_check("127.0.0.1", gateway.tcp.ports["gps103"], "gps103", timeout=5)
    assert gps.ok and {s.name: s.status for s in gps.steps}["sos"] == PASS, gps.render()


async def test_check_fails_on_a_wrong_port() -> None:
    port = free_port()  # nothing listens there
    result = await run_check("127.0.0.1", port, "gl300", timeout=2)
    assert not result.ok
    [step] = [s for s in result.steps if s.status == FAIL]
    assert step.name == "connect" and step.fix and "wrong port" in step.fix
    assert "FAIL" in result.render()


async def test_check_names_a_protocol_mismatch(start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    result = await run_check("127.0.0.1", gateway.tcp.ports["gl300"], "gps103", timeout=1)
    assert not result.ok
    failed = next(s for s in result.steps if s.status == FAIL)
    assert "mismatch" in failed.detail and "gl300" in failed.detail


async def test_cli_check_exit_code_and_device_printout(gateway: Gateway) -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "check", "--port", str(free_port()),
        "--timeout", "2", stdout=asyncio.subprocess.PIPE, env=env)
    out, _ = await proc.communicate()
    assert proc.returncode == 1 and b"FAIL" in out and b"cannot connect" in out
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "device", "--protocol", "gps103",
        "--port", str(gateway.tcp.ports["gps103"]), "--interval", "200ms",
        "--sos-after", "500ms", "--duration", "1.5s", "--route", "berlin-grid.gpx",
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=env)
    out, _ = await proc.communicate()
    text = out.decode()
    assert proc.returncode == 0, text
    assert "-> ##,imei:" in text and "<- LOAD" in text
    assert "help me" in text and "<- **,imei:" in text  # SOS and its acknowledgement
    assert "frames sent" in text
