"""The protocol registry: every protocol package under `protocols/`, and any registered later.

A protocol is a package `protocols/<name>/` whose `__init__` exports `CODEC` (a `Codec`). The
registry finds them by looking at the package folder, so adding a protocol touches nothing
outside its own package. Other packages can add theirs with `register(codec)` or through the
`tracker_gateway.protocols` entry-point group (each entry point names a module with a `CODEC`).

Order: by default port, then name. Detection asks the protocols in that order.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from pathlib import Path

from protocols.codec import Codec

ENTRY_POINT_GROUP = "tracker_gateway.protocols"

_codecs: dict[str, Codec] = {}
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    found: list[Codec] = []
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not module.ispkg:
            continue
        package = importlib.import_module(f"protocols.{module.name}")
        codec = getattr(package, "CODEC", None)
        if isinstance(codec, Codec):
            found.append(codec)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        codec = getattr(importlib.import_module(entry.value), "CODEC", None)
        if isinstance(codec, Codec):
            found.append(codec)
    for codec in found:
        _add(codec)


def _add(codec: Codec) -> None:
    if not codec.name.isidentifier() or codec.name != codec.name.lower():
        raise ValueError(f"protocol name {codec.name!r}: use lower-case letters, digits and _")
    existing = _codecs.get(codec.name)
    if existing is not None and existing is not codec:
        raise ValueError(f"protocol {codec.name!r} is registered twice")
    _codecs[codec.name] = codec
    ordered = sorted(_codecs.values(), key=lambda c: (c.default_port, c.name))
    _codecs.clear()
    _codecs.update((c.name, c) for c in ordered)


def register(codec: Codec) -> None:
    """Add a protocol (a plug-in outside `protocols/`, or a test's toy protocol)."""
    _load()
    _add(codec)


def unregister(name: str) -> None:
    """Remove a protocol added with `register` (tests)."""
    _load()
    _codecs.pop(name, None)


def codecs() -> tuple[Codec, ...]:
    """Every registered protocol, by default port."""
    _load()
    return tuple(_codecs.values())


def names() -> tuple[str, ...]:
    """The names of every registered protocol, by default port."""
    _load()
    return tuple(_codecs)


def get_codec(name: str) -> Codec:
    """The codec of a protocol name; KeyError naming the supported ones otherwise."""
    _load()
    codec = _codecs.get(name)
    if codec is None:
        raise KeyError(f"unknown protocol {name!r}; supported: {', '.join(_codecs)}")
    return codec


def wire_ids(imei: str) -> list[tuple[str, str]]:
    """(protocol, device id) pairs under which a device with this IMEI may appear, besides
    its IMEI itself (tk103's 12-digit id, for instance)."""
    return [(codec.name, wire_id) for codec in codecs() for wire_id in codec.wire_ids(imei)]


def matches_imei(protocol: str, wire_id: str, imei: str) -> bool:
    """Whether a device naming itself `wire_id` in `protocol` may be the device `imei`."""
    if wire_id == imei:
        return True
    codec = _codecs.get(protocol) if _loaded else None
    if codec is None:
        try:
            codec = get_codec(protocol)
        except KeyError:
            return False
    return codec.matches_imei(wire_id, imei)
