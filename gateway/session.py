"""What a device connection means, whatever carries it (TCP now, MQTT later).

The transport hands over complete frames; this module asks the protocol codec what they say,
enforces the session rules (one device per connection, frame rate) and says what to store and
which replies to send. It never parses a frame itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.store.ingest import IngestItem
from protocols import Codec, Position, ProtocolSession, Reply


class TokenBucket:
    """Frames per second with a burst allowance; `take()` is False when over the rate."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def claimed_id_matches(claimed: str, device_id: str) -> bool:
    """Whether frames naming `device_id` may come from the device the transport vouches for.

    Equal ids match. The one exception is the tk103 fixed layout, whose frames carry a
    12-character id made of the last 12 digits of the IMEI: `device_id` of 12 characters
    matches a claimed 15-digit IMEI that ends with it. Nothing else matches (a device cannot
    speak for another).
    """
    if device_id == claimed:
        return True
    return (len(device_id) == 12 and len(claimed) == 15 and claimed.isdigit()
            and claimed.endswith(device_id))


@dataclass(slots=True)
class FrameOutcome:
    """What to do with one frame."""

    #: What to write to the database (None: nothing, e.g. an unidentified garbage frame).
    item: IngestItem | None
    #: Replies in order; those with after_store wait for `item` to be committed.
    replies: tuple[Reply, ...]
    #: Why the frame was refused, for logs and metrics (None when accepted).
    rejected: str | None
    #: A short label of the refusal for metrics (bounded set of values).
    rejected_kind: str | None
    positions: int = 0


@dataclass(slots=True)
class DeviceSession:
    """One device connection: the device it is locked to, and its limits."""

    codec: Codec
    options: Any
    remote_addr: str
    rate: TokenBucket
    device_id: str | None = None
    #: The device the transport vouches for (the IMEI of an MQTT topic): a frame of any other
    #: device is refused (see `claimed_id_matches`). None on TCP, where the first frame decides.
    claimed_id: str | None = None
    frames: int = 0
    started: float = field(default_factory=time.monotonic)
    protocol: ProtocolSession = field(init=False)

    def __post_init__(self) -> None:
        self.protocol = self.codec.new_session(self.options)

    def handle_frame(self, frame: bytes, received_at: datetime | None = None) -> FrameOutcome:
        """Decode one complete frame and decide what to store and answer."""
        self.frames += 1
        when = received_at or datetime.now(UTC)
        decoded = self.protocol.decode(frame)
        device_id = decoded.device_id
        if (device_id is not None and self.claimed_id is not None
                and not claimed_id_matches(self.claimed_id, device_id)):
            return FrameOutcome(
                None, (), f"frame for device {device_id} on the topic of device {self.claimed_id}",
                "topic_mismatch")
        if device_id is not None:
            if self.device_id is None:
                self.device_id = device_id
            elif device_id != self.device_id:
                return FrameOutcome(
                    None, (),
                    f"frame for device {device_id} on the connection of device {self.device_id}",
                    "imei_mismatch")
        rejected = decoded.rejected
        owner = device_id or self.device_id
        if owner is None:
            # Nothing identifies the sender yet: nothing to attach the frame to.
            reason = rejected.reason if rejected else "frame before the device identified itself"
            return FrameOutcome(None, (), reason, "decode_error" if rejected else "unidentified")
        item = IngestItem(
            device_id=owner,
            protocol=self.codec.name,
            remote_addr=self.remote_addr,
            received_at=when,
            raw=frame,
            events=decoded.events,
            rejected_reason=rejected.reason if rejected else None,
        )
        if rejected is not None:
            return FrameOutcome(item, (), rejected.reason, "decode_error")
        positions = 0
        for event in decoded.events:  # a loop: a generator cost more than the count (hot path)
            if isinstance(event, Position):
                positions += 1
        return FrameOutcome(item, decoded.replies, None, None, positions)
