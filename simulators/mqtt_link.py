"""MQTT: a SimDevice whose frames go through a broker instead of a socket.

The device publishes exactly the bytes it would write to TCP on `<prefix>/<imei>/up` (or
`<prefix>/<imei>/up/<protocol>`), QoS 1, and every message on `<prefix>/<imei>/down` (the
gateway's replies and commands) goes to the device as received bytes. The device's behaviour
(login, acks, resends, buffering, SOS) is the same SimDevice as on TCP: this only moves bytes.

One task per link holds the broker connection (subscribe first, then the device "connects");
a lost broker is a lost link: the device buffers what was not acknowledged and the link
reconnects with the shared exponential back-off. Publishes go out in order, one writer task per
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import aiomqtt

from simulators.device import SimDevice
from simulators.links import Backoff, DeviceLink
from simulators.scheduler import Scheduler

DEFAULT_URL = "mqtt://127.0.0.1:1883"
DEFAULT_PREFIX = "trackers"


def parse_mqtt_url(url: str) -> tuple[str, int, bool, str | None, str | None]:
    """`mqtt://[user:pass@]host[:port]` or `mqtts://...` -> host, port, tls, user, password."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(f"not an MQTT URL (mqtt:// or mqtts://): {url!r}")
    tls = parts.scheme == "mqtts"
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls, user, \
        password


class MqttLink(DeviceLink):
    """A device talking to the gateway through an MQTT broker."""

    def __init__(self, device: SimDevice, scheduler: Scheduler, *, url: str = DEFAULT_URL,
                 topic_prefix: str = DEFAULT_PREFIX, protocol_in_topic: bool = False,
                 backoff: Backoff | None = None, connect_timeout: float = 10.0,
                 keepalive: int = 60,
                 on_up: Callable[[MqttLink], None] | None = None) -> None:
        DeviceLink.__init__(self, device, scheduler, backoff)
        self.url = url
        self.host, self.port, self.tls, self.username, self.password = parse_mqtt_url(url)
        prefix = topic_prefix.rstrip("/")
        self.up_topic = f"{prefix}/{device.imei}/up"
        if protocol_in_topic:
            self.up_topic += f"/{device.codec.name}"
        self.down_topic = f"{prefix}/{device.imei}/down"
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.on_up = on_up
        self.client_id = f"trackersim-{device.imei}-{uuid.uuid4().hex[:8]}"
        self.messages_sent = 0
        self.messages_received = 0
        self._task: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[bytes | None] | None = None
        self._up = False
        self._closing = False
        self.closed = scheduler.loop.create_future()

    @property
    def is_open(self) -> bool:
        return self._up

    # Connection ------------------------------------------------------------------------------

    def _make_client(self) -> aiomqtt.Client:
        context = ssl.create_default_context() if self.tls else None
        return aiomqtt.Client(
            self.host, self.port, identifier=self.client_id, username=self.username,
            password=self.password, protocol=aiomqtt.ProtocolVersion.V5,
            keepalive=self.keepalive, timeout=self.connect_timeout, tls_context=context)

    def _open(self) -> None:
        if self.stopped or self._task is not None:
            return
        self._closing = False
        self._task = self.scheduler.loop.create_task(self._run())

    async def _run(self) -> None:
        error: str | None = None
        writer: asyncio.Task[None] | None = None
        try:
            async with self._make_client() as client:
                await client.subscribe(self.down_topic, qos=1)
                self._outbox = asyncio.Queue()
                writer = asyncio.create_task(self._send_loop(client, self._outbox))
                self._up = True
                self._link_up()
                if self.on_up is not None:
                    self.on_up(self)
                async for message in client.messages:
                    payload = message.payload
                    if not isinstance(payload, bytes | bytearray):
                        payload = str(payload if payload is not None else "").encode()
                    self.messages_received += 1
                    self._link_data(bytes(payload))
                error = "broker connection ended"
        except asyncio.CancelledError:
            if not self._closing:  # not our close: the loop is going away
                self._finish_run(writer, None)
                raise
        except aiomqtt.MqttError as exc:
            error = str(exc) or type(exc).__name__
        except OSError as exc:
            error = f"{self.host}:{self.port}: {exc.strerror or exc}"
        self._finish_run(writer, error)

    def _finish_run(self, writer: asyncio.Task[None] | None, error: str | None) -> None:
        if writer is not None:
            writer.cancel()
        self._outbox = None
        self._task = None
        was_up, self._up = self._up, False
        if was_up:
            self._link_down(error)
        elif not self._closing and not self.stopped:
            self._connect_failed(f"{self.url}: {error or 'no connection'}")
        if self.stopped and not self.closed.done():
            self.closed.set_result(None)

    async def _send_loop(self, client: aiomqtt.Client, outbox: asyncio.Queue[bytes | None]
                         ) -> None:
        """Publish in order; a None in the outbox closes the link once all before it are out."""
        while True:
            data = await outbox.get()
            if data is None:
                if self._task is not None:
                    self._task.cancel()
                return
            try:
                await client.publish(self.up_topic, data, qos=1)
            except aiomqtt.MqttError:
                return  # the reader sees the lost connection too
            self.messages_sent += 1

    # DeviceLink I/O --------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(data)

    def _close_link(self, graceful: bool = False) -> None:
        if self._task is None:
            return
        self._closing = True
        if graceful and self._outbox is not None:
            self._outbox.put_nowait(None)  # after what is queued has been published
        else:
            self._task.cancel()

    def stop(self) -> None:
        super().stop()
        if self._task is not None and not self._up:  # still connecting
            self._closing = True
            self._task.cancel()
        if self._task is None and not self.closed.done():
            self.closed.set_result(None)

    async def wait_closed(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
