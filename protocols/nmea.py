"""NMEA 0183 sentences from GPS receivers (`$GPRMC`, `$GPGGA`, and the `$GN` multi-GNSS forms).

Parsing and rendering go through pynmea2. Used where a device sends raw NMEA, and by the
simulators to read a GPS receiver on a serial port or to act as one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pynmea2

from protocols.codec import Fix
from protocols.framing import DEFAULT_MAX_FRAME_BYTES, BoundedFramer
from protocols.units import degrees_to_ddmm, kmh_to_knots, knots_to_kmh

#: NMEA 0183 limits a sentence to 82 characters; receivers with long proprietary sentences
#: exceed that, so the framer allows more while staying bounded.
NMEA_MAX_SENTENCE_BYTES = 256


class NmeaFramer(BoundedFramer):
    """Sentences start at `$` and end at the line feed (kept in the frame)."""

    __slots__ = ()

    def __init__(self, max_frame_bytes: int = NMEA_MAX_SENTENCE_BYTES) -> None:
        super().__init__(min(max_frame_bytes, DEFAULT_MAX_FRAME_BYTES))

    def _find_start(self, buf: bytes, pos: int) -> int:
        return buf.find(b"$", pos)

    def _find_end(self, buf: bytes, start: int) -> int:
        end = buf.find(b"\n", start)
        return -1 if end < 0 else end + 1


class NmeaError(ValueError):
    """A sentence that is not valid NMEA (bad checksum, bad field)."""


def _parse(sentence: bytes | str) -> pynmea2.NMEASentence:
    text = sentence.decode("ascii", "replace") if isinstance(sentence, bytes) else sentence
    try:
        return pynmea2.parse(text.strip(), check=True)
    except (pynmea2.ParseError, ValueError, AttributeError, TypeError) as exc:
        raise NmeaError(f"not a valid NMEA sentence: {text.strip()[:40]!r} ({exc})") from exc


class NmeaReader:
    """Turns a stream of sentences into fixes: one Fix per RMC, enriched by the GGA of that time.

    RMC carries the date, validity, speed and course; GGA carries altitude, satellites and HDOP.
    Receivers send GGA just before or just after RMC for the same second, so a GGA is kept and
    merged into the RMC with the same time, and a Fix for an RMC is returned when it arrives.
    """

    def __init__(self) -> None:
        self._gga: pynmea2.types.talker.GGA | None = None
        self.errors = 0

    def feed_sentence(self, sentence: bytes | str) -> Fix | None:
        """One sentence in; the Fix it completes, if any. Bad sentences are counted, not raised."""
        try:
            msg = _parse(sentence)
        except NmeaError:
            self.errors += 1
            return None
        if isinstance(msg, pynmea2.types.talker.GGA):
            self._gga = msg
            return None
        if isinstance(msg, pynmea2.types.talker.RMC):
            try:
                return self._fix_from_rmc(msg)
            except (ValueError, TypeError):
                self.errors += 1
                return None
        return None

    def _fix_from_rmc(self, rmc: pynmea2.types.talker.RMC) -> Fix | None:
        if not rmc.lat or not rmc.lon or rmc.datestamp is None or rmc.timestamp is None:
            return None
        stamp = datetime.combine(rmc.datestamp, rmc.timestamp.replace(tzinfo=None), UTC)
        fix = Fix(
            fix_time=stamp,
            lat=rmc.latitude,
            lon=rmc.longitude,
            speed_kmh=knots_to_kmh(rmc.spd_over_grnd or 0.0),
            course_deg=float(rmc.true_course or 0.0),
            valid=rmc.status == "A",
        )
        gga = self._gga
        if gga is not None and gga.timestamp == rmc.timestamp:
            fix = replace(
                fix,
                altitude_m=float(gga.altitude) if gga.altitude is not None else 0.0,
                satellites=int(gga.num_sats) if gga.num_sats else None,
                hdop=float(gga.horizontal_dil) if gga.horizontal_dil else None,
            )
        return fix


def encode_rmc(fix: Fix, talker: str = "GP") -> bytes:
    """The `$GPRMC` sentence a receiver sends for this fix, with checksum and CRLF."""
    lat, lat_hemi = degrees_to_ddmm(fix.lat, degree_digits=2, decimals=5)
    lon, lon_hemi = degrees_to_ddmm(fix.lon, degree_digits=3, decimals=5)
    when = fix.fix_time.astimezone(UTC)
    fields = (
        when.strftime("%H%M%S.") + f"{when.microsecond // 10000:02d}",
        "A" if fix.valid else "V",
        lat, lat_hemi, lon, lon_hemi,
        f"{kmh_to_knots(fix.speed_kmh):.2f}",
        f"{fix.course_deg:.2f}",
        when.strftime("%d%m%y"),
        "", "",
    )
    return (str(pynmea2.RMC(talker, "RMC", fields)) + "\r\n").encode("ascii")


def encode_gga(fix: Fix, talker: str = "GP") -> bytes:
    """The `$GPGGA` sentence for this fix (quality 1 when valid, else 0)."""
    lat, lat_hemi = degrees_to_ddmm(fix.lat, degree_digits=2, decimals=5)
    lon, lon_hemi = degrees_to_ddmm(fix.lon, degree_digits=3, decimals=5)
    when = fix.fix_time.astimezone(UTC)
    fields = (
        when.strftime("%H%M%S.") + f"{when.microsecond // 10000:02d}",
        lat, lat_hemi, lon, lon_hemi,
        "1" if fix.valid else "0",
        f"{fix.satellites or 0:02d}",
        f"{fix.hdop:.1f}" if fix.hdop is not None else "",
        f"{fix.altitude_m:.1f}", "M", "0.0", "M", "", "",
    )
    return (str(pynmea2.GGA(talker, "GGA", fields)) + "\r\n").encode("ascii")
