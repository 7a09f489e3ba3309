"""Secrets at rest: TOTP secrets are stored encrypted (rule 30).

The key is derived from the server key with HKDF-SHA256, so a stolen database alone does not
give anyone an owner's authenticator secret. AES-256-GCM, a random 96-bit nonce per value, and
the owner's id as associated data, so that a sealed value copied to another owner's row does
not open. Stored form: `v1:` + urlsafe base64(nonce + ciphertext + tag).
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "v1:"


class Sealer:
    def __init__(self, server_key: bytes) -> None:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"tracker-gateway totp secrets v1").derive(server_key)
        self._aead = AESGCM(derived)

    def seal(self, secret: str, owner_id: int) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), _aad(owner_id))
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, stored: str, owner_id: int) -> str | None:
        """The secret, or None when `stored` is not a value sealed with this key for this
        owner (another server key, a copied row, a damaged value)."""
        if not stored.startswith(PREFIX):
            return None
        try:
            raw = base64.urlsafe_b64decode(stored[len(PREFIX):].encode())
            return self._aead.decrypt(raw[:12], raw[12:], _aad(owner_id)).decode()
        except (ValueError, InvalidTag):
            return None


def is_sealed(value: str | None) -> bool:
    return value is not None and value.startswith(PREFIX)


def _aad(owner_id: int) -> bytes:
    return f"owner:{owner_id}".encode()
