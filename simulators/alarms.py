"""Alarms other than SOS, from the protocols' own alarm tables.

An encoder with an `alarm(alarm_type, fix)` method builds any alarm it supports itself (raising
ValueError for the others). For the first protocols, whose encoders have `sos()` only, rather
than writing a second copy of any format, this module picks the protocol's own code for an
AlarmType from the decoder's table and lets the device encoder's frame builder produce the
frame. Either way the frame is decoded once, and refused unless the protocol reads it back as
that alarm.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from protocols import Alarm, AlarmType, Codec, Decoded, DeviceEncoder, Fix, ProtocolSession

#: The IMEI of the throw-away device whose login primes a checking session.
_PROBE_IMEI = "359900000000004"


class UnsupportedAlarm(ValueError):
    """The protocol (or its device encoder) cannot send this alarm."""


def _gps103(encoder: DeviceEncoder, alarm: AlarmType) -> Callable[[Fix], bytes] | None:
    from protocols.gps103 import report

    keyword = next((k for k, v in report._ALARMS.items() if v is alarm), None)
    build = getattr(encoder, "_report", None)
    if keyword is None or build is None:
        return None
    return lambda fix: build(keyword, fix)  # type: ignore[no-any-return]


def _tk103(encoder: DeviceEncoder, alarm: AlarmType) -> Callable[[Fix], bytes] | None:
    from protocols.tk103 import decoder

    digit = next((k for k, v in decoder._BO01_ALARMS.items() if v is alarm), None)
    build = getattr(encoder, "_fixed", None)
    if digit is None or build is None or getattr(encoder, "comma_layout", False):
        return None
    return lambda fix: build("BO01", digit, fix)  # type: ignore[no-any-return]


def _gl300(encoder: DeviceEncoder, alarm: AlarmType) -> Callable[[Fix], bytes] | None:
    from protocols.gl300 import reports

    build = getattr(encoder, "_numbered", None)
    if build is None:
        return None
    for code, kind in reports.ALARMS.items():
        if kind is alarm and code in reports.NUMBERED:
            return lambda fix: build(f"+RESP:GT{code}", [fix]).encode()  # type: ignore[no-any-return]
    return None


_BUILDERS = {"gps103": _gps103, "tk103": _tk103, "gl300": _gl300}


def alarm_builder(codec: Codec, encoder: DeviceEncoder,
                  alarm: AlarmType) -> Callable[[Fix], bytes]:
    """A function fix -> frame for `alarm`, checked once against the protocol's decoder."""
    if alarm is AlarmType.SOS:
        return encoder.sos
    own = getattr(encoder, "alarm", None)
    if own is not None:  # the encoder builds any alarm it supports (ValueError otherwise)
        try:
            own(alarm, Fix(fix_time=datetime(2025, 1, 1, tzinfo=UTC), lat=1.0, lon=2.0))
        except ValueError:
            raise UnsupportedAlarm(f"{codec.name} devices cannot send a {alarm.value} alarm") \
                from None
        return lambda fix: own(alarm, fix)  # type: ignore[no-any-return]
    pick = _BUILDERS.get(codec.name)
    build = pick(encoder, alarm) if pick else None
    if build is None:
        raise UnsupportedAlarm(f"{codec.name} devices cannot send a {alarm.value} alarm")
    return build


def identified_session(codec: Codec, options: object = None,
                       imei: str = _PROBE_IMEI) -> ProtocolSession:
    """A session of `codec` that has seen a device's login: in protocols whose later frames
    carry no identity (gt06), a frame decodes to events only after one."""
    session = codec.new_session(options)
    session.decode(codec.device(imei).login())
    return session


def check_alarm_frame(codec: Codec, frame: bytes, alarm: AlarmType,
                      decoded: Decoded | None = None) -> None:
    """Raise UnsupportedAlarm unless the protocol decodes `frame` as `alarm`. `decoded`: the
    frame as the connection's session read it; by default a session that has seen a login
    reads it (gt06 and eelink name the device only in their login)."""

    if decoded is None:
        decoded = identified_session(codec).decode(frame)
    if not any(isinstance(e, Alarm) and e.alarm is alarm for e in decoded.events):
        raise UnsupportedAlarm(f"{codec.name}: the frame built for {alarm.value} does not decode "
                               f"as that alarm: {frame[:60]!r}")


def supported_alarms(codec: Codec) -> list[AlarmType]:
    """The alarms a simulated device of this protocol can raise."""
    encoder = codec.device(_PROBE_IMEI)
    fix = Fix(fix_time=datetime(2025, 1, 1, tzinfo=UTC), lat=1.0, lon=2.0)
    out = []
    for alarm in AlarmType:
        try:
            check_alarm_frame(codec, alarm_builder(codec, encoder, alarm)(fix), alarm)
        except UnsupportedAlarm:
            continue
        out.append(alarm)
    return out
