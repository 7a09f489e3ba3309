"""Live updates for the owners' browsers: committed positions and alarms, fanned out to the
subscribers of their device (`GET /api/v1/devices/{imei}/live`).

`LiveHub.stored(item)` runs for every committed frame (`Gateway.on_stored`): it costs a
dictionary look-up unless somebody watches the device, here or on another instance. Events
committed on this instance go to its subscribers directly; on PostgreSQL they also go to the
other instances through LISTEN/NOTIFY (`gateway.store.live_bus`), and theirs come back the same
way. On SQLite there is one instance: in-process only.

Each subscriber has a bounded queue: a browser that does not keep up is dropped and told to
reload (`Subscription.overflowed`), so a slow reader never grows memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter, deque
from typing import Any

from gateway.config import WebSettings
from gateway.metrics import Metrics
from gateway.outbound.events import event_json
from gateway.store.ingest import IngestItem
from gateway.store.live_bus import PgLiveBus

log = logging.getLogger("gateway.live")

#: Kinds of events a subscriber gets (the SSE event names).
KINDS = frozenset({"position", "alarm"})


class LiveStreamRefused(Exception):
    """No stream for this request now; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Subscription:
    """One browser watching one device."""

    __slots__ = ("_queue", "_wake", "closed", "device_id", "limit", "overflowed", "owner_id",
                 "resync_due")

    def __init__(self, device_id: str, owner_id: int, limit: int) -> None:
        self.device_id = device_id
        self.owner_id = owner_id
        self.limit = limit
        self._queue: deque[tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        #: Too many events waited: the queue was dropped; the stream must end with `reload`.
        self.overflowed = False
        #: Events may have been missed (another instance's link was down): say `reload`.
        self.resync_due = False
        #: The gateway is stopping: end the stream (the browser reconnects elsewhere/later).
        self.closed = False

    def push(self, kind: str, data: str) -> bool:
        """Queue one event; False (and the queue dropped) when the subscriber is too slow."""
        if self.overflowed or self.closed:
            return False
        if len(self._queue) >= self.limit:
            self.overflowed = True
            self._queue.clear()
            self._wake.set()
            return False
        self._queue.append((kind, data))
        self._wake.set()
        return True

    def wake(self) -> None:
        self._wake.set()

    async def next(self, timeout: float) -> list[tuple[str, str]]:
        """The events queued so far, waiting up to `timeout` seconds for the first; [] when
        none came (time for a heartbeat) or a flag was raised."""
        if not self._queue and not (self.overflowed or self.closed or self.resync_due):
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation (the
            # browser went away) that arrives as an event is queued.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
        self._wake.clear()
        events = list(self._queue)
        self._queue.clear()
        return events


class LiveHub:
    """Subscribers by device, on this instance; `bus` links the instances (PostgreSQL)."""

    def __init__(self, settings: WebSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.bus: PgLiveBus | None = None
        self._by_device: dict[str, set[Subscription]] = {}
        self._per_owner: Counter[int] = Counter()
        self._count = 0
        self._closed = False
        self._queued = metrics.live_events.labels("queued")
        self._dropped = metrics.live_events.labels("dropped")

    @classmethod
    async def start(cls, settings: WebSettings, metrics: Metrics, database_url: str,
                    dialect: str) -> LiveHub:
        """A hub, linked to the other instances through the database on PostgreSQL."""
        hub = cls(settings, metrics)
        if dialect == "postgresql":
            bus = PgLiveBus(
                database_url, deliver=hub.remote_event, watched=hub.watched_devices,
                resync=hub.resync, on_state=lambda up: metrics.live_bus_up.set(int(up)),
                on_dropped=metrics.live_bus_dropped.inc)
            hub.bus = bus
            await bus.start()
        return hub

    @property
    def streams(self) -> int:
        return self._count

    def watched_devices(self) -> list[str]:
        return list(self._by_device)

    async def subscribe(self, device_id: str, owner_id: int) -> Subscription:
        """A new subscriber of `device_id` (the caller checked it is `owner_id`'s); raises
        LiveStreamRefused over the limits or while the gateway stops."""
        settings = self.settings
        if self._closed:
            raise LiveStreamRefused(503, "the gateway is restarting: try again in a moment")
        if self._count >= settings.live_max_streams:
            raise LiveStreamRefused(
                503, f"this gateway serves {settings.live_max_streams} live streams already "
                     "(web.live_max_streams): try again later")
        if self._per_owner[owner_id] >= settings.live_max_streams_per_owner:
            raise LiveStreamRefused(
                429, f"you have {settings.live_max_streams_per_owner} live streams open "
                     "already (web.live_max_streams_per_owner): close a page first")
        sub = Subscription(device_id, owner_id, settings.live_queue_max)
        subscribers = self._by_device.setdefault(device_id, set())
        first = not subscribers
        subscribers.add(sub)
        self._per_owner[owner_id] += 1
        self._count += 1
        self.metrics.live_streams.set(self._count)
        if first and self.bus is not None:
            await self.bus.announce(device_id)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget `sub` (idempotent)."""
        subscribers = self._by_device.get(sub.device_id)
        if subscribers is None or sub not in subscribers:
            return
        subscribers.discard(sub)
        if not subscribers:
            del self._by_device[sub.device_id]
        self._per_owner[sub.owner_id] -= 1
        if self._per_owner[sub.owner_id] <= 0:
            del self._per_owner[sub.owner_id]
        self._count -= 1
        self.metrics.live_streams.set(self._count)

    def stored(self, item: IngestItem) -> None:
        """A frame was committed on this instance (called for every one: keep it cheap)."""
        device_id = item.device_id
        local = self._by_device.get(device_id)
        bus = self.bus
        if local is None and (bus is None or not bus.wants(device_id)):
            return
        try:
            for event in item.events:
                body = event_json(item, event)
                if body is None:
                    continue
                data = json.dumps(body)
                if local is not None:
                    self._deliver(device_id, body["type"], data)
                if bus is not None and bus.wants(device_id):
                    bus.publish(device_id, data)
        except Exception:  # never into the write path: the frame is stored, its ack is due
            log.exception("live update not sent", extra={"imei": device_id})

    def remote_event(self, device_id: str, body: dict[str, Any]) -> None:
        """An event committed on another instance."""
        kind = body.get("type")
        if kind in KINDS and device_id in self._by_device:
            self._deliver(device_id, str(kind), json.dumps(body))

    def _deliver(self, device_id: str, kind: str, data: str) -> None:
        for sub in list(self._by_device.get(device_id, ())):
            if sub.push(kind, data):
                self._queued.inc()
            else:
                self._dropped.inc()
                if sub.overflowed:
                    self.metrics.live_overflows.inc()
                    log.info("live stream too slow: dropped, told to reload",
                             extra={"imei": device_id, "queued": sub.limit})
                self.unsubscribe(sub)

    def resync(self) -> None:
        """Every subscriber may have missed events: each is told to reload what it shows."""
        for subscribers in self._by_device.values():
            for sub in subscribers:
                sub.resync_due = True
                sub.wake()

    async def close(self) -> None:
        """End every stream (the gateway stops) and refuse new ones."""
        self._closed = True
        for subscribers in list(self._by_device.values()):
            for sub in list(subscribers):
                sub.closed = True
                sub.wake()
                self.unsubscribe(sub)
        if self.bus is not None:
            await self.bus.stop()
