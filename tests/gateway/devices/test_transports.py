"""The rules of a device stream are the same over TCP and through the broker: acks wait for the
commit, a rate breach ends the stream, a stream carries one device, refused frames are counted
and not answered. And a protocol added through the registry alone is served on both."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.server import Gateway
from gateway.store import queries
from protocols import Command, CommandType, Fix, get_codec, registry
from protocols.gl300 import Gl300Options
from tests.gateway.devices.conftest import TcpChannel, eventually
from tests.gateway.e2e.conftest import bind_when_seen
from tests.gateway.store.support import count_positions

TRANSPORTS = ["tcp", "mqtt"]
IMEI = "359586015829802"
OTHER = "352848027543210"
T0 = datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC)
SACK = Gl300Options(sack=True)


def fix(seconds: int) -> Fix:
    return Fix(fix_time=T0 + timedelta(seconds=seconds), lat=-33.86, lon=151.21, speed_kmh=36.0)


def replies(frame: bytes, options: Any = SACK, protocol: str = "gl300") -> bytes:
    """What the protocol says the gateway answers to `frame`."""
    return b"".join(r.data for r in get_codec(protocol).decode(frame, options).replies)


async def expect(channel: Any, data: bytes, timeout: float = 10.0) -> None:
    """The next replies are exactly `data` (TCP may split or join them; MQTT sends one message
    per device message)."""
    got = b""
    while len(got) < len(data):
        got += await channel.reply(timeout)
    assert got == data


def refused(gateway: Gateway, protocol: str, kind: str) -> float:
    value = gateway.metrics.registry.get_sample_value(
        "gateway_rejected_frames_total", {"protocol": protocol, "reason": kind})
    return value or 0.0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_acks_wait_for_the_commit(transport: str, transport_gateway, channel_factory) -> None:
    tg = await transport_gateway(protocols={"gl300": {"sack": True}})
    device = get_codec("gl300").device(IMEI)
    channel = await channel_factory(transport, tg, IMEI, "gl300")
    heartbeat = device.heartbeat()
    await channel.send(heartbeat)
    await expect(channel, replies(heartbeat))
    await bind_when_seen(tg.gateway.db, IMEI)
    report = device.position(fix(1))
    async with tg.away():
        await channel.send(report)
        await channel.nothing_more(1.0)  # stored? not yet: so not acknowledged either
    await expect(channel, replies(report), timeout=30)
    assert await count_positions(tg.gateway.db, IMEI) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_rate_breach_ends_the_stream_and_nothing_beyond_is_answered(
    transport: str, transport_gateway, channel_factory
) -> None:
    tg = await transport_gateway(protocols={"gl300": {"sack": True}},
                                 tcp={"max_frames_per_s": 2.0})  # a burst of 4
    device = get_codec("gl300").device(IMEI)
    frames = [device.heartbeat() for _ in range(8)]
    channel = await channel_factory(transport, tg, IMEI, "gl300")
    await channel.send(b"".join(frames))
    await expect(channel, b"".join(replies(f) for f in frames[:4]))
    if transport == "tcp":  # the connection is closed, with nothing more sent
        assert isinstance(channel, TcpChannel) and await channel.closed_by_gateway()
        channel = await channel_factory(transport, tg, IMEI, "gl300")
    else:
        await channel.nothing_more(0.5)
    assert refused(tg.gateway, "gl300", "rate_limit") == 1
    # The stream is gone; the device's next stream starts afresh.
    again = device.heartbeat()
    await channel.send(again)
    await expect(channel, replies(again))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_stream_carries_one_device(
    transport: str, transport_gateway, channel_factory
) -> None:
    tg = await transport_gateway(protocols={"gl300": {"sack": True}})
    own, other = get_codec("gl300").device(IMEI), get_codec("gl300").device(OTHER)
    channel = await channel_factory(transport, tg, IMEI, "gl300")
    first = own.heartbeat()
    await channel.send(first)
    await expect(channel, replies(first))
    await channel.send(other.heartbeat())
    await channel.nothing_more()
    kind = "imei_mismatch" if transport == "tcp" else "topic_mismatch"  # the topic names IMEI
    assert refused(tg.gateway, "gl300", kind) == 1
    assert await queries.get_device(tg.gateway.db, OTHER) is None
    after = own.heartbeat()
    await channel.send(after)
    await expect(channel, replies(after))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_frame_is_counted_and_not_answered(
    transport: str, transport_gateway, channel_factory
) -> None:
    tg = await transport_gateway(protocols={"gl300": {"sack": True}})
    device = get_codec("gl300").device(IMEI)
    channel = await channel_factory(transport, tg, IMEI, "gl300")
    first = device.heartbeat()
    await channel.send(first)
    await expect(channel, replies(first))
    await channel.send(b"+RESP:GTFRI,1A0401," + IMEI.encode() + b",,0,0,1,1,abc$")
    await channel.nothing_more()
    assert refused(tg.gateway, "gl300", "decode_error") == 1
    after = device.heartbeat()
    await channel.send(after)
    await expect(channel, replies(after))


# A protocol added through the registry alone ----------------------------------------------

TOY = '''
"""A toy line protocol: `HI <imei>` is answered `HELLO` at once; `TOY <imei> <lat> <lon> <unix
seconds>` is a position answered `ACK <seconds>` once stored."""

from datetime import UTC, datetime

from protocols.codec import (Codec, Decoded, Reply, StatelessSession, prefix_detector,
                             rejected)
from protocols.events import Login, Position
from protocols.framing import BoundedFramer


class LineFramer(BoundedFramer):
    def _find_start(self, buf, pos):
        return pos if pos < len(buf) else -1

    def _find_end(self, buf, start):
        end = buf.find(b"\\n", start)
        return -1 if end < 0 else end + 1


def decode(frame, options=None):
    parts = frame.decode("ascii", "replace").split()
    if len(parts) == 2 and parts[0] == "HI":
        return Decoded(frame, parts[1], (Login(parts[1]),), (Reply(b"HELLO\\n", False),))
    if len(parts) == 5 and parts[0] == "TOY":
        when = datetime.fromtimestamp(int(parts[4]), UTC)
        position = Position(parts[1], when, True, float(parts[2]), float(parts[3]))
        ack = Reply(b"ACK " + parts[4].encode() + b"\\n", True)
        return Decoded(frame, parts[1], (position,), (ack,))
    return rejected(frame, "toy: neither HI nor TOY")


def encode_command(device_id, command):
    return b"WHERE\\n"


class Device:
    def __init__(self, imei):
        self.imei = imei


CODEC = Codec(name="toy", title="a toy line protocol", default_port=39999,
              detect=prefix_detector(b"HI ", b"TOY "), framer=LineFramer,
              session=lambda options, clock: StatelessSession(decode, options),
              encode_command=encode_command, device=Device)
'''


@pytest.fixture
def toy_protocol(tmp_path: Path) -> Iterator[str]:
    """A protocol package written to a temporary folder and added to the registry."""
    package = tmp_path / "toyproto"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent(TOY))
    sys.path.insert(0, str(tmp_path))
    try:
        registry.register(importlib.import_module("toyproto").CODEC)
        yield "toy"
    finally:
        registry.unregister("toy")
        sys.path.remove(str(tmp_path))
        sys.modules.pop("toyproto", None)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_protocol_added_through_the_registry_is_served_end_to_end(
    transport: str, toy_protocol: str, transport_gateway, channel_factory
) -> None:
    tg = await transport_gateway()
    assert tg.gateway.tcp is not None and "toy" in tg.gateway.tcp.ports
    # Told from its first bytes: the auto port on TCP, the topic without a protocol on MQTT.
    channel = await channel_factory(transport, tg, IMEI, "toy", listener="auto",
                                    topic_protocol=False)
    await channel.send(f"HI {IMEI}\n".encode())
    await expect(channel, b"HELLO\n")
    await bind_when_seen(tg.gateway.db, IMEI)
    seconds = int(T0.timestamp())
    async with tg.away():
        await channel.send(f"TOY {IMEI} 48.85 2.35 {seconds}\n".encode())
        await channel.nothing_more(1.0)
    await expect(channel, f"ACK {seconds}\n".encode(), timeout=30)
    assert await count_positions(tg.gateway.db, IMEI) == 1

    async def counted() -> bool:
        value = tg.gateway.metrics.registry.get_sample_value(
            "gateway_positions_total", {"protocol": "toy"})
        return value == 1.0

    await eventually(counted)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_command_reaches_an_online_device(
    transport: str, transport_gateway, channel_factory
) -> None:
    """Once a stream has identified its device, bytes for the device go out on it (TCP: the
    connection; MQTT: the device's down topic); once it is gone, the device is offline."""
    tg = await transport_gateway()
    device = get_codec("gps103").device(IMEI)
    channel = await channel_factory(transport, tg, IMEI, "gps103")
    await channel.send(device.login())
    await expect(channel, b"LOAD")
    pipeline = tg.gateway.pipeline
    assert pipeline is not None and IMEI in pipeline.online
    command = get_codec("gps103").encode_command(IMEI, Command(CommandType.POSITION_SINGLE))
    pipeline.online[IMEI].send(command)
    await expect(channel, command)
    if transport == "tcp":
        assert isinstance(channel, TcpChannel)
        await channel.link.close()

        async def offline() -> bool:
            return IMEI not in pipeline.online

        await eventually(offline)
