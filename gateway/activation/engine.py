"""The one-time-code engine every flow shares: issue a code, send it, check it, count failures.

What makes it safe (rules in docs/activation-rules.md, how in docs/activation.md):

* a code is stored only as HMAC(server key, challenge id + code) and compared in constant time,
  after its attempt was spent by one conditional UPDATE (rules 4, 5, 9, 10);
* flows that can never succeed (an owned or locked device, an unknown account, a wrong claim
  key) are *decoys*: the same rows, answers and timing, but no code is ever sent (rules 12, 21);
* codes leave in the background, after the answer: the answer's timing never depends on the
  channel, and the per-destination caps are applied there, silently (rule 24);
* failures are counted per device (lock with a growing back-off, rules 7, 31), per client
  address and per account (rule 8); a code sent to a person's own contact is never blocked by
  failures on flows somebody else started for it (rule 25).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.activation.codes import (
    ServerKey,
    code_hmac,
    codes_match,
    is_code_format,
    new_code,
    new_id,
    new_token,
    token_hash,
)
from gateway.activation.contacts import mask_contact
from gateway.activation.sealed import Sealer
from gateway.activation.totp import matching_step
from gateway.config import ActivationSettings, NotifySettings
from gateway.metrics import Metrics
from gateway.notify import Message, Notifier, deliver
from gateway.store import accounts, audit, challenges, claiming, counters
from gateway.store.challenges import (
    APPROVED,
    AWAITING,
    CANCELED,
    EXPIRED,
    MAX_ATTEMPTS,
    PENDING,
)
from gateway.store.database import Database

log = logging.getLogger("gateway.activation")

#: Proofs whose code goes to the contact the flow is for: failures on them never block the
#: account (rule 25); guessing them is bounded by the per-destination send cap instead.
OWN_CODE_PROOFS = frozenset({"owner", "owner_known", "claim_key", "device_signal",
                             "contact_only"})
#: Flows a signed-in owner starts on their own device (never a decoy): they see the real
#: delivery of their code.
OWNER_PURPOSES = frozenset({"release", "engine_stop", "engine_resume"})


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
    """What a client may see of its challenge: nothing that differs between a decoy and a
    real flow."""

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


@dataclass(frozen=True, slots=True)
class LockEvent:
    """A device was just locked: its contact of record is told (rule 31)."""

    imei: str
    until: datetime
    locks: int


def utcnow() -> datetime:
    return datetime.now(UTC)


class CodeEngine:
    """Issue, send, check and count one-time codes. Safe for concurrent requests: all state is
    in the database."""

    def __init__(
        self,
        db: Database,
        settings: ActivationSettings,
        notify_settings: NotifySettings,
        notifier: Notifier,
        server_key: bytes | ServerKey,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notify_settings = notify_settings
        self.notifier = notifier
        self._key = server_key if isinstance(server_key, ServerKey) else ServerKey(server_key)
        self._sealer: Sealer | None = None
        self.metrics = metrics
        #: Code comparisons made (rule 5's test reads it; also exported as a metric).
        self.comparisons = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def key(self) -> bytes:
        """The server key (KeyNotReady while the database that holds it has not answered)."""
        return self._key.get()

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            self._sealer = Sealer(self._key.get())
        return self._sealer

    # Issue -------------------------------------------------------------------------------------

    async def open(
        self, conn: AsyncConnection, *, purpose: str, imei: str | None, deliver_to: str,
        claimant: str, proof: str, decoy: str | None, client_addr: str | None, now: datetime,
        owner_id: int | None = None, with_key: bool = False,
    ) -> tuple[Started, str | None]:
        """Store a new challenge; returns it and the code to send (None: nothing to send now).

        A decoy (`decoy` names why) gets a code too, which nobody will ever receive.
        """
        s = self.settings
        challenge_id, token = new_id(), new_token()
        awaiting = proof == "device_signal"
        code = None if proof == "totp" or awaiting else new_code(s.code_digits)
        ttl = s.signal_window_s if awaiting else s.code_ttl_s
        expires = now + timedelta(seconds=ttl)
        status = AWAITING if awaiting else PENDING
        delivery = "sending" if code else None
        if code is not None and await self.count_destination(
                conn, None if decoy else deliver_to, purpose, challenge_id, now,
                own=proof == "owner_known"):
            decoy, delivery = "destination_capped", "capped"
        await challenges.insert_challenge(
            conn, id=challenge_id, purpose=purpose, imei=imei, deliver_to=deliver_to,
            claimant=claimant, proof=proof, with_key=with_key, decoy=decoy is not None,
            token_hash=token_hash(token),
            code_hmac=None if code is None else code_hmac(self.key, challenge_id, code),
            status=status, attempts=0, max_attempts=s.max_attempts, sends=1 if code else 0,
            sends_window_start=now if code else None, last_sent_at=now if code else None,
            created_at=now, expires_at=expires, client_addr=client_addr,
            delivery=delivery, delivery_error=None)
        await audit.record(conn, "start", "ok", imei=imei, owner_id=owner_id,
                           challenge_id=challenge_id, client_addr=client_addr,
                           detail={"purpose": purpose, "proof": proof, "decoy": decoy})
        return Started(challenge_id, token, status, expires), None if decoy else code

    async def count_destination(
        self, conn: AsyncConnection, to: str | None, purpose: str, challenge_id: str,
        now: datetime, *, own: bool = False,
    ) -> bool:
        """Count one more code for `to` in the caller's transaction; True when it goes over
        the caps of rule 24 (then nothing is sent, and the answer does not change).

        A code nobody will receive (a decoy) is counted under a key of its own, so that every
        start does the same work (rule 12). The audit line, log and metric of a capped code are
        written in the background, for the same reason.
        """
        s = self.settings
        key = to or "-"
        # Codes a signed-in owner asks for on their own device, and sign-ins from a browser
        # that signed in as this contact before (`own`), are counted apart: claims and
        # sign-ins, which anybody can start for a contact, never use them up (rule 25).
        own = to is not None and (own or purpose in OWNER_PURPOSES)
        short, _ = await counters.bump(conn, "owner_15min" if own else "dest_15min", key, now,
                                       900)
        day, _ = await counters.bump(conn, "owner_day" if own else "dest_day", key, now, 86400)
        if not to:
            return False
        capped = (short > s.max_codes_per_destination_15min
                  or day > s.max_codes_per_destination_day)
        if capped:
            self._spawn(self._capped(challenge_id, purpose, short, day))
        return capped

    async def _capped(self, challenge_id: str, purpose: str, short: int, day: int) -> None:
        log.warning("activation alert: codes to one destination capped", extra={
            "purpose": purpose, "challenge": challenge_id})
        if self.metrics is not None:
            self.metrics.codes_capped.labels(purpose).inc()
        try:
            async with self.db.begin() as conn:
                await audit.record(conn, "send", "capped", challenge_id=challenge_id,
                                   detail={"purpose": purpose, "last_15min": short,
                                           "last_day": day})
        except Exception as exc:
            log.warning("could not record a capped code", extra={"error": str(exc)})

    async def rate_limit_start(
        self, conn: AsyncConnection, client_addr: str | None, now: datetime
    ) -> None:
        """Count a start in the caller's transaction; RateLimited (which rolls it back, so the
        count stays at the limit) past `starts_per_minute_per_client`."""
        limit = self.settings.starts_per_minute_per_client
        count, window_start = await counters.bump(conn, "start", client_addr or "-", now, 60)
        if count > limit:
            wait = (window_start + timedelta(seconds=60) - now).total_seconds()
            raise RateLimited(int(wait) + 1, f"more than {limit} requests a minute from your "
                              "address: wait and try again")

    # Send --------------------------------------------------------------------------------------

    def send_code(
        self, challenge_id: str, to: str, purpose: str, imei: str | None, code: str | None,
        *, decoy: bool,
    ) -> None:
        """Deliver a code in the background (nothing for a decoy)."""
        if decoy or not to or code is None:
            return
        self._spawn(self._deliver_code(challenge_id, Message(to=to, purpose=purpose, imei=imei,
                                                             code=code)))

    def notify(
        self, to: str | None, purpose: str, imei: str | None, *, challenge_id: str | None = None,
        until: datetime | None = None,
    ) -> None:
        """A notice without a code (claimed, released, locked), in the background."""
        if not to:
            return
        self._spawn(self._deliver_notice(challenge_id, Message(to=to, purpose=purpose,
                                                               imei=imei, until=until)))

    async def _deliver_code(self, challenge_id: str, message: Message) -> None:
        error = await deliver(self.notifier, message, attempts=self.notify_settings.attempts,
                              retry_delay_s=self.notify_settings.retry_delay_s)
        try:
            async with self.db.begin() as conn:
                await challenges.record_delivery(conn, challenge_id,
                                                 "failed" if error else "sent", error)
                await audit.record(conn, "send", "failed" if error else "ok",
                                   imei=message.imei, challenge_id=challenge_id,
                                   detail={"purpose": message.purpose,
                                           "channel": message.kind, "error": error})
        except Exception as exc:  # the database may be away: the message itself went out
            log.warning("could not record a delivery", extra={"error": str(exc)})

    async def _deliver_notice(self, challenge_id: str | None, message: Message) -> None:
        error = await deliver(self.notifier, message, attempts=self.notify_settings.attempts,
                              retry_delay_s=self.notify_settings.retry_delay_s)
        try:
            async with self.db.begin() as conn:
                await audit.record(conn, "send", "failed" if error else "ok",
                                   imei=message.imei, challenge_id=challenge_id,
                                   detail={"purpose": message.purpose,
                                           "channel": message.kind, "error": error})
        except Exception as exc:
            log.warning("could not record a delivery", extra={"error": str(exc)})

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for deliveries in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # Check -------------------------------------------------------------------------------------

    async def load(self, challenge_id: str, token: str) -> Row[Any]:
        """The challenge, if `token` is its own (rule 15); else Failure."""
        row = await challenges.load(self.db, challenge_id)
        # Compare even when there is no row, so that timing does not tell ids apart.
        expected = row.token_hash if row is not None else token_hash("")
        if not hmac.compare_digest(expected.encode(), token_hash(token).encode()) or row is None:
            raise Failure("unknown challenge or wrong token")
        return row

    async def check(
        self, challenge_id: str, token: str, code: str, client_addr: str | None, purpose: str
    ) -> Row[Any]:
        """Count the attempt, then compare (rules 4, 5, 8, 10, 11, 15, 25, 26); the challenge
        when the code is right, else Failure."""
        row = await self.load(challenge_id, token)
        if row.purpose != purpose:
            raise Failure("challenge of another purpose")
        if not is_code_format(code):
            raise Failure("malformed code")
        s = self.settings
        now = utcnow()
        # Rule 25: failures on flows somebody started for this account never block a code sent
        # to the account's own contact; those are bounded by the destination cap (rule 24).
        account_capped_applies = row.proof not in OWN_CODE_PROOFS
        async with self.db.engine.connect() as conn:  # a read: no write lock on SQLite
            capped = await counters.current(
                conn, "client", client_addr or "-", now, s.failure_window_s
            ) >= s.max_failures_per_client
            if account_capped_applies and not capped:
                capped = await counters.current(
                    conn, "account", row.claimant, now, s.failure_window_s
                ) >= s.max_failures_per_account
            if row.proof == "totp" and not capped:
                # Consecutive, never windowed (NIST 63B 5.2.2): the account cap alone let
                # 20 guesses an hour through for ever.
                capped = await counters.current(
                    conn, "totp", row.claimant, now, None) >= s.totp_lock_failures
        if capped:
            async with self.db.begin() as conn:
                await audit.record(conn, "check", "capped", imei=row.imei,
                                   challenge_id=row.id, client_addr=client_addr)
            raise Failure("failure cap reached")
        # Rule 5: the attempt is spent *before* the comparison, by one conditional UPDATE, so
        # that concurrent guesses cannot make more comparisons than the limit.
        async with self.db.begin() as conn:
            counted = await challenges.count_attempt(conn, row.id, now)
            if counted is None:
                await challenges.expire_if_due(conn, row.id, now)
                await audit.record(conn, "check", "not_pending", imei=row.imei,
                                   challenge_id=row.id, client_addr=client_addr)
        if counted is None:
            raise Failure("challenge is not pending")
        if row.proof == "totp":
            right = await self._totp_right(row, code, bool(counted.decoy), now)
        else:
            right = self._compare(counted.code_hmac, row.id, code)
        if right and not counted.decoy:
            return row
        lock = await self._wrong(row, counted.attempts >= counted.max_attempts, client_addr, now)
        if lock is not None:
            await self.lock_notice(lock)
        raise Failure("wrong code")

    def _compare(self, stored: str | None, challenge_id: str, code: str) -> bool:
        self._compared()
        if stored is None:
            return False
        return codes_match(stored, self.key, challenge_id, code)

    def _compared(self) -> None:
        self.comparisons += 1
        if self.metrics is not None:
            self.metrics.code_comparisons.inc()

    async def _totp_right(self, row: Row[Any], code: str, decoy: bool, now: datetime) -> bool:
        """The owner's app code, once per time step and never an earlier step (rule 26)."""
        self._compared()
        if decoy:
            return False
        async with self.db.begin() as conn:
            return await self.accept_app_code(conn, row.claimant, code, now,
                                              challenge_id=row.id)

    async def accept_app_code(
        self, conn: AsyncConnection, contact: str, code: str, now: datetime,
        challenge_id: str | None = None,
    ) -> bool:
        """`code` is the current code of `contact`'s authenticator app, in a time step later
        than the last accepted one, which it becomes (rule 26; a replay is audited)."""
        owner = await accounts.totp_of(conn, contact)
        if owner is None or owner.totp_secret is None:
            return False
        secret = self.sealer.open(owner.totp_secret, owner.id)
        step = matching_step(secret, code, now) if secret is not None else None
        if step is None:
            return False
        accepted = await accounts.accept_totp_step(conn, owner.id, step)
        if not accepted:
            await audit.record(conn, "check", "totp_replay", owner_id=owner.id,
                               challenge_id=challenge_id, detail={"step": step})
        return accepted

    async def _wrong(
        self, row: Row[Any], last_try: bool, client_addr: str | None, now: datetime
    ) -> LockEvent | None:
        s = self.settings
        lock = None
        async with self.db.begin() as conn:
            if last_try:
                await challenges.move(conn, row.id, PENDING, MAX_ATTEMPTS)
            account_failures, _ = await counters.bump(
                conn, "account", row.claimant, now, s.failure_window_s)
            client_failures, _ = await counters.bump(
                conn, "client", client_addr or "-", now, s.failure_window_s)
            await audit.record(conn, "check", "wrong_code", imei=row.imei, challenge_id=row.id,
                               client_addr=client_addr, detail={"last_try": last_try})
            caps = [("account", account_failures, s.max_failures_per_account),
                    ("client", client_failures, s.max_failures_per_client)]
            if row.proof == "totp":
                totp_failures, _ = await counters.bump(conn, "totp", row.claimant, now, None)
                caps.append(("totp", totp_failures, s.totp_lock_failures))
            for scope, count, cap in caps:
                if count == cap:
                    log.warning("activation alert: failure cap reached", extra={
                        "scope": scope, "remote": client_addr, "failures": count})
                    await audit.record(conn, "alert", f"{scope}_cap", imei=row.imei,
                                       challenge_id=row.id, client_addr=client_addr,
                                       detail={"failures": count})
            if row.purpose == "activation" and row.imei is not None:
                lock = await self.device_failure(conn, row.imei, now)
        return lock

    async def device_failure(
        self, conn: AsyncConnection, imei: str, now: datetime
    ) -> LockEvent | None:
        """One more consecutive failure on `imei` (a wrong code or claim key). At the limit the
        device is locked, for longer each time (rules 7, 31); the caller tells its contact of
        record with `lock_notice` once the transaction is committed."""
        s = self.settings
        failures, _ = await counters.bump(conn, "device", imei, now, None)
        if failures < s.device_lock_failures:
            return None
        await counters.reset(conn, "device", imei)
        locks, until = await claiming.lock(conn, imei, now, s.lock_durations_s)
        log.warning("activation alert: device locked after consecutive failures",
                    extra={"imei": imei, "failures": failures, "until": until.isoformat()})
        await audit.record(conn, "lock", "ok", imei=imei,
                           detail={"failures": failures, "locks": locks,
                                   "until": until.isoformat()})
        if self.metrics is not None:
            self.metrics.device_locks.inc()
        return LockEvent(imei, until, locks)

    async def lock_notice(self, lock: LockEvent) -> None:
        """Rule 31: nobody can hold a device locked silently; its contact of record hears."""
        async with self.db.engine.connect() as conn:
            device = await claiming.resolve_device(conn, lock.imei)
            record = (await claiming.provisioning(conn, lock.imei, device)).contact
        self.notify(record, "locked_notice", lock.imei, until=lock.until)

    async def is_locked(self, conn: AsyncConnection, imei: str, device: Row[Any] | None,
                        now: datetime) -> bool:
        until = await claiming.lock_until(conn, imei)
        if until is not None:
            return until > now
        # A lock from before locks lapsed (no lock row): held until an admin unlocks it.
        return device is not None and device.state == "locked"

    async def approve(self, conn: AsyncConnection, row: Row[Any]) -> None:
        """Mark the challenge used (rule 3): a second use of the same code finds it approved."""
        if not await challenges.approve(conn, row.id, row.code_hmac):
            raise Failure("challenge used or changed meanwhile")
        if row.proof == "totp" or row.proof in OWN_CODE_PROOFS:
            # The app, or a code sent to the account's own contact: the app works again.
            await counters.reset(conn, "totp", row.claimant)

    async def new_session(
        self, conn: AsyncConnection, owner_id: int, now: datetime
    ) -> tuple[str, datetime]:
        token = new_token()
        expires = now + timedelta(seconds=self.settings.session_ttl_s)
        await accounts.add_session(conn, token_hash(token), owner_id, now, expires)
        return token, expires

    # Status and resend -------------------------------------------------------------------------

    async def status(self, challenge_id: str, token: str) -> ChallengeView:
        """The challenge as its client sees it (expired ones are marked so on the way)."""
        row = await self.load(challenge_id, token)
        status = row.status
        now = utcnow()
        if status in (AWAITING, PENDING) and row.expires_at <= now:
            async with self.db.begin() as conn:
                await challenges.expire_if_due(conn, row.id, now)
            status = EXPIRED
        return ChallengeView(
            challenge_id=row.id, purpose=row.purpose, status=status, expires_at=row.expires_at,
            hint=self._hint(row, status), attempts_left=max(row.max_attempts - row.attempts, 0),
            delivery=self._delivery(row), imei=row.imei)

    def _delivery(self, row: Row[Any]) -> str | None:
        """Rule 12: a claim or a sign-in shows the same delivery whatever happens behind it (a
        decoy sends nothing, a capped destination gets nothing, a channel may fail). Only a
        release (or an engine command), whose owner is signed in and never a decoy, shows the
        real outcome."""
        if row.code_hmac is None or row.proof == "totp":
            return None
        if row.purpose in OWNER_PURPOSES:
            return str(row.delivery) if row.delivery else None
        return "sent"

    def _hint(self, row: Row[Any], status: str) -> str:
        if status == AWAITING:
            minutes = max(1, round(self.settings.signal_window_s / 60))
            return (f"Press the SOS button on the tracker within {minutes} min; the code is "
                    "sent to you as soon as the tracker's signal arrives.")
        if status == PENDING:
            return self._pending_hint(row)
        return {
            APPROVED: "Done: this code was used.",
            EXPIRED: "This request expired: start again.",
            MAX_ATTEMPTS: "Too many wrong codes: start again.",
            CANCELED: "This request was canceled: start again.",
        }.get(status, "")

    def _pending_hint(self, row: Row[Any]) -> str:
        """Built only from what the client typed (and, for a release, the signed-in owner), so
        that it never tells which devices or accounts exist."""
        if row.proof == "totp":
            return "Enter the 6-digit code shown by your authenticator app."
        claimant = mask_contact(row.claimant)
        if row.purpose == "sign_in":
            return (f"If {claimant} has an account, a sign-in code is on its way to it. "
                    "Nothing arriving? Check the address and start again.")
        if row.purpose in OWNER_PURPOSES:
            if row.delivery == "failed":
                return (f"We could not deliver the code to {claimant}. Ask for a new code in a "
                        "minute; if it keeps failing, contact the administrator.")
            return f"Code sent to {claimant}."
        if row.proof in ("device_signal", "contact_only"):
            return f"Code sent to {claimant}."
        if row.with_key:
            return (f"If the claim key is right, a code is on its way to {claimant} (or, if "
                    "your dealer registered a contact for this device, to that contact).")
        return ("If a dealer or installer registered a contact for this device, a code is on "
                "its way to that contact. Nothing arriving? Start again with the claim key "
                "printed on the tracker's label.")

    async def resend(self, challenge_id: str, token: str, client_addr: str | None) -> Started:
        """A new code, the old one dead, the attempt count kept (rule 6)."""
        row = await self.load(challenge_id, token)
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
        decoy = bool(row.decoy) or not row.deliver_to
        async with self.db.begin() as conn:
            if not await challenges.new_code(
                    conn, row.id, expected_sends=row.sends,
                    code_hmac=code_hmac(self.key, row.id, code), sends=sends + 1,
                    window_start=window_start, now=now, expires_at=expires):
                raise RateLimited(math.ceil(s.resend_interval_s) or 1,
                                  "another code was just sent: wait before asking again")
            if await self.count_destination(conn, None if decoy else row.deliver_to,
                                            row.purpose, row.id, now,
                                            own=row.proof == "owner_known"):
                await challenges.record_delivery(conn, row.id, "capped", None)
                decoy = True
            await audit.record(conn, "resend", "ok", imei=row.imei, challenge_id=row.id,
                               client_addr=client_addr)
        self.send_code(row.id, row.deliver_to, row.purpose, row.imei, code, decoy=decoy)
        return Started(row.id, token, PENDING, expires)
