"""The gateway's link to an MQTT broker: one connection kept up, messages handed over as they
arrive, publishing, and broker acknowledgements (PUBACK) in arrival order.

The connection is kept by one task: a broker that is down at start-up or goes away later is
retried with exponential back-off and the subscription is made again; TCP and the web app are
not affected. `state` ("connecting", "up", "down") feeds /healthz and `gateway_mqtt_up`.

With a QoS 1 or 2 subscription a message is acknowledged to the broker only by `finish()`,
once whoever took it (the device transport) says it is settled, and always in the order the
messages arrived (MQTT 5 §4.6). Until then the broker keeps it; if the connection drops first,
the broker delivers it again on the next connection (the session survives
`mqtt.session_expiry_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import MqttSettings
from gateway.metrics import Metrics

log = logging.getLogger("gateway.mqtt")


class Received:
    """A message taken from the broker, acknowledged (PUBACK) once `done` and every message
    received before it are done. Subclasses add what their handler needs."""

    __slots__ = ("client", "done", "mid", "qos", "resend")

    def __init__(self, client: aiomqtt.Client, mid: int, qos: int) -> None:
        self.client = client
        self.mid = mid
        self.qos = qos
        #: Settled: may be acknowledged once the messages before it are.
        self.done = False
        #: Not acknowledged at all: the broker must deliver it again (the store closed).
        self.resend = False

    def finish(self, link: BrokerLink) -> None:
        """Called in arrival order once done: publish what it owes, before its PUBACK."""


#: Called for each message from the broker; returns its Received (done or not yet).
OnMessage = Callable[[aiomqtt.Client, aiomqtt.Message], Received]


class _DispatchQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming-message queue (its documented `queue_type`), handing every message to
    `dispatch` at once instead of keeping it: nothing waits in between, nothing is dropped."""

    def __init__(self, dispatch: Callable[[aiomqtt.Message], None], maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._dispatch = dispatch

    def put_nowait(self, item: aiomqtt.Message) -> None:
        self._dispatch(item)


class BrokerLink:
    """The broker connection of one gateway; `start()` never fails because of the broker."""

    def __init__(
        self, settings: MqttSettings, metrics: Metrics, subscription: str,
        on_message: OnMessage, *, instance: str, drain_timeout_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.subscription = subscription
        self.on_message = on_message
        self.drain_timeout_s = drain_timeout_s
        self.client_id = settings.client_id or f"tracker-gateway-{instance}"
        self.state = "connecting"
        self.last_error: str | None = None
        self.connects = 0
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        #: Messages in arrival order; each is finished (replies, PUBACK) once it and every
        #: message before it are done.
        self._order: deque[Received] = deque()
        self._order_empty = asyncio.Event()
        self._order_empty.set()
        self._publishes: set[asyncio.Task[None]] = set()
        metrics.mqtt_up.set(0)

    # --- life cycle ---

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop taking messages, send the replies and broker acks now due, disconnect."""
        self._stopping = True
        reader, task = self._reader, self._task
        if task is not None:
            if reader is not None and not reader.done():
                # Connected: _run drains what is due on this connection, then disconnects.
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

    @property
    def stopping(self) -> bool:
        return self._stopping

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
        # client under it has one. A message is then PUBACKed only by _ack() once finished.
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
                    await client.subscribe(self.subscription, qos=self.settings.qos)
                    self._client = client
                    self.connects += 1
                    self.metrics.mqtt_connects.inc()
                    self.last_error = None
                    self._set_state("up")
                    log.info("mqtt connected", extra={
                        "broker": self.settings.url, "client_id": self.client_id,
                        "subscription": self.subscription})
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
                            await asyncio.wait_for(self._order_empty.wait(),
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
            wait = random.uniform(delay / 2, delay)
            log.warning("mqtt broker unavailable; retrying", extra={
                "broker": self.settings.url, "error": self.last_error,
                "retry_in_s": round(wait, 2)})
            await asyncio.sleep(wait)
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
            received = self.on_message(client, message)
        except Exception:  # one bad message must not stop the link
            log.exception("mqtt message not handled", extra={"topic": message.topic.value})
            received = Received(client, message.mid, message.qos)
            received.done = True
        self._order.append(received)
        self._order_empty.clear()
        if received.done and self._order[0] is received:
            self.drain()

    # --- acknowledgements, in arrival order ---

    def drain(self) -> None:
        """Finish the done messages at the head of the queue, in arrival order."""
        order = self._order
        while order and order[0].done:
            received = order.popleft()
            received.finish(self)
            if not received.resend:
                self._ack(received)
        if not order:
            self._order_empty.set()

    def _ack(self, received: Received) -> None:
        """PUBACK a message, only on the connection that received it (after a reconnect the
        broker delivers it again, and that copy is acknowledged instead)."""
        if received.qos == 0 or received.client is not self._client:
            return
        received.client._client.ack(received.mid, received.qos)

    # --- publishing ---

    def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        """Publish in the background; False (and a log line) when the broker is not connected."""
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
