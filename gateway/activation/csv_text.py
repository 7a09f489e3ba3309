"""CSV files as installers really have them: bytes from a spreadsheet export, in whatever
encoding and with whatever separator the spreadsheet's locale chose.

`decode_csv(data)` turns the bytes into text, or says why they are not a CSV file, naming the
line. `rows(text)` reads the records with the separator of the file (`,`, `;` or tab) and the
line each record starts on.

Encodings, in the order they are tried (`encoding="auto"`):

* UTF-16 with its byte-order mark: spreadsheets' "Unicode text" export.
* UTF-8, with or without its byte-order mark.
* Windows-1252, the usual "CSV" export of spreadsheets on Windows in Western Europe and the
  Americas (a superset of Latin-1's printable characters). The note says so and names the first
  line that is not UTF-8, so that a file in another encoding can be read again with an explicit
  one.

Bytes that no spreadsheet writes in a text file (NUL and the other control characters but
tab, CR and LF) mean the file is not text at all (a workbook, an image...): `NotText`.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

#: The fallback when a file is not UTF-8.
FALLBACK = "cp1252"

#: How workbooks start: a ZIP archive (.xlsx, .ods) or an OLE2 compound file (.xls).
_WORKBOOKS = (b"PK\x03\x04", bytes.fromhex("d0cf11e0a1b11ae1"))

#: Control characters that never appear in a text CSV file.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NotText(ValueError):
    """The bytes are not a text CSV file (or not in the encoding asked for); the message names
    the line and what to do."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class CsvText:
    text: str
    #: The encoding the bytes were read with (Python's name for it).
    encoding: str
    #: Said to the user when the encoding was a guess (None when the file was UTF-8 or the
    #: encoding was given).
    note: str | None = None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _check_text(text: str) -> None:
    found = _CONTROL.search(text)
    if found is not None:
        line = text.count("\n", 0, found.start()) + 1
        raise NotText(line, f"binary data (byte 0x{ord(found.group()):02X}): this is not a "
                      "text CSV file; save the sheet as CSV (comma or semicolon separated)")


def decode_csv(data: bytes, encoding: str = "auto") -> CsvText:
    """The text of a CSV file's bytes; `encoding` "auto" detects it (see the module)."""
    if encoding != "auto":
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise NotText(_line_of(data, exc.start),
                          f"byte 0x{data[exc.start]:02X} is not {encoding}: give the file's "
                          "encoding with --encoding (for example cp1252, latin-1, utf-8)"
                          ) from None
        except LookupError:
            raise NotText(1, f"unknown encoding {encoding!r}: use a name such as utf-8, "
                          "cp1252 or latin-1") from None
        text = text.removeprefix("\ufeff")
        _check_text(text)
        return CsvText(text, encoding)
    if data.startswith(_WORKBOOKS):
        raise NotText(1, "this is a spreadsheet workbook (.xlsx, .ods or .xls), not a CSV "
                      "file: open it and save (or export) the sheet as CSV")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise NotText(1, f"the file starts as UTF-16 but is not ({exc.reason})") from None
        _check_text(text)
        return CsvText(text.removeprefix("\ufeff"), "utf-16")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = _line_of(data, exc.start)
        bad_byte = data[exc.start]
    else:
        _check_text(text)
        return CsvText(text, "utf-8")
    if b"\x00" in data:  # checked before decoding: cp1252 maps NUL to NUL
        raise NotText(_line_of(data, data.index(b"\x00")),
                      "binary data (byte 0x00): this is not a text CSV file; save the sheet "
                      "as CSV (comma or semicolon separated)")
    # cp1252 leaves five bytes undefined; Latin-1 reads them as (invisible) C1 controls.
    text = data.decode(FALLBACK, errors="strict") if _cp1252_defined(data) else data.decode(
        "latin-1")
    _check_text(text)
    note = (f"not UTF-8 (line {bad_line}: byte 0x{bad_byte:02X}); read as Windows-1252 "
            "(Latin-1), the usual encoding of a spreadsheet's CSV export; if accented letters "
            "come out wrong, name the file's encoding (--encoding, or encoding= in the API)")
    return CsvText(text.removeprefix("\ufeff"), FALLBACK, note)


def _cp1252_defined(data: bytes) -> bool:
    try:
        data.decode(FALLBACK)
    except UnicodeDecodeError:
        return False
    return True


def _separator(text: str) -> str:
    """`,`, `;` or tab: the most frequent of them on the first non-empty line."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > counts[","] else ","


def rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, stripped cells) of each record that is not blank."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_separator(text))
    start = 1
    for row in reader:
        cells = [cell.strip() for cell in row]
        if any(cells):
            yield start, cells
        start = reader.line_num + 1
