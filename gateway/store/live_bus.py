"""Live updates across gateway instances on one PostgreSQL database: LISTEN/NOTIFY on one
channel, on one connection of each instance's own.

An instance publishes a device's committed events only while some instance has a browser
watching that device (`wants`), so the NOTIFY traffic follows the number of watched devices,
not the fleet. Interest is announced and expires:

* `{"from": ID, "hello": true}`: an instance (re)connected; the others announce what they watch.
* `{"from": ID, "want": [device, ...]}`: devices with a live subscriber on instance ID; sent when
  a device gets its first subscriber there and every `WANT_EVERY_S` seconds after, forgotten
  `WANT_TTL_S` seconds after the last announcement.
* `{"from": ID, "events": [[device, EVENT], ...]}`: committed events, EVENT a JSON object.

Events are batched: whatever was published since the last round trip goes out in as few
NOTIFYs as fit PostgreSQL's payload limit, in one statement. PostgreSQL delivers an instance's
own notifications back to it; it ignores them (its own subscribers got the events directly),
except its own `want`, whose return says every listener has it queued (`announce`).

Best effort by design: while the connection is down, events are not sent (and counted); when
it comes back, the local subscribers are told to catch up (`resync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Database

log = logging.getLogger("gateway.live")

CHANNEL = "gateway_live"
#: PostgreSQL refuses payloads of 8000 bytes or more; every payload here is ASCII JSON.
MAX_PAYLOAD = 7900
#: Seconds between two announcements of the devices watched here.
WANT_EVERY_S = 20.0
#: Seconds an announcement of another instance is believed.
WANT_TTL_S = 60.0
#: Devices watched elsewhere remembered at most (a flood of announcements cannot grow memory).
MAX_REMOTE = 200_000
#: Events waiting for the next round trip; more are dropped (and counted).
MAX_PENDING = 10_000
#: Longest wait between two connection attempts.
RECONNECT_MAX_S = 10.0
#: Longest wait for one's own announcement to come back (`announce`).
ANNOUNCE_TIMEOUT_S = 2.0

_NOTIFY = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p"

#: deliver(device id, event object) for events committed on other instances.
Deliver = Callable[[str, dict[str, Any]], None]


class PgLiveBus:
    """Start with `await bus.start()`, stop with `await bus.stop()`."""

    def __init__(self, url: str, *, deliver: Deliver, watched: Callable[[], Collection[str]],
                 resync: Callable[[], None], on_state: Callable[[bool], None] | None = None,
                 on_dropped: Callable[[int], None] | None = None) -> None:
        self.url = url
        #: This process's id in messages (instance names need not be unique).
        self.id = uuid.uuid4().hex[:16]
        self._deliver = deliver
        self._watched = watched
        self._resync = resync
        self._on_state = on_state or (lambda _up: None)
        self._on_dropped = on_dropped or (lambda _n: None)
        self.up = False
        #: The server process of the LISTEN connection while connected (for operators).
        self.server_pid: int | None = None
        self._remote: dict[str, float] = {}
        self._pending: deque[tuple[str, str]] = deque()
        self._want: set[str] = set()
        self._want_all = False
        self._hello = False
        self._announced: dict[str, list[asyncio.Future[None]]] = {}
        self._wake = asyncio.Event()
        self._lost = False
        self._task: asyncio.Task[None] | None = None
        self._db: Database | None = None

    # --- what the hub calls (never blocks) ---

    def wants(self, device_id: str) -> bool:
        """True while another instance has announced a subscriber for `device_id`."""
        expires = self._remote.get(device_id)
        return expires is not None and expires > time.monotonic()

    def publish(self, device_id: str, event_json: str) -> None:
        """Send one committed event (ASCII JSON text of an object) to the other instances."""
        if not self.up or len(self._pending) >= MAX_PENDING:
            self._on_dropped(1)
            return
        self._pending.append((device_id, event_json))
        self._wake.set()

    async def announce(self, device_id: str) -> None:
        """Tell the other instances that `device_id` has a subscriber here; returns once the
        announcement came back (so every instance has it queued), or after a short timeout."""
        if not self.up:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._announced.setdefault(device_id, []).append(waiter)
        self._want.add(device_id)
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ANNOUNCE_TIMEOUT_S):
                await asyncio.shield(waiter)
        waiters = self._announced.get(device_id)
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                del self._announced[device_id]

    # --- life cycle ---

    async def start(self) -> None:
        """Connects in the background: a database that is away never stops the gateway."""
        self._db = Database.create(self.url, pool_size=1, max_overflow=0, pre_ping=False)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._db is not None:
            await self._db.dispose()

    async def _run(self) -> None:
        assert self._db is not None
        delay = 0.5
        connected_before = False
        while True:
            try:
                async with self._db.engine.connect() as conn:
                    delay = 0.5
                    await self._serve(conn, resync=connected_before)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live updates across instances interrupted (retrying)",
                            extra={"error": str(exc) or type(exc).__name__})
            finally:
                if self.up:
                    connected_before = True
                self._set_up(False)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _set_up(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self._on_state(up)
        if not up:
            dropped = len(self._pending)
            self._pending.clear()
            if dropped:
                self._on_dropped(dropped)
            for waiters in self._announced.values():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def _serve(self, conn: AsyncConnection, *, resync: bool) -> None:
        try:
            await self._listen(conn, resync=resync)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # never back to the pool: it may be half dead
            raise

    async def _listen(self, conn: AsyncConnection, *, resync: bool) -> None:
        raw = await conn.get_raw_connection()
        listener = raw.driver_connection
        assert listener is not None
        self._lost = False

        def lost(_conn: object) -> None:
            self._lost = True
            self._wake.set()

        listener.add_termination_listener(lost)
        await listener.add_listener(CHANNEL, self._on_notify)
        self.server_pid = listener.get_server_pid()
        log.info("live updates linked to the other instances",
                 extra={"channel": CHANNEL, "server_pid": self.server_pid})
        self._hello = True
        self._want_all = True
        self._wake.set()  # say hello now
        self._set_up(True)
        if resync:
            self._resync()  # events of other instances may have been missed meanwhile
        next_want = time.monotonic() + WANT_EVERY_S
        while not self._lost:
            timeout = max(0.0, next_want - time.monotonic())
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that
            # arrives as the event is set, and stop() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._wake.clear()
            if self._lost:
                break
            now = time.monotonic()
            ping = now >= next_want
            if ping:
                next_want = now + WANT_EVERY_S
                self._want_all = True
                self._prune(now)
            payloads = self._payloads()
            # A round trip even with nothing to send: a half-open connection is found within
            # WANT_EVERY_S (plus the command timeout).
            if payloads or ping:
                await listener.execute(_NOTIFY, CHANNEL, payloads)
        raise ConnectionError("the LISTEN connection was closed")

    # --- messages ---

    def _payloads(self) -> list[str]:
        out: list[str] = []
        head = '{"from":' + json.dumps(self.id)
        if self._hello:
            self._hello = False
            out.append(head + ',"hello":true}')
        want = set(self._watched()) if self._want_all else set()
        want |= self._want
        self._want_all = False
        self._want.clear()
        if want:
            out.extend(_chunks(head + ',"want":[', [json.dumps(d) for d in sorted(want)]))
        if self._pending:
            items = [f"[{json.dumps(device)},{event}]" for device, event in self._pending]
            self._pending.clear()
            out.extend(_chunks(head + ',"events":[', items))
        return out

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        # Anyone who can connect to the database can NOTIFY: read defensively.
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        own = message.get("from") == self.id
        want = message.get("want")
        if isinstance(want, list):
            if own:
                for device in want:
                    for waiter in self._announced.pop(device, []) if isinstance(device,
                                                                                str) else []:
                        if not waiter.done():
                            waiter.set_result(None)
                return
            if len(self._remote) + len(want) > MAX_REMOTE:
                self._prune(time.monotonic())
            expires = time.monotonic() + WANT_TTL_S
            for device in want:
                if isinstance(device, str) and len(self._remote) < MAX_REMOTE:
                    self._remote[device] = expires
            return
        if own:
            return
        if message.get("hello") is True:
            self._want_all = True
            self._wake.set()
            return
        events = message.get("events")
        if not isinstance(events, list):
            return
        for entry in events:
            if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                    and isinstance(entry[1], dict)):
                self._deliver(entry[0], entry[1])

    def _prune(self, now: float) -> None:
        self._remote = {d: t for d, t in self._remote.items() if t > now}


def _chunks(head: str, items: list[str]) -> list[str]:
    """`head` + items + `]}` in as few payloads under MAX_PAYLOAD as fit; an item too long
    for any payload is dropped (an event is a few hundred bytes)."""
    out: list[str] = []
    current: list[str] = []
    size = len(head) + 2
    for item in items:
        if len(head) + len(item) + 2 > MAX_PAYLOAD:
            log.warning("live event too long to send to other instances",
                        extra={"bytes": len(item)})
            continue
        if current and size + 1 + len(item) > MAX_PAYLOAD:
            out.append(head + ",".join(current) + "]}")
            current, size = [], len(head) + 2
        size += len(item) + (1 if current else 0)
        current.append(item)
    if current:
        out.append(head + ",".join(current) + "]}")
    return out
