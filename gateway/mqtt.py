"""MQTT: device frames through a broker, the second transport next to TCP.

A device publishes its own protocol's frames, exactly as it would write them to a socket, on
`<prefix>/<imei>/up` (the protocol is told from the bytes) or `<prefix>/<imei>/up/<protocol>`.
Each message is cut into frames by the protocol's framer and every frame goes through the same
`DeviceSession` as on TCP, then to the group-commit writer. The topic vouches for the device:
a frame of another device is refused and counted (`topic_mismatch`; see
`gateway.session.claimed_id_matches` for the tk103 12-digit rule).

Acknowledgements, in the order the messages arrived:

* The protocol's replies to one message (LOAD, ON, (id AP05), +SACK...) go out together as one
  QoS 1 message on `<prefix>/<imei>/down`, once every frame of the message that needs storing
  is committed; an ack whose data could not be stored is withheld, as on TCP.
* With a QoS 1 or 2 subscription the gateway acknowledges the message to the broker (PUBACK)
  itself, only after those commits (paho-mqtt's manual acks, under aiomqtt). Until then the
  broker keeps the message; if the connection drops first, the broker delivers it again on
  the next connection (the session survives `session_expiry_s`) and the store's idempotent
  writes keep one copy. A frame the database refuses for good is acknowledged (and logged):
  resending it would never help.

The connection is kept by one task: a broker that is down at start-up or goes away later is
retried with exponential back-off and the subscription is made again; TCP and the web app are
not affected. `state` ("connecting", "up", "down") feeds /healthz and `gateway_mqtt_up`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import ssl
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter

from gateway.config import MqttSettings, TcpSettings
from gateway.metrics import Metrics
from gateway.session import DeviceSession, TokenBucket
from gateway.store.database import Database
from gateway.store.ingest import IngestItem
from gateway.store.writer import ItemRejected, ItemStore
from gateway.tcp import _options
from protocols import (
    Alarm,
    Discarded,
    Position,
    UnknownProtocol,
    detect,
    get_codec,
    names,
)

log = logging.getLogger("gateway.mqtt")

OnStored = Callable[[IngestItem], None]


#: Device sessions kept (least recently used are forgotten beyond this).
MAX_SESSIONS = 100_000
#: Bytes looked at to detect the protocol of a message.
DETECT_MAX_BYTES = 64
#: Longest device id accepted in a topic.
MAX_TOPIC_ID = 32
#: Seconds a device's "bound" state is cached for event publishing.
BOUND_CACHE_S = 5.0
#: Seconds between two looks at the audit log for activation events.
AUDIT_POLL_S = 1.0
ACTIVATION_ACTIONS = ("signal", "claim", "release")


class _Inbound:
    """One received message on its way: its commits, its replies and its broker ack."""

    __slots__ = ("client", "down", "failed", "mid", "qos", "replies", "waiting")

    def __init__(self, client: aiomqtt.Client, mid: int, qos: int, down: str) -> None:
        self.client = client
        self.mid = mid
        self.qos = qos
        self.down = down
        #: Frames handed to the store and not settled yet.
        self.waiting = 0
        #: A frame was not stored for a reason a resend can fix (the writer closed).
        self.failed = False
        #: The replies of each frame, with the frame they wait for (None: nothing to wait).
        self.replies: list[tuple[_Frame | None, bytes, bool]] = []


class _DispatchQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming-message queue (its documented `queue_type`), handing every message to
    `dispatch` at once instead of keeping it: nothing waits in between, nothing is dropped."""

    def __init__(self, dispatch: Callable[[aiomqtt.Message], None], maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._dispatch = dispatch

    def put_nowait(self, item: aiomqtt.Message) -> None:
        self._dispatch(item)


class _Frame:
    """A frame of an inbound message handed to the store; the writer calls it when settled."""

    __slots__ = ("error", "inbound", "item", "transport")

    def __init__(self, transport: MqttTransport, inbound: _Inbound, item: IngestItem) -> None:
        self.transport = transport
        self.inbound = inbound
        self.item: IngestItem | None = item
        self.error: BaseException | None = None

    def __call__(self, error: BaseException | None) -> None:
        self.error = error
        self.transport._settled(self)


class MqttTransport:
    """The broker connection of one gateway; `start()` never fails because of the broker."""

    def __init__(
        self,
        settings: MqttSettings,
        tcp: TcpSettings,
        metrics: Metrics,
        store: ItemStore,
        on_stored: OnStored | None = None,
        db: Database | None = None,
        *,
        drain_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.tcp = tcp
        self.metrics = metrics
        self.store = store
        self.on_stored = on_stored
        self.db = db
        self.drain_timeout_s = drain_timeout_s
        self.client_id = settings.client_id or f"tracker-gateway-{uuid.uuid4().hex[:12]}"
        self.state = "connecting"
        self.last_error: str | None = None
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self._sessions: OrderedDict[tuple[str, str], DeviceSession] = OrderedDict()
        #: Messages in arrival order; each is finished (replies, PUBACK) once it and every
        #: message before it are settled.
        self._pipeline: deque[_Inbound] = deque()
        self._pipeline_empty = asyncio.Event()
        self._pipeline_empty.set()
        self._publishes: set[asyncio.Task[None]] = set()
        self._bound: dict[str, tuple[bool, float]] = {}
        self._audit_task: asyncio.Task[None] | None = None
        prefix = settings.topic_prefix
        self._prefix = prefix + "/"
        self.filter = f"{prefix}/+/up/#"
        if settings.shared_group:
            self.filter = f"$share/{settings.shared_group}/{self.filter}"
        r = metrics.registry
        self.messages = Counter(
            "gateway_mqtt_messages_total", "Messages received on device topics, by result",
            ["result"], registry=r)
        self.reconnects = Counter(
            "gateway_mqtt_connects_total", "Connections made to the MQTT broker", registry=r)
        self.events_published = Counter(
            "gateway_mqtt_events_total", "JSON events published for integrators", ["type"],
            registry=r)
        metrics.mqtt_up.set(0)
        self._accepted = self.messages.labels("accepted")
        self._counters: dict[str, tuple[Any, Any]] = {}

    # --- life cycle ---

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        if self.settings.publish_events and self.db is not None:
            self._audit_task = asyncio.create_task(self._audit_loop())

    async def stop(self) -> None:
        """Stop taking messages, send the replies and broker acks now due, disconnect."""
        self._stopping = True
        if self._audit_task is not None:
            self._audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._audit_task
        reader, task = self._reader, self._task
        if task is not None:
            if reader is not None and not reader.done():
                # Connected: _run drains the pipeline on this connection, then disconnects.
                reader.cancel()
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(task), self.drain_timeout_s + 10)
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for publish in list(self._publishes):
            publish.cancel()
        self._set_state("down")

    @property
    def up(self) -> bool:
        return self.state == "up"

    def _set_state(self, state: str) -> None:
        self.state = state
        self.metrics.mqtt_up.set(1 if state == "up" else 0)

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        parts = urlsplit(s.url)
        tls = parts.scheme == "mqtts"
        context = None
        if tls:
            context = ssl.create_default_context(cafile=s.tls_ca_file or None)
            if s.tls_cert_file:
                context.load_cert_chain(s.tls_cert_file, s.tls_key_file or None)
            if s.tls_insecure:
                context.check_hostname = False
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = s.session_expiry_s
        properties.ReceiveMaximum = s.receive_maximum
        # Each message is handled as paho delivers it, instead of through aiomqtt's message
        # iterator (a task and an asyncio.wait per message, a third of the transport's cost).
        owner: list[aiomqtt.Client] = []

        def dispatch(message: aiomqtt.Message) -> None:
            self._dispatch(owner[0], message)

        client = aiomqtt.Client(
            parts.hostname or "127.0.0.1",
            parts.port or (8883 if tls else 1883),
            identifier=self.client_id,
            username=s.username or None,
            password=s.password or None,
            protocol=aiomqtt.ProtocolVersion.V5,
            # Resume the broker session: what it queued while the gateway was away is delivered.
            clean_start=False,
            properties=properties,
            keepalive=s.keepalive_s,
            tls_context=context,
            tls_insecure=s.tls_insecure if tls else None,
            timeout=10,
            max_inflight_messages=s.receive_maximum,
            queue_type=cast("type[asyncio.Queue[aiomqtt.Message]]",
                            functools.partial(_DispatchQueue, dispatch)),
        )
        owner.append(client)
        # aiomqtt 2.5 has no manual-ack option of its own (empicano/aiomqtt#345): the paho
        # client under it has one. A message is then PUBACKed only by _ack() after its commit.
        client._client.manual_ack_set(True)
        # Replies go out as tasks, up to one per message in flight: not a sign of trouble.
        client.pending_calls_threshold = s.receive_maximum
        return client

    async def _run(self) -> None:
        delay = self.settings.reconnect_initial_s
        while not self._stopping:
            client = self._make_client()
            self._set_state("connecting")
            try:
                async with client:
                    await client.subscribe(self.filter, qos=self.settings.qos)
                    self._client = client
                    self.connects += 1
                    self.reconnects.inc()
                    self.last_error = None
                    self._set_state("up")
                    log.info("mqtt connected", extra={
                        "broker": self.settings.url, "client_id": self.client_id,
                        "subscription": self.filter})
                    delay = self.settings.reconnect_initial_s
                    self._reader = asyncio.create_task(self._read(client))
                    try:
                        await self._reader
                    except asyncio.CancelledError:
                        self._reader = None
                        if not self._stopping:
                            raise
                        # Stopping: the acks now due still go out on this connection.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._pipeline_empty.wait(),
                                                   self.drain_timeout_s)
                        if self._publishes:
                            await asyncio.wait(list(self._publishes), timeout=5)
                        return
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
            except OSError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
            finally:
                self._client = None
                self._reader = None
            if self._stopping:
                return
            self._set_state("down")
            log.warning("mqtt broker unavailable; retrying", extra={
                "broker": self.settings.url, "error": self.last_error, "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max_s)

    async def _read(self, client: aiomqtt.Client) -> None:
        """Wait for the connection to end. Messages never reach aiomqtt's queue: its
        `_DispatchQueue` hands each to `_dispatch` as it arrives (see `_make_client`)."""
        async for message in client.messages:  # pragma: no cover - the queue stays empty
            self._dispatch(client, message)

    def _dispatch(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        if self._stopping:
            return  # not acknowledged: the broker delivers it again (next session or instance)
        try:
            self._handle(client, message)
        except Exception:  # one bad message must not stop the transport
            log.exception("mqtt message not handled", extra={"topic": message.topic.value})
            self._enqueue(_Inbound(client, message.mid, message.qos, ""))

    # --- inbound ---

    def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        payload = message.payload
        if not isinstance(payload, bytes | bytearray):
            payload = str(payload if payload is not None else "").encode()
        device, protocol, problem = self._parse_topic(topic)
        if problem is None and not payload:
            problem = "empty message"
        if problem is None and len(payload) > self.settings.max_payload_bytes:
            problem = f"message of {len(payload)} bytes over {self.settings.max_payload_bytes}"
        if problem is None and protocol is None:
            try:
                protocol = detect(bytes(payload[:DETECT_MAX_BYTES]))
            except UnknownProtocol as exc:
                problem = str(exc)
            else:
                if protocol is None:
                    problem = "message too short to tell its protocol"
                elif protocol not in names():
                    problem = f"{protocol} is not served"
        if problem is not None or device is None or protocol is None:
            self.messages.labels("rejected").inc()
            # Counted once per message, under protocol "unknown": no frame of it was looked at.
            self.metrics.frames.labels("unknown", "rejected").inc()
            self.metrics.rejected_frames.labels("unknown", "bad_message").inc()
            log.warning("mqtt message rejected", extra={"topic": topic, "reason": problem})
            # Acknowledged (in arrival order): sending it again would not make it any better.
            self._enqueue(_Inbound(client, message.mid, message.qos, ""))
            return
        self._accepted.inc()
        session = self._session(device, protocol)
        inbound = _Inbound(client, message.mid, message.qos,
                           f"{self._prefix}{device}/down")
        self._frames(session, inbound, bytes(payload))
        self._enqueue(inbound)

    def _enqueue(self, inbound: _Inbound) -> None:
        self._pipeline.append(inbound)
        self._pipeline_empty.clear()
        if inbound.waiting == 0:
            self._drain()

    def _parse_topic(self, topic: str) -> tuple[str | None, str | None, str | None]:
        if not topic.startswith(self._prefix):
            return None, None, f"topic {topic!r} outside {self._prefix}"
        parts = topic[len(self._prefix):].split("/")
        if len(parts) not in (2, 3) or parts[1] != "up":
            return None, None, f"topic {topic!r} is not <prefix>/<imei>/up[/<protocol>]"
        device = parts[0]
        if not device or len(device) > MAX_TOPIC_ID or not device.isascii() \
                or not device.isalnum():
            return None, None, f"bad device id {device!r} in the topic"
        protocol = None
        if len(parts) == 3:
            protocol = parts[2]
            if protocol not in names():
                return device, None, f"unknown protocol {protocol!r} in the topic"
        return device, protocol, None

    def _session(self, device: str, protocol: str) -> DeviceSession:
        key = (device, protocol)
        session = self._sessions.get(key)
        if session is not None:
            self._sessions.move_to_end(key)
            return session
        rate = self.tcp.max_frames_per_s
        codec = get_codec(protocol)
        session = DeviceSession(
            codec=codec,
            options=_options(codec, self.tcp),
            remote_addr=f"mqtt:{device}",
            rate=TokenBucket(rate, rate * 2),
            claimed_id=device,
        )
        self._sessions[key] = session
        if len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def _frames(self, session: DeviceSession, inbound: _Inbound, payload: bytes) -> None:
        metrics = self.metrics
        protocol = session.codec.name
        framer = session.codec.framer(self.tcp.max_frame_bytes)
        accepted = positions = acks = 0
        for out in framer.feed(payload):
            if isinstance(out, Discarded):
                self._reject(protocol, "framing", f"{out.reason} ({out.size} bytes)", session)
                continue
            if not session.rate.take():
                self._reject(protocol, "rate_limit",
                             f"more than {self.tcp.max_frames_per_s:g} frames/s", session)
                continue
            outcome = session.handle_frame(out)
            stored = None
            if outcome.item is not None:
                stored = _Frame(self, inbound, outcome.item)
                inbound.waiting += 1
                self.store.submit_nowait(outcome.item, stored)
            if outcome.rejected is not None:
                assert outcome.rejected_kind is not None
                if outcome.rejected_kind == "decode_error":
                    metrics.decode_errors.labels(protocol).inc()
                self._reject(protocol, outcome.rejected_kind, outcome.rejected, session)
            else:
                accepted += 1
                positions += outcome.positions
            for reply in outcome.replies:
                inbound.replies.append((stored, reply.data, reply.after_store))
                acks += reply.after_store
        if framer.buffered:
            self._reject(protocol, "framing",
                         f"incomplete frame at the end of the message ({framer.buffered} bytes)",
                         session)
        if accepted or positions:
            counters = self._counters.get(protocol)
            if counters is None:  # label lookups take a lock: done once per protocol
                counters = self._counters[protocol] = (
                    metrics.frames.labels(protocol, "ok"), metrics.positions.labels(protocol))
            if accepted:
                counters[0].inc(accepted)
            if positions:
                counters[1].inc(positions)
        if acks:
            metrics.acks_pending.inc(acks)

    def _reject(self, protocol: str, kind: str, reason: str, session: DeviceSession) -> None:
        self.metrics.frames.labels(protocol, "rejected").inc()
        self.metrics.rejected_frames.labels(protocol, kind).inc()
        log.warning("frame rejected", extra={
            "protocol": protocol, "remote": session.remote_addr, "device": session.device_id,
            "kind": kind, "reason": reason})

    # --- replies and broker acks, in arrival order ---

    def _settled(self, frame: _Frame) -> None:
        """The store settled one frame of a message (committed, refused or given up)."""
        inbound = frame.inbound
        inbound.waiting -= 1
        error = frame.error
        if error is None:
            if self.on_stored is not None and frame.item is not None:
                self.on_stored(frame.item)
        elif not isinstance(error, ItemRejected):
            inbound.failed = True  # the writer closed before storing it: the broker must resend
        frame.item = None
        if inbound.waiting == 0 and self._pipeline and self._pipeline[0] is inbound:
            self._drain()

    def _drain(self) -> None:
        """Finish the settled messages at the head of the pipeline, in arrival order."""
        pipeline = self._pipeline
        while pipeline and pipeline[0].waiting == 0:
            self._finish(pipeline.popleft())
        if not pipeline:
            self._pipeline_empty.set()

    def _finish(self, inbound: _Inbound) -> None:
        out: list[bytes] = []
        acks = 0
        for stored, data, after_store in inbound.replies:
            if after_store:
                acks += 1
                if stored is None or stored.error is not None:
                    log.error("frame not stored; its ack is withheld",
                              extra={"topic": inbound.down})
                    continue
            out.append(data)
        if acks:
            self.metrics.acks_pending.dec(acks)
        if out:
            self._publish(inbound.down, b"".join(out), 1)
        if not inbound.failed:
            self._ack(inbound.client, inbound.mid, inbound.qos)

    def _ack(self, client: aiomqtt.Client, mid: int, qos: int) -> None:
        """PUBACK a message, only on the connection that received it (after a reconnect the
        broker delivers it again, and that copy is acknowledged instead)."""
        if qos == 0 or client is not self._client:
            return
        client._client.ack(mid, qos)

    def _publish(self, topic: str, payload: bytes, qos: int) -> bool:
        client = self._client
        if client is None:
            log.warning("mqtt down: message not published", extra={"topic": topic})
            return False
        task = asyncio.create_task(self._publish_one(client, topic, payload, qos))
        self._publishes.add(task)
        task.add_done_callback(self._publishes.discard)
        return True

    async def _publish_one(self, client: aiomqtt.Client, topic: str, payload: bytes,
                           qos: int) -> None:
        try:
            await client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError as exc:
            log.warning("mqtt publish failed", extra={"topic": topic, "error": str(exc)})

    # --- commands ---

    def send_command(self, imei: str, data: bytes) -> bool:
        """Publish an encoded command on the device's down topic (QoS 1); False when down."""
        return self._publish(f"{self._prefix}{imei}/down", data, 1)

    # --- events for integrators ---

    def device_stored(self, item: IngestItem) -> None:
        """A frame from any transport was committed: publish its positions and alarms as
        events when the device is bound (opt-in)."""
        if not self.settings.publish_events or self.db is None or self._client is None:
            return
        if not any(isinstance(e, Position | Alarm) for e in item.events):
            return
        task = asyncio.create_task(self._publish_item(item))
        self._publishes.add(task)
        task.add_done_callback(self._publishes.discard)

    async def _is_bound(self, device_id: str) -> bool:
        cached = self._bound.get(device_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        from gateway.store import queries

        assert self.db is not None
        bound = await queries.current_binding(self.db, device_id) is not None
        if len(self._bound) > MAX_SESSIONS:
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
            body = _event_json(item, event)
            if body is not None:
                self._event(item.device_id, body)

    def _event(self, device_id: str, body: dict[str, Any]) -> None:
        topic = f"{self.settings.events_prefix}/{device_id}/events"
        if self._publish(topic, json.dumps(body).encode(), self.settings.events_qos):
            self.events_published.labels(body["type"]).inc()

    async def _audit_loop(self) -> None:
        """Activation events come from the audit log (signal, claim, release), in order."""
        from sqlalchemy import func, select

        from gateway.store.models import AuditEntry

        assert self.db is not None
        a = AuditEntry
        last: int | None = None
        while True:
            try:
                async with self.db.engine.connect() as conn:
                    if last is None:
                        last = (await conn.execute(select(func.max(a.id)))).scalar() or 0
                    rows = (await conn.execute(
                        select(a.id, a.at, a.action, a.outcome, a.imei)
                        .where(a.id > last, a.action.in_(ACTIVATION_ACTIONS))
                        .order_by(a.id).limit(1000))).all()
                for row_id, at, action, outcome, imei in rows:
                    last = row_id
                    if imei is None or outcome != "ok":
                        continue
                    self._bound.pop(imei, None)
                    if self._client is not None:
                        self._event(imei, {"type": "activation", "imei": imei,
                                           "action": action, "at": _iso(at)})
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


def _event_json(item: IngestItem, event: object) -> dict[str, Any] | None:
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
