"""What one stream of one device remembers, whatever carries it (a TCP connection, an MQTT
device's topic).

The session holds the protocol's own per-connection state (`Codec.session`: the login seen, the
id a login announced, an authentication code), the identity the stream is locked to, and its
frame rate. It never parses a frame itself: the protocol session does.
"""

from __future__ import annotations

import time
from typing import Any

from protocols import Codec, ProtocolSession


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


class DeviceSession:
    """One device stream: its protocol state, the device it is locked to, its limits."""

    __slots__ = ("claimed_id", "codec", "device_id", "frames", "protocol", "rate",
                 "remote_addr", "started")

    def __init__(
        self, codec: Codec, options: Any, remote_addr: str, rate: TokenBucket,
        claimed_id: str | None = None,
    ) -> None:
        self.codec = codec
        #: The protocol's state for this stream; `protocol.decode(frame)` never raises.
        self.protocol: ProtocolSession = codec.new_session(options)
        self.remote_addr = remote_addr
        self.rate = rate
        #: The device the transport vouches for (the id in an MQTT topic): frames of any other
        #: device are refused. None on TCP, where the first identified frame decides.
        self.claimed_id = claimed_id
        #: The device this stream is locked to, once a frame identified it.
        self.device_id: str | None = None
        self.frames = 0
        self.started = time.monotonic()

    def identify(self, device_id: str) -> tuple[str, str] | None:
        """Lock the stream to `device_id` (a frame named it); (kind, reason) when refused.

        A stream carries one device: a frame naming another is refused (`imei_mismatch`), and
        on a topic that names a device, only that device's frames are taken (`topic_mismatch`;
        the protocol's `wire_ids` rule says which ids name the same device).
        """
        claimed = self.claimed_id
        if claimed is not None and not self.codec.matches_imei(device_id, claimed):
            return ("topic_mismatch",
                    f"frame for device {device_id} on the topic of device {claimed}")
        if self.device_id is None:
            self.device_id = device_id
            return None
        return ("imei_mismatch",
                f"frame for device {device_id} on the connection of device {self.device_id}")
