"""Events for integrators: bound devices' positions and alarms, and activation events, as JSON
on `<mqtt.events_prefix>/<imei>/events` (with `mqtt.publish_events = true`).

Positions and alarms come from committed items of any transport (`device_stored`); a device's
"bound" state is cached for a few seconds. Activation events (signal, claim, release) come from
the audit log, read in order by a poller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.config import MqttSettings
from gateway.metrics import Metrics
from gateway.store import queries
from gateway.store.database import Database
from gateway.store.ingest import IngestItem
from protocols import Alarm, Position

log = logging.getLogger("gateway.events")

#: Seconds a device's "bound" state is cached.
BOUND_CACHE_S = 5.0
#: Devices whose bound state is cached at most.
MAX_CACHED = 100_000
#: Seconds between two looks at the audit log for activation events.
AUDIT_POLL_S = 1.0
ACTIVATION_ACTIONS = ("signal", "claim", "release")

#: publish(topic, payload, qos) -> False when it could not be sent.
Publish = Callable[[str, bytes, int], bool]


class EventPublisher:
    """Publishes integrator events through `publish` (the broker link)."""

    def __init__(self, settings: MqttSettings, publish: Publish, connected: Callable[[], bool],
                 db: Database, metrics: Metrics, *, instance: str) -> None:
        self.settings = settings
        #: Named in every event: which gateway saw it.
        self.instance = instance
        self.publish = publish
        self.connected = connected
        self.db = db
        self.metrics = metrics
        self._bound: dict[str, tuple[bool, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._audit_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._audit_task = asyncio.create_task(self._audit_loop())

    async def stop(self) -> None:
        if self._audit_task is not None:
            self._audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._audit_task
        for task in list(self._tasks):
            task.cancel()

    def device_stored(self, item: IngestItem) -> None:
        """A frame from any transport was committed: publish its positions and alarms when the
        device is bound."""
        if not self.connected():
            return
        for event in item.events:  # a loop, not any(): called for every committed frame
            if isinstance(event, Position | Alarm):
                task = asyncio.create_task(self._publish_item(item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return

    async def _is_bound(self, device_id: str) -> bool:
        cached = self._bound.get(device_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        bound = await queries.current_binding(self.db, device_id) is not None
        if len(self._bound) > MAX_CACHED:
            self._bound.clear()
        self._bound[device_id] = (bound, now + BOUND_CACHE_S)
        return bound

    async def _publish_item(self, item: IngestItem) -> None:
        try:
            if not await self._is_bound(item.device_id):
                return
        except Exception as exc:
            log.warning("events: binding unknown", extra={"error": str(exc)})
            return
        for event in item.events:
            body = event_json(item, event)
            if body is not None:
                self._event(item.device_id, body)

    def _event(self, device_id: str, body: dict[str, Any]) -> None:
        body["instance"] = self.instance
        topic = f"{self.settings.events_prefix}/{device_id}/events"
        if self.publish(topic, json.dumps(body).encode(), self.settings.events_qos):
            self.metrics.mqtt_events.labels(body["type"]).inc()

    async def _audit_loop(self) -> None:
        """Activation events come from the audit log (signal, claim, release), in order."""
        last: int | None = None
        while True:
            try:
                if last is None:
                    last = await queries.last_audit_id(self.db)
                rows = await queries.audit_events_after(self.db, last, ACTIVATION_ACTIONS)
                for row in rows:
                    last = row.id
                    if row.imei is None or row.outcome != "ok":
                        continue
                    self._bound.pop(row.imei, None)
                    if self.connected():
                        self._event(row.imei, {"type": "activation", "imei": row.imei,
                                               "action": row.action, "at": _iso(row.at)})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("events: audit log not read", extra={"error": str(exc)})
            await asyncio.sleep(AUDIT_POLL_S)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _position_json(p: Position) -> dict[str, Any]:
    return {"fix_time": _iso(p.fix_time), "valid": p.valid, "lat": p.lat, "lon": p.lon,
            "speed_kmh": p.speed_kmh, "course_deg": p.course_deg, "altitude_m": p.altitude_m}


def event_json(item: IngestItem, event: object) -> dict[str, Any] | None:
    """A committed position or alarm as the JSON object integrators get (MQTT events, live
    updates); None for other events."""
    base = {"imei": item.device_id, "protocol": item.protocol,
            "received_at": _iso(item.received_at)}
    if isinstance(event, Position):
        return {"type": "position", **base, **_position_json(event)}
    if isinstance(event, Alarm):
        body: dict[str, Any] = {"type": "alarm", **base, "alarm": event.alarm.value,
                                "event_time": _iso(event.event_time)}
        if event.position is not None:
            body["position"] = _position_json(event.position)
        return body
    return None
