"""The h02 status word: 32 bits, active-low alarms (a clear bit raises the alarm).

| bit (clear)  | alarm     |
|--------------|-----------|
| 0            | vibration |
| 1 or 18      | SOS       |
| 2            | overspeed |
| 19           | power cut |

Only the first match in that order is reported. Bit 10 is ignition, active-high.
"""

from __future__ import annotations

from protocols.events import AlarmType, AttrValue

#: The word a device with no alarm and ignition off sends.
IDLE = 0xFFFFFBFF
IGNITION = 1 << 10
#: The bit a simulated device clears for each alarm it raises.
ALARM_BITS: dict[AlarmType, int] = {
    AlarmType.VIBRATION: 0,
    AlarmType.SOS: 1,
    AlarmType.OVERSPEED: 2,
    AlarmType.POWER_CUT: 19,
}


def alarm_of(status: int) -> AlarmType | None:
    """The alarm a status word raises, if any."""
    if not status & 0x1:
        return AlarmType.VIBRATION
    if not status & 0x2 or not status & (1 << 18):
        return AlarmType.SOS
    if not status & 0x4:
        return AlarmType.OVERSPEED
    if not status & (1 << 19):
        return AlarmType.POWER_CUT
    return None


def read_status(text: str, values: dict[str, AttrValue]) -> AlarmType | None:
    """Parse an 8-hex-digit status word into `values`; returns its alarm."""
    status = int(text, 16)
    values["status"] = status
    values["ignition"] = bool(status & IGNITION)
    return alarm_of(status)


def is_status(text: str) -> bool:
    return len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text)
