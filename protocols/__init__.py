"""Sans-IO codecs for the trackers' wire protocols.

No sockets, no asyncio, no database: feed bytes to a framer, decode frames into typed events,
and get back the exact bytes the server must answer. The gateway and the simulators both stand
on this package.
"""

from __future__ import annotations

import importlib

from protocols.codec import (
    DEFAULT_OPTIONS,
    Codec,
    Command,
    CommandType,
    Decoded,
    DecodeOptions,
    DeviceEncoder,
    Fix,
    Reply,
    UnsupportedCommand,
)
from protocols.detect import UnknownProtocol, detect
from protocols.events import (
    Alarm,
    AlarmType,
    CommandResult,
    Event,
    Heartbeat,
    Login,
    Position,
    Rejected,
    Status,
)
from protocols.framing import Discarded

#: Protocol names, in the order of their default TCP ports.
PROTOCOLS: tuple[str, ...] = ("gps103", "tk103", "gl300")


def get_codec(name: str) -> Codec:
    """The codec for a protocol name (`gps103`, `tk103`, `gl300`)."""
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; supported: {', '.join(PROTOCOLS)}")
    module = importlib.import_module(f"protocols.{name}")
    codec: Codec = module.CODEC
    return codec


__all__ = [
    "DEFAULT_OPTIONS",
    "PROTOCOLS",
    "Alarm",
    "AlarmType",
    "Codec",
    "Command",
    "CommandResult",
    "CommandType",
    "DecodeOptions",
    "Decoded",
    "DeviceEncoder",
    "Discarded",
    "Event",
    "Fix",
    "Heartbeat",
    "Login",
    "Position",
    "Rejected",
    "Reply",
    "Status",
    "UnknownProtocol",
    "UnsupportedCommand",
    "detect",
    "get_codec",
]
