"""TCP listeners: one per protocol of the registry (`protocols.<name>.port`), plus an optional
port that tells the protocol from the first bytes (`tcp.auto_port`).

Each connection is an asyncio protocol object that only moves bytes: what it reads goes to its
pipeline `Stream` (gateway/devices/pipeline.py), which frames, decodes, stores and hands back the
replies due, in frame order, once what they acknowledge is committed. No task or future is made
per connection or per frame: at thousands of connections the per-frame cost is the capacity.

The limits that belong to the socket live here: idle timeout, a frame that must complete in
time (a peer trickling bytes is closed), a connection that must identify its device in time,
unidentified connections per address (identified devices never count: a carrier's NAT hides
many devices behind one address; a connection over the limit closes the oldest unidentified
one), and reading paused while too many frames of a connection wait for their commit, while the
store is saturated, or while the device does not read its replies.

Behind a TCP load balancer, connections from `tcp.trusted_proxies` start with a PROXY protocol
header (`tcp.proxy_protocol`); the device's address it carries is the connection's address for
every limit, log line and the frames view.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from gateway.config import TcpSettings
from gateway.devices.pipeline import Pipeline, Stream
from gateway.devices.proxy_header import BadProxyHeader, ProxyHeaderReader, trusted
from gateway.metrics import Metrics

log = logging.getLogger("gateway.tcp")

#: Write buffer above which reading from a device pauses until it takes its replies.
WRITE_BUFFER_HIGH = 65536
#: The listener that tells the protocol from the first bytes.
AUTO = "auto"


class TcpServer:
    """All device listeners of one gateway."""

    def __init__(self, settings: TcpSettings, pipeline: Pipeline, metrics: Metrics) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.metrics = metrics
        #: Listener name (a protocol, or "auto") -> the port it listens on.
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        #: Per client address, its connections that have not identified a device yet, oldest
        #: first.
        self._unidentified: dict[str, dict[_Connection, None]] = {}
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        listeners: list[tuple[str | None, int, str]] = [
            (name, protocol.port, f"protocols.{name}.port")
            for name, protocol in self.pipeline.protocols.items()]
        listeners.append((None, self.settings.auto_port, "tcp.auto_port"))
        for protocol, port, key in listeners:
            if not port:
                continue

            def factory(protocol: str | None = protocol) -> _Connection:
                return _Connection(self, protocol)

            label = protocol or AUTO
            try:
                server = await loop.create_server(
                    factory, self.settings.host, port, backlog=4096)
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"cannot listen on {self.settings.host}:{port} for {label} "
                    f"({exc.strerror}); free the port or change {key}") from exc
            self._servers.append(server)
            sockets = server.sockets
            self.ports[label] = sockets[0].getsockname()[1] if sockets else port
            log.info("listening", extra={"protocol": label, "host": self.settings.host,
                                         "port": self.ports[label]})

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, stop reading, send the acks now due, close every connection."""
        for server in self._servers:
            server.close()
        connections = list(self._connections)
        for connection in connections:
            connection.finish_reading("shutdown")
        waits = [c.closed for c in connections if not c.closed.done()]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=timeout)
            if pending:
                for connection in connections:
                    connection.abort()
                await asyncio.wait(pending, timeout=5.0)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def connected_devices(self) -> set[str]:
        """Ids of the devices with an open connection that identified itself."""
        return {c.stream.device_id for c in self._connections
                if c.stream is not None and c.stream.device_id is not None}

    def _admit(self, connection: _Connection) -> None:
        """Count a new connection as unidentified; over the address's limit, the oldest
        unidentified connection of that address is closed to make room."""
        pending = self._unidentified.setdefault(connection.addr, {})
        if len(pending) >= self.settings.max_connections_per_addr:
            oldest = next(iter(pending))
            del pending[oldest]
            self.metrics.connections_evicted.labels(oldest.label).inc()
            log.warning("connection closed: too many unidentified connections from this "
                        "address", extra={"protocol": oldest.label, "remote": oldest.addr,
                                          "limit": self.settings.max_connections_per_addr})
            oldest.finish_reading("evicted")
        pending[connection] = None
        self._connections.add(connection)

    def _identified(self, connection: _Connection) -> None:
        self._forget(connection)

    def _release(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        self._forget(connection)

    def _forget(self, connection: _Connection) -> None:
        pending = self._unidentified.get(connection.addr)
        if pending is not None and pending.pop(connection, 0) is None and not pending:
            del self._unidentified[connection.addr]


class _Connection(asyncio.Protocol):
    """One device connection: the socket side of a pipeline stream (its `Sink`)."""

    def __init__(self, server: TcpServer, protocol: str | None) -> None:
        self.server = server
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.addr = "?"
        self.label = protocol or AUTO
        self.stream: Stream | None = None
        self._admitted = False
        self._proxy: ProxyHeaderReader | None = None
        self._opened = 0.0
        #: When the frame now held incomplete began (None: nothing held).
        self._partial_since: float | None = None
        self._timer_at = 0.0
        #: Why reading ended (None while reading).
        self._reason: str | None = None
        self._paused = False
        self._write_blocked = False
        self._waiting_room = False
        self._last_read = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.addr = peer[0] if isinstance(peer, tuple) else str(peer)
        settings = self.server.settings
        now = self._last_read = self._opened = self.loop.time()
        self._arm(min(now + settings.idle_timeout_s, now + settings.identify_timeout_s))
        if settings.proxy_protocol != "off" and trusted(self.addr, settings.trusted_proxies):
            # The device's own address comes first, in the balancer's header.
            self._proxy = ProxyHeaderReader(settings.proxy_protocol)
            self._partial_since = now
            self._arm(now + settings.frame_timeout_s)
            return
        self._open()

    def _open(self) -> None:
        """Admit the connection under its (real) address and start its stream."""
        transport = self.transport
        assert transport is not None
        server = self.server
        server._admit(self)
        self._admitted = True
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        server.metrics.connections.labels(self.label).inc()
        log.info("connection open", extra={"protocol": self.label, "remote": self.addr})
        self.stream = server.pipeline.open(self, self.protocol, self.addr)

    def data_received(self, data: bytes) -> None:
        if self._reason is not None:
            return  # reading has ended; a paused transport may still deliver a last chunk
        now = self._last_read = self.loop.time()
        if self._proxy is not None:
            data = self._proxy_header(data)
            if not data:
                return
        stream = self.stream
        assert stream is not None
        frames = stream.frames
        try:
            stream.feed(data)
        except Exception:
            log.exception("connection failed", extra={
                "protocol": stream.label, "remote": self.addr})
            self.finish_reading("error")
            return
        if stream.buffered:
            # A frame is held incomplete: it began in this chunk if a frame ended in it.
            if self._partial_since is None or stream.frames != frames:
                self._partial_since = now
                self._arm(now + self.server.settings.frame_timeout_s)
        else:
            self._partial_since = None
        if self._reason is None:
            self._update_reading()

    def _proxy_header(self, data: bytes) -> bytes:
        """Bytes of the PROXY header phase: the device's bytes once the header is complete."""
        assert self._proxy is not None
        try:
            header = self._proxy.feed(data)
        except BadProxyHeader as exc:
            self.server.metrics.connections_refused.labels(self.label).inc()
            log.warning("connection refused: bad PROXY header", extra={
                "protocol": self.label, "remote": self.addr, "reason": str(exc)})
            self._reason = "bad_proxy_header"
            if self.transport is not None:
                self.transport.abort()
            return b""
        if header is None:
            return b""
        self._proxy = None
        self._partial_since = None
        if header.source is not None:
            self.addr = header.source
        self._open()
        return header.rest

    def eof_received(self) -> bool:
        self.finish_reading("eof")
        # Keep the transport open for writing: acks due for what was stored still go out.
        return True

    def pause_writing(self) -> None:
        self._write_blocked = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_blocked = False
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._reason is None:
            self._reason = "connection_error" if exc is not None else "eof"
        if self.stream is not None:
            self.stream.closed()
        if self._admitted:
            self.server._release(self)
            stream = self.stream
            label = stream.label if stream is not None else self.label
            session = stream.session if stream is not None else None
            metrics = self.server.metrics
            metrics.connections.labels(self.label).dec()
            metrics.connections_closed.labels(label, self._reason).inc()
            log.info("connection closed", extra={
                "protocol": label, "remote": self.addr, "reason": self._reason,
                "device": session.device_id if session else None,
                "frames": session.frames if session else 0})
        # Replies still waiting for a commit cannot be sent any more; the pipeline keeps the
        # acks-pending gauge right as their commits come in.
        if not self.closed.done():
            self.closed.set_result(None)

    # --- Sink (called by the pipeline stream) ---

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def end(self, reason: str) -> None:
        self.finish_reading(reason)

    def settled(self) -> None:
        if self._paused:
            self._update_reading()
        if self._reason is not None:
            self._close_when_sent()

    def identified(self) -> None:
        self.server._identified(self)

    # --- reading ---

    def finish_reading(self, reason: str) -> None:
        """Stop reading (`reason` is logged); close once the replies due are sent."""
        if self._reason is None:
            self._reason = reason
            if self.transport is not None and not self.transport.is_closing():
                self._paused = True
                self.transport.pause_reading()
        self._close_when_sent()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _arm(self, at: float) -> None:
        """Have the timers checked at `at` at the latest."""
        if self._idle_timer is not None:
            if self._timer_at <= at:
                return
            self._idle_timer.cancel()
        self._timer_at = at
        self._idle_timer = self.loop.call_at(at, self._check_timers)

    def _check_timers(self) -> None:
        """Idle timeout, frame timeout, identify timeout: whichever comes first."""
        self._idle_timer = None
        if self._reason is not None:
            return
        settings = self.server.settings
        now = self.loop.time()
        if self._paused:
            # Not reading (backpressure) is not the device's silence.
            self._last_read = now
        deadlines = [(self._last_read + settings.idle_timeout_s, "idle_timeout")]
        if self._partial_since is not None:
            deadlines.append((self._partial_since + settings.frame_timeout_s, "frame_timeout"))
        stream = self.stream
        if stream is None or not stream.identified:
            deadlines.append((self._opened + settings.identify_timeout_s, "identify_timeout"))
        at, reason = min(deadlines)
        if now >= at:
            self.finish_reading(reason)
        else:
            self._arm(at)

    def _update_reading(self) -> None:
        """Pause reading while too many frames wait for their commit, while the store is
        saturated or while the device does not take its replies; resume when all clear."""
        transport = self.transport
        if transport is None or self._reason is not None or transport.is_closing():
            return
        store = self.server.pipeline.store
        saturated = store.saturated
        if saturated and not self._waiting_room:
            self._waiting_room = True
            store.call_when_room(self._room)
        stream = self.stream
        pause = (saturated or self._write_blocked or (
            stream is not None
            and stream.uncommitted > self.server.settings.max_pending_per_connection))
        if pause != self._paused:
            self._paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _room(self) -> None:
        self._waiting_room = False
        self._update_reading()

    def _close_when_sent(self) -> None:
        """After reading ended: close once no reply waits for a commit any more."""
        transport = self.transport
        stream = self.stream
        if ((stream is not None and stream.outgoing) or transport is None
                or transport.is_closing()):
            return
        transport.close()
