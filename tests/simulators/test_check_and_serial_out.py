"""What installers run against a new gateway leaves it as it was, and prints what they expect:
`trackersim check` removes its test device, `trackersim serial --mode out` shows NMEA sentences
one per line and writes real CR LF bytes on the line."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tty
from collections.abc import Iterator

import pytest

from gateway.server import Gateway
from gateway.store import queries
from protocols.imei import CHECK_TAC, complete_imei, is_check_device
from simulators.check import run_check
from tests.gateway.e2e.conftest import DeviceLink, StartGateway, eventually

REAL_IMEI = "359586015829802"


async def devices_now(gateway: Gateway) -> list[str]:
    assert gateway.db is not None
    return sorted(d.imei for d in await queries.list_devices(gateway.db, limit=1000))


@pytest.mark.parametrize("protocol", ["gl300", "gps103", "tk103"])
async def test_check_leaves_no_device_behind(
    start_gateway: StartGateway, protocol: str
) -> None:
    gateway = await start_gateway(protocols={"gl300": {"sack": True}})
    # A real device is connected meanwhile: it stays.
    real = await DeviceLink.open(gateway.tcp.ports["gps103"])
    try:
        await check_beside(gateway, real, protocol)
    finally:
        await real.close()


async def check_beside(gateway: Gateway, real: DeviceLink, protocol: str) -> None:
    await real.send(f"##,imei:{REAL_IMEI},A;".encode())
    await real.expect(b"LOAD")

    async def real_device_stored() -> bool:
        return await devices_now(gateway) == [REAL_IMEI]

    await eventually(real_device_stored)
    result = await run_check("127.0.0.1", gateway.tcp.ports[protocol], protocol, timeout=5)
    assert result.ok, result.render()
    assert result.imei.startswith(CHECK_TAC)
    # The check was stored as any device (its position and SOS acknowledged after commit)...
    assert any(s.name in ("login", "position", "sos") and s.status == "PASS"
               for s in result.steps), result.render()
    assert "the gateway removes it when the check ends" in result.render()

    # ...and is gone once its connection closed: only the real device is listed.
    await eventually(real_device_stored)
    assert gateway.writer is not None and gateway.writer.pending == 0


async def test_a_check_device_is_stored_while_connected(start_gateway: StartGateway) -> None:
    """The removal waits for the end of the check: the row is there while it runs."""
    gateway = await start_gateway()
    check_device = complete_imei(CHECK_TAC + "000042")
    link = await DeviceLink.open(gateway.tcp.ports["gps103"])
    try:
        await link.send(f"##,imei:{check_device},A;".encode())
        await link.expect(b"LOAD")

        async def stored() -> bool:
            return await devices_now(gateway) == [check_device]

        await eventually(stored)
    finally:
        await link.close()

    async def removed() -> bool:
        return await devices_now(gateway) == []

    await eventually(removed)


async def test_a_check_with_a_chosen_imei_keeps_its_device(start_gateway: StartGateway) -> None:
    gateway = await start_gateway()
    result = await run_check("127.0.0.1", gateway.tcp.ports["gps103"], "gps103",
                             imei=REAL_IMEI, timeout=5)
    assert result.ok, result.render()
    assert "removes it" not in result.render()
    await asyncio.sleep(0.3)  # a removal would have happened by now
    assert await devices_now(gateway) == [REAL_IMEI]


async def test_a_check_device_that_belongs_to_someone_is_kept(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway()
    assert gateway.db is not None
    check_device = complete_imei(CHECK_TAC + "000043")
    link = await DeviceLink.open(gateway.tcp.ports["gps103"])
    try:
        await link.send(f"##,imei:{check_device},A;".encode())
        await link.expect(b"LOAD")

        async def stored() -> bool:
            return await devices_now(gateway) == [check_device]

        await eventually(stored)
        await queries.bind_device(gateway.db, check_device, "lab@example.com")
    finally:
        await link.close()
    await asyncio.sleep(0.3)
    assert await devices_now(gateway) == [check_device]


@pytest.mark.parametrize(("port_of", "checked_as"), [("gt06", "gl300"), ("gl300", "jt808")])
async def test_a_check_as_the_wrong_protocol_names_the_one_the_port_speaks(
    start_gateway: StartGateway, port_of: str, checked_as: str
) -> None:
    gateway = await start_gateway()
    result = await run_check("127.0.0.1", gateway.tcp.ports[port_of], checked_as, timeout=2)
    assert not result.ok
    assert f"the port answers {port_of}: protocol mismatch" in result.render(), result.render()
    assert f"trackersim check --protocol {port_of}" in result.render()


async def test_a_closed_port_names_the_setting_of_the_device_ports() -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await run_check("127.0.0.1", port, "gl300", timeout=2)
    [connect] = result.steps
    assert connect.status == "FAIL" and connect.fix is not None
    assert "protocols.<name>.port" in connect.fix and "tcp.*_port" not in connect.fix


def test_check_device_ids() -> None:
    imei = complete_imei(CHECK_TAC + "123456")
    assert is_check_device(imei)
    assert is_check_device(imei[-12:])  # tk103's 12-digit id of the same device
    assert not is_check_device(REAL_IMEI) and not is_check_device(REAL_IMEI[-12:])
    assert not is_check_device(imei[:-1] + str((int(imei[-1]) + 1) % 10))  # wrong Luhn digit
    assert not is_check_device("000000001234")  # 12 digits that are no check IMEI's tail


# serial --mode out ----------------------------------------------------------------------------

@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    os.set_blocking(master, False)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


async def test_serial_out_prints_sentences_and_writes_cr_lf(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "serial", "--port", path, "--mode", "out",
        "--route", "johannesburg-loop.nmea", "--count", "3", "--interval", "50ms",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    line = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        line += chunk
    # On the line: six sentences, each ended by the CR LF bytes of NMEA 0183.
    sentences = line.split(b"\r\n")
    assert sentences[-1] == b"" and len(sentences) == 7, line
    assert all(s.startswith((b"$GPGGA,", b"$GPRMC,")) for s in sentences[:-1])
    # On the terminal: one sentence a line, no escape text.
    text = out.decode()
    assert "\\r" not in text and "\\n" not in text, text
    shown = [s for s in text.splitlines() if s.startswith("$")]
    assert [s.encode() for s in shown] == sentences[:-1]
