"""TCP listeners: one per protocol, plus an optional port that detects the protocol.

Each connection reads bytes, lets the protocol's framer cut them into frames, hands each frame
to its DeviceSession and sends the replies in frame order. A reply that acknowledges data is
written only after the store reports that data committed. Every limit is enforced here: idle
timeout, frame size (in the framer), connections per address, frames per second, and the number
of frames waiting for their commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.config import TcpSettings
from gateway.metrics import Metrics
from gateway.session import DeviceSession, TokenBucket
from gateway.store.ingest import IngestItem
from protocols import PROTOCOLS, DecodeOptions, Discarded, Reply, UnknownProtocol, detect, get_codec

log = logging.getLogger("gateway.tcp")

READ_CHUNK = 65536
#: Bytes read while detecting the protocol on the auto port before giving up.
DETECT_MAX_BYTES = 64

Submit = Callable[[IngestItem], "asyncio.Future[None]"]
#: Called with an item once it is committed (the device-signal hook of activation).
OnStored = Callable[[IngestItem], None]


@dataclass(slots=True)
class _Outgoing:
    """Replies of one frame. `stored` is set when one of them acknowledges data: they are then
    sent once the data is committed. Replies leave in frame order, so a handshake reply queued
    behind a withheld ack waits for it."""

    stored: asyncio.Future[None] | None
    replies: tuple[Reply, ...]


def _report_stored(on_stored: OnStored, item: IngestItem, future: asyncio.Future[None]) -> None:
    """Tell `on_stored` about `item` once committed: only what was stored counts (an SOS that
    opens a claim must be on record)."""
    if not future.cancelled() and future.exception() is None:
        on_stored(item)


class TcpServer:
    """All device listeners of one gateway."""

    def __init__(
        self, settings: TcpSettings, metrics: Metrics, submit: Submit,
        on_stored: OnStored | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.submit = submit
        self.on_stored = on_stored
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._per_addr: Counter[str] = Counter()
        self._connections: set[_Connection] = set()

    async def start(self) -> None:
        listeners: list[tuple[str | None, int]] = [
            (name, getattr(self.settings, f"{name}_port")) for name in PROTOCOLS
        ]
        listeners.append((None, self.settings.auto_port))
        for protocol, port in listeners:
            if not port:
                continue

            def accept(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                protocol: str | None = protocol,
            ) -> Awaitable[None]:
                return self._accept(protocol, reader, writer)

            try:
                server = await asyncio.start_server(
                    accept, self.settings.host, port, limit=READ_CHUNK, backlog=4096)
            except OSError as exc:
                key = f"tcp.{protocol}_port" if protocol else "tcp.auto_port"
                raise OSError(
                    exc.errno,
                    f"cannot listen on {self.settings.host}:{port} for {protocol or 'auto'} "
                    f"({exc.strerror}); free the port or change {key}") from exc
            self._servers.append(server)
            label = protocol or "auto"
            self.ports[label] = server.sockets[0].getsockname()[1]
            log.info("listening", extra={"protocol": label, "host": self.settings.host,
                                         "port": self.ports[label]})

    async def stop(self, timeout: float = 30.0) -> None:
        """Stop accepting, stop reading, send the acks now due, close every connection."""
        for server in self._servers:
            server.close()
        for connection in list(self._connections):
            connection.stop_reading()
        tasks = [c.task for c in self._connections if c.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
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

    async def _accept(
        self, protocol: str | None, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = writer.get_extra_info("peername")
        addr = peer[0] if isinstance(peer, tuple) else str(peer)
        label = protocol or "auto"
        if self._per_addr[addr] >= self.settings.max_connections_per_addr:
            self.metrics.connections_refused.labels(label).inc()
            log.warning("connection refused: too many connections from this address",
                        extra={"protocol": label, "remote": addr,
                               "limit": self.settings.max_connections_per_addr})
            writer.transport.abort()
            return
        self._per_addr[addr] += 1
        connection = _Connection(self, protocol, reader, writer, addr)
        connection.task = asyncio.current_task()
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)
            self._per_addr[addr] -= 1
            if self._per_addr[addr] <= 0:
                del self._per_addr[addr]


class _Connection:
    def __init__(
        self,
        server: TcpServer,
        protocol: str | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        addr: str,
    ) -> None:
        self.server = server
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.addr = addr
        self.task: asyncio.Task[None] | None = None
        self._read_task: asyncio.Task[str] | None = None
        self._outgoing: deque[_Outgoing] = deque()
        self._outgoing_ready = asyncio.Event()
        self._reading_done = False
        # Frames handed to the store and not yet committed (or failed).
        self._uncommitted = 0
        self._commit_progress = asyncio.Event()
        self.session: DeviceSession | None = None

    def stop_reading(self) -> None:
        if self._read_task is not None:
            self._read_task.cancel()

    async def run(self) -> None:
        metrics = self.server.metrics
        label = self.protocol or "auto"
        sender = asyncio.create_task(self._send_loop())
        self._read_task = asyncio.create_task(self._read_loop())
        metrics.connections.labels(label).inc()
        log.info("connection open", extra={"protocol": label, "remote": self.addr})
        reason = "error"
        try:
            reason = await self._read_task
        except asyncio.CancelledError:
            reason = "shutdown"
        except Exception:
            log.exception("connection failed", extra={"protocol": label, "remote": self.addr})
        finally:
            self._reading_done = True
            self._outgoing_ready.set()
            try:
                # Acks due for what was stored are still sent before closing.
                await sender
            except Exception:
                log.exception("sending replies failed", extra={"remote": self.addr})
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
            label = self.session.codec.name if self.session else label
            metrics.connections.labels(self.protocol or "auto").dec()
            metrics.connections_closed.labels(label, reason).inc()
            log.info("connection closed", extra={
                "protocol": label, "remote": self.addr, "reason": reason,
                "device": self.session.device_id if self.session else None,
                "frames": self.session.frames if self.session else 0})

    async def _read(self) -> bytes:
        # asyncio.timeout re-arms one timer; wait_for would wrap every read in a new task.
        async with asyncio.timeout(self.server.settings.idle_timeout_s):
            return await self.reader.read(READ_CHUNK)

    async def _detect(self) -> tuple[str, bytes] | str:
        """On the auto port: read until the first bytes tell the protocol."""
        head = b""
        while True:
            try:
                data = await self._read()
            except TimeoutError:
                return "idle_timeout"
            if not data:
                return "eof"
            head += data
            try:
                name = detect(head[:DETECT_MAX_BYTES])
            except UnknownProtocol as exc:
                self._reject("auto", "unknown_protocol", str(exc))
                return "unknown_protocol"
            if name is not None:
                if name not in PROTOCOLS:
                    self._reject("auto", "unknown_protocol", f"{name} is not served on this port")
                    return "unknown_protocol"
                return name, head
            if len(head) >= DETECT_MAX_BYTES:
                return "unknown_protocol"

    async def _read_loop(self) -> str:
        settings = self.server.settings
        metrics = self.server.metrics
        first = b""
        protocol = self.protocol
        if protocol is None:
            detected = await self._detect()
            if isinstance(detected, str):
                return detected
            protocol, first = detected
        codec = get_codec(protocol)
        framer = codec.framer(settings.max_frame_bytes)
        session = self.session = DeviceSession(
            codec=codec,
            options=DecodeOptions(gl300_sack=settings.gl300_sack),
            remote_addr=self.addr,
            rate=TokenBucket(settings.max_frames_per_s, settings.max_frames_per_s * 2),
        )
        submit = self.server.submit
        frames_ok = metrics.frames.labels(protocol, "ok")
        positions = metrics.positions.labels(protocol)
        data = first
        while True:
            if not data:
                try:
                    data = await self._read()
                except TimeoutError:
                    return "idle_timeout"
                except (ConnectionError, OSError):
                    return "connection_error"
                if not data:
                    return "eof"
            # Counted per chunk, not per frame: metric updates take a lock each.
            frames_accepted = positions_seen = acks_queued = 0
            for out in framer.feed(data):
                if isinstance(out, Discarded):
                    self._reject(protocol, "framing", f"{out.reason} ({out.size} bytes)")
                    continue
                if not session.rate.take():
                    self._reject(protocol, "rate_limit",
                                 f"more than {settings.max_frames_per_s:g} frames/s")
                    return "rate_limit"
                outcome = session.handle_frame(out)
                stored = None
                if outcome.item is not None:
                    stored = submit(outcome.item)
                    self._uncommitted += 1
                    stored.add_done_callback(self._committed)
                    if self.server.on_stored is not None:
                        stored.add_done_callback(functools.partial(
                            _report_stored, self.server.on_stored, outcome.item))
                if outcome.rejected is not None:
                    assert outcome.rejected_kind is not None
                    if outcome.rejected_kind == "decode_error":
                        metrics.decode_errors.labels(protocol).inc()
                    self._reject(protocol, outcome.rejected_kind, outcome.rejected,
                                 device=session.device_id)
                else:
                    frames_accepted += 1
                    positions_seen += outcome.positions
                if outcome.replies:
                    acks = sum(1 for reply in outcome.replies if reply.after_store)
                    self._outgoing.append(_Outgoing(stored if acks else None, outcome.replies))
                    self._outgoing_ready.set()
                    acks_queued += acks
            if frames_accepted:
                frames_ok.inc(frames_accepted)
            if positions_seen:
                positions.inc(positions_seen)
            if acks_queued:
                metrics.acks_pending.inc(acks_queued)
            data = b""
            # Backpressure: stop reading while too many frames wait for their commit.
            while self._uncommitted > settings.max_pending_per_connection:
                self._commit_progress.clear()
                await self._commit_progress.wait()

    def _committed(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled():
            future.exception()  # retrieved here; the sender logs it if an ack depended on it
        self._uncommitted -= 1
        self._commit_progress.set()

    def _reject(self, protocol: str, kind: str, reason: str, device: str | None = None) -> None:
        self.server.metrics.frames.labels(protocol, "rejected").inc()
        self.server.metrics.rejected_frames.labels(protocol, kind).inc()
        log.warning("frame rejected", extra={
            "protocol": protocol, "remote": self.addr, "device": device, "kind": kind,
            "reason": reason})

    async def _send_loop(self) -> None:
        """Write replies in frame order; an ack waits for its frame's commit. Replies that are
        ready together leave in one write."""
        metrics = self.server.metrics
        writer = self.writer
        outgoing = self._outgoing
        broken = False
        while True:
            if not outgoing:
                if self._reading_done:
                    return
                self._outgoing_ready.clear()
                await self._outgoing_ready.wait()
                continue
            head = outgoing[0].stored
            if head is not None and not head.done():
                with contextlib.suppress(Exception):
                    await head
            out: list[bytes] = []
            acks_done = 0
            while outgoing:
                entry = outgoing[0]
                stored = entry.stored
                if stored is not None and not stored.done():
                    break
                outgoing.popleft()
                committed = stored is None or (not stored.cancelled()
                                               and stored.exception() is None)
                if not committed:
                    reason = "cancelled" if stored.cancelled() else str(stored.exception())
                    log.error("frame not stored; its ack is withheld",
                              extra={"remote": self.addr, "error": reason})
                for reply in entry.replies:
                    if reply.after_store:
                        acks_done += 1
                        if not committed:
                            continue
                    out.append(reply.data)
            if acks_done:
                metrics.acks_pending.dec(acks_done)
            if out and not broken:
                try:
                    writer.write(b"".join(out))
                    if writer.transport.get_write_buffer_size() > READ_CHUNK:
                        await writer.drain()
                except (ConnectionError, OSError):
                    broken = True
