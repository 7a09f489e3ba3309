"""A fresh code, or the owner's authenticator app, confirming something an owner does to their
own device: a release (rules 13, 19), an engine stop or resume. One code engine for all: the
same caps, attempts, audit and delivery as every other code."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Row

from gateway.activation.contacts import InvalidInput
from gateway.activation.engine import (
    OWNER_PURPOSES,
    CodeEngine,
    Failure,
    OwnerInfo,
    Started,
    utcnow,
)
from gateway.store import claiming


def device_key(value: str) -> str:
    """A device as an owner names it: its IMEI, or the shorter id it names itself by on the
    wire (12 digits and more)."""
    if not (12 <= len(value) <= 15 and value.isascii() and value.isdigit()):
        raise InvalidInput("imei", "name the device by its 15-digit IMEI")
    return value


class OwnerConfirmation:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def start(
        self, owner: OwnerInfo, imei: str, purpose: str, client_addr: str | None,
        method: str = "code",
    ) -> Started:
        """Ask for a fresh code (or a TOTP code) confirming `purpose` on the owner's device;
        LookupError when the device is not theirs now."""
        assert purpose in OWNER_PURPOSES, purpose
        imei = device_key(imei)
        if method not in ("code", "totp"):
            raise InvalidInput("method", "method must be 'code' or 'totp'")
        if method == "totp" and not owner.totp_enabled:
            raise InvalidInput("method", "enrol an authenticator app on your account page "
                               "first, or confirm with a code sent to you")
        now = utcnow()
        engine = self.engine
        async with self.db.begin() as conn:
            await engine.rate_limit_start(conn, client_addr, now)
            if await claiming.owners_binding(conn, imei, owner.id) is None:
                raise LookupError(imei)
            started, code = await engine.open(
                conn, purpose=purpose, imei=imei, deliver_to=owner.contact,
                claimant=owner.contact, proof="totp" if method == "totp" else "owner",
                decoy=None, client_addr=client_addr, now=now, owner_id=owner.id)
        engine.send_code(started.challenge_id, owner.contact, purpose, imei, code, decoy=False)
        return started

    async def check(
        self, owner: OwnerInfo, imei: str, purpose: str, challenge_id: str, token: str,
        code: str, client_addr: str | None,
    ) -> Row[Any]:
        """The challenge when `code` is right for this owner, device and purpose, else Failure.
        The caller approves it (`CodeEngine.approve`) in the transaction that does the work,
        so that a code is used up exactly when its action is done."""
        imei = device_key(imei)
        row = await self.engine.check(challenge_id, token, code, client_addr, purpose)
        if row.imei != imei or row.claimant != owner.contact:
            raise Failure("challenge is for another device or owner")
        return row
