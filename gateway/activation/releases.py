"""Releasing one's own device, confirmed by a fresh code or the authenticator app (rule 13, 19)."""

from __future__ import annotations

from gateway.activation.contacts import InvalidInput
from gateway.activation.engine import CodeEngine, Failure, OwnerInfo, Started, utcnow
from gateway.store import audit, claiming


def device_key(value: str) -> str:
    """A device as an owner names it: its IMEI, or the shorter id it names itself by on the
    wire (12 digits and more)."""
    if not (12 <= len(value) <= 15 and value.isascii() and value.isdigit()):
        raise InvalidInput("imei", "name the device by its 15-digit IMEI")
    return value


class ReleaseFlow:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def start(
        self, owner: OwnerInfo, imei: str, client_addr: str | None, method: str = "code"
    ) -> Started:
        """Ask for a fresh code (or a TOTP code) to confirm releasing one's own device;
        LookupError when it is not theirs."""
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
                conn, purpose="release", imei=imei, deliver_to=owner.contact,
                claimant=owner.contact, proof="totp" if method == "totp" else "owner",
                decoy=None, client_addr=client_addr, now=now, owner_id=owner.id)
        engine.send_code(started.challenge_id, owner.contact, "release", imei, code, decoy=False)
        return started

    async def confirm(
        self, owner: OwnerInfo, imei: str, challenge_id: str, token: str, code: str,
        client_addr: str | None,
    ) -> None:
        """End the owner's binding of `imei`; the device is unclaimed again, history stays."""
        imei = device_key(imei)
        engine = self.engine
        row = await engine.check(challenge_id, token, code, client_addr, "release")
        if row.imei != imei or row.claimant != owner.contact:
            raise Failure("challenge is for another device or owner")
        now = utcnow()
        async with self.db.begin() as conn:
            await engine.approve(conn, row)
            binding = await claiming.owners_binding(conn, imei, owner.id)
            if binding is None:
                raise Failure("not the owner's device")
            if not await claiming.release(conn, binding, now):
                raise Failure("binding changed meanwhile")
            await audit.record(conn, "release", "ok", imei=imei, owner_id=owner.id,
                               challenge_id=challenge_id, client_addr=client_addr)
            record = (await claiming.provisioning(conn, imei, None)).contact
        engine.notify(owner.contact, "released_notice", imei, challenge_id=challenge_id)
        if record and record != owner.contact:
            engine.notify(record, "released_notice", imei, challenge_id=challenge_id)
