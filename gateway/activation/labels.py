"""Sheets of device labels for installers: IMEI, claim key, and a QR code of the claim URL.

`gateway labels FILE.csv --out labels.pdf` (or `.png`). The layout is the common A4 sheet of
3 x 7 labels of 63.5 x 38.1 mm. PDF through fpdf2; PNG (300 dpi, one file per sheet: `labels.png`,
`labels-2.png`, ...) through Pillow. The QR codes come from segno, and `claim_url` is the one
function that says what they carry.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import segno

from gateway.activation.claim_keys import claim_url, format_claim_key, normalize_claim_key
from gateway.activation.contacts import InvalidInput, check_imei
from gateway.activation.csv_text import rows

#: A4 in mm, and the label grid on it.
PAGE_W, PAGE_H = 210.0, 297.0
COLUMNS, ROWS = 3, 7
LABEL_W, LABEL_H = 63.5, 38.1
LEFT, TOP = 7.2, 15.15
PITCH_X, PITCH_Y = 66.0, 38.1
QR_MM = 30.0
PNG_DPI = 300


@dataclass(frozen=True, slots=True)
class Label:
    imei: str
    claim_key: str
    url: str


class LabelError(ValueError):
    """A row of the CSV file cannot be printed; the message names the line and the field."""


def read_labels(text: str, public_url: str) -> list[Label]:
    """Labels from CSV rows with the columns `imei` and `claim_key` (a header row naming them
    is needed when there are other columns, like `contact`)."""
    columns = {"imei": 0, "claim_key": 1}
    labels: list[Label] = []
    first = True
    for number, cells in rows(text):
        names = [c.lower() for c in cells]
        if first and "imei" in names:
            first = False
            if "claim_key" not in names:
                raise LabelError(f"line {number}: the header needs a claim_key column")
            columns = {"imei": names.index("imei"), "claim_key": names.index("claim_key")}
            continue
        first = False
        try:
            imei = check_imei(cells[columns["imei"]] if columns["imei"] < len(cells) else "")
            raw = cells[columns["claim_key"]] if columns["claim_key"] < len(cells) else ""
            if not raw:
                raise InvalidInput("claim_key", "every label needs a claim key")
            key = normalize_claim_key(raw)
        except InvalidInput as exc:
            raise LabelError(f"line {number}: {exc.field}: {exc.message}") from None
        labels.append(Label(imei, key, claim_url(public_url, imei, key)))
    if not labels:
        raise LabelError("no labels: the file needs rows of imei,claim_key")
    return labels


def _slot(index: int) -> tuple[float, float]:
    """Top-left corner (mm) of the label at `index` on its sheet."""
    column, row = index % COLUMNS, (index // COLUMNS) % ROWS
    return LEFT + column * PITCH_X, TOP + row * PITCH_Y


def _qr_png(url: str, scale: int) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=scale, border=2)
    return out.getvalue()


def write_pdf(labels: list[Label], path: Path) -> list[Path]:
    from fpdf import FPDF

    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_title("Device labels")
    per_sheet = COLUMNS * ROWS
    for index, label in enumerate(labels):
        if index % per_sheet == 0:
            pdf.add_page()
        x, y = _slot(index)
        pdf.image(io.BytesIO(_qr_png(label.url, 10)), x=x + 2, y=y + (LABEL_H - QR_MM) / 2,
                  w=QR_MM, h=QR_MM)
        text_x = x + QR_MM + 4
        pdf.set_xy(text_x, y + 5)
        pdf.set_font("Helvetica", size=7)
        pdf.cell(0, 3, "IMEI")
        pdf.set_xy(text_x, y + 8.5)
        pdf.set_font("Helvetica", "B", 8)
        pdf.cell(0, 4, label.imei)
        pdf.set_xy(text_x, y + 15)
        pdf.set_font("Helvetica", size=7)
        pdf.cell(0, 3, "Claim key")
        pdf.set_xy(text_x, y + 18.5)
        pdf.set_font("Courier", "B", 10)
        pdf.cell(0, 5, format_claim_key(label.claim_key))
        pdf.set_xy(text_x, y + 26)
        pdf.set_font("Helvetica", size=6)
        pdf.multi_cell(LABEL_W - QR_MM - 6, 2.6, "Scan to activate. Keep this key private.")
    pdf.output(str(path))
    return [path]


def write_png(labels: list[Label], path: Path) -> list[Path]:
    from PIL import Image, ImageDraw, ImageFont

    def px(mm: float) -> int:
        return round(mm / 25.4 * PNG_DPI)

    small = ImageFont.load_default(size=px(2.6))
    bold = ImageFont.load_default(size=px(3.4))
    per_sheet = COLUMNS * ROWS
    written: list[Path] = []
    for first in range(0, len(labels), per_sheet):
        sheet = Image.new("RGB", (px(PAGE_W), px(PAGE_H)), "white")
        draw = ImageDraw.Draw(sheet)
        for index, label in enumerate(labels[first:first + per_sheet]):
            x, y = _slot(index)
            qr = Image.open(io.BytesIO(_qr_png(label.url, 12))).convert("RGB")
            qr = qr.resize((px(QR_MM), px(QR_MM)), Image.Resampling.NEAREST)
            sheet.paste(qr, (px(x + 2), px(y + (LABEL_H - QR_MM) / 2)))
            text_x = px(x + QR_MM + 4)
            draw.text((text_x, px(y + 5)), "IMEI", fill="black", font=small)
            draw.text((text_x, px(y + 8.5)), label.imei, fill="black", font=bold)
            draw.text((text_x, px(y + 15)), "Claim key", fill="black", font=small)
            draw.text((text_x, px(y + 18.5)), format_claim_key(label.claim_key), fill="black",
                      font=bold)
            draw.text((text_x, px(y + 26)), "Scan to activate.", fill="black", font=small)
        number = first // per_sheet + 1
        out = path if number == 1 else path.with_name(f"{path.stem}-{number}{path.suffix}")
        sheet.save(out, dpi=(PNG_DPI, PNG_DPI))
        written.append(out)
    return written


def write_labels(labels: list[Label], path: Path) -> list[Path]:
    """Write the sheet(s) as PDF or PNG, told by the file name; returns the files written."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return write_pdf(labels, path)
    if suffix == ".png":
        return write_png(labels, path)
    raise LabelError(f"--out {path.name}: name a .pdf or .png file")
