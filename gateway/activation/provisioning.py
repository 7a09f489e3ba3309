"""What dealers, installers and admins do: register a device's contact of record and claim key
(one by one or from a CSV file), and unlock a locked device."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from gateway.activation import csv_text
from gateway.activation.claim_keys import claim_key_hmac, new_claim_key, normalize_claim_key
from gateway.activation.contacts import InvalidInput, check_imei, normalize_contact
from gateway.activation.engine import CodeEngine, utcnow
from gateway.store import audit, claiming, counters

#: The value of `claim_key` that asks for a new random key (returned once, never stored).
GENERATE = "generate"


@dataclass(frozen=True, slots=True)
class Provisioned:
    imei: str
    #: The contact of record as stored (normalised), or None when none was given.
    contact: str | None
    #: A key generated for this call: shown once, only its HMAC is kept.
    generated_claim_key: str | None
    #: A claim key was given or generated in this call.
    claim_key_set: bool


@dataclass(frozen=True, slots=True)
class CsvError:
    line: int
    detail: str


@dataclass(slots=True)
class CsvResult:
    provisioned: int = 0
    errors: list[CsvError] = field(default_factory=list)


class Provisioning:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def provision(
        self, imei: str, contact: str | None = None, claim_key: str | None = None,
        by: str = "admin", wire_id: str | None = None,
    ) -> Provisioned:
        """Register the contact of record and/or the claim key of `imei` (a dealer's sale, a
        vendor's label). `claim_key="generate"` makes a new random key, returned once.
        `wire_id`: the id the device names itself by on the wire when it is not its IMEI and
        its login does not report the IMEI (a JT/T 808 terminal phone): claims by the IMEI
        then find it."""
        imei = check_imei(imei)
        wire_id = wire_id.strip() if wire_id and wire_id.strip() else None
        if wire_id is not None and not (wire_id.isascii() and wire_id.isalnum()
                                        and len(wire_id) <= 15):
            raise InvalidInput("wire_id", "the id the device sends: up to 15 letters and "
                               "digits (a JT/T 808 unit's terminal phone, for instance)")
        contact = normalize_contact(contact) if contact and contact.strip() else None
        generated = None
        key = None
        if claim_key is not None and claim_key.strip():
            if claim_key.strip().lower() == GENERATE:
                key = generated = new_claim_key()
            else:
                key = normalize_claim_key(claim_key)
        if contact is None and key is None and wire_id is None:
            raise InvalidInput("contact", "give a contact of record, a claim key, or both "
                               "(claim_key \"generate\" makes a random one)")
        async with self.db.begin() as conn:
            await claiming.provision(
                conn, imei, contact=contact,
                claim_key_hmac=claim_key_hmac(self.engine.key, imei, key) if key else None,
                now=utcnow(), wire_id=wire_id)
            await audit.record(conn, "provision", "ok", imei=imei,
                               detail={"by": by, "contact": contact is not None,
                                       "claim_key": key is not None, "wire_id": wire_id})
        return Provisioned(imei, contact, generated, key is not None)

    async def unlock(self, imei: str, by: str = "admin") -> bool:
        """Let a locked device be claimed again now; False when it was not locked."""
        imei = check_imei(imei)
        now = utcnow()
        async with self.db.begin() as conn:
            was_locked = await claiming.end_lock(conn, imei, now)
            await counters.reset(conn, "device", imei)
            await audit.record(conn, "unlock", "ok" if was_locked else "not_locked", imei=imei,
                               detail={"by": by})
        return was_locked

    async def import_csv(self, text: str, by: str = "admin") -> CsvResult:
        """Provision each row of `imei,contact[,claim_key]` (separated by `,`, `;` or tab).

        A first row naming the columns (`imei`, `contact`, `claim_key`, in any order, in any
        case) is a header; without one the columns are imei, contact and, optionally, claim_key.
        """
        result = CsvResult()
        columns = {"imei": 0, "contact": 1, "claim_key": 2}
        first = True
        for number, cells in csv_text.rows(text):
            if first:
                first = False
                names = [c.lower() for c in cells]
                if "imei" in names:
                    unknown = [n for n in names if n and n not in columns]
                    if unknown:
                        result.errors.append(CsvError(number, f"unknown column {unknown[0]!r}: "
                                                      "use imei, contact and claim_key"))
                        return result
                    columns = {name: names.index(name) for name in columns if name in names}
                    continue

            def cell(name: str, cells: list[str] = cells,
                     columns: dict[str, int] = columns) -> str | None:
                index = columns.get(name)
                return cells[index] if index is not None and index < len(cells) else None

            if len(cells) < 2:
                result.errors.append(CsvError(number, "expected imei,contact[,claim_key]"))
                continue
            if (cell("claim_key") or "").lower() == GENERATE:
                result.errors.append(CsvError(number, "claim_key: a CSV file carries the keys "
                                              "printed on the labels; generate them first"))
                continue
            imei = cell("imei") or ""
            if _SPREADSHEET_NUMBER.fullmatch(imei):
                result.errors.append(CsvError(number, f"imei: {imei!r} is the IMEI turned into "
                                              "a number by the spreadsheet: format the IMEI "
                                              "column as text and export the file again"))
                continue
            try:
                await self.provision(imei, cell("contact"), cell("claim_key"), by=by)
            except InvalidInput as exc:
                result.errors.append(CsvError(number, f"{exc.field}: {exc.message}"))
                continue
            result.provisioned += 1
        return result


#: How a spreadsheet shows a 15-digit number it took for a quantity: 3.56938E+14.
_SPREADSHEET_NUMBER = re.compile(r"\d[.,]\d*E\+\d+", re.IGNORECASE)
