"""Signing in an owner by a code sent to their contact, or by their authenticator app.

Unknown contacts (and owners without an app, for `totp`) get the same answer: a decoy that can
never succeed (rule 12).
"""

from __future__ import annotations

from gateway.activation.contacts import InvalidInput, normalize_contact
from gateway.activation.engine import CodeEngine, Failure, SignedIn, Started, utcnow
from gateway.store import accounts, audit


class SignInFlow:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def start(self, contact: str, client_addr: str | None, method: str = "code") -> Started:
        contact = normalize_contact(contact)
        if method not in ("code", "totp"):
            raise InvalidInput("method", "method must be 'code' or 'totp'")
        now = utcnow()
        engine = self.engine
        async with self.db.begin() as conn:
            await engine.rate_limit_start(conn, client_addr, now)
            owner = await accounts.owner_by_contact(conn, contact)
            unknown = owner is None or (method == "totp" and not owner.totp_secret)
            started, code = await engine.open(
                conn, purpose="sign_in", imei=None, deliver_to=contact, claimant=contact,
                proof="totp" if method == "totp" else "owner",
                decoy="unknown_account" if unknown else None, client_addr=client_addr, now=now,
                owner_id=owner.id if owner is not None else None)
        engine.send_code(started.challenge_id, contact, "sign_in", None, code, decoy=unknown)
        return started

    async def verify(
        self, challenge_id: str, token: str, code: str, client_addr: str | None
    ) -> SignedIn:
        engine = self.engine
        row = await engine.check(challenge_id, token, code, client_addr, "sign_in")
        now = utcnow()
        async with self.db.begin() as conn:
            await engine.approve(conn, row)
            owner = await accounts.owner_by_contact(conn, row.claimant)
            if owner is None:
                raise Failure("no such owner")
            session = await engine.new_session(conn, owner.id, now)
            await audit.record(conn, "sign_in", "ok", owner_id=owner.id,
                               challenge_id=challenge_id, client_addr=client_addr)
        return SignedIn(owner.id, row.claimant, session[0], session[1])
