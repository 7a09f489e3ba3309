"""Provisioning many devices at once from a CSV file (`imei,contact`)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from gateway.activation.contacts import InvalidInput
from gateway.activation.service import ActivationService


@dataclass(frozen=True, slots=True)
class CsvError:
    line: int
    detail: str


@dataclass(slots=True)
class CsvResult:
    provisioned: int = 0
    errors: list[CsvError] = field(default_factory=list)


async def import_csv(activation: ActivationService, text: str, by: str = "admin") -> CsvResult:
    """Provision each `imei,contact` row; a first row of `imei,contact` is taken as a header."""
    result = CsvResult()
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and cells[:1] == ["imei"]):
            continue
        if len(cells) < 2:
            result.errors.append(CsvError(number, "expected two columns: imei,contact"))
            continue
        try:
            await activation.provision(cells[0], cells[1], by=by)
        except InvalidInput as exc:
            result.errors.append(CsvError(number, f"{exc.field}: {exc.message}"))
            continue
        result.provisioned += 1
    return result
