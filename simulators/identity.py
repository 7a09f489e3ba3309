"""Device identities: IMEIs with a valid Luhn check digit (protocols.imei does the arithmetic)."""

from __future__ import annotations

import random

from protocols.imei import complete_imei, is_valid_imei

#: Type allocation code used for simulated devices unless another is given. `35` is a GSMA
#: reporting body prefix; the rest is arbitrary but fixed, so simulated fleets are recognisable.
DEFAULT_TAC = "35990000"


def imei_for(index: int, tac: str = DEFAULT_TAC) -> str:
    """The IMEI of simulated device number `index` (stable: the same index gives the same IMEI)."""
    if len(tac) != 8 or not tac.isdigit():
        raise ValueError(f"a type allocation code is 8 digits, got {tac!r}")
    if not 0 <= index < 1_000_000:
        raise ValueError("device index must be 0..999999 (six serial digits)")
    return complete_imei(f"{tac}{index:06d}")


def random_imei(rng: random.Random | None = None, tac: str = DEFAULT_TAC) -> str:
    """A random IMEI under `tac` with its Luhn digit."""
    rng = rng or random.Random()
    return imei_for(rng.randrange(1_000_000), tac)


def check_imei(value: str) -> str:
    """`value` if it is a valid IMEI; a 14-digit value gets its Luhn digit appended."""
    if len(value) == 14 and value.isdigit():
        return complete_imei(value)
    if not is_valid_imei(value):
        raise ValueError(f"{value!r} is not a valid IMEI (15 digits, the last a Luhn check "
                         "digit; give 14 digits to have it computed)")
    return value
