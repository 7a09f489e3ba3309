"""Sans-IO codecs for the trackers' wire protocols.

No sockets, no asyncio, no database: feed bytes to a framer, decode frames in a session into
typed events, and get back the exact bytes the server must answer. The gateway and the
simulators both stand on this package; `protocols.registry` lists the protocols (one package
each under `protocols/`).
"""

from __future__ import annotations

from protocols.codec import (
    Answer,
    Codec,
    Command,
    CommandType,
    Decoded,
    DeviceEncoder,
    Fix,
    ProtocolSession,
    Reply,
    StatelessSession,
    UnsupportedCommand,
)
from protocols.detect import DETECT_MAX_BYTES, UnknownProtocol, detect
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
from protocols.registry import codecs, get_codec, matches_imei, names, register

__all__ = [
    "DETECT_MAX_BYTES",
    "Alarm",
    "AlarmType",
    "Answer",
    "Codec",
    "Command",
    "CommandResult",
    "CommandType",
    "Decoded",
    "DeviceEncoder",
    "Discarded",
    "Event",
    "Fix",
    "Heartbeat",
    "Login",
    "Position",
    "ProtocolSession",
    "Rejected",
    "Reply",
    "StatelessSession",
    "Status",
    "UnknownProtocol",
    "UnsupportedCommand",
    "codecs",
    "detect",
    "get_codec",
    "matches_imei",
    "names",
    "register",
]
