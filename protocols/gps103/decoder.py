"""gps103 frames to events: login, heartbeat, and the three report layouts."""

from __future__ import annotations

import re

from protocols.codec import Decoded, Reply, rejected
from protocols.events import Heartbeat, Login
from protocols.gps103.report import decode_report
from protocols.gps103.values import MAX_ID_DIGITS, is_device_id
from protocols.gps103.variants import decode_alternative, decode_obd

#: Answer to a login (`##,imei:<id>,A;`): the device starts reporting once it gets it.
LOAD = Reply(b"LOAD", after_store=False)
#: Answer to a bare-IMEI heartbeat (`<id>;`).
ON = Reply(b"ON", after_store=False)

# Traccar treats any frame holding `imei:` that is at most 30 characters long (terminator
# included) as a login; `imei:123451234512345,L,*` is one. Lengths here exclude the terminator.
_LOGIN_MAX_CHARS = 29
_LOGIN_ID = re.compile(r"imei:([0-9]+)(?:,|\Z)")
_STRIP = " \t\r\n\x00"


def decode(frame: bytes, options: object = None) -> Decoded:
    """Decode one gps103 frame, with or without its terminator. Never raises."""
    try:
        return _decode(frame)
    except Exception:  # decode() must not raise, whatever a device sends
        # Every known bad field has its own reason; this one means a case nobody foresaw.
        return rejected(frame, "gps103 frame not understood (a field in an unexpected form)")


def _decode(frame: bytes) -> Decoded:
    try:
        text = frame.decode("ascii")
    except UnicodeDecodeError:
        # Free-text fields (alternative-format name, rfid) may carry UTF-8; anything else that is
        # not text fails the field checks below with a specific reason.
        text = frame.decode("utf-8", "replace")
    sentence = text.strip(_STRIP)
    terminator = sentence[-1:]
    if terminator in (";", "*"):
        sentence = sentence[:-1]
    else:
        terminator = ""
    if not sentence:
        return rejected(frame, "empty frame")
    if sentence.startswith("imei:"):
        if len(sentence) <= _LOGIN_MAX_CHARS:
            return _login(frame, sentence)
        return _report(frame, sentence, terminator)
    if sentence.startswith("##,"):
        return _login(frame, sentence)
    if "0" <= sentence[0] <= "9":
        return _heartbeat(frame, sentence, terminator)
    return rejected(frame, f"unknown message start {sentence[:12]!r}")


def _login(frame: bytes, sentence: str) -> Decoded:
    match = _LOGIN_ID.search(sentence)
    if match is None:
        return rejected(frame, f"login frame without an IMEI: {sentence[:32]!r}")
    imei = match.group(1)
    if len(imei) > MAX_ID_DIGITS:
        return rejected(frame, f"login IMEI longer than {MAX_ID_DIGITS} digits")
    return Decoded(raw=frame, device_id=imei, events=(Login(imei),), replies=(LOAD,))


def _heartbeat(frame: bytes, sentence: str, terminator: str) -> Decoded:
    start = sentence.find("imei:")
    prefix = sentence if start < 0 else sentence[:start]
    if not is_device_id(prefix):
        return rejected(frame, f"heartbeat is not an IMEI: {prefix[:24]!r}")
    if start < 0:
        return Decoded(raw=frame, device_id=prefix, events=(Heartbeat(prefix),), replies=(ON,))
    # `<id>imei:<id>,tracker,...`: a heartbeat and a report run together in one frame.
    report = _report(frame, sentence[start:], terminator)
    return Decoded(raw=frame, device_id=report.device_id, events=report.events,
                   replies=(ON, *report.replies))


def _report(frame: bytes, sentence: str, terminator: str) -> Decoded:
    fields = sentence.split(",")
    imei = fields[0][5:]
    if not (imei.isdigit() and len(imei) <= MAX_ID_DIGITS and imei.isascii()):
        return rejected(frame, f"invalid IMEI {imei[:24]!r}")
    if len(fields) < 2:
        return rejected(frame, "report without a keyword", imei)
    keyword = fields[1]
    if keyword == "OBD":
        return decode_obd(frame, imei, fields)
    if terminator == "*" and len(fields) > 4 and fields[4] not in ("F", "L"):
        return decode_alternative(frame, imei, fields)
    if keyword.startswith("vr"):
        # Photo chunks only make sense together with the `vtNN` report before them.
        return rejected(frame, "photo data chunks (vr) are not supported", imei)
    return decode_report(frame, imei, fields)
