"""TCP listeners: one per protocol, plus an optional port that detects the protocol.

Each connection is an asyncio protocol object: the loop hands it the bytes it reads, the
protocol's framer cuts them into frames, its DeviceSession decides what to store and answer, and
the replies leave in frame order. A reply that acknowledges data is written only after the store
reports that data committed. No task or future is created per connection or per frame: at
thousands of connections the per-frame cost is the gateway's capacity.

Every limit is enforced here: idle timeout, frame size (in the framer), connections per
address, frames per second, and frames waiting for their commit (reading pauses beyond it, and
while the store is saturated or the device does not read its replies).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, cast

from gateway.config import TcpSettings
from gateway.metrics import Metrics
from gateway.session import DeviceSession, TokenBucket
from gateway.store.ingest import IngestItem
from gateway.store.writer import ItemStore
from protocols import Discarded, Reply, UnknownProtocol, detect, get_codec, names
from protocols.codec import Codec
from protocols.framing import BoundedFramer

log = logging.getLogger("gateway.tcp")

#: Write buffer above which reading from a device pauses until it takes its replies.
WRITE_BUFFER_HIGH = 65536
#: Bytes read while detecting the protocol on the auto port before giving up.
DETECT_MAX_BYTES = 64

#: Called with an item once it is committed (the device-signal hook of activation).
OnStored = Callable[[IngestItem], None]


def _options(codec: Codec, settings: TcpSettings) -> Any:
    """The protocol's options from the `tcp.<name>_<option>` keys (temporary)."""
    values = {f.name: getattr(settings, f"{codec.name}_{f.name}")
              for f in dataclasses.fields(codec.options)
              if hasattr(settings, f"{codec.name}_{f.name}")}
    return codec.options(**values)


class TcpServer:
    """All device listeners of one gateway."""

    def __init__(
        self, settings: TcpSettings, metrics: Metrics, store: ItemStore,
        on_stored: OnStored | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.on_stored = on_stored
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._per_addr: Counter[str] = Counter()
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        listeners: list[tuple[str | None, int]] = [
            (name, getattr(self.settings, f"{name}_port", 0)) for name in names()
        ]
        listeners.append((None, self.settings.auto_port))
        for protocol, port in listeners:
            if not port:
                continue

            def factory(protocol: str | None = protocol) -> _Connection:
                return _Connection(self, protocol)

            try:
                server = await loop.create_server(
                    factory, self.settings.host, port, backlog=4096)
            except OSError as exc:
                key = f"tcp.{protocol}_port" if protocol else "tcp.auto_port"
                raise OSError(
                    exc.errno,
                    f"cannot listen on {self.settings.host}:{port} for {protocol or 'auto'} "
                    f"({exc.strerror}); free the port or change {key}") from exc
            self._servers.append(server)
            label = protocol or "auto"
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
        return {c.session.device_id for c in self._connections
                if c.session is not None and c.session.device_id is not None}

    def _admit(self, connection: _Connection) -> bool:
        addr = connection.addr
        if self._per_addr[addr] >= self.settings.max_connections_per_addr:
            return False
        self._per_addr[addr] += 1
        self._connections.add(connection)
        return True

    def _release(self, connection: _Connection) -> None:
        self._connections.discard(connection)
        addr = connection.addr
        self._per_addr[addr] -= 1
        if self._per_addr[addr] <= 0:
            del self._per_addr[addr]


class _Outgoing:
    """Replies of one frame, and the commit they may wait for (`after_store` replies).

    Called by the store with the outcome of the frame's item (None: committed). Replies leave
    in frame order, so a handshake reply queued behind a withheld ack waits for it.
    """

    __slots__ = ("acks", "connection", "error", "item", "ready", "replies")

    def __init__(self, connection: _Connection, item: IngestItem | None,
                 replies: tuple[Reply, ...], acks: int) -> None:
        self.connection = connection
        self.item = item
        self.replies = replies
        self.acks = acks
        #: True once the replies may leave: at once when none acknowledges data, else when
        #: the item is settled.
        self.ready = item is None or acks == 0
        self.error: BaseException | None = None

    def __call__(self, error: BaseException | None) -> None:
        self.ready = True
        self.error = error
        self.connection._settled(self)


class _Connection(asyncio.Protocol):
    def __init__(self, server: TcpServer, protocol: str | None) -> None:
        self.server = server
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.addr = "?"
        self.session: DeviceSession | None = None
        self._framer: BoundedFramer | None = None
        self._frames_ok: Any = None
        self._positions: Any = None
        self._head = b""
        self._admitted = False
        #: Replies in frame order, each waiting for its commit or ready.
        self._outgoing: deque[_Outgoing] = deque()
        #: Frames handed to the store and not yet settled.
        self._uncommitted = 0
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
        label = self.protocol or "auto"
        server = self.server
        if not server._admit(self):
            server.metrics.connections_refused.labels(label).inc()
            log.warning("connection refused: too many connections from this address",
                        extra={"protocol": label, "remote": self.addr,
                               "limit": server.settings.max_connections_per_addr})
            self._reason = "refused"
            transport.abort()
            return
        self._admitted = True
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        server.metrics.connections.labels(label).inc()
        log.info("connection open", extra={"protocol": label, "remote": self.addr})
        self._last_read = self.loop.time()
        self._idle_timer = self.loop.call_at(
            self._last_read + server.settings.idle_timeout_s, self._check_idle)
        if self.protocol is not None:
            self._start_session(self.protocol)

    def data_received(self, data: bytes) -> None:
        if self._reason is not None:
            return  # reading has ended; a paused transport may still deliver a last chunk
        self._last_read = self.loop.time()
        try:
            if self.session is None:
                data = self._detect(data)
                if not data:
                    return
            self._feed(data)
        except Exception:
            log.exception("connection failed", extra={
                "protocol": self.protocol or "auto", "remote": self.addr})
            self.finish_reading("error")

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
        if self._admitted:
            self.server._release(self)
            session = self.session
            label = session.codec.name if session else self.protocol or "auto"
            metrics = self.server.metrics
            metrics.connections.labels(self.protocol or "auto").dec()
            metrics.connections_closed.labels(label, self._reason).inc()
            log.info("connection closed", extra={
                "protocol": label, "remote": self.addr, "reason": self._reason,
                "device": session.device_id if session else None,
                "frames": session.frames if session else 0})
        # Replies still waiting for a commit cannot be sent any more; _settled() keeps the
        # acks-pending gauge right as their commits come in.
        if not self.closed.done():
            self.closed.set_result(None)

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

    def _check_idle(self) -> None:
        self._idle_timer = None
        if self._reason is not None:
            return
        timeout = self.server.settings.idle_timeout_s
        if self._paused:
            # Not reading (backpressure) is not the device's silence.
            self._last_read = self.loop.time()
        deadline = self._last_read + timeout
        if self.loop.time() >= deadline:
            self.finish_reading("idle_timeout")
        else:
            self._idle_timer = self.loop.call_at(deadline, self._check_idle)

    def _detect(self, data: bytes) -> bytes:
        """On the auto port: collect the first bytes until they tell the protocol; returns the
        bytes to feed once known (empty while undecided or refused)."""
        head = self._head = self._head + data
        try:
            name = detect(head[:DETECT_MAX_BYTES])
        except UnknownProtocol as exc:
            self._reject("auto", "unknown_protocol", str(exc))
            self.finish_reading("unknown_protocol")
            return b""
        if name is None:
            if len(head) >= DETECT_MAX_BYTES:
                self.finish_reading("unknown_protocol")
            return b""
        if name not in names():
            self._reject("auto", "unknown_protocol", f"{name} is not served on this port")
            self.finish_reading("unknown_protocol")
            return b""
        self._head = b""
        self._start_session(name)
        return head

    def _start_session(self, protocol: str) -> None:
        settings = self.server.settings
        codec = get_codec(protocol)
        self._framer = codec.framer(settings.max_frame_bytes)
        self.session = DeviceSession(
            codec=codec,
            options=_options(codec, settings),
            remote_addr=self.addr,
            rate=TokenBucket(settings.max_frames_per_s, settings.max_frames_per_s * 2),
        )
        metrics = self.server.metrics
        self._frames_ok = metrics.frames.labels(protocol, "ok")
        self._positions = metrics.positions.labels(protocol)

    def _feed(self, data: bytes) -> None:
        server = self.server
        settings = server.settings
        metrics = server.metrics
        session = self.session
        assert session is not None
        protocol = session.codec.name
        store = server.store
        # Counted per chunk, not per frame: metric updates take a lock each.
        frames_accepted = positions_seen = acks_queued = 0
        outgoing = self._outgoing
        assert self._framer is not None
        for out in self._framer.feed(data):
            if isinstance(out, Discarded):
                self._reject(protocol, "framing", f"{out.reason} ({out.size} bytes)")
                continue
            if not session.rate.take():
                self._reject(protocol, "rate_limit",
                             f"more than {settings.max_frames_per_s:g} frames/s")
                self.finish_reading("rate_limit")
                break
            outcome = session.handle_frame(out)
            item = outcome.item
            replies = outcome.replies
            if outcome.rejected is not None:
                assert outcome.rejected_kind is not None
                if outcome.rejected_kind == "decode_error":
                    metrics.decode_errors.labels(protocol).inc()
                self._reject(protocol, outcome.rejected_kind, outcome.rejected,
                             device=session.device_id)
            else:
                frames_accepted += 1
                positions_seen += outcome.positions
            if item is None and not replies:
                continue
            acks = sum(1 for reply in replies if reply.after_store) if replies else 0
            entry = _Outgoing(self, item, replies, acks)
            if replies:
                outgoing.append(entry)
                acks_queued += acks
            if item is not None:
                self._uncommitted += 1
                store.submit_nowait(item, entry)
        if frames_accepted:
            self._frames_ok.inc(frames_accepted)
        if positions_seen:
            self._positions.inc(positions_seen)
        if acks_queued:
            metrics.acks_pending.inc(acks_queued)
        if outgoing and outgoing[0].ready:
            self._send_ready()
        if self._reason is not None:
            self._close_when_sent()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        """Pause reading while too many frames wait for their commit, while the store is
        saturated or while the device does not take its replies; resume when all clear."""
        transport = self.transport
        if transport is None or self._reason is not None or transport.is_closing():
            return
        store = self.server.store
        saturated = store.saturated
        if saturated and not self._waiting_room:
            self._waiting_room = True
            store.call_when_room(self._room)
        pause = (saturated or self._write_blocked
                 or self._uncommitted > self.server.settings.max_pending_per_connection)
        if pause != self._paused:
            self._paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _room(self) -> None:
        self._waiting_room = False
        self._update_reading()

    # --- commits and replies ---

    def _settled(self, entry: _Outgoing) -> None:
        """The store settled `entry`'s item (committed or failed for good)."""
        self._uncommitted -= 1
        if entry.error is None and entry.item is not None and self.server.on_stored is not None:
            self.server.on_stored(entry.item)
        entry.item = None
        outgoing = self._outgoing
        if outgoing and outgoing[0].ready:
            self._send_ready()
        if self._paused:
            self._update_reading()
        if self._reason is not None:
            self._close_when_sent()

    def _send_ready(self) -> None:
        """Write, in one go, the replies at the head of the queue whose frames are settled."""
        outgoing = self._outgoing
        out: list[bytes] = []
        acks_done = 0
        while outgoing and outgoing[0].ready:
            entry = outgoing.popleft()
            error = entry.error if entry.acks else None
            if error is not None:
                log.error("frame not stored; its ack is withheld",
                          extra={"remote": self.addr, "error": str(error)})
            for reply in entry.replies:
                if reply.after_store:
                    acks_done += 1
                    if error is not None:
                        continue
                out.append(reply.data)
        if acks_done:
            self.server.metrics.acks_pending.dec(acks_done)
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))

    def _close_when_sent(self) -> None:
        """After reading ended: close once no reply waits for a commit any more."""
        transport = self.transport
        if self._outgoing or transport is None or transport.is_closing():
            return
        transport.close()

    def _reject(self, protocol: str, kind: str, reason: str, device: str | None = None) -> None:
        self.server.metrics.frames.labels(protocol, "rejected").inc()
        self.server.metrics.rejected_frames.labels(protocol, kind).inc()
        log.warning("frame rejected", extra={
            "protocol": protocol, "remote": self.addr, "device": device, "kind": kind,
            "reason": reason})
