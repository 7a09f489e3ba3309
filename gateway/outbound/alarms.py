"""Alarms to owners: every alarm a bound device reports (SOS, low battery, power cut, ...) is
told to its owner through the notify channel, as a message with purpose "alarm".

At most one message per device and alarm type per `alarms.min_interval_s`, and at most
`alarms.max_per_device_hour` messages per device an hour over every type but SOS, across
instances: the counts live in the database (`failure_counters`, scopes "alarm" and
"alarm_device"); each instance also remembers what it sent lately, so that a device repeating
an alarm costs no database work.
The alarms themselves are stored whatever is sent (the device page and
`GET /api/v1/devices/{imei}/alarms` show them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from gateway.config import AlarmSettings, NotifySettings
from gateway.metrics import Metrics
from gateway.notify import Message, Notifier, deliver
from gateway.store import counters, queries
from gateway.store.database import Database
from gateway.store.ingest import IngestItem
from protocols import Alarm, AlarmType

log = logging.getLogger("gateway.alarms")

#: Devices and alarm types remembered per instance (cleared beyond).
MAX_REMEMBERED = 100_000


class AlarmNotifier:
    def __init__(
        self, db: Database, settings: AlarmSettings, notify_settings: NotifySettings,
        notifier: Notifier, *, public_url: str, metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.notify_settings = notify_settings
        self.notifier = notifier
        self.public_url = public_url
        self.metrics = metrics
        #: (device, alarm type) -> when this instance last sent a message for it (monotonic).
        self._sent: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: False once stopping, or when alarms.notify is off (read once: this runs per frame).
        self._on = settings.notify
        self._min_interval_s = settings.min_interval_s
        self._quiet = frozenset(settings.quiet_types)

    def stored(self, item: IngestItem) -> None:
        """A committed item (`Gateway.on_stored`): tell the owner of each alarm in it."""
        if not self._on:
            return
        for event in item.events:  # a loop, not a comprehension: called for every frame
            if event.__class__ is Alarm:
                assert isinstance(event, Alarm)
                key = (item.device_id, event.alarm.value)
                if key[1] in self._quiet:
                    self._count("quiet")
                    continue
                sent = self._sent.get(key)
                if sent is not None and time.monotonic() - sent < self._min_interval_s:
                    self._count("suppressed")
                    continue
                self._spawn(self._notify(item, event))

    async def _notify(self, item: IngestItem, alarm: Alarm) -> None:
        imei, kind = item.device_id, alarm.alarm.value
        binding = await queries.current_binding(self.db, imei)
        if binding is None:
            return  # nobody's device: nobody to tell
        held = await self._held_back(imei, kind)
        if held is not None:
            self._count(held)
            return
        key = (imei, kind)
        if len(self._sent) >= MAX_REMEMBERED:
            self._sent.clear()
        self._sent[key] = time.monotonic()
        position = alarm.position
        message = Message(
            to=binding.contact, purpose="alarm", imei=imei, alarm=kind,
            at=alarm.event_time or (position.fix_time if position else None) or item.received_at,
            lat=position.lat if position else None, lon=position.lon if position else None,
            link=f"{self.public_url}/devices/{imei}")
        error = await deliver(self.notifier, message, attempts=self.notify_settings.attempts,
                              retry_delay_s=self.notify_settings.retry_delay_s)
        self._count("failed" if error else "sent")
        if error:
            log.warning("alarm not delivered", extra={"device": imei, "alarm": kind,
                                                      "error": error})
        else:
            log.info("alarm notified", extra={"device": imei, "alarm": kind,
                                              "channel": message.kind})

    async def _held_back(self, imei: str, kind: str) -> str | None:
        """Why this alarm is not told ("suppressed": its type was told within
        `min_interval_s`; "capped": `max_per_device_hour` reached), or None, counting it in
        one transaction."""
        cap = self.settings.max_per_device_hour if kind != AlarmType.SOS.value else 0
        if self._min_interval_s <= 0 and not cap:  # every alarm is told: nothing to count
            return None
        now = datetime.now(UTC)
        async with self.db.begin() as conn:
            if self._min_interval_s > 0:
                count, _ = await counters.bump(conn, "alarm", f"{imei}:{kind}"[:255], now,
                                               self._min_interval_s)
                if count > 1:
                    return "suppressed"
            if cap:
                told, _ = await counters.bump(conn, "alarm_device", imei[:255], now, 3600)
                if told > cap:
                    if told == cap + 1:
                        log.warning("alarm messages capped for this device this hour", extra={
                            "device": imei, "alarm": kind, "cap": cap})
                    return "capped"
        return None

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.alarm_notifications.labels(result).inc()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("alarm not notified", extra={"error": str(task.exception())})

    async def drain(self) -> None:
        """Wait for messages in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let messages in flight finish (up to `timeout`), then cancel the rest."""
        self._on = False
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
