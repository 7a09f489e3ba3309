"""Serial ports (pyserial): NMEA from a GPS receiver, NMEA to hardware, a device over a line.

* `NmeaInput`: reads a GPS receiver (NMEA 0183) and feeds its fixes to a LiveSource, so that a
  simulated device reports where the receiver really is.
* `NmeaOutput`: acts as a GPS receiver: writes `$GPRMC` + `$GPGGA` once per interval from a route
  (for testing a tracker's or a gateway's NMEA input on real hardware).
* `SerialLink`: carries a SimDevice's own protocol over a serial line (same device behaviour as
  TCP: acks, resends, buffer), e.g. for a bench setup with a serial-to-GPRS modem.

Ports are opened with `serial.serial_for_url`, so `/dev/ttyUSB0`, `COM3` and pyserial URLs such
as `loop://` or `socket://host:port` all work. Reading is event-driven (loop.add_reader on the
port's descriptor), nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import serial

from protocols import Fix
from protocols.nmea import NmeaFramer, NmeaReader, encode_gga, encode_rmc
from simulators.device import SimDevice
from simulators.links import Backoff, DeviceLink
from simulators.routes import FixSource, LiveSource
from simulators.scheduler import Scheduler

DEFAULT_BAUD = 9600


def open_port(port: str, baud: int = DEFAULT_BAUD) -> serial.SerialBase:
    """Open a serial port (or pyserial URL) for non-blocking reads."""
    handle = serial.serial_for_url(port, baudrate=baud, timeout=0, write_timeout=5)
    return handle


class _Reader:
    """Event-driven reads from a pyserial port on the running loop."""

    def __init__(self, handle: serial.SerialBase, on_data: Callable[[bytes], None],
                 on_error: Callable[[str], None]) -> None:
        self.handle = handle
        self.loop = asyncio.get_running_loop()
        self._on_data = on_data
        self._on_error = on_error
        self._fd: int | None = None
        try:
            self._fd = handle.fileno()
        except (AttributeError, serial.SerialException, OSError):
            self._fd = None
        self._poll: asyncio.Task[None] | None = None
        if self._fd is not None:
            self.loop.add_reader(self._fd, self._readable)
        else:  # URL handlers without a descriptor (loop://): poll gently
            self._poll = self.loop.create_task(self._poll_loop())

    def _readable(self) -> None:
        try:
            data = self.handle.read(self.handle.in_waiting or 1)
        except (serial.SerialException, OSError) as exc:
            self.close()
            self._on_error(str(exc))
            return
        if data:
            self._on_data(data)

    async def _poll_loop(self) -> None:
        while True:
            self._readable()
            await asyncio.sleep(0.02)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self._fd)
            self._fd = None
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None


class NmeaInput:
    """A GPS receiver on a serial port: every RMC (+GGA) becomes a fix in `source`."""

    def __init__(self, port: str, baud: int = DEFAULT_BAUD,
                 source: LiveSource | None = None) -> None:
        self.port = port
        self.baud = baud
        self.source = source or LiveSource()
        self.framer = NmeaFramer()
        self.reader = NmeaReader()
        self.sentences = 0
        self.error: str | None = None
        self._handle: serial.SerialBase | None = None
        self._reader: _Reader | None = None

    def open(self) -> None:
        self._handle = open_port(self.port, self.baud)
        self._reader = _Reader(self._handle, self._data, self._failed)

    def _data(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            if isinstance(frame, bytes):
                self.sentences += 1
                fix = self.reader.feed_sentence(frame)
                if fix is not None:
                    self.source.push(fix)

    def _failed(self, error: str) -> None:
        self.error = error

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._handle is not None:
            self._handle.close()


class NmeaOutput:
    """Acts as a GPS receiver: GGA and RMC for the source's position, once per interval."""

    def __init__(self, port: str, source: FixSource, baud: int = DEFAULT_BAUD, *,
                 interval_s: float = 1.0, talker: str = "GP",
                 clock: Callable[[], datetime] | None = None) -> None:
        self.port = port
        self.baud = baud
        self.source = source
        self.interval_s = interval_s
        self.talker = talker
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sent = 0
        self.on_fix: Callable[[Fix, bytes], None] | None = None

    async def run(self, duration_s: float | None = None, count: int | None = None) -> int:
        """Write fixes until `duration_s` or `count` (None: forever); returns fixes written."""
        handle = open_port(self.port, self.baud)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            while True:
                now = loop.time()
                if duration_s is not None and now - start >= duration_s:
                    break
                if count is not None and self.sent >= count:
                    break
                fix = self.source.fix(self.clock(), now - start)
                if fix is not None:
                    # GGA first: a reader completes the fix at the RMC of the same second
                    data = encode_gga(fix, self.talker) + encode_rmc(fix, self.talker)
                    await loop.run_in_executor(None, handle.write, data)
                    self.sent += 1
                    if self.on_fix is not None:
                        self.on_fix(fix, data)
                await asyncio.sleep(max(0.0, start + self.sent * self.interval_s
                                        - loop.time()) if fix is not None else self.interval_s)
        finally:
            handle.close()
        return self.sent


class SerialLink(DeviceLink):
    """A SimDevice whose protocol frames travel over a serial line instead of TCP.

    A serial line has no connection: the link is "up" once the port is open, and "down" when the
    port fails (then it is reopened with backoff, like a TCP reconnect).
    """

    def __init__(self, device: SimDevice, port: str, scheduler: Scheduler, *,
                 baud: int = DEFAULT_BAUD, backoff: Backoff | None = None) -> None:
        super().__init__(device, scheduler, backoff)
        self.port = port
        self.baud = baud
        self._handle: serial.SerialBase | None = None
        self._reader: _Reader | None = None

    @property
    def is_open(self) -> bool:
        return self._handle is not None

    def _open(self) -> None:
        if self.stopped or self._handle is not None:
            return
        try:
            self._handle = open_port(self.port, self.baud)
        except (serial.SerialException, OSError) as exc:
            self._connect_failed(f"{self.port}: {exc}")
            return
        self._reader = _Reader(self._handle, self._link_data, self._failed)
        self._link_up()

    def _failed(self, error: str) -> None:
        self._shut()
        self._link_down(error)

    def _write(self, data: bytes) -> None:
        assert self._handle is not None
        try:
            self._handle.write(data)
        except (serial.SerialException, OSError) as exc:
            self._failed(str(exc))

    def _shut(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._handle is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._handle.close()
            self._handle = None

    def _close_link(self, graceful: bool = False) -> None:
        if self._handle is None:
            return
        if graceful:
            with contextlib.suppress(serial.SerialException, OSError):
                self._handle.flush()
        self._shut()
        self._link_down(None)
