"""Signing in an owner by a code sent to their contact, or by their authenticator app.

Unknown contacts (and owners without an app, for `totp`) get the same answer: a decoy that can
never succeed (rule 12).
"""

from __future__ import annotations

from gateway.activation.codes import is_known_browser, known_browser_mark
from gateway.activation.contacts import InvalidInput, normalize_contact
from gateway.activation.engine import CodeEngine, Failure, SignedIn, Started, utcnow
from gateway.store import accounts, audit


class SignInFlow:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db

    async def start(self, contact: str, client_addr: str | None, method: str = "code",
                    known_mark: str | None = None) -> Started:
        """`known_mark`: the `gw_known` cookie of the browser, if any. A browser that signed
        in as this contact before has its codes counted apart from the ones anybody can ask
        for the contact, so that strangers filling the contact's caps do not lock its owner
        out (rule 25); the answer is the same either way."""
        contact = normalize_contact(contact)
        if method not in ("code", "totp"):
            raise InvalidInput("method", "method must be 'code' or 'totp'")
        now = utcnow()
        engine = self.engine
        async with self.db.begin() as conn:
            await engine.rate_limit_start(conn, client_addr, now)
            owner = await accounts.owner_by_contact(conn, contact)
            unknown = owner is None or (method == "totp" and not owner.totp_secret)
            known = not unknown and is_known_browser(engine.key, contact, known_mark)
            started, code = await engine.open(
                conn, purpose="sign_in", imei=None, deliver_to=contact, claimant=contact,
                proof="totp" if method == "totp" else "owner_known" if known else "owner",
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

    def known_mark(self, contact: str) -> str:
        """The `gw_known` cookie value for a browser that just signed in as `contact`."""
        return known_browser_mark(self.engine.key, contact)
