"""Authenticator-app codes (TOTP, RFC 6238) that work once (rule 26)."""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

#: Steps accepted either side of the current one (clock drift of the owner's phone).
DRIFT_STEPS = 1


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code is `code` (current one, or one step either side), else None.

    Every candidate is compared in constant time, without stopping at the first match.
    """
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    found = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
            found = step
    return found


def new_secret() -> str:
    return pyotp.random_base32()


def enrolment_uri(secret: str, contact: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=contact, issuer_name="tracker-gateway")
