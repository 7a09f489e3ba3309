"""MQTT: device frames through a broker, the second transport next to TCP.

A device publishes its own protocol's frames, exactly as it would write them to a socket, on
`<prefix>/<id>/up` (the protocol is told from each message's first bytes) or
`<prefix>/<id>/up/<protocol>` (any protocol of the registry). Each device and protocol is one
pipeline stream, as a TCP connection is, and each message is a batch of that stream: its frames
go through the same rules (identity, rate, decoding, commit) and their replies leave together,
as one QoS 1 message on `<prefix>/<id>/down`, once every frame of the message that needs storing
is committed; an ack whose data could not
be stored is withheld, as on TCP. The topic vouches for the device: a frame of another device is
refused (`topic_mismatch`; the protocol's `wire_ids` rule says which ids name the same device).

The broker itself is kept by `BrokerLink` (gateway/devices/broker.py), which PUBACKs each message
only once it is settled here, in arrival order. A frame the database refuses for good is
acknowledged (and logged): resending it would never help. A stream that ends (a rate breach) is
forgotten, as a TCP connection would be closed: the device's next message starts a new one.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import aiomqtt

from gateway.config import MqttSettings
from gateway.devices.broker import BrokerLink, Received
from gateway.devices.pipeline import Entry, Pipeline, Stream, release
from gateway.metrics import Metrics
from gateway.store.writer import ItemRejected

log = logging.getLogger("gateway.mqtt")

#: Device streams kept (least recently used are forgotten beyond this).
MAX_STREAMS = 100_000
#: Longest device id accepted in a topic.
MAX_TOPIC_ID = 32


class _Message(Received):
    """One received message on its way: a batch of its device's stream."""

    __slots__ = ("down", "entries", "transport", "waiting")

    def __init__(self, client: aiomqtt.Client, mid: int, qos: int, down: str,
                 transport: MqttTransport) -> None:
        super().__init__(client, mid, qos)
        self.down = down
        self.transport = transport
        #: Items handed to the store and not settled yet.
        self.waiting = 0
        #: The frames' replies, in order.
        self.entries: list[Entry] = []

    def settled(self, entry: Entry) -> None:
        self.waiting -= 1
        error = entry.error
        if error is not None and not isinstance(error, ItemRejected):
            self.resend = True  # the writer closed before storing it: the broker must resend
        if self.waiting == 0:
            self.done = True
            self.transport.link.drain()

    def finish(self, link: BrokerLink) -> None:
        out, acks = release(self.entries, self.down)
        if acks:
            self.transport.metrics.counts.acks_pending -= acks
        if out:
            link.publish(self.down, b"".join(out), 1)


class _TopicSink:
    """The transport side of one device topic's stream."""

    __slots__ = ("key", "transport")

    def __init__(self, transport: MqttTransport, key: tuple[str, str]) -> None:
        self.transport = transport
        self.key = key

    def write(self, data: bytes) -> None:
        """A server command (replies leave per message, with their batch)."""
        self.transport.publish(self.transport.down_topic(self.key[0]), data, 1)

    def end(self, reason: str) -> None:
        stream = self.transport._streams.pop(self.key, None)
        if stream is not None:
            stream.closed()
        log.warning("mqtt device stream ended", extra={"device": self.key[0], "reason": reason})

    def settled(self) -> None:
        pass

    def identified(self) -> None:
        pass


class MqttTransport:
    """Device topics of one gateway on the broker."""

    def __init__(
        self, settings: MqttSettings, pipeline: Pipeline, metrics: Metrics, *,
        instance: str, drain_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics
        prefix = settings.topic_prefix
        self._prefix = prefix + "/"
        subscription = f"{prefix}/+/up/#"
        if settings.shared_group:
            subscription = f"$share/{settings.shared_group}/{subscription}"
        self.link = BrokerLink(settings, metrics, subscription, self._message,
                               instance=instance, drain_timeout_s=drain_timeout_s)
        self._streams: OrderedDict[tuple[str, str], Stream] = OrderedDict()
        self._accepted = metrics.mqtt_messages.labels("accepted")

    # --- life cycle and state (the broker link's) ---

    async def start(self) -> None:
        await self.link.start()

    async def stop(self) -> None:
        await self.link.stop()

    @property
    def state(self) -> str:
        return self.link.state

    @property
    def last_error(self) -> str | None:
        return self.link.last_error

    @property
    def connects(self) -> int:
        return self.link.connects

    def down_topic(self, device: str) -> str:
        """Where a device's replies and commands are published."""
        return f"{self._prefix}{device}/down"

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        return self.link.publish(topic, payload, qos)

    # --- inbound ---

    def _message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> Received:
        topic = message.topic.value
        payload: Any = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload if payload is not None else "").encode()
        device, protocol, problem = self._parse_topic(topic)
        if problem is None and not payload:
            problem = "empty message"
        if problem is None and len(payload) > self.settings.max_payload_bytes:
            problem = f"message of {len(payload)} bytes over {self.settings.max_payload_bytes}"
        if problem is None and protocol is None:
            # Told per message: each message stands alone (a bridge may relay several kinds).
            protocol, problem = self.pipeline.tell(bytes(payload))
        if problem is not None or device is None or protocol is None:
            self.metrics.mqtt_messages.labels("rejected").inc()
            # Counted once per message, under protocol "unknown": no frame of it was looked at.
            self.metrics.counts.frames["unknown", "rejected"] += 1
            self.metrics.rejected_frames.labels("unknown", "bad_message").inc()
            log.warning("mqtt message rejected", extra={"topic": topic, "reason": problem})
            # Acknowledged (in arrival order): sending it again would not make it any better.
            rejected = Received(client, message.mid, message.qos)
            rejected.done = True
            return rejected
        self._accepted.inc()
        received = _Message(client, message.mid, message.qos, self.down_topic(device), self)
        self._stream(device, protocol).feed(bytes(payload), received)
        if received.waiting == 0:
            received.done = True
        return received

    def _parse_topic(self, topic: str) -> tuple[str | None, str | None, str | None]:
        if not topic.startswith(self._prefix):
            return None, None, f"topic {topic!r} outside {self._prefix}"
        parts = topic[len(self._prefix):].split("/")
        if len(parts) not in (2, 3) or parts[1] != "up":
            return None, None, f"topic {topic!r} is not <prefix>/<id>/up[/<protocol>]"
        device = parts[0]
        if not device or len(device) > MAX_TOPIC_ID or not device.isascii() \
                or not device.isalnum():
            return None, None, f"bad device id {device!r} in the topic"
        protocol = None
        if len(parts) == 3:
            protocol = parts[2]
            if protocol not in self.pipeline.protocols:
                return None, None, (f"unknown protocol {protocol!r} in the topic (served: "
                                    f"{', '.join(self.pipeline.protocols)})")
        return device, protocol, None

    def _stream(self, device: str, protocol: str) -> Stream:
        key = (device, protocol)
        stream = self._streams.get(key)
        if stream is not None:
            self._streams.move_to_end(key)
            return stream
        stream = self.pipeline.open(_TopicSink(self, key), protocol, f"mqtt:{device}",
                                    claimed_id=device, transport="mqtt")
        self._streams[key] = stream
        if len(self._streams) > MAX_STREAMS:
            _key, forgotten = self._streams.popitem(last=False)
            forgotten.closed()
        return stream
