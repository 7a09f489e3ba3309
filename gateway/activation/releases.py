"""Releasing one's own device, confirmed by a fresh code or the authenticator app (rule 13, 19)."""

from __future__ import annotations

from gateway.activation.confirm import OwnerConfirmation, device_key
from gateway.activation.engine import CodeEngine, Failure, OwnerInfo, Started, utcnow
from gateway.store import audit, claiming


class ReleaseFlow:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db
        self.confirmation = OwnerConfirmation(engine)

    async def start(
        self, owner: OwnerInfo, imei: str, client_addr: str | None, method: str = "code"
    ) -> Started:
        """Ask for a fresh code (or a TOTP code) to confirm releasing one's own device;
        LookupError when it is not theirs."""
        return await self.confirmation.start(owner, imei, "release", client_addr, method)

    async def confirm(
        self, owner: OwnerInfo, imei: str, challenge_id: str, token: str, code: str,
        client_addr: str | None,
    ) -> None:
        """End the owner's binding of `imei`; the device is unclaimed again, history stays."""
        imei = device_key(imei)
        engine = self.engine
        row = await self.confirmation.check(owner, imei, "release", challenge_id, token, code,
                                            client_addr)
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
