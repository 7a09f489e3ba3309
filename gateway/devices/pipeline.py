"""The one path of device bytes, for every transport.

    bytes in -> detect (when the port or topic does not name the protocol) -> the protocol's
    framer -> session (identity lock, rate rule, the protocol's decode) -> group-commit writer
    -> replies released once what they acknowledge is committed -> the transport writes them

A transport opens a `Stream` per device stream (a TCP connection; an MQTT device topic) and
feeds it bytes. The stream answers through its `Sink`: `write` for replies in frame order (TCP),
`end` when the stream must stop (a rate breach, an unknown protocol, a protocol that asks to
close), `settled` after each commit (so the transport can resume reading). A transport whose
unit is a message (MQTT) passes a `Batch` with each feed instead: the frames' replies are then
gathered on the batch and released together once all of them are settled.

Every rule lives here once: the same breach is treated alike on every transport. Frames over
the rate end the stream (TCP closes the connection; MQTT forgets the device's session, as a
reconnect would); what they carried is neither stored nor acknowledged, so the device keeps it
and sends it again. Per-frame work is kept small (the gateway's capacity is its cost per frame):
one clock read and one metrics update per chunk, not per frame.
"""

from __future__ import annotations

import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.devices.session import DeviceSession, TokenBucket
from gateway.metrics import Metrics
from gateway.store.ingest import LINK_MARK_INTERVAL, IngestItem, Link
from gateway.store.writer import ItemStore
from protocols import DETECT_MAX_BYTES, Position, Rejected, Reply, UnknownProtocol, detect
from protocols.framing import BoundedFramer, Discarded
from protocols.registry import get_codec

log = logging.getLogger("gateway.devices")

#: Called with an item once it is committed (activation's device signal, integrator events).
OnStored = Callable[[IngestItem], None]
#: Called when a stream has identified its device (queued commands go out then).
OnIdentified = Callable[["Stream"], None]
#: Called when the transport of a stream that identified its device is gone.
OnClosed = Callable[["Stream"], None]


class Sink(Protocol):
    """What a stream needs of its transport."""

    def write(self, data: bytes) -> None:
        """Bytes for the device: replies due, in frame order, or a server command."""

    def end(self, reason: str) -> None:
        """The stream must stop taking input (`reason` is logged and counted)."""

    def settled(self) -> None:
        """One of the stream's items was settled (resume reading, close when done...)."""

    def identified(self) -> None:
        """A valid frame identified the stream's device (once per stream)."""


class Batch(Protocol):
    """A unit of input whose replies leave together (an MQTT message)."""

    #: Items of the batch handed to the store and not yet settled.
    waiting: int
    #: Entries with replies, in frame order.
    entries: list[Entry]

    def settled(self, entry: Entry) -> None:
        """One item of the batch was settled."""


class _NotStored(Exception):
    """An acknowledging reply whose frame had nothing to store (it is withheld)."""


NOT_STORED = _NotStored("nothing was stored for this frame")


class Entry:
    """One frame's replies, and the commit they may wait for.

    The writer calls it once the frame's item is settled (None: committed). Replies that
    acknowledge data (`after_store`) leave only if the item was committed.
    """

    __slots__ = ("acks", "batch", "error", "item", "ready", "replies", "stream")

    def __init__(self, stream: Stream, item: IngestItem | None, replies: tuple[Reply, ...],
                 acks: int, batch: Batch | None) -> None:
        self.stream = stream
        self.item = item
        self.replies = replies
        self.acks = acks
        self.batch = batch
        #: True once the replies may leave: at once when none acknowledges data, else once the
        #: item is settled.
        self.ready = item is None or acks == 0
        self.error: BaseException | None = NOT_STORED if item is None and acks else None

    def __call__(self, error: BaseException | None) -> None:
        self.ready = True
        self.error = error
        self.stream._settled(self)


def release(entries: Iterable[Entry], remote: str) -> tuple[list[bytes], int]:
    """The reply bytes of settled entries, in order, without the acks of what was not stored;
    and how many acknowledging replies were settled."""
    out: list[bytes] = []
    acks = 0
    for entry in entries:
        error = entry.error if entry.acks else None
        if error is not None:
            log.error("frame not stored; its ack is withheld",
                      extra={"remote": remote, "error": str(error)})
        for reply in entry.replies:
            if reply.after_store:
                acks += 1
                if error is not None:
                    continue
            out.append(reply.data)
    return out, acks


class Pipeline:
    """What every stream of one gateway shares: protocol settings, limits, store, metrics."""

    def __init__(
        self,
        protocols: Mapping[str, Any],
        *,
        max_frame_bytes: int,
        max_frames_per_s: float,
        metrics: Metrics,
        store: ItemStore,
        on_stored: OnStored | None = None,
        on_identified: OnIdentified | None = None,
        on_closed: OnClosed | None = None,
        instance: str = "gateway",
    ) -> None:
        #: name -> ProtocolSettings (port and options) of every protocol served.
        self.protocols = protocols
        self.max_frame_bytes = max_frame_bytes
        self.max_frames_per_s = max_frames_per_s
        self.metrics = metrics
        self.store = store
        self.on_stored = on_stored
        self.on_identified = on_identified
        self.on_closed = on_closed
        #: Names this instance's links (`<instance>:<random>`).
        self.instance = instance
        #: Device id -> the stream that last identified it and is still open: where commands
        #: for the device go.
        self.online: dict[str, Stream] = {}
        self.counts = metrics.counts

    def tell(self, head: bytes, whole: bool = True) -> tuple[str | None, str | None]:
        """The protocol served here that a stream starting with `head` speaks: (name, None);
        (None, None) while undecided (more bytes needed, unless `whole`); (None, why) when
        refused."""
        try:
            name = detect(head[:DETECT_MAX_BYTES])
        except UnknownProtocol as exc:
            return None, str(exc)
        if name is None:
            if whole:
                return None, "message too short to tell its protocol"
            if len(head) >= DETECT_MAX_BYTES:
                return None, f"no protocol told apart in the first {DETECT_MAX_BYTES} bytes"
            return None, None
        if name not in self.protocols:
            return None, f"{name} is not served here"
        return name, None

    def open(self, sink: Sink, protocol: str | None, remote_addr: str,
             claimed_id: str | None = None, transport: str = "tcp") -> Stream:
        """A stream of one device; `protocol` None: told from its first bytes."""
        now = datetime.now(UTC)
        link = Link(f"{self.instance}:{secrets.token_hex(8)}", transport, now, now)
        return Stream(self, sink, protocol, remote_addr, claimed_id, link)


class Stream:
    """One device stream: bytes in, items to the store, replies out in order."""

    __slots__ = (
        "_displaced",
        "_framer",
        "_head",
        "_notes_logged",
        "_ok_key",
        "claimed_id",
        "ended",
        "gone",
        "identified",
        "label",
        "link",
        "outgoing",
        "pipeline",
        "remote_addr",
        "session",
        "sink",
        "uncommitted",
    )

    def __init__(self, pipeline: Pipeline, sink: Sink, protocol: str | None, remote_addr: str,
                 claimed_id: str | None, link: Link) -> None:
        self.pipeline = pipeline
        #: This connection or stream, as the store records it for the device-signal proof.
        self.link = link
        self.sink = sink
        self.remote_addr = remote_addr
        self.claimed_id = claimed_id
        self.session: DeviceSession | None = None
        #: The protocol's name once known ("auto" until detected): the metrics label.
        self.label = protocol or "auto"
        #: Entries with replies, in frame order (unbatched feeds).
        self.outgoing: deque[Entry] = deque()
        #: Items handed to the store and not yet settled.
        self.uncommitted = 0
        #: Why the stream ended (None while it takes input).
        self.ended: str | None = None
        #: A valid frame identified the device.
        self.identified = False
        #: The transport is gone (`closed`).
        self.gone = False
        #: The stream that had the device in `Pipeline.online` before this one took it.
        self._displaced: Stream | None = None
        self._framer: BoundedFramer | None = None
        self._head = b""
        self._ok_key = ("auto", "ok")
        self._notes_logged: set[str] = set()
        if protocol is not None:
            self._start(protocol)

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame (or of the protocol's first bytes)."""
        framer = self._framer
        return len(self._head) + (framer.buffered if framer is not None else 0)

    @property
    def frames(self) -> int:
        """Complete frames taken so far."""
        return self.session.frames if self.session is not None else 0

    @property
    def device_id(self) -> str | None:
        return self.session.device_id if self.session is not None else None

    @property
    def protocol(self) -> str | None:
        return self.session.codec.name if self.session is not None else None

    # --- input ---

    def feed(self, data: bytes, batch: Batch | None = None) -> None:
        """Take bytes. With `batch`, `data` is a whole unit (an MQTT message): a frame left
        incomplete at its end is refused, and the frames' replies are gathered on the batch."""
        if self.ended is not None:
            return
        if self.session is None:
            data = self._detect(data, batch is not None)
            if not data:
                return
        session = self.session
        framer = self._framer
        assert session is not None and framer is not None
        pipeline = self.pipeline
        store = pipeline.store
        decode = session.protocol.decode
        rate = session.rate
        protocol = session.codec.name
        received_at = datetime.now(UTC)
        remote = self.remote_addr
        link = self.link
        # The first identified frame of the link, then one a half-minute, records the link.
        mark = received_at >= link.next_mark
        outgoing = batch.entries if batch is not None else self.outgoing
        accepted = positions = acks_queued = 0
        for frame in framer.feed(data):
            if frame.__class__ is Discarded:
                assert isinstance(frame, Discarded)
                self._reject("framing", f"{frame.reason} ({frame.size} bytes)")
                continue
            assert isinstance(frame, bytes)
            if not rate.take():
                self._reject("rate_limit",
                             f"more than {pipeline.max_frames_per_s:g} frames/s")
                self.end("rate_limit")
                break
            session.frames += 1
            decoded = decode(frame)
            device_id = decoded.device_id
            if device_id is not None and device_id != session.device_id:
                refused = session.identify(device_id)
                if refused is not None:
                    self._reject(*refused)
                    continue
            owner = session.device_id
            rejected: Rejected | None = None
            for event in decoded.events:  # a loop, not a generator: this is the hot path
                if event.__class__ is Rejected:
                    rejected = event  # type: ignore[assignment]
                    break
                if event.__class__ is Position:
                    positions += 1
            if decoded.notes:
                self._notes(decoded.notes)
            replies = decoded.replies
            item: IngestItem | None = None
            if owner is not None:
                if rejected is None:
                    item = IngestItem(owner, protocol, remote, received_at, frame,
                                      decoded.events, None, link, mark)
                    if mark:  # only a valid frame counts as naming the device
                        mark = False
                        link.next_mark = received_at + LINK_MARK_INTERVAL
                else:
                    item = IngestItem(owner, protocol, remote, received_at, frame,
                                      decoded.events, rejected.reason, link)
            if rejected is not None:
                pipeline.metrics.decode_errors.labels(protocol).inc()
                self._reject("decode_error", rejected.reason)
                if item is None:
                    continue
                # Stored for diagnostics only (the device's frame ring), never answered.
                replies = ()
            elif owner is None and not replies:
                self._reject("unidentified", "frame before the device identified itself")
                continue
            else:
                # An unidentified frame with replies is a handshake some protocols answer
                # before the device has named itself: answered, nothing stored.
                accepted += 1
                if owner is not None and (speaking := pipeline.online.get(owner)) is not self:
                    # This connection speaks for the device now: it gets its commands (another
                    # one that named it, and may have gone quiet, gets them back when this
                    # one closes).
                    self._displaced = speaking
                    pipeline.online[owner] = self
                    if not self.identified:
                        self.identified = True
                        self.sink.identified()
                        if pipeline.on_identified is not None:
                            pipeline.on_identified(self)
            acks = 0
            for reply in replies:
                if reply.after_store:
                    acks += 1
            entry = Entry(self, item, replies, acks, batch)
            if replies:
                outgoing.append(entry)
                acks_queued += acks
            if item is not None:
                self.uncommitted += 1
                if batch is not None:
                    batch.waiting += 1
                store.submit_nowait(item, entry)
            if decoded.close:
                self.end("protocol_close")
                break
        if batch is not None and framer.buffered:
            self._reject("framing", f"incomplete frame at the end of the message "
                         f"({framer.buffered} bytes)")
            self._framer = session.codec.framer(pipeline.max_frame_bytes)
        counts = pipeline.counts
        if accepted:
            counts.frames[self._ok_key] += accepted
        if positions:
            counts.positions[protocol] += positions
        if acks_queued:
            counts.acks_pending += acks_queued
        if batch is None and outgoing and outgoing[0].ready:
            self.send_ready()

    def end(self, reason: str) -> None:
        """Take no more input; the transport is told (and closes, or forgets the stream)."""
        if self.ended is None:
            self.ended = reason
            self.sink.end(reason)

    def closed(self) -> None:
        """The transport is gone (connection closed, stream forgotten): no more commands."""
        self.gone = True
        online = self.pipeline.online
        device_id = self.device_id
        if device_id is not None and online.get(device_id) is self:
            # The connection this one took the device from, if it is still there, has it back.
            displaced = self._displaced
            if displaced is not None and not displaced.gone and displaced.ended is None:
                online[device_id] = displaced
            else:
                del online[device_id]
        self._displaced = None
        on_closed = self.pipeline.on_closed
        if self.identified and on_closed is not None:
            on_closed(self)

    def send(self, data: bytes) -> None:
        """A server command for the device, written now (after the replies already due)."""
        self.sink.write(data)

    def _start(self, protocol: str) -> None:
        pipeline = self.pipeline
        codec = get_codec(protocol)
        settings = pipeline.protocols[protocol]
        rate = pipeline.max_frames_per_s
        self.session = DeviceSession(codec, settings.options, self.remote_addr,
                                     TokenBucket(rate, rate * 2), self.claimed_id)
        self._framer = codec.framer(pipeline.max_frame_bytes)
        self.label = protocol
        self._ok_key = (protocol, "ok")

    def _detect(self, data: bytes, whole: bool) -> bytes:
        """Collect the first bytes until they tell the protocol; the bytes to feed once known
        (empty while undecided or refused)."""
        head = self._head = self._head + data
        name, problem = self.pipeline.tell(head, whole)
        if name is None:
            if problem is not None:
                self._reject("unknown_protocol", problem)
                if whole:
                    self._head = b""
                else:
                    self.end("unknown_protocol")
            return b""
        self._head = b""
        self._start(name)
        return head

    # --- commits and replies ---

    def _settled(self, entry: Entry) -> None:
        """The store settled `entry`'s item (committed, or failed for good)."""
        self.uncommitted -= 1
        item = entry.item
        if entry.error is None and item is not None:
            on_stored = self.pipeline.on_stored
            if on_stored is not None:
                on_stored(item)
        entry.item = None
        batch = entry.batch
        if batch is not None:
            batch.settled(entry)
            return
        outgoing = self.outgoing
        if outgoing and outgoing[0].ready:
            self.send_ready()
        self.sink.settled()

    def send_ready(self) -> None:
        """Write, in one go, the replies at the head of the queue whose frames are settled."""
        outgoing = self.outgoing
        ready: list[Entry] = []
        while outgoing and outgoing[0].ready:
            ready.append(outgoing.popleft())
        out, acks = release(ready, self.remote_addr)
        if acks:
            self.pipeline.counts.acks_pending -= acks
        if out:
            self.sink.write(b"".join(out))

    # --- refusals ---

    def _reject(self, kind: str, reason: str) -> None:
        metrics = self.pipeline.metrics
        self.pipeline.counts.frames[self.label, "rejected"] += 1
        metrics.rejected_frames.labels(self.label, kind).inc()
        log.warning("frame rejected", extra={
            "protocol": self.label, "remote": self.remote_addr, "device": self.device_id,
            "kind": kind, "reason": reason})

    def _notes(self, notes: tuple[str, ...]) -> None:
        """Flaws a protocol accepted by its policy (a wrong CRC): counted always, logged once
        per stream and kind."""
        metrics = self.pipeline.metrics
        for note in notes:
            metrics.frame_notes.labels(self.label, note).inc()
            if note not in self._notes_logged:
                self._notes_logged.add(note)
                log.warning("frame accepted with a flaw", extra={
                    "protocol": self.label, "remote": self.remote_addr,
                    "device": self.device_id, "note": note})
