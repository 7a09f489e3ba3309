"""The activation engine: claims, sign-ins and releases by one-time code.

How it meets the rules of docs/activation-rules.md: docs/activation.md.

Every flow is a row of `challenges`. What makes it safe:

* the code goes to the device's contact of record, or to the claimant only after the device's
  own SOS frame arrived within the window (proof of possession);
* the code is stored only as HMAC(server key, challenge id + code) and compared in constant
  time, after the attempt was counted by one conditional UPDATE (so concurrent guesses cannot
  exceed the attempt limit);
* a claim answers alike whatever the device's state: owned, locked and unknown-account flows
  are *decoys* that behave like the others but never send a code nor succeed;
* the claim itself is one conditional UPDATE of the device row, so two valid claims cannot
  both win.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.activation import audit, counters
from gateway.activation.codes import (
    code_hmac,
    codes_match,
    is_code_format,
    new_code,
    new_id,
    new_token,
    token_hash,
)
from gateway.activation.contacts import InvalidInput, check_imei, mask_contact, normalize_contact
from gateway.config import ActivationSettings, NotifySettings
from gateway.notify import Message, Notifier, deliver
from gateway.store.database import Database
from gateway.store.models import (
    Binding,
    Challenge,
    Device,
    DeviceState,
    Owner,
    ProvisionedDevice,
    WebSession,
)

log = logging.getLogger("gateway.activation")

__all__ = ["ActivationService", "Failure", "InvalidInput", "RateLimited"]

# Challenge states (rule 20).
AWAITING = "awaiting_device_signal"
PENDING = "pending"
APPROVED = "approved"
EXPIRED = "expired"
MAX_ATTEMPTS = "max_attempts_reached"
CANCELED = "canceled"
STATUSES = (AWAITING, PENDING, APPROVED, EXPIRED, MAX_ATTEMPTS, CANCELED)

_C = Challenge.__table__
_D = Device.__table__
_B = Binding.__table__
_O = Owner.__table__
_S = WebSession.__table__
_P = ProvisionedDevice.__table__


class Failure(Exception):
    """A check failed. The client is told nothing more (generic 400); `reason` is for logs."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(Exception):
    """Too many requests; retry after `retry_after` seconds (429 with Retry-After)."""

    def __init__(self, retry_after: int, message: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)
        self.message = message


@dataclass(frozen=True, slots=True)
class Started:
    """What a client gets when it starts a flow: its id and its own secret token."""

    challenge_id: str
    token: str
    status: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ChallengeView:
    """What a client may see of its challenge."""

    challenge_id: str
    purpose: str
    status: str
    expires_at: datetime
    hint: str
    attempts_left: int
    delivery: str | None
    imei: str | None


@dataclass(frozen=True, slots=True)
class SignedIn:
    """An owner signed in: the session cookie value and, after a claim, the device."""

    owner_id: int
    contact: str
    session_token: str
    session_expires_at: datetime
    imei: str | None = None


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    id: int
    contact: str
    totp_enabled: bool


def utcnow() -> datetime:
    return datetime.now(UTC)


class ActivationService:
    """One per gateway; safe for concurrent requests (all state is in the database)."""

    def __init__(
        self,
        db: Database,
        settings: ActivationSettings,
        notify_settings: NotifySettings,
        notifier: Notifier,
        server_key: bytes,
        on_comparison: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notify_settings = notify_settings
        self.notifier = notifier
        self.key = server_key
        #: Code comparisons made (rule 5's test reads it; also exported as a metric).
        self.comparisons = 0
        self._on_comparison = on_comparison
        self._tasks: set[asyncio.Task[None]] = set()

    # Claims ------------------------------------------------------------------------------------

    async def start_claim(self, imei: str, contact: str, client_addr: str | None) -> Started:
        """Open a claim for `imei` on behalf of `contact` (rules 12, 13, 16).

        Answers the same way whether the device is unknown, unclaimed, owned or locked; only an
        unclaimed (or not yet seen) device can ever be claimed.
        """
        imei = check_imei(imei)
        claimant = normalize_contact(contact)
        now = utcnow()
        await self._rate_limit_start(client_addr, now)
        s = self.settings
        async with self.db.begin() as conn:
            device = await _resolve_device(conn, imei)
            record = await _contact_of_record(conn, imei, device)
            locked = await self._is_locked(conn, imei, device, now)
            owned = device is not None and (
                device.current_binding_id is not None or device.state == DeviceState.CLAIMED)
            proof = self._proof(record)
            decoy_reason = "locked" if locked else "owned" if owned else None
            if proof == "contact_of_record":
                deliver_to = record or ""
                if not record:
                    decoy_reason = decoy_reason or "no_contact_of_record"
            else:
                deliver_to = claimant
            challenge_id, token = new_id(), new_token()
            code: str | None = None
            if proof == "device_signal":
                status, expires = AWAITING, now + timedelta(seconds=s.signal_window_s)
                stored_hmac = None
            else:
                status, expires = PENDING, now + timedelta(seconds=s.code_ttl_s)
                code = new_code(s.code_digits)
                stored_hmac = code_hmac(self.key, challenge_id, code)
            await conn.execute(insert(_C).values(
                id=challenge_id, purpose="activation", imei=imei, deliver_to=deliver_to,
                claimant=claimant, proof=proof, decoy=decoy_reason is not None,
                token_hash=token_hash(token), code_hmac=stored_hmac, status=status, attempts=0,
                max_attempts=s.max_attempts, sends=1 if code else 0,
                sends_window_start=now if code else None, last_sent_at=now if code else None,
                created_at=now, expires_at=expires, client_addr=client_addr,
                delivery="sending" if code else None, delivery_error=None))
            await audit.record(conn, "start", "ok", imei=imei, challenge_id=challenge_id,
                               client_addr=client_addr,
                               detail={"purpose": "activation", "proof": proof,
                                       "decoy": decoy_reason})
        if code is not None:
            self._send(challenge_id, deliver_to, "activation", imei, code,
                       decoy=decoy_reason is not None)
        return Started(challenge_id, token, status, expires)

    def _proof(self, record: str | None) -> str:
        mode = self.settings.proof
        if mode == "auto":
            return "contact_of_record" if record else "device_signal"
        return mode

    async def _is_locked(
        self, conn: AsyncConnection, imei: str, device: Row[Any] | None, now: datetime
    ) -> bool:
        if device is not None and device.state == DeviceState.LOCKED:
            return True
        failures = await counters.current(conn, "device", imei, now, None)
        return failures >= self.settings.device_lock_failures

    async def device_signal(self, device_id: str, protocol: str, at: datetime) -> None:
        """The device's own SOS frame was stored: send the code of the claim waiting for it.

        Called by the transports (through `Gateway.on_stored`) only after the frame committed.
        The frame must have arrived inside the claim's window. When several claims wait for the
        same device, the press cannot tell whose it is: all of them are canceled.
        """
        now = utcnow()
        match = _C.c.imei == device_id
        if protocol == "tk103" and len(device_id) == 12:
            # A fixed-layout tk103 unit sends the last 12 digits of its IMEI as its id.
            match = or_(match, func.substr(_C.c.imei, 4) == device_id)
        s = self.settings
        sends: list[tuple[str, str, str, str, bool]] = []
        async with self.db.begin() as conn:
            waiting = (await conn.execute(
                select(_C.c.id, _C.c.imei, _C.c.deliver_to, _C.c.decoy).where(
                    _C.c.purpose == "activation", _C.c.status == AWAITING, match,
                    _C.c.created_at <= at, _C.c.expires_at > now)
            )).all()
            if not waiting:
                return
            if len(waiting) > 1:
                ids = [row.id for row in waiting]
                await conn.execute(update(_C).where(_C.c.id.in_(ids), _C.c.status == AWAITING)
                                   .values(status=CANCELED))
                for row in waiting:
                    await audit.record(conn, "signal", "ambiguous", imei=row.imei,
                                       challenge_id=row.id, detail={"waiting": len(ids)})
                log.warning("activation alert: several claims waited for one device signal; "
                            "all canceled", extra={"device": device_id, "claims": len(ids)})
                return
            row = waiting[0]
            device = await _resolve_device(conn, row.imei)
            decoy = bool(row.decoy) or (device is not None and (
                device.current_binding_id is not None or device.state != DeviceState.UNCLAIMED))
            code = new_code(s.code_digits)
            result = await conn.execute(update(_C).where(
                _C.c.id == row.id, _C.c.status == AWAITING).values(
                status=PENDING, code_hmac=code_hmac(self.key, row.id, code), decoy=decoy,
                expires_at=now + timedelta(seconds=s.code_ttl_s), sends=1,
                sends_window_start=now, last_sent_at=now, delivery="sending"))
            if result.rowcount != 1:
                return
            await audit.record(conn, "signal", "ok", imei=row.imei, challenge_id=row.id,
                               detail={"protocol": protocol})
            sends.append((row.id, row.deliver_to, row.imei, code, decoy))
        for challenge_id, to, imei, code, decoy in sends:
            self._send(challenge_id, to, "activation", imei, code, decoy=decoy)

    async def verify_claim(
        self, challenge_id: str, token: str, code: str, client_addr: str | None
    ) -> SignedIn:
        """Check the code; on success bind the device to the claimant and sign them in."""
        challenge = await self._check(challenge_id, token, code, client_addr, "activation")
        now = utcnow()
        imei = challenge.imei
        assert imei is not None
        try:
            async with self.db.begin() as conn:
                await self._approve(conn, challenge)
                device = await _resolve_device(conn, imei)
                if device is None:
                    # Provisioned but never connected: register it now, so that its first
                    # positions are already stored under the new binding.
                    device_id = await conn.scalar(insert(_D).values(
                        imei=imei, protocol="unknown", state=DeviceState.UNCLAIMED,
                        first_seen=now, last_seen=now, frame_seq=0).returning(_D.c.id))
                else:
                    device_id = device.id
                owner_id = await _owner_id(conn, challenge.claimant, now)
                binding_id = await conn.scalar(insert(_B).values(
                    device_id=device_id, owner_id=owner_id, started_at=now).returning(_B.c.id))
                # The claim (rule 14): only a device that nobody holds changes hands.
                claimed = await conn.execute(update(_D).where(
                    _D.c.id == device_id, _D.c.current_binding_id.is_(None),
                    _D.c.state == DeviceState.UNCLAIMED.value,
                ).values(state=DeviceState.CLAIMED.value, current_binding_id=binding_id))
                if claimed.rowcount != 1:
                    raise _LostRace()
                await counters.reset(conn, "device", imei)
                session = await self._new_session(conn, owner_id, now)
                await audit.record(conn, "claim", "ok", imei=imei, owner_id=owner_id,
                                   challenge_id=challenge_id, client_addr=client_addr)
                record = await _contact_of_record(conn, imei, device)
        except (_LostRace, IntegrityError):
            async with self.db.begin() as conn:
                await conn.execute(update(_C).where(_C.c.id == challenge_id)
                                   .values(status=CANCELED))
                await audit.record(conn, "claim", "lost_race", imei=imei,
                                   challenge_id=challenge_id, client_addr=client_addr)
            raise Failure("device already claimed") from None
        # Rule 18: the contact of record (or, without one, the new owner) hears of it.
        self._send(challenge_id, record or challenge.claimant, "claimed_notice", imei, None)
        return SignedIn(owner_id, challenge.claimant, session[0], session[1], imei)

    # Sign-in -----------------------------------------------------------------------------------

    async def start_sign_in(
        self, contact: str, client_addr: str | None, method: str = "code"
    ) -> Started:
        """A sign-in by a code sent to `contact` or, with method `totp`, by the owner's app.

        Unknown contacts get the same answer (a decoy that can never succeed).
        """
        contact = normalize_contact(contact)
        if method not in ("code", "totp"):
            raise InvalidInput("method", "method must be 'code' or 'totp'")
        now = utcnow()
        await self._rate_limit_start(client_addr, now)
        async with self.db.begin() as conn:
            owner = (await conn.execute(
                select(_O.c.id, _O.c.totp_secret).where(_O.c.contact == contact))).first()
            decoy = owner is None or (method == "totp" and not owner.totp_secret)
            started, code = await self._open(conn, "sign_in", None, contact, contact,
                                             "totp" if method == "totp" else "owner",
                                             decoy, client_addr, now,
                                             owner.id if owner else None)
        if code is not None:
            self._send(started.challenge_id, contact, "sign_in", None, code, decoy=decoy)
        return started

    async def verify_sign_in(
        self, challenge_id: str, token: str, code: str, client_addr: str | None
    ) -> SignedIn:
        challenge = await self._check(challenge_id, token, code, client_addr, "sign_in")
        now = utcnow()
        async with self.db.begin() as conn:
            await self._approve(conn, challenge)
            owner_id = await conn.scalar(select(_O.c.id).where(_O.c.contact == challenge.claimant))
            if owner_id is None:
                raise Failure("no such owner")
            session = await self._new_session(conn, owner_id, now)
            await audit.record(conn, "sign_in", "ok", owner_id=owner_id,
                               challenge_id=challenge_id, client_addr=client_addr)
        return SignedIn(owner_id, challenge.claimant, session[0], session[1])

    # Release -----------------------------------------------------------------------------------

    async def start_release(
        self, owner: OwnerInfo, imei: str, client_addr: str | None, method: str = "code"
    ) -> Started:
        """Ask for a fresh code (or a TOTP code) to confirm releasing one's own device."""
        imei = _device_key(imei)
        if method not in ("code", "totp"):
            raise InvalidInput("method", "method must be 'code' or 'totp'")
        if method == "totp" and not owner.totp_enabled:
            raise InvalidInput("method", "enrol an authenticator app on your account page "
                               "first, or confirm with a code sent to you")
        now = utcnow()
        await self._rate_limit_start(client_addr, now)
        async with self.db.begin() as conn:
            if await _open_binding(conn, imei, owner.id) is None:
                raise LookupError(imei)
            started, code = await self._open(conn, "release", imei, owner.contact,
                                             owner.contact,
                                             "totp" if method == "totp" else "owner", False,
                                             client_addr, now, owner.id)
        if code is not None:
            self._send(started.challenge_id, owner.contact, "release", imei, code)
        return started

    async def release(
        self, owner: OwnerInfo, imei: str, challenge_id: str, token: str, code: str,
        client_addr: str | None,
    ) -> None:
        """End the owner's binding of `imei`; the device is unclaimed again, history stays."""
        imei = _device_key(imei)
        challenge = await self._check(challenge_id, token, code, client_addr, "release")
        if challenge.imei != imei or challenge.claimant != owner.contact:
            raise Failure("challenge is for another device or owner")
        now = utcnow()
        async with self.db.begin() as conn:
            await self._approve(conn, challenge)
            binding = await _open_binding(conn, imei, owner.id)
            if binding is None:
                raise Failure("not the owner's device")
            await conn.execute(update(_B).where(_B.c.id == binding.binding_id,
                                                _B.c.ended_at.is_(None)).values(ended_at=now))
            released = await conn.execute(update(_D).where(
                _D.c.id == binding.device_id, _D.c.current_binding_id == binding.binding_id,
            ).values(state=DeviceState.UNCLAIMED.value, current_binding_id=None))
            if released.rowcount != 1:
                raise Failure("binding changed meanwhile")
            await audit.record(conn, "release", "ok", imei=imei, owner_id=owner.id,
                               challenge_id=challenge_id, client_addr=client_addr)
            record = await _contact_of_record(conn, imei, None)
        self._send(challenge_id, owner.contact, "released_notice", imei, None)
        if record and record != owner.contact:
            self._send(challenge_id, record, "released_notice", imei, None)

    # Common to every flow ----------------------------------------------------------------------

    async def status(self, challenge_id: str, token: str) -> ChallengeView:
        """The challenge as its client sees it (expired ones are marked so on the way)."""
        row = await self._load(challenge_id, token)
        status = row.status
        now = utcnow()
        if status in (AWAITING, PENDING) and row.expires_at <= now:
            async with self.db.begin() as conn:
                await conn.execute(update(_C).where(_C.c.id == row.id, _C.c.status == status)
                                   .values(status=EXPIRED))
            status = EXPIRED
        return ChallengeView(
            challenge_id=row.id, purpose=row.purpose, status=status, expires_at=row.expires_at,
            hint=self._hint(row, status), attempts_left=max(row.max_attempts - row.attempts, 0),
            # A decoy shows what a real send would show.
            delivery="sent" if row.decoy and row.delivery else row.delivery, imei=row.imei)

    def _hint(self, row: Row[Any], status: str) -> str:
        minutes = max(1, round(self.settings.signal_window_s / 60))
        if status == AWAITING:
            return (f"Press the SOS button on the tracker within {minutes} min; the code is "
                    "sent to you as soon as the tracker's signal arrives.")
        if status == PENDING:
            if row.proof == "totp":
                return "Enter the 6-digit code shown by your authenticator app."
            if not row.deliver_to:
                return ("No contact is registered for this device: ask your dealer or "
                        "installer to register it, then start again.")
            where = mask_contact(row.deliver_to)
            if row.delivery == "failed" and not row.decoy:
                return (f"We could not deliver the code to {where}. Ask for a new code in a "
                        "minute; if it keeps failing, contact the administrator.")
            return f"Code sent to {where}."
        return {
            APPROVED: "Done: this code was used.",
            EXPIRED: "This request expired: start again.",
            MAX_ATTEMPTS: "Too many wrong codes: start again.",
            CANCELED: "This request was canceled: start again.",
        }.get(status, "")

    async def resend(self, challenge_id: str, token: str, client_addr: str | None) -> Started:
        """A new code, the old one dead, the attempt count kept (rule 6)."""
        row = await self._load(challenge_id, token)
        now = utcnow()
        s = self.settings
        if row.status != PENDING or row.expires_at <= now or row.proof == "totp":
            raise Failure(f"cannot resend in state {row.status}")
        window_start = row.sends_window_start or now
        sends = row.sends
        if window_start <= now - timedelta(seconds=s.resend_window_s):
            window_start, sends = now, 0
        if row.last_sent_at is not None:
            wait = (row.last_sent_at + timedelta(seconds=s.resend_interval_s) - now)
            if wait.total_seconds() > 0:
                raise RateLimited(int(wait.total_seconds()) + 1,
                                  "wait a minute before asking for another code")
        if sends >= s.max_sends:
            wait = window_start + timedelta(seconds=s.resend_window_s) - now
            raise RateLimited(int(wait.total_seconds()) + 1,
                              "too many codes sent for this request: wait, or start again later")
        code = new_code(s.code_digits)
        expires = now + timedelta(seconds=s.code_ttl_s)
        async with self.db.begin() as conn:
            result = await conn.execute(update(_C).where(
                _C.c.id == row.id, _C.c.status == PENDING, _C.c.sends == row.sends,
            ).values(code_hmac=code_hmac(self.key, row.id, code), sends=sends + 1,
                     sends_window_start=window_start, last_sent_at=now, expires_at=expires,
                     delivery="sending", delivery_error=None))
            if result.rowcount != 1:
                raise RateLimited(math.ceil(s.resend_interval_s) or 1,
                                  "another code was just sent: wait before asking again")
            await audit.record(conn, "resend", "ok", imei=row.imei, challenge_id=row.id,
                               client_addr=client_addr)
        self._send(row.id, row.deliver_to, row.purpose, row.imei, code, decoy=bool(row.decoy)
                   or not row.deliver_to)
        return Started(row.id, token, PENDING, expires)

    async def _open(
        self, conn: AsyncConnection, purpose: str, imei: str | None, deliver_to: str,
        claimant: str, proof: str, decoy: bool, client_addr: str | None, now: datetime,
        owner_id: int | None,
    ) -> tuple[Started, str | None]:
        s = self.settings
        challenge_id, token = new_id(), new_token()
        code = None if proof == "totp" else new_code(s.code_digits)
        expires = now + timedelta(seconds=s.code_ttl_s)
        await conn.execute(insert(_C).values(
            id=challenge_id, purpose=purpose, imei=imei, deliver_to=deliver_to,
            claimant=claimant, proof=proof, decoy=decoy, token_hash=token_hash(token),
            code_hmac=None if code is None else code_hmac(self.key, challenge_id, code),
            status=PENDING, attempts=0, max_attempts=s.max_attempts,
            sends=1 if code else 0, sends_window_start=now if code else None,
            last_sent_at=now if code else None, created_at=now, expires_at=expires,
            client_addr=client_addr, delivery="sending" if code else None,
            delivery_error=None))
        await audit.record(conn, "start", "ok", imei=imei, owner_id=owner_id,
                           challenge_id=challenge_id, client_addr=client_addr,
                           detail={"purpose": purpose, "proof": proof,
                                   "decoy": "unknown_account" if decoy else None})
        return Started(challenge_id, token, PENDING, expires), code

    async def _load(self, challenge_id: str, token: str) -> Row[Any]:
        """The challenge, if `token` is its own (rule 15); else Failure."""
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(select(_C).where(_C.c.id == challenge_id[:32]))).first()
        # Compare even when there is no row, so that timing does not tell ids apart.
        expected = row.token_hash if row is not None else token_hash("")
        if not _digest_equal(expected, token_hash(token)) or row is None:
            raise Failure("unknown challenge or wrong token")
        return row

    async def _check(
        self, challenge_id: str, token: str, code: str, client_addr: str | None, purpose: str
    ) -> Row[Any]:
        """Count the attempt, then compare (rules 4, 5, 8, 10, 11, 15); the challenge if right."""
        row = await self._load(challenge_id, token)
        if row.purpose != purpose:
            raise Failure("challenge of another purpose")
        if not is_code_format(code):
            raise Failure("malformed code")
        s = self.settings
        now = utcnow()
        account = row.claimant
        client = client_addr or "-"
        async with self.db.begin() as conn:
            capped = (
                await counters.current(conn, "account", account, now, s.failure_window_s)
                >= s.max_failures_per_account
                or await counters.current(conn, "client", client, now, s.failure_window_s)
                >= s.max_failures_per_client)
            if capped:
                await audit.record(conn, "check", "capped", imei=row.imei,
                                   challenge_id=row.id, client_addr=client_addr)
        if capped:
            raise Failure("failure cap reached")
        # Rule 5: the attempt is spent *before* the comparison, by one conditional UPDATE, so
        # that concurrent guesses cannot make more comparisons than the limit.
        async with self.db.begin() as conn:
            counted = (await conn.execute(
                update(_C).where(
                    _C.c.id == row.id, _C.c.status == PENDING,
                    _C.c.attempts < _C.c.max_attempts, _C.c.expires_at > now,
                ).values(attempts=_C.c.attempts + 1)
                .returning(_C.c.attempts, _C.c.code_hmac, _C.c.max_attempts)
            )).first()
            if counted is None:
                if row.status == PENDING and row.expires_at <= now:
                    await conn.execute(update(_C).where(_C.c.id == row.id,
                                                        _C.c.status == PENDING)
                                       .values(status=EXPIRED))
                await audit.record(conn, "check", "not_pending", imei=row.imei,
                                   challenge_id=row.id, client_addr=client_addr)
        if counted is None:
            raise Failure("challenge is not pending")
        secret = None
        if row.proof == "totp" and not row.decoy:
            async with self.db.engine.connect() as conn:
                secret = await conn.scalar(select(_O.c.totp_secret)
                                           .where(_O.c.contact == account))
        right = self._compare(row, counted.code_hmac, code, secret)
        if right:
            return row
        await self._wrong(row, counted.attempts >= counted.max_attempts, client_addr, now)
        raise Failure("wrong code")

    def _compare(
        self, row: Row[Any], stored: str | None, code: str, totp_secret: str | None
    ) -> bool:
        self.comparisons += 1
        if self._on_comparison is not None:
            self._on_comparison()
        if row.proof == "totp":
            # pyotp compares in constant time (hmac.compare_digest). A decoy has no secret.
            return totp_secret is not None and pyotp.TOTP(totp_secret).verify(
                code, valid_window=1)
        if stored is None:
            return False
        return codes_match(stored, self.key, row.id, code)

    async def _wrong(
        self, row: Row[Any], last_try: bool, client_addr: str | None, now: datetime
    ) -> None:
        s = self.settings
        async with self.db.begin() as conn:
            if last_try:
                await conn.execute(update(_C).where(_C.c.id == row.id, _C.c.status == PENDING)
                                   .values(status=MAX_ATTEMPTS))
            account_failures, _ = await counters.bump(
                conn, "account", row.claimant, now, s.failure_window_s)
            client_failures, _ = await counters.bump(
                conn, "client", client_addr or "-", now, s.failure_window_s)
            await audit.record(conn, "check", "wrong_code", imei=row.imei, challenge_id=row.id,
                               client_addr=client_addr,
                               detail={"last_try": last_try})
            for scope, count, cap in (("account", account_failures, s.max_failures_per_account),
                                      ("client", client_failures, s.max_failures_per_client)):
                if count == cap:
                    log.warning("activation alert: failure cap reached", extra={
                        "scope": scope, "remote": client_addr, "failures": count})
                    await audit.record(conn, "alert", f"{scope}_cap", imei=row.imei,
                                       challenge_id=row.id, client_addr=client_addr,
                                       detail={"failures": count})
            if row.purpose == "activation" and row.imei is not None:
                device_failures, _ = await counters.bump(conn, "device", row.imei, now, None)
                if device_failures == s.device_lock_failures:
                    device = await _resolve_device(conn, row.imei)
                    if device is not None:
                        await conn.execute(update(_D).where(
                            _D.c.id == device.id, _D.c.state == DeviceState.UNCLAIMED.value,
                        ).values(state=DeviceState.LOCKED.value))
                    log.warning("activation alert: device locked after consecutive failures",
                                extra={"imei": row.imei, "failures": device_failures})
                    await audit.record(conn, "lock", "ok", imei=row.imei,
                                       detail={"failures": device_failures})

    async def _approve(self, conn: AsyncConnection, row: Row[Any]) -> None:
        """Mark the challenge used (rule 3): a second use of the same code finds it approved."""
        same_code = (_C.c.code_hmac.is_(None) if row.code_hmac is None
                     else _C.c.code_hmac == row.code_hmac)
        result = await conn.execute(update(_C).where(
            _C.c.id == row.id, _C.c.status == PENDING, same_code).values(status=APPROVED))
        if result.rowcount != 1:
            raise Failure("challenge used or changed meanwhile")

    async def _new_session(
        self, conn: AsyncConnection, owner_id: int, now: datetime
    ) -> tuple[str, datetime]:
        token = new_token()
        expires = now + timedelta(seconds=self.settings.session_ttl_s)
        await conn.execute(insert(_S).values(token_hash=token_hash(token), owner_id=owner_id,
                                             created_at=now, expires_at=expires))
        return token, expires

    async def _rate_limit_start(self, client_addr: str | None, now: datetime) -> None:
        limit = self.settings.starts_per_minute_per_client
        async with self.db.begin() as conn:
            count, window_start = await counters.bump(conn, "start", client_addr or "-", now, 60)
        if count > limit:
            wait = (window_start + timedelta(seconds=60) - now).total_seconds()
            raise RateLimited(int(wait) + 1, f"more than {limit} requests a minute from your "
                              "address: wait and try again")

    # Delivery ----------------------------------------------------------------------------------

    def _send(
        self, challenge_id: str, to: str, purpose: str, imei: str | None, code: str | None,
        *, decoy: bool = False,
    ) -> None:
        """Deliver in the background: the answer's timing never depends on the channel."""
        if decoy or not to:
            return
        message = Message(to=to, purpose=purpose, imei=imei, code=code)
        self._spawn(self._deliver(challenge_id, message))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, challenge_id: str, message: Message) -> None:
        error = await deliver(self.notifier, message, attempts=self.notify_settings.attempts,
                              retry_delay_s=self.notify_settings.retry_delay_s)
        notice = message.code is None
        try:
            async with self.db.begin() as conn:
                if not notice:
                    await conn.execute(update(_C).where(_C.c.id == challenge_id).values(
                        delivery="failed" if error else "sent", delivery_error=error))
                await audit.record(conn, "send", "failed" if error else "ok",
                                   imei=message.imei, challenge_id=challenge_id,
                                   detail={"purpose": message.purpose,
                                           "channel": message.kind, "error": error})
        except Exception as exc:  # the database may be away: the message itself went out
            log.warning("could not record a delivery", extra={"error": str(exc)})

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Sessions, owners, TOTP --------------------------------------------------------------------

    async def owner_for_session(self, token: str | None) -> OwnerInfo | None:
        if not token:
            return None
        now = utcnow()
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(
                select(_O.c.id, _O.c.contact, _O.c.totp_secret)
                .join(_S, _S.c.owner_id == _O.c.id)
                .where(_S.c.token_hash == token_hash(token), _S.c.expires_at > now))).first()
        if row is None:
            return None
        return OwnerInfo(row.id, row.contact, row.totp_secret is not None)

    async def end_session(self, token: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(_S.delete().where(_S.c.token_hash == token_hash(token)))

    async def totp_begin(self, owner: OwnerInfo) -> str:
        """A new secret to show as a QR code; active once `totp_confirm` gets a right code."""
        secret = pyotp.random_base32()
        async with self.db.begin() as conn:
            await conn.execute(update(_O).where(_O.c.id == owner.id)
                               .values(totp_pending_secret=secret))
        return pyotp.TOTP(secret).provisioning_uri(name=owner.contact,
                                                   issuer_name="tracker-gateway")

    async def totp_confirm(self, owner: OwnerInfo, code: str, client_addr: str | None) -> bool:
        if not is_code_format(code):
            return False
        async with self.db.begin() as conn:
            pending = await conn.scalar(select(_O.c.totp_pending_secret)
                                        .where(_O.c.id == owner.id))
            ok = pending is not None and pyotp.TOTP(pending).verify(code, valid_window=1)
            if ok:
                await conn.execute(update(_O).where(_O.c.id == owner.id).values(
                    totp_secret=pending, totp_pending_secret=None))
            await audit.record(conn, "totp_enrol", "ok" if ok else "wrong_code",
                               owner_id=owner.id, client_addr=client_addr)
        return ok

    async def totp_disable(self, owner: OwnerInfo, client_addr: str | None) -> None:
        async with self.db.begin() as conn:
            await conn.execute(update(_O).where(_O.c.id == owner.id).values(
                totp_secret=None, totp_pending_secret=None))
            await audit.record(conn, "totp_disable", "ok", owner_id=owner.id,
                               client_addr=client_addr)

    # Admin -------------------------------------------------------------------------------------

    async def provision(self, imei: str, contact: str, by: str = "admin") -> str:
        """Register the contact of record of `imei` (a dealer's sale); returns it normalised."""
        imei = check_imei(imei)
        contact = normalize_contact(contact)
        now = utcnow()
        async with self.db.begin() as conn:
            existing = await conn.scalar(select(_P.c.imei).where(_P.c.imei == imei))
            if existing is None:
                await conn.execute(insert(_P).values(imei=imei, contact=contact,
                                                     provisioned_at=now))
            else:
                await conn.execute(update(_P).where(_P.c.imei == imei)
                                   .values(contact=contact, provisioned_at=now))
            device = await _resolve_device(conn, imei)
            if device is not None:
                await conn.execute(update(_D).where(_D.c.id == device.id)
                                   .values(contact_of_record=contact))
            await audit.record(conn, "provision", "ok", imei=imei, detail={"by": by})
        return contact

    async def unlock(self, imei: str, by: str = "admin") -> bool:
        """Let a locked device be claimed again; False when it was not locked."""
        imei = check_imei(imei)
        now = utcnow()
        async with self.db.begin() as conn:
            failures = await counters.current(conn, "device", imei, now, None)
            device = await _resolve_device(conn, imei)
            was_locked = failures >= self.settings.device_lock_failures or (
                device is not None and device.state == DeviceState.LOCKED)
            await counters.reset(conn, "device", imei)
            if device is not None and device.state == DeviceState.LOCKED:
                await conn.execute(update(_D).where(_D.c.id == device.id)
                                   .values(state=DeviceState.UNCLAIMED.value))
            await audit.record(conn, "unlock", "ok" if was_locked else "not_locked", imei=imei,
                               detail={"by": by})
        return was_locked


def _device_key(value: str) -> str:
    """A device as an owner names it: its IMEI, or the 12-character id of a tk103 unit."""
    if not (12 <= len(value) <= 15 and value.isascii() and value.isdigit()):
        raise InvalidInput("imei", "name the device by its 15-digit IMEI")
    return value


class _LostRace(Exception):
    """Another claim took the device first."""


def _digest_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


async def _resolve_device(conn: AsyncConnection, imei: str) -> Row[Any] | None:
    """The device row a 15-digit IMEI names.

    Devices that send their IMEI (gps103, gl300, tk103 comma layout) are stored under it. A
    fixed-layout tk103 unit sends only the last 12 digits of its IMEI as its id, so a `tk103`
    row with that id matches too. The exact IMEI wins when both exist.
    """
    rows = (await conn.execute(
        select(_D.c.id, _D.c.imei, _D.c.protocol, _D.c.state, _D.c.current_binding_id,
               _D.c.contact_of_record)
        .where(or_(_D.c.imei == imei, and_(_D.c.imei == imei[-12:], _D.c.protocol == "tk103")))
        .with_for_update()
    )).all()
    exact = [row for row in rows if row.imei == imei]
    return (exact or rows or [None])[0]


async def _contact_of_record(
    conn: AsyncConnection, imei: str, device: Row[Any] | None
) -> str | None:
    provisioned = await conn.scalar(select(_P.c.contact).where(_P.c.imei == imei))
    if provisioned:
        return str(provisioned)
    return device.contact_of_record if device is not None else None


async def _owner_id(conn: AsyncConnection, contact: str, now: datetime) -> int:
    """The owner with `contact`, created on first claim (the code proved the contact)."""
    owner_id = await conn.scalar(select(_O.c.id).where(_O.c.contact == contact))
    if owner_id is None:
        owner_id = await conn.scalar(insert(_O).values(contact=contact, created_at=now)
                                     .returning(_O.c.id))
    assert owner_id is not None
    return int(owner_id)


@dataclass(frozen=True, slots=True)
class _OpenBinding:
    binding_id: int
    device_id: int


async def _open_binding(conn: AsyncConnection, imei: str, owner_id: int) -> _OpenBinding | None:
    device = await _resolve_device(conn, imei)
    if device is None or device.current_binding_id is None:
        return None
    owner = await conn.scalar(select(_B.c.owner_id).where(_B.c.id == device.current_binding_id))
    if owner != owner_id:
        return None
    return _OpenBinding(device.current_binding_id, device.id)
