from __future__ import annotations

import pytest

from protocols import UnknownProtocol, detect


@pytest.mark.parametrize(
    ("first_bytes", "protocol"),
    [
        (b"(027044702512BP00027044702512HSO01A4)", "tk103"),
        (b"##,imei:359586015829802,A;", "gps103"),
        (b"imei:359586015829802,tracker,0809231929,", "gps103"),
        (b"359586015829802;", "gps103"),
        (b"+RESP:GTFRI,1A0401,860599000508846,", "gl300"),
        (b"+BUFF:GTFRI,1A0401,", "gl300"),
        (b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$", "gl300"),
        (b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A", "nmea"),
        (b"\r\n  (087073005534BP00HSO)", "tk103"),
        (b"\x78\x78\x0d\x01\x08\x64\x71\x70", "gt06"),
        (b"\x79\x79\x00\x26\xf1", "gt06"),
        (b"*HQ,353588020068342,V1,084436,A,", "h02"),
        (b"$\x41\x06\x01\x16\x60\x12\x45\x43\x13\x11\x16\x50", "h02"),
    ],
)
def test_detects_protocol(first_bytes: bytes, protocol: str) -> None:
    assert detect(first_bytes) == protocol


@pytest.mark.parametrize(
    "partial", [b"", b"\r\n", b"+", b"+RE", b"+RESP", b"i", b"imei", b"#", b"$G", b"\x78",
                b"*HQ", b"$\x41\x06"])
def test_waits_for_more_bytes(partial: bytes) -> None:
    assert detect(partial) is None


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00", b"\x79\x78\x0d\x01", b"+XYZ:", b"imex",
     b"*1Q,", b"$A,"],
)
def test_rejects_unknown_streams_with_a_hint(garbage: bytes) -> None:
    with pytest.raises(UnknownProtocol, match="expected"):
        detect(garbage)
