"""Transports that carry a SimDevice: the shared link logic, and TCP (an asyncio.Protocol).

A link calls the device's inputs (connected / receive / tick / disconnected), writes what the
device produced, closes when the device asks to, reconnects with exponential backoff, and keeps
one timer entry per device in a shared Scheduler. No task per device: a fleet of ten thousand
links is ten thousand protocol objects on one loop.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable

from simulators.device import SimDevice, State
from simulators.scheduler import Scheduler


class Backoff:
    """Delays between reconnect attempts: doubling from `first` up to `cap`, with jitter."""

    def __init__(self, first: float = 1.0, cap: float = 60.0,
                 rng: random.Random | None = None) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        base = min(self.cap, self.first * (2 ** min(self.failures, 30)))
        self.failures += 1
        return base * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class DeviceLink:
    """What every transport does around a SimDevice (subclasses do the I/O)."""

    def __init__(self, device: SimDevice, scheduler: Scheduler,
                 backoff: Backoff | None = None) -> None:
        self.device = device
        self.scheduler = scheduler
        self.backoff = backoff or Backoff()
        self.stopped = False
        self.last_error: str | None = None
        self._timer_at = math.inf
        self._reconnect: asyncio.TimerHandle | None = None
        device.wake = self._wake
        device.started = scheduler.time()
        device.rebase(device.started)

    # Timer -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the device's clock and connect."""
        self._arm(self.device.deadline)
        self._open()

    def fire(self, now: float, when: float) -> None:
        if when != self._timer_at or self.stopped:
            return
        self._timer_at = math.inf
        self.device.tick(now)
        self._after(now)

    def _arm(self, when: float) -> None:
        if when < self._timer_at and not self.stopped:
            self._timer_at = when
            self.scheduler.schedule(when, self)

    def _wake(self) -> None:
        now = self.scheduler.time()
        self._timer_at = math.inf  # supersede the pending entry
        self._arm(now)

    def _after(self, now: float) -> None:
        device = self.device
        if device.output:
            data = device.take_output()
            if self.is_open:
                self._write(data)
        if device.close_requested and self.is_open:
            device.close_requested = False
            self._close_link()
        if device.state is State.ONLINE:
            self.backoff.reset()
        self._arm(device.deadline)

    # Link events (called by subclasses) ------------------------------------------------------

    def _link_up(self) -> None:
        now = self.scheduler.time()
        self.device.connected(now)
        self._after(now)

    def _link_data(self, data: bytes) -> None:
        now = self.scheduler.time()
        self.device.receive(data, now)
        self._after(now)

    def _link_down(self, error: str | None) -> None:
        now = self.scheduler.time()
        if error:
            self.last_error = error
        self.device.disconnected(now)
        self.device.output.clear()
        self._after(now)
        self._schedule_reconnect()

    def _connect_failed(self, error: str) -> None:
        self.last_error = error
        self.device.stats.connect_failures += 1
        if self.device.trace is not None:
            self.device.trace("connect-failed", error, None)
        self._schedule_reconnect()

    def _schedule_reconnect(self) -> None:
        if self.stopped:
            return
        delay = self.backoff.next_delay()
        if self.device.trace is not None:
            self.device.trace("reconnect", f"in {delay:.1f} s", None)
        self._reconnect = self.scheduler.loop.call_later(delay, self._open)

    async def finish(self, timeout: float = 5.0) -> None:
        """Wait (up to `timeout`) until nothing waits for an ack or in the buffer, then stop."""
        loop = self.scheduler.loop
        deadline = loop.time() + timeout
        device = self.device
        while loop.time() < deadline and (
                device.in_flight or device.buffer or device.state is not State.ONLINE):
            await asyncio.sleep(0.05)
        self.stop()

    def stop(self) -> None:
        """Stop for good: no more frames, timers or reconnects."""
        self.stopped = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        if self.is_open:
            self._close_link(graceful=True)

    def drop(self) -> None:
        """Break the link now (as a lost radio link would); the device reconnects."""
        if self.is_open:
            self._close_link()

    # I/O, provided by subclasses -------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        raise NotImplementedError

    def _open(self) -> None:
        raise NotImplementedError

    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _close_link(self, graceful: bool = False) -> None:
        raise NotImplementedError


class TcpLink(DeviceLink, asyncio.Protocol):
    """A device on a TCP connection to host:port."""

    def __init__(self, device: SimDevice, host: str, port: int, scheduler: Scheduler, *,
                 backoff: Backoff | None = None, connect_timeout: float = 10.0,
                 on_up: Callable[[TcpLink], None] | None = None) -> None:
        DeviceLink.__init__(self, device, scheduler, backoff)
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.transport: asyncio.Transport | None = None
        self.on_up = on_up
        self._connecting: asyncio.Task[None] | None = None
        self.closed = scheduler.loop.create_future()

    @property
    def is_open(self) -> bool:
        return self.transport is not None

    def _open(self) -> None:
        if self.stopped or self.transport is not None or self._connecting is not None:
            return
        self._connecting = self.scheduler.loop.create_task(self._connect())

    async def _connect(self) -> None:
        loop = self.scheduler.loop
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: self, self.host, self.port),
                self.connect_timeout)
        except TimeoutError:
            self._connecting = None
            self._connect_failed(f"no answer from {self.host}:{self.port} within "
                                 f"{self.connect_timeout:g} s")
        except OSError as exc:
            self._connecting = None
            self._connect_failed(f"{self.host}:{self.port}: {exc.strerror or exc}")
        else:
            self._connecting = None

    # asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.stopped:
            transport.abort()
            return
        self.transport = transport  # type: ignore[assignment]  (uvloop's is no subclass)
        self._link_up()
        if self.on_up is not None:
            self.on_up(self)

    def data_received(self, data: bytes) -> None:
        self._link_data(data)

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        self._link_down(str(exc) if exc else None)
        if self.stopped and not self.closed.done():
            self.closed.set_result(None)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def _close_link(self, graceful: bool = False) -> None:
        if self.transport is not None:
            if graceful:
                self.transport.close()
            else:
                self.transport.abort()

    def stop(self) -> None:
        super().stop()
        if self._connecting is not None:
            self._connecting.cancel()
        if self.transport is None and not self.closed.done():
            self.closed.set_result(None)
