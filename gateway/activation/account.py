"""An owner's account: web sessions and the authenticator app (TOTP), whose secret is stored
sealed (rule 30) and whose codes work once (rule 26)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.activation.codes import is_code_format, token_hash
from gateway.activation.engine import CodeEngine, Failure, OwnerInfo, utcnow
from gateway.activation.sealed import PREFIX, is_sealed
from gateway.activation.totp import enrolment_uri, matching_step, new_secret
from gateway.store import accounts, audit, counters

log = logging.getLogger("gateway.activation")


class AccountFlow:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def owner_for_session(self, token: str | None) -> OwnerInfo | None:
        if not token:
            return None
        row = await accounts.session_owner(self.db, token_hash(token), utcnow())
        if row is None:
            return None
        return OwnerInfo(row.id, row.contact, row.totp_secret is not None)

    async def end_session(self, token: str) -> None:
        await accounts.end_session(self.db, token_hash(token))

    async def totp_begin(
        self, owner: OwnerInfo, code: str | None = None, client_addr: str | None = None
    ) -> str:
        """A new secret to show as a QR code; active once `totp_confirm` gets a right code.

        Replacing an app that is on takes a current code from it (`Failure` without one): a
        session alone (a borrowed or stolen browser) must not move the account's second
        factor to another phone."""
        if owner.totp_enabled:
            async with self.db.begin() as conn:  # committed either way: failures count
                proven = await self._app_code_ok(conn, owner, code, client_addr, "totp_replace")
            if not proven:
                raise Failure("the app is on: a current code from it is needed")
        secret = new_secret()
        async with self.db.begin() as conn:
            await accounts.set_pending_totp(conn, owner.id,
                                            self.engine.sealer.seal(secret, owner.id))
        return enrolment_uri(secret, owner.contact)

    async def totp_confirm(self, owner: OwnerInfo, code: str, client_addr: str | None) -> bool:
        if not is_code_format(code):
            return False
        async with self.db.begin() as conn:
            pending = await accounts.pending_totp(conn, owner.id)
            secret = self.engine.sealer.open(pending, owner.id) if pending is not None else None
            step = matching_step(secret, code, utcnow()) if secret is not None else None
            if step is not None and pending is not None:
                # The confirming code's step counts as used (rule 26).
                await accounts.enable_totp(conn, owner.id, pending, step)
            await audit.record(conn, "totp_enrol", "ok" if step is not None else "wrong_code",
                               owner_id=owner.id, client_addr=client_addr)
        if step is not None:
            self.engine.notify(owner.contact, "totp_on_notice", None)
        return step is not None

    async def totp_disable(self, owner: OwnerInfo, code: str | None,
                           client_addr: str | None) -> bool:
        """Turn the app off, with a current code from it (False, and nothing changes, without)."""
        async with self.db.begin() as conn:
            if not await self._app_code_ok(conn, owner, code, client_addr, "totp_disable"):
                return False
            await accounts.disable_totp(conn, owner.id)
            await audit.record(conn, "totp_disable", "ok", owner_id=owner.id,
                               client_addr=client_addr)
        self.engine.notify(owner.contact, "totp_off_notice", None)
        return True

    async def _app_code_ok(self, conn: AsyncConnection, owner: OwnerInfo, code: str | None,
                           client_addr: str | None, action: str) -> bool:
        """`code` is a current code of the owner's app, not used before (rule 26). Wrong codes
        count with the sign-in ones toward `activation.totp_lock_failures`."""
        now = utcnow()
        if not owner.totp_enabled:
            return False
        if await counters.current(conn, "totp", owner.contact, now, None) >= \
                self.engine.settings.totp_lock_failures:
            await audit.record(conn, action, "capped", owner_id=owner.id, client_addr=client_addr)
            return False
        if code is None or not is_code_format(code) or not await self.engine.accept_app_code(
                conn, owner.contact, code, now):
            await counters.bump(conn, "totp", owner.contact, now, None)
            await audit.record(conn, action, "wrong_code", owner_id=owner.id,
                               client_addr=client_addr)
            return False
        await counters.reset(conn, "totp", owner.contact)
        return True

    async def seal_clear_secrets(self) -> int:
        """Encrypt TOTP secrets stored in clear by a gateway before migration 0003."""
        async with self.db.begin() as conn:
            rows = await accounts.secrets_to_seal(conn, PREFIX)
            for row in rows:
                secret, pending = row.totp_secret, row.totp_pending_secret
                await accounts.store_sealed(
                    conn, row.id,
                    secret if secret is None or is_sealed(secret)
                    else self.engine.sealer.seal(secret, row.id),
                    pending if pending is None or is_sealed(pending)
                    else self.engine.sealer.seal(pending, row.id))
        if rows:
            log.info("sealed TOTP secrets stored in clear", extra={"owners": len(rows)})
        return len(rows)
