"""Every protocol of the registry, end to end over real sockets and the real broker, driven by its
own simulated device: the login is answered, positions are stored (and acknowledged only once
stored, where the protocol acknowledges them), the SOS button is stored as an alarm, and a
command queued through the API reaches the device as exactly the bytes the gateway sent; the
device's answer acknowledges it where the protocol's answers say which command they answer.

What each frame must get back is asked from the protocol itself (a session of its own codec,
as the server runs it), so a new protocol package is covered here without a line of test code:
only its device encoder and its replies have to be right.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from gateway.store import queries
from protocols import (
    AlarmType,
    Answer,
    Codec,
    Command,
    CommandResult,
    CommandType,
    Fix,
    get_codec,
    names,
)
from protocols.codec import utc_now
from protocols.imei import complete_imei
from tests.gateway.devices.conftest import MqttChannel, TransportGateway
from tests.gateway.e2e.conftest import ADMIN_TOKEN, bind_when_seen, eventually
from tests.gateway.store.support import count_positions

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


def _imei(protocol: str) -> str:
    return complete_imei(f"3595860{names().index(protocol):02d}12345")


class Peer:
    """A simulated device of `codec` on a channel, checking each reply against the protocol."""

    def __init__(self, codec: Codec, channel: Any, imei: str) -> None:
        self.codec = codec
        self.channel = channel
        self.device = codec.device(imei)
        #: The server side of this stream, as the protocol defines it.
        self.server = codec.new_session()
        self.key = codec.reply_key or (lambda reply: reply)
        self.framer = codec.downlink_framer() if codec.downlink_framer else None
        self.buffer = b""

    @property
    def device_id(self) -> str:
        return str(getattr(self.device, "device_id", self.device.imei))

    async def send(self, frame: bytes) -> list[bytes]:
        """Send `frame`; return the replies the protocol says it gets (not yet read)."""
        decoded = self.server.decode(frame)
        #: What the server makes of the last frame.
        self.events = decoded.events
        replies = decoded.replies
        #: Whether the last frame's replies acknowledge data (sent only once it is stored).
        self.acknowledged = any(reply.after_store for reply in replies)
        await self.channel.send(frame)
        return [self.key(reply.data) for reply in replies]

    async def replies(self, expected: list[bytes], timeout: float = 15.0) -> None:
        """Read until the expected replies arrived; they must be exactly those."""
        if not expected:
            await self.channel.nothing_more(0.3)
            return
        if self.framer is None:
            want = b"".join(expected)
            while len(self.buffer) < len(want):
                self.buffer += await self.channel.reply(timeout)
            got, self.buffer = self.buffer[:len(want)], self.buffer[len(want):]
            assert got == want
            return
        messages: list[bytes] = []
        while len(messages) < len(expected):
            for out in self.framer.feed(await self.channel.reply(timeout)):
                assert isinstance(out, bytes), out
                messages.append(self.key(out))
        assert messages == expected

    async def command(self, size: int, timeout: float = 15.0) -> bytes:
        """The next message from the gateway: `size` bytes on a stream, one message on MQTT."""
        if isinstance(self.channel, MqttChannel):
            return await self.channel.reply(timeout)
        while len(self.buffer) < size:
            self.buffer += await self.channel.reply(timeout)
        got, self.buffer = self.buffer[:size], self.buffer[size:]
        return got


_REPRODUCIBLE: dict[str, bool] = {}


async def reproducible(codec: Codec, device_id: str, command: Command) -> bool:
    """Whether the protocol encodes `command` the same way every time: no serial number, no
    clock (encoded twice a little over a second apart; once per protocol)."""
    if codec.name not in _REPRODUCIBLE:
        first = codec.encode_command(device_id, command)
        await asyncio.sleep(1.05)
        _REPRODUCIBLE[codec.name] = first == codec.encode_command(device_id, command)
    return _REPRODUCIBLE[codec.name]


#: The command each protocol gets: the first of these it supports.
COMMAND_ORDER = (CommandType.POSITION_SINGLE, CommandType.REPORT_INTERVAL, CommandType.REBOOT,
                 CommandType.ENGINE_RESUME)


@pytest.mark.parametrize("transport", ["tcp", "mqtt"])
@pytest.mark.parametrize("protocol", names())
async def test_login_position_and_sos_of_every_protocol(
    protocol: str, transport: str, transport_gateway, channel_factory
) -> None:
    tg: TransportGateway = await transport_gateway()
    codec = get_codec(protocol)
    imei = _imei(protocol)
    peer = Peer(codec, None, imei)
    peer.channel = await channel_factory(transport, tg, peer.device_id, protocol)
    db = tg.gateway.db

    await peer.replies(await peer.send(peer.device.login()))
    await bind_when_seen(db, peer.device_id)

    position = Fix(T0, 48.8566, 2.3522, speed_kmh=42.0, course_deg=90.0)
    await peer.replies(await peer.send(peer.device.position(position)))
    if peer.acknowledged:  # the ack may only have come once the position was stored
        assert await count_positions(db, peer.device_id) == 1

    async def stored() -> bool:
        return await count_positions(db, peer.device_id) == 1

    await eventually(stored)

    sos = Fix(T0 + timedelta(seconds=30), 48.8570, 2.3530)
    await peer.replies(await peer.send(peer.device.sos(sos)))

    async def alarm_stored() -> bool:
        alarms = await queries.alarms_of_device(db, peer.device_id)
        return any(a.alarm_type == AlarmType.SOS.value for a in alarms)

    await eventually(alarm_stored)

    # A command queued through the (admin) API reaches the device, exactly as sent.
    kind = next(k for k in COMMAND_ORDER if k in codec.commands)
    interval = 60 if kind is CommandType.REPORT_INTERVAL else None
    async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{tg.gateway.http_port}", timeout=10,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        body: dict[str, Any] = {"type": kind.value}
        if interval is not None:
            body["params"] = {"interval_s": interval}
        queued = await admin.post(f"/api/v1/admin/devices/{peer.device_id}/commands", json=body)
        assert queued.status_code == 202, queued.text
        command_id = queued.json()["id"]

        async def command_row() -> dict[str, Any]:
            listed = await admin.get(f"/api/v1/admin/devices/{peer.device_id}/commands")
            [row] = [c for c in listed.json()["commands"] if c["id"] == command_id]
            return dict(row)

        async def sent() -> bool:
            return (await command_row())["status"] != "queued"

        await eventually(sent)
        row = await command_row()
        assert row["status"] in ("sent", "acknowledged")
        payload = bytes.fromhex(row["sent_hex"])
        assert await peer.command(len(payload)) == payload
        command = Command(kind, interval_s=interval)
        if await reproducible(codec, peer.device_id, command):
            assert payload == codec.encode_command(peer.device_id, command)
        else:  # a clock or serial in the command: the device must still take it as its own
            assert peer.device.command_answer(payload, position) is not None, protocol
        answer = peer.device.command_answer(payload, position)
        answered = False
        for frame in codec.framer(4096).feed(answer or b""):
            assert isinstance(frame, bytes)
            await peer.replies(await peer.send(frame))
            answered = answered or any(
                isinstance(e, CommandResult) and codec.answers(payload, e) is Answer.DONE
                for e in peer.events)
        if answered:
            async def acknowledged() -> bool:
                return (await command_row())["status"] == "acknowledged"

            await eventually(acknowledged)
        else:  # the protocol's answer (if any) does not say which command it answers
            await asyncio.sleep(0.3)
            assert (await command_row())["status"] == "sent"


def test_protocols_whose_replies_carry_a_clock_frame_their_downlink() -> None:
    """A device can only match replies without their clock if it can cut them apart."""
    for codec in (get_codec(name) for name in names()):
        if codec.reply_key is not None:
            assert codec.downlink_framer is not None, codec.name


def test_every_protocol_declares_what_the_gateway_needs() -> None:
    for codec in (get_codec(name) for name in names()):
        assert codec.title and codec.sos, codec.name
        assert 0 < codec.default_port < 65536, codec.name
        session = codec.new_session(clock=utc_now)
        assert hasattr(session, "decode"), codec.name
        assert asyncio.iscoroutinefunction(codec.encode_command) is False, codec.name
