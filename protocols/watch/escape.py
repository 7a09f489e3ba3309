"""The `}` escaping of binary payloads (voice, pictures) inside watch frames.

Five bytes that would otherwise end or split a frame are sent as `}` plus a code byte:
`}` 01 -> `}`, `}` 02 -> `[`, `}` 03 -> `]`, `}` 04 -> `,`, `}` 05 -> `*`.
"""

from __future__ import annotations

ESCAPE = 0x7D
_DECODE: dict[int, bytes] = {1: b"}", 2: b"[", 3: b"]", 4: b",", 5: b"*"}
_ENCODE: tuple[tuple[bytes, bytes], ...] = (
    # `}` first, so that the escape bytes added by the others are not escaped again.
    (b"}", b"}\x01"),
    (b"[", b"}\x02"),
    (b"]", b"}\x03"),
    (b",", b"}\x04"),
    (b"*", b"}\x05"),
)


def escape(data: bytes) -> bytes:
    """The wire form of a binary payload."""
    for raw, escaped in _ENCODE:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def unescape(data: bytes) -> bytes:
    """The bytes a wire form stands for, in one pass (linear in the input).

    A `}` followed by anything but a code 01..05 (or ending the input) is kept as it is: text
    frames may carry a literal `}` (in a Wi-Fi name, say), and dropping or rejecting the frame
    for it would lose the position around it.
    """
    if b"}" not in data:
        return data
    parts = data.split(b"}")
    out = [parts[0]]
    for part in parts[1:]:
        code = part[0] if part else -1
        replacement = _DECODE.get(code)
        if replacement is None:
            out.append(b"}")
            out.append(part)
        else:
            out.append(replacement)
            out.append(part[1:])
    return b"".join(out)
