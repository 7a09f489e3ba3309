"""Claim keys: the random key printed on a device's label (proof of possession, rule 21).

A key is 10 characters of Crockford's base32 (50 random bits), shown in two groups of five
(`K7M2Q-9XHCD`). Typing is forgiving the way Crockford intended: case, hyphens and spaces do not
matter, and I/L read as 1, O as 0. The database keeps only HMAC(server key, IMEI + key).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlencode

from gateway.activation.contacts import InvalidInput

#: Crockford's base32 alphabet: no I, L, O, U.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#: Characters of a generated key: 10 x 5 bits = 50 random bits.
LENGTH = 10
#: Longest key accepted (a vendor may print longer keys of its own).
MAX_LENGTH = 32
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0"})


def new_claim_key() -> str:
    """A new random key from `secrets`, in its canonical form (no hyphen)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def normalize_claim_key(value: str) -> str:
    """The canonical form of a typed key, or InvalidInput saying what is wrong."""
    key = "".join(value.split()).replace("-", "").upper().translate(_READ_AS)
    if not key.isascii() or any(c not in ALPHABET for c in key):
        raise InvalidInput("claim_key", "the claim key has only the letters and digits printed "
                           "on the tracker's label (no U); hyphens and spaces do not matter")
    if not LENGTH <= len(key) <= MAX_LENGTH:
        raise InvalidInput("claim_key", f"the claim key has {LENGTH} characters (like "
                           "K7M2Q-9XHCD), printed on the tracker's label or box")
    return key


def format_claim_key(key: str) -> str:
    """`K7M2Q9XHCD` -> `K7M2Q-9XHCD` (groups of five, easier to read and type)."""
    return "-".join(key[i:i + 5] for i in range(0, len(key), 5))


def claim_key_hmac(server_key: bytes, imei: str, key: str) -> str:
    """What is stored: HMAC-SHA256(server key, "claim-key:" IMEI ":" key)."""
    return hmac.new(server_key, f"claim-key:{imei}:{key}".encode("ascii"),
                    hashlib.sha256).hexdigest()


def claim_key_matches(stored: str, server_key: bytes, imei: str, key: str) -> bool:
    """Constant-time comparison with the stored HMAC."""
    return hmac.compare_digest(stored.encode(), claim_key_hmac(server_key, imei, key).encode())


def claim_url(public_url: str, imei: str, key: str) -> str:
    """The URL a label's QR code carries: the claim form, filled in."""
    query = urlencode({"imei": imei, "key": format_claim_key(key)})
    return f"{public_url.rstrip('/')}/claim?{query}"
