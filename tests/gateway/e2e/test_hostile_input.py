"""Hostile and broken input over real sockets: nothing crashes the server, other connections
carry on, and every refusal is counted."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.server import Gateway
from gateway.store import queries
from tests.gateway.e2e.conftest import DeviceLink, StartGateway, eventually

GL_HBD = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
GL_SACK = b"+SACK:GTHBD,1A0401,11F0$"
TK_BP00 = b"(087073005534BP00HSO)"
TK_AP01 = b"(087073005534AP01HSO)"


def metric(gateway: Gateway, name: str, **labels: str) -> float:
    value = gateway.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_frame_split_byte_by_byte(gateway: Gateway, link_factory) -> None:
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    for byte in GL_HBD:
        await link.send(bytes([byte]))
    await link.expect(GL_SACK)


async def test_merged_frames_answered_in_order(gateway: Gateway, link_factory) -> None:
    link: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
    login = (b"(087073005534BP05000087073005534160727A3354.7768N03540.7258E000.0140309065.10"
             b"00000000L00BEB0D4+017.3)")
    await link.send(TK_BP00 + login + TK_BP00)
    await link.expect(TK_AP01 + b"(087073005534AP05)" + TK_AP01)


async def test_garbage_between_frames_is_skipped_and_counted(
    gateway: Gateway, link_factory
) -> None:
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await link.send(b"\x00\xff\xfeGET / HTTP/1.1\r\n" + GL_HBD + b"\x16\x03\x01junk" + GL_HBD)
    await link.expect(GL_SACK + GL_SACK)
    assert metric(gateway, "gateway_rejected_frames_total", protocol="gl300", reason="framing") >= 2


async def test_over_long_frame_is_dropped_and_connection_carries_on(
    start_gateway: StartGateway, link_factory
) -> None:
    gateway = await start_gateway(tcp={"max_frame_bytes": 256})
    link: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
    await link.send(b"(087073005534BR00" + b"9" * 5000)
    await link.send(b")" + TK_BP00)
    await link.expect(TK_AP01)
    assert metric(gateway, "gateway_rejected_frames_total", protocol="tk103", reason="framing") >= 1


async def test_undecodable_frame_is_rejected_with_reason_and_kept_for_installers(
    gateway: Gateway, http, link_factory
) -> None:
    link: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
    await link.send(TK_BP00)
    await link.expect(TK_AP01)
    await link.send(b"(087073005534BR00991399A9999.9999N99999.9999E000.0140309065.10)" + TK_BP00)
    await link.expect(TK_AP01)
    assert metric(gateway, "gateway_decode_errors_total", protocol="tk103") == 1

    async def rejected_frame_kept() -> bool:
        response = await http.get("/api/v1/admin/devices/087073005534/frames")
        frames = response.json().get("frames", [])
        return any(f["result"].startswith("rejected") and "BR00991399" in f["text"]
                   for f in frames)

    await eventually(rejected_frame_kept)


async def test_idle_connection_is_closed(start_gateway: StartGateway, link_factory) -> None:
    gateway = await start_gateway(tcp={"idle_timeout_s": 0.3})
    link: DeviceLink = await link_factory(gateway.tcp.ports["gps103"])
    await link.send(b"##,imei:359586015829802,A;")
    await link.expect(b"LOAD")
    assert await link.closed_by_peer(timeout=5)
    assert metric(gateway, "gateway_connections_closed_total",
                  protocol="gps103", reason="idle_timeout") == 1


async def test_connection_is_locked_to_its_first_device(gateway: Gateway, link_factory) -> None:
    link: DeviceLink = await link_factory(gateway.tcp.ports["gps103"])
    await link.send(b"##,imei:359586015829802,A;")
    await link.expect(b"LOAD")
    intruder = (b"imei:490154203237518,help me,1004171910,,F,010203.000,A,0102.0003,N,"
                b"00102.0003,E,1.02,;")
    await link.send(intruder + b"359586015829802;")
    await link.expect(b"ON")  # no SOS reply for the other device's frame
    assert metric(gateway, "gateway_rejected_frames_total",
                  protocol="gps103", reason="imei_mismatch") == 1
    assert await queries.get_device(gateway.db, "490154203237518") is None


async def test_flooding_connection_is_closed_others_carry_on(
    start_gateway: StartGateway, link_factory
) -> None:
    gateway = await start_gateway(tcp={"max_frames_per_s": 5})
    port = gateway.tcp.ports["tk103"]
    calm: DeviceLink = await link_factory(port)
    flood: DeviceLink = await link_factory(port)
    await flood.send(TK_BP00 * 200)
    assert await flood.closed_by_peer(timeout=5)
    assert metric(gateway, "gateway_connections_closed_total",
                  protocol="tk103", reason="rate_limit") == 1
    await calm.send(TK_BP00)
    await calm.expect(TK_AP01)


async def test_random_bytes_never_break_the_server(gateway: Gateway, link_factory) -> None:
    import random

    rng = random.Random(1234)
    for name in ("gps103", "tk103", "gl300", "auto"):
        port = gateway.tcp.ports[name]
        for _ in range(5):
            link: DeviceLink = await link_factory(port)
            await link.send(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000))))
            await link.close()
    healthy: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await healthy.send(GL_HBD)
    await healthy.expect(GL_SACK)


# Transport behaviour, the same whatever the store: run once (it moves a few MB per run).
@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_device_that_never_reads_its_replies_is_paused_not_buffered(
    start_gateway: StartGateway, link_factory
) -> None:
    """A device writes and never reads: the gateway stops reading from it once its replies
    pile up (instead of buffering them without bound), others carry on, and when the device
    reads again every reply arrives, in order."""
    gateway = await start_gateway(tcp={"max_frames_per_s": 100_000})
    port = gateway.tcp.ports["gl300"]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Small kernel buffers on the device's side (set before the handshake), so that the
    # gateway's replies back up after a few hundred kilobytes rather than megabytes.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    sent = 0
    try:
        async def stalled() -> bool:
            nonlocal sent
            writer.write(GL_HBD * 200)
            sent += 200
            try:
                await asyncio.wait_for(writer.drain(), 0.5)
            except TimeoutError:
                return True  # the gateway no longer reads from this connection
            return False

        await eventually(stalled, timeout=60)
        assert any(c._write_blocked for c in gateway.tcp._connections)
        calm: DeviceLink = await link_factory(port)
        await calm.send(GL_HBD)
        await calm.expect(GL_SACK)

        async def read_all() -> bytes:
            replies = b""
            while replies.count(b"$") < sent:
                replies += await reader.read(65536)
            return replies

        # The device reads again: the gateway resumes reading from it as replies are taken.
        replies = asyncio.ensure_future(read_all())
        await asyncio.wait_for(writer.drain(), 30)
        assert await asyncio.wait_for(replies, 30) == GL_SACK * sent
    finally:
        writer.close()
