"""One-time codes, their stored form, client tokens and the server key."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

#: Only ASCII digits (str.isdigit() would accept full-width and other Unicode digits).
_CODE_FORMAT = re.compile(r"[0-9]{6,8}", re.ASCII)


def new_code(digits: int) -> str:
    """A uniformly random code of `digits` digits from `secrets` (leading zeros kept)."""
    return f"{secrets.randbelow(10 ** digits):0{digits}d}"


def is_code_format(value: str) -> bool:
    """True for 6 to 8 ASCII digits and nothing else."""
    return _CODE_FORMAT.fullmatch(value) is not None


def code_hmac(key: bytes, challenge_id: str, code: str) -> str:
    """The only form in which a code is stored: HMAC-SHA256(key, challenge id + code)."""
    return hmac.new(key, f"{challenge_id}:{code}".encode("ascii"), hashlib.sha256).hexdigest()


def codes_match(stored_hmac: str, key: bytes, challenge_id: str, code: str) -> bool:
    """Constant-time comparison of the stored HMAC with the HMAC of `code`."""
    return hmac.compare_digest(stored_hmac.encode(), code_hmac(key, challenge_id, code).encode())


def new_id() -> str:
    """A challenge id: 128 random bits, URL-safe."""
    return secrets.token_hex(16)


def new_token() -> str:
    """A client secret (challenge token, session cookie): 256 random bits."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """SHA-256 of a token: what the database keeps (a stolen table opens no session)."""
    return hashlib.sha256(token.encode()).hexdigest()


class KeyNotReady(RuntimeError):
    """The server key is not known yet (it is read from a database that does not answer)."""


class ServerKey:
    """The server key, which may become known only after start: on PostgreSQL it is read from
    the database, which may be down when the gateway starts (the device ports open anyway)."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes | None = None) -> None:
        self._value = value

    @property
    def ready(self) -> bool:
        return self._value is not None

    def get(self) -> bytes:
        if self._value is None:
            raise KeyNotReady("the gateway is starting: its database has not answered yet; "
                              "try again in a moment")
        return self._value

    def set(self, value: bytes) -> None:
        if len(value) < 32:
            raise ValueError("a server key has at least 32 characters")
        self._value = value


def check_configured_key(configured: str) -> bytes:
    if len(configured) < 32:
        raise ValueError("activation.server_key must be at least 32 characters: generate "
                         "one with `python -c 'import secrets; print(secrets.token_hex(32))'`")
    return configured.encode()


def load_server_key(configured: str, key_file: str) -> bytes:
    """The HMAC key: `configured` when set, else the key in `key_file`, created on first use.

    The file is created with mode 0600. Several gateway instances must share one key (set
    activation.server_key, or share the file), or codes sent by one fail on the other.
    """
    if configured:
        return check_configured_key(configured)
    path = Path(key_file)
    if path.is_file():
        key = path.read_text().strip()
        if len(key) < 32:
            raise ValueError(f"{path} holds a key shorter than 32 characters: delete it to "
                             "have a new one generated")
        return key.encode()
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key.encode()


def known_browser_mark(key: bytes, contact: str) -> str:
    """What a browser that signed in as `contact` keeps (cookie `gw_known`): proof that this
    browser signed in before, for counting its later sign-in codes apart (rule 25)."""
    return hmac.new(key, f"known-browser:{contact}".encode(), hashlib.sha256).hexdigest()[:40]


def is_known_browser(key: bytes, contact: str, mark: str | None) -> bool:
    return bool(mark) and hmac.compare_digest(
        (mark or "").encode(), known_browser_mark(key, contact).encode())
