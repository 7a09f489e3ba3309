"""Claiming a device: start (rules 12, 13, 16, 21, 22), the device signal, verify (rule 14).

The proof of possession, `activation.proof = "auto"`: the contact of record when there is one
(the code goes there, and the device to that contact's account), else the claim key (the code
goes to the claimant only when their key is right), else, only with
`activation.allow_device_signal`, the device's own SOS. A device with none of these cannot be
claimed by self-service. Whatever the device's state and proof, the claimant gets the same
answer: flows that cannot succeed are decoys.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from gateway.activation.claim_keys import claim_key_matches, normalize_claim_key
from gateway.activation.codes import code_hmac, new_code
from gateway.activation.contacts import FieldChecks, check_imei, normalize_contact
from gateway.activation.engine import CodeEngine, Failure, LockEvent, SignedIn, Started, utcnow
from gateway.store import accounts, audit, challenges, claiming, counters
from gateway.store.claiming import Provisioning, is_owned

log = logging.getLogger("gateway.activation")

#: Compared against when the IMEI has no claim key, so that the work (and the time) of a start
#: does not tell whether it has one.
_NO_KEY = "0" * 64


class _LostRace(Exception):
    """Another claim took the device first."""


class ClaimFlow:
    def __init__(self, engine: CodeEngine) -> None:
        self.engine = engine
        self.db = engine.db
        self.settings = engine.settings

    async def start(
        self, imei: str, contact: str, client_addr: str | None, claim_key: str | None = None
    ) -> Started:
        """Open a claim for `imei` on behalf of `contact`, with the label's `claim_key` if the
        claimant has one. Same answer whether the device is unknown, unclaimed, owned or locked,
        whatever its proof and whether the key is right."""
        # Every field is checked before any is refused: a form shows all its errors at once.
        checks = FieldChecks()
        imei = checks.run(check_imei, imei)
        key = (checks.run(normalize_claim_key, claim_key) if claim_key and claim_key.strip()
               else None)
        claimant = checks.run(normalize_contact, contact)
        checks.raise_any()
        now = utcnow()
        engine = self.engine
        lock: LockEvent | None = None
        # Reads first, on their own connection: the write transaction that follows stays short
        # (SQLite has one writer at a time). A device that changes hands meanwhile is caught
        # when the claim is verified (rule 14).
        async with self.db.engine.connect() as conn:
            device = await claiming.resolve_device(conn, imei, lock=False)
            provisioned = await claiming.provisioning(conn, imei, device)
            locked = await engine.is_locked(conn, imei, device, now)
        key_right = claim_key_matches(provisioned.claim_key_hmac or _NO_KEY, engine.key,
                                      imei, key or "")
        key_right = key_right and key is not None and provisioned.claim_key_hmac is not None
        proof = self._proof(provisioned)
        decoy = "locked" if locked else "owned" if is_owned(device) else None
        if proof == "contact_of_record":
            deliver_to = provisioned.contact or ""
        elif proof == "none":
            deliver_to, decoy = "", decoy or "no_proof"
        else:
            deliver_to = claimant
        if proof == "claim_key" and not key_right:
            decoy = decoy or ("wrong_claim_key" if key else "no_claim_key")
        async with self.db.begin() as conn:
            await engine.rate_limit_start(conn, client_addr, now)
            if not locked and device is not None and device.state == "locked":
                await claiming.lapsed(conn, device.id)  # before the background sweep did
            if key is not None and not key_right:
                # Rule 21: a wrong key counts toward the device lock, whatever the device.
                lock = await engine.device_failure(conn, imei, now)
                await audit.record(conn, "claim_key", "wrong", imei=imei,
                                   client_addr=client_addr)
            started, code = await engine.open(
                conn, purpose="activation", imei=imei, deliver_to=deliver_to,
                claimant=claimant, proof=proof, decoy=decoy, client_addr=client_addr, now=now,
                with_key=key is not None)
        if lock is not None:
            await engine.lock_notice(lock)
        engine.send_code(started.challenge_id, deliver_to, "activation", imei, code,
                         decoy=decoy is not None)
        return started

    def _proof(self, provisioned: Provisioning) -> str:
        s = self.settings
        mode = s.proof
        if mode == "auto":
            if provisioned.contact:
                return "contact_of_record"
            if provisioned.claim_key_hmac:
                return "claim_key"
            return "device_signal" if s.allow_device_signal else "none"
        if mode == "contact_of_record":
            return mode if provisioned.contact else "none"
        if mode == "claim_key":
            return mode if provisioned.claim_key_hmac else "none"
        return mode  # device_signal (allowed: checked by the settings) or contact_only

    async def device_signal(
        self, device_id: str, protocol: str, at: datetime, *, link: str | None = None,
        transport: str | None = None,
    ) -> None:
        """The device's own SOS frame was stored: send the code of the claim waiting for it.

        Does nothing unless `activation.allow_device_signal`. Called (through
        `Gateway.on_stored`) only after the frame committed; the frame must have arrived inside
        the claim's window, on the device's established connection `link` (rule 23: opened and
        naming the device before the claim started, and the only connection naming it from
        `signal_exclusive_s` before the claim until now; through MQTT only with
        `signal_over_mqtt`). When several claims wait for the same device, the press cannot
        tell whose it is: all of them are canceled.
        """
        s = self.settings
        if not s.allow_device_signal:
            return
        now = utcnow()
        engine = self.engine
        send: tuple[str, str, str, str, bool] | None = None
        async with self.db.begin() as conn:
            waiting = await challenges.waiting_for_signal(conn, device_id, protocol, at, now)
            if not waiting:
                return
            if len(waiting) > 1:
                ids = [row.id for row in waiting]
                await challenges.cancel_waiting(conn, ids)
                for row in waiting:
                    await audit.record(conn, "signal", "ambiguous", imei=row.imei,
                                       challenge_id=row.id, detail={"waiting": len(ids)})
                log.warning("activation alert: several claims waited for one device signal; "
                            "all canceled", extra={"device": device_id, "claims": len(ids)})
                return
            row = waiting[0]
            problem = ("mqtt_not_trusted" if transport == "mqtt" and not s.signal_over_mqtt
                       else "unknown_link" if link is None
                       else await claiming.signal_link_problem(
                           conn, row.imei, link, row.created_at, at, s.signal_exclusive_s))
            if problem is not None:
                # Not the tracker's own established connection: no code; the claim waits on
                # (until it expires) and the attempt is on record.
                await audit.record(conn, "signal", "device_signal_conflict", imei=row.imei,
                                   challenge_id=row.id,
                                   detail={"reason": problem, "protocol": protocol})
                log.warning("activation alert: a device signal was not accepted as proof",
                            extra={"device": device_id, "reason": problem, "challenge": row.id})
                if engine.metrics is not None:
                    engine.metrics.signal_refused.labels(problem).inc()
                return
            device = await claiming.resolve_device(conn, row.imei)
            decoy = bool(row.decoy) or (device is not None and (
                device.current_binding_id is not None or device.state != "unclaimed"))
            code = new_code(s.code_digits)
            if await engine.count_destination(conn, None if decoy else row.deliver_to,
                                              "activation", row.id, now):
                decoy = True
            if not await challenges.signal_arrived(
                    conn, row.id, code_hmac=code_hmac(engine.key, row.id, code), decoy=decoy,
                    now=now, expires_at=now + timedelta(seconds=s.code_ttl_s)):
                return
            await audit.record(conn, "signal", "ok", imei=row.imei, challenge_id=row.id,
                               detail={"protocol": protocol})
            send = (row.id, row.deliver_to, row.imei, code, decoy)
        challenge_id, to, imei, code, decoy = send
        engine.send_code(challenge_id, to, "activation", imei, code, decoy=decoy)

    async def verify(
        self, challenge_id: str, token: str, code: str, client_addr: str | None
    ) -> SignedIn:
        """Check the code; on success bind the device to the contact the code was sent to
        (rule 22: the contact of record's account, whatever the claimant typed) and sign in."""
        engine = self.engine
        row = await engine.check(challenge_id, token, code, client_addr, "activation")
        now = utcnow()
        imei = row.imei
        assert imei is not None
        owner_contact = str(row.deliver_to)
        try:
            async with self.db.begin() as conn:
                await engine.approve(conn, row)
                device = await claiming.resolve_device(conn, imei)
                device_id = (device.id if device is not None
                             else await claiming.register_device(conn, imei, now))
                owner_id = await accounts.ensure_owner(conn, owner_contact, now)
                if not await claiming.claim(conn, device_id, owner_id, now):
                    raise _LostRace()
                await counters.reset(conn, "device", imei)
                await claiming.forget_locks(conn, imei)
                session = await engine.new_session(conn, owner_id, now)
                await audit.record(conn, "claim", "ok", imei=imei, owner_id=owner_id,
                                   challenge_id=challenge_id, client_addr=client_addr,
                                   detail={"proof": row.proof})
                record = (await claiming.provisioning(conn, imei, device)).contact
        except (_LostRace, IntegrityError):
            async with self.db.begin() as conn:
                await challenges.cancel(conn, challenge_id)
                await audit.record(conn, "claim", "lost_race", imei=imei,
                                   challenge_id=challenge_id, client_addr=client_addr)
            raise Failure("device already claimed") from None
        # Rule 18: the contact of record (or, without one, the new owner) hears of it.
        engine.notify(record or owner_contact, "claimed_notice", imei, challenge_id=challenge_id)
        return SignedIn(owner_id, owner_contact, session[0], session[1], imei)

