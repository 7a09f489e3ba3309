"""Commands to devices: queued in the database, sent on the device's open stream, answered.

The life of a command (statuses of `gateway.store.commands`):

* **queued**: checked against the device's protocol (a type it cannot express is refused with
  the list of those it can), then stored. An engine stop or resume asked by an owner needs a
  fresh code or TOTP first (`OwnerConfirmation`), used up in the transaction that queues it.
* **sent**: written to the device's open stream when it is connected to this instance (at once,
  or as soon as it identifies itself: `device_online`, called by `Pipeline.on_identified`); for
  a device that last talked through MQTT (its `remote_addr` starts with `mqtt:`), published on
  its down topic, where the broker keeps it for the device. Every instance looks for queued
  commands every `commands.poll_s` (one indexed query), so a command queued on one instance (or
  by `gateway command`) reaches a device connected to another. Whoever sends a command first
  claims it with one conditional UPDATE: it goes out once. The bytes are made at sending time
  (a JT/T 808 serial, an H02 time stamp), by the instance that holds the connection.
* **acknowledged** / **failed**: the device's answer (a `CommandResult`, seen by
  `Gateway.on_stored`), matched by the protocol's own rule (`Codec.answers`) to the oldest
  command sent in the last `commands.answer_window_s` that it answers. Failed also: refused by
  the device, not encodable when it was due, or the device changed hands before it came online.
* **expired**: still queued after `commands.ttl_s`.

Where a protocol has no answer for a command, it stays "sent": the gateway wrote it to the
device and knows nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.activation.confirm import OwnerConfirmation
from gateway.activation.engine import OwnerInfo, RateLimited
from gateway.config import CommandSettings
from gateway.devices.mqtt import MqttTransport
from gateway.devices.pipeline import Pipeline, Stream
from gateway.metrics import Metrics
from gateway.store import audit, claiming, counters
from gateway.store import commands as store
from gateway.store.commands import CommandInfo, Due, Target
from gateway.store.database import Database
from gateway.store.ingest import IngestItem
from protocols import Answer, Command, CommandResult, CommandType, UnsupportedCommand, get_codec

log = logging.getLogger("gateway.commands")

#: Commands that can immobilise a vehicle (or let it move again): an owner confirms them with a
#: fresh code or TOTP, and each is audited.
DANGEROUS = frozenset({CommandType.ENGINE_STOP, CommandType.ENGINE_RESUME})
#: How long a command due for a busy stream waits for the replies the device is owed.
QUIET_WAIT_S = 2.0
#: Queued commands looked at per poll.
POLL_LIMIT = 500


class CommandRefused(Exception):
    """The command cannot be asked of this device (422): `field` names what is wrong,
    `supported` the types the device's protocol can do."""

    def __init__(self, field: str, message: str, supported: list[str]) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.supported = supported


class ConfirmationNeeded(Exception):
    """An engine command of an owner without its fresh code (403)."""

    def __init__(self, kind: CommandType) -> None:
        self.kind = kind
        self.message = (f"{kind.value} needs a fresh code: POST /api/v1/devices/{{imei}}/"
                        f"commands/confirmations with {{\"type\": \"{kind.value}\"}} (a code "
                        "is sent to you, or use your authenticator app), then send the "
                        "command again with \"confirm\": {challenge_id, token, code}")
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class Confirm:
    """The code confirming an engine command, and the challenge it answers."""

    challenge_id: str
    token: str
    code: str


def supported_types(protocol: str) -> list[str]:
    """The command types a protocol can express, in a stable order."""
    commands = get_codec(protocol).commands
    return [kind.value for kind in CommandType if kind in commands]


def check_command(protocol: str, device_id: str, type_text: str,
                  interval_s: int | None) -> Command:
    """The command `type_text` (a CommandType value) for a device of `protocol`; CommandRefused
    when the protocol cannot express it (or its interval)."""
    supported = supported_types(protocol)
    can = f"{protocol} devices take: {', '.join(supported) or 'no commands'}"
    try:
        kind = CommandType(type_text)
    except ValueError:
        raise CommandRefused("type", f"unknown command type {type_text[:40]!r}; {can}",
                             supported) from None
    if kind.value not in supported:
        raise CommandRefused("type", f"{protocol} devices cannot do {kind.value}; {can}",
                             supported)
    if kind is CommandType.REPORT_INTERVAL and interval_s is None:
        raise CommandRefused("params.interval_s",
                             "report_interval needs the seconds between reports "
                             "(params.interval_s; gateway command --interval)", supported)
    if kind is not CommandType.REPORT_INTERVAL and interval_s is not None:
        raise CommandRefused("params.interval_s", f"{kind.value} takes no interval", supported)
    command = Command(kind, interval_s=interval_s)
    try:
        get_codec(protocol).encode_command(device_id, command)
    except UnsupportedCommand as exc:
        field = "params.interval_s" if interval_s is not None else "type"
        raise CommandRefused(field, str(exc), supported) from None
    except ValueError as exc:
        raise CommandRefused("imei", f"commands cannot be addressed to this device ({exc})",
                             supported) from None
    return command


def utcnow() -> datetime:
    return datetime.now(UTC)


class CommandService:
    """Queue, send and settle commands. One per gateway (and one, without a pipeline, per CLI
    call: the running gateways send what it queues)."""

    def __init__(
        self, db: Database, settings: CommandSettings, *, instance: str,
        pipeline: Pipeline | None = None, mqtt: MqttTransport | None = None,
        confirmations: OwnerConfirmation | None = None, metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.instance = instance
        self.pipeline = pipeline
        #: Set once the MQTT transport exists (it starts after the pipeline).
        self.mqtt = mqtt
        self.confirmations = confirmations
        self.metrics = metrics
        self._arrived: set[str] = set()
        self._flushing: asyncio.Task[None] | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # Life cycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling (touches no database here: the gateway starts while it is down)."""
        self._poll_task = asyncio.create_task(self._poll_loop())

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._poll_task, self._flushing) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Answers being recorded are short database writes: let them finish.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for task in list(self._tasks):
            task.cancel()

    # Queueing ----------------------------------------------------------------------------------

    async def queue_for_owner(
        self, owner: OwnerInfo, imei: str, type_text: str, interval_s: int | None, *,
        confirm: Confirm | None, client_addr: str | None,
    ) -> CommandInfo:
        """Queue a command for the owner's device. LookupError when it is not theirs now;
        CommandRefused; ConfirmationNeeded; activation's Failure for a wrong code;
        RateLimited."""
        async with self.db.engine.connect() as conn:
            binding = await claiming.owners_binding(conn, imei, owner.id)
            device = await store.target(conn, imei) if binding is not None else None
        if binding is None or device is None:
            raise LookupError(imei)
        command = check_command(device.protocol, device.imei, type_text, interval_s)
        challenge = None
        if command.type in DANGEROUS:
            if confirm is None:
                await self._audit_refusal(device, command, owner.id, client_addr)
                raise ConfirmationNeeded(command.type)
            assert self.confirmations is not None
            challenge = await self.confirmations.check(
                owner, imei, command.type.value, confirm.challenge_id, confirm.token,
                confirm.code, client_addr)
        now = utcnow()
        async with self.db.begin() as conn:
            if challenge is not None:
                assert self.confirmations is not None
                await self.confirmations.engine.approve(conn, challenge)
            # Checked again inside the write: the device may have been released meanwhile.
            if await claiming.owners_binding(conn, imei, owner.id) is None:
                raise LookupError(imei)
            device = await store.target(conn, imei)
            assert device is not None
            await self._rate_limit(conn, device, now)
            command_id = await self._insert(
                conn, device, command, requested_by="owner", owner_id=owner.id,
                client_addr=client_addr, now=now,
                challenge_id=challenge.id if challenge is not None else None)
        return await self._queued(command_id, device)

    async def queue_as_admin(
        self, imei: str, type_text: str, interval_s: int | None, *, by: str,
        client_addr: str | None = None,
    ) -> CommandInfo:
        """Queue a command for any seen device (the admin API, `gateway command`): no code
        asked, audited under `by`. LookupError when the device was never seen."""
        now = utcnow()
        async with self.db.begin() as conn:
            device = await store.target(conn, imei)
            if device is None:
                raise LookupError(imei)
            command = check_command(device.protocol, device.imei, type_text, interval_s)
            command_id = await self._insert(conn, device, command, requested_by=by,
                                            owner_id=None, client_addr=client_addr, now=now,
                                            challenge_id=None)
        return await self._queued(command_id, device)

    async def _rate_limit(self, conn: Any, device: Target, now: datetime) -> None:
        """Count an owner's command for the device; RateLimited (which rolls the transaction
        back, the code included) past `commands.max_per_minute`."""
        limit = self.settings.max_per_minute
        count, window_start = await counters.bump(conn, "command", device.imei, now, 60)
        if count > limit:
            wait = (window_start + timedelta(seconds=60) - now).total_seconds()
            raise RateLimited(int(wait) + 1, f"more than {limit} commands a minute for this "
                              "device: wait and try again")

    async def _insert(
        self, conn: Any, device: Target, command: Command, *, requested_by: str,
        owner_id: int | None, client_addr: str | None, now: datetime, challenge_id: str | None,
    ) -> int:
        expires = now + timedelta(seconds=self.settings.ttl_s)
        command_id = await store.insert_command(
            conn, device, type=command.type.value, interval_s=command.interval_s,
            requested_by=requested_by, owner_id=owner_id, now=now, expires_at=expires)
        await audit.record(conn, "command", "queued", imei=device.imei, owner_id=owner_id,
                           challenge_id=challenge_id, client_addr=client_addr,
                           detail={"type": command.type.value, "interval_s": command.interval_s,
                                   "command_id": command_id, "by": requested_by})
        return command_id

    async def _queued(self, command_id: int, device: Target) -> CommandInfo:
        self._count(store.QUEUED)
        info = await store.get_command(self.db, command_id)
        assert info is not None
        if self._reachable_here(device.imei, device.remote_addr):
            self._spawn(self._send_due(list(await store.due(self.db, utcnow(),
                                                            imeis=[device.imei]))))
        return info

    async def _audit_refusal(self, device: Target, command: Command, owner_id: int,
                             client_addr: str | None) -> None:
        async with self.db.begin() as conn:
            await audit.record(conn, "command", "code_required", imei=device.imei,
                               owner_id=owner_id, client_addr=client_addr,
                               detail={"type": command.type.value})

    # Sending -----------------------------------------------------------------------------------

    def device_online(self, stream: Stream) -> None:
        """A device identified itself on this instance (`Pipeline.on_identified`): send what
        waits for it. Arrivals are gathered, so that a burst of reconnects costs one query."""
        device_id = stream.device_id
        if device_id is None or self._stopping:
            return
        self._arrived.add(device_id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_arrivals())

    async def _flush_arrivals(self) -> None:
        await asyncio.sleep(0)  # let the rest of this burst arrive
        while self._arrived:
            batch = set(list(self._arrived)[:POLL_LIMIT])
            self._arrived -= batch
            try:
                rows = await store.due(self.db, utcnow(), imeis=batch)
                await self._send_due(rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away: the poll tries again
                log.warning("queued commands not read", extra={"error": str(exc)})

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_s)
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; try again next time
                log.debug("command poll failed", extra={"error": str(exc)})

    async def poll(self) -> None:
        """Close stale commands, then send the queued ones this instance can reach."""
        now = utcnow()
        expired, failed = await store.close_stale(self.db, now)
        for status, count in ((store.EXPIRED, expired), (store.FAILED, failed)):
            if count:
                self._count(status, count)
                log.info("queued commands closed", extra={"status": status, "count": count})
        rows = await store.due(self.db, now, limit=POLL_LIMIT)
        await self._send_due([row for row in rows
                              if self._reachable_here(row.imei, row.remote_addr)])

    def _reachable_here(self, imei: str, remote_addr: str | None) -> bool:
        if self.pipeline is not None and imei in self.pipeline.online:
            return True
        return self._via_mqtt(remote_addr)

    def _via_mqtt(self, remote_addr: str | None) -> bool:
        mqtt = self.mqtt
        return (mqtt is not None and remote_addr is not None
                and remote_addr.startswith("mqtt:") and mqtt.state == "up")

    async def _send_due(self, rows: list[Due]) -> None:
        for row in rows:  # in order: a device gets its commands in the order they were asked
            await self._send(row)

    async def _send(self, row: Due) -> None:
        pipeline = self.pipeline
        stream = pipeline.online.get(row.imei) if pipeline is not None else None
        if stream is None and not self._via_mqtt(row.remote_addr):
            return  # not reachable from here
        if stream is not None and stream.remote_addr.startswith("mqtt:") and (
                self.mqtt is None or self.mqtt.state != "up"):
            return  # an MQTT stream while the broker is away: it waits for the next poll
        if stream is not None:
            await self._quiet(stream)
        protocol = (stream.protocol if stream is not None else None) or row.protocol
        now = utcnow()
        try:
            payload = get_codec(protocol).encode_command(
                row.imei, Command(CommandType(row.type), interval_s=row.interval_s))
        except (UnsupportedCommand, ValueError, KeyError) as exc:
            await store.fail(self.db, row.id, f"not sent: {exc}", now)
            self._count(store.FAILED)
            log.warning("command not encodable", extra={"device": row.imei, "command": row.id,
                                                        "error": str(exc)})
            return
        if not await store.claim(self.db, row.id, payload, now, self.instance):
            return  # sent by another instance, expired, or the device changed hands
        if stream is not None:
            assert pipeline is not None
            if stream.ended is not None or pipeline.online.get(row.imei) is not stream:
                await store.unclaim(self.db, row.id)  # gone meanwhile: it waits for the next
                return
            stream.send(payload)
            via = "stream"
        else:
            mqtt = self.mqtt
            assert mqtt is not None and row.remote_addr is not None
            if not mqtt.publish(mqtt.down_topic(row.remote_addr[len("mqtt:"):]), payload, 1):
                await store.unclaim(self.db, row.id)
                return
            via = "mqtt"
        self._count(store.SENT)
        log.info("command sent", extra={"device": row.imei, "command": row.id,
                                        "type": row.type, "via": via})

    @staticmethod
    async def _quiet(stream: Stream) -> None:
        """Wait a little until the device has every reply it is owed: a command never
        overtakes the ack of a login (some devices ignore commands before it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + QUIET_WAIT_S
        while (stream.outgoing or stream.uncommitted) and loop.time() < deadline:
            await asyncio.sleep(0.02)

    # Answers -----------------------------------------------------------------------------------

    def stored(self, item: IngestItem) -> None:
        """A committed item (`Gateway.on_stored`): a device's answer settles its command."""
        if self._stopping:
            return
        for event in item.events:  # a loop, not any(): called for every committed frame
            if event.__class__ is CommandResult:
                self._spawn(self._answered(item))
                return

    async def _answered(self, item: IngestItem) -> None:
        now = utcnow()
        since = now - timedelta(seconds=self.settings.answer_window_s)
        waiting = await store.waiting(self.db, item.device_id, since)
        if not waiting:
            return
        try:
            answers = get_codec(item.protocol).answers
        except KeyError:
            return
        for event in item.events:
            if not isinstance(event, CommandResult):
                continue
            for command in waiting:
                outcome = answers(command.payload, event)
                if outcome is None:
                    continue
                status = store.ACKNOWLEDGED if outcome is Answer.DONE else store.FAILED
                text = event.result or event.command or "answered"
                if await store.settle(self.db, command.id, status, text, now):
                    self._count(status)
                    log.info("command answered", extra={"device": item.device_id,
                                                        "command": command.id,
                                                        "status": status})
                waiting.remove(command)
                break

    # Helpers -----------------------------------------------------------------------------------

    def _count(self, status: str, count: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.commands.labels(status).inc(count)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("command work failed", extra={"error": str(task.exception())})
