"""Group commit: many connections' frames, one transaction, and acks only after COMMIT.

Each connection calls `await writer.submit(item)` (or `submit_nowait(item, done)`, which calls
`done` instead of returning) and sends the device its acknowledgement only when told the item is
committed. One background task collects the submissions of all connections into batches (up
to `max_batch` items, or `max_delay_ms` after the first one arrived: items that came while the
batch before was being written go at once) and writes each with `write_batch`, so the cost of a
commit (an fsync) is shared by the batch.

When the database is away (refused, restarted, locked), nobody's submit fails: the batch is kept
and retried with capped exponential backoff, and completes when the database is back. Acks are
only withheld meanwhile, and the devices keep their data. `max_pending` bounds what waits in
memory: beyond it, submit() waits and `saturated` tells callers of submit_nowait() to pause
reading from devices (backpressure).

A poison item (a data error that no retry will fix) is isolated by splitting the batch until it
stands alone; only its own submit() fails (with `ItemRejected`), and everything else commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.store.database import Database, is_transient_error
from gateway.store.ingest import BatchResult, IngestItem, write_batch

log = logging.getLogger(__name__)


class WriterClosed(RuntimeError):
    """The writer is closed (or closing) and takes no more items, or gave up on this one."""


class ItemRejected(Exception):
    """The database refused this item for good (a data error); it will never be stored."""


@dataclass(slots=True)
class WriterStats:
    """Counters for metrics; read them at will (they are only ever increased or replaced)."""

    submitted: int = 0
    committed: int = 0
    rejected: int = 0
    batches: int = 0
    #: Batch writes that failed with a transient error and were retried.
    failures: int = 0
    last_batch_size: int = 0
    last_commit_seconds: float = 0.0
    largest_batch: int = 0


#: Told once whether an item was committed: None when it was, else the error.
Done = Callable[[BaseException | None], None]


class ItemStore(Protocol):
    """What the transports need of the writer (GroupCommitWriter is the one implementation)."""

    def submit_nowait(self, item: IngestItem, done: Done) -> None: ...

    @property
    def saturated(self) -> bool: ...

    def call_when_room(self, callback: Callable[[], None]) -> None: ...


@dataclass(slots=True)
class _Job:
    item: IngestItem
    done: Done
    finished: bool = False


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    # A cancelled submitter (connection closed) left a cancelled future: nothing to tell.
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


#: Called after each commit with (items in the batch, seconds spent writing and committing).
OnCommit = Callable[[int, float], None]
#: Called after each failed write that will be retried, with the error.
OnFailure = Callable[[BaseException], None]


class GroupCommitWriter:
    """Batches submissions from all connections into transactions; see the module docstring.

    Use as `async with GroupCommitWriter(db) as writer:` or call `start()` / `close()`.
    """

    def __init__(
        self,
        db: Database,
        *,
        frames_per_device: int = 20,
        max_batch: int = 1000,
        max_delay_ms: float = 5.0,
        max_pending: int = 50_000,
        concurrency: int = 1,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        on_commit: OnCommit | None = None,
        on_failure: OnFailure | None = None,
    ) -> None:
        if max_batch < 1 or max_pending < 1 or concurrency < 1:
            raise ValueError("max_batch, max_pending and concurrency must be >= 1")
        if db.dialect == "sqlite":
            concurrency = 1  # SQLite has one writer: a second transaction would only wait
        self.db = db
        self.frames_per_device = frames_per_device
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000
        self.max_pending = max_pending
        #: Batches written at the same time (each on its own connection).
        self.concurrency = concurrency
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.on_commit = on_commit
        self.on_failure = on_failure
        self.stats = WriterStats()
        #: False while the last write attempt failed (the database is away or locked).
        self.healthy = True
        self._queue: deque[_Job] = deque()
        #: When the oldest item of the queue arrived (`time.monotonic()`; valid while it is not
        #: empty).
        self._oldest_at = 0.0
        #: Batches being written, kept (also when cancelled) so that close() fails what is left.
        self._inflight: list[list[_Job]] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._batches: set[asyncio.Task[None]] = set()
        self._pending = 0
        # Backpressure: called back (from the loop) once fewer than max_pending items pend.
        self._room_waiters: list[Callable[[], None]] = []
        self._wakeup = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Items submitted and not yet committed (or rejected)."""
        return self._pending

    def start(self) -> None:
        """Start the background task (needs a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="group-commit-writer")

    async def __aenter__(self) -> GroupCommitWriter:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(drain=True)

    async def submit(self, item: IngestItem) -> None:
        """Return once `item` is committed; only then may the device be acknowledged.

        Waits while `max_pending` items are pending. Raises ItemRejected if the database
        refuses this item for good, WriterClosed if the writer is closed.
        """
        while True:
            if self._closing:
                raise WriterClosed("the store writer is closed")
            if self._pending < self.max_pending:
                break
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.call_when_room(functools.partial(_settle, room, None))
            await room
        # If the submitter is cancelled (its connection closed), the item is still written:
        # the future is just cancelled, and the writer skips setting it.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(item, functools.partial(_settle, future))
        await future

    def submit_nowait(self, item: IngestItem, done: Done) -> None:
        """Queue `item` and call `done(None)` once it is committed (`done(error)` if it never
        will be). The hot path of the transports: no future, no task per frame.

        Never waits: a caller that can pause its input checks `saturated` after submitting and
        resumes on `call_when_room`, which keeps what is pending near `max_pending`.
        """
        if self._closing:
            done(WriterClosed("the store writer is closed"))
            return
        self._enqueue(item, done)

    @property
    def saturated(self) -> bool:
        """True while `max_pending` items (or more) are pending: callers should pause input."""
        return self._pending >= self.max_pending

    def call_when_room(self, callback: Callable[[], None]) -> None:
        """Call `callback` (soon, from the loop) once fewer than `max_pending` items pend."""
        if self._pending < self.max_pending:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._room_waiters.append(callback)

    def _enqueue(self, item: IngestItem, done: Done) -> None:
        self._pending += 1
        self._idle.clear()
        self.stats.submitted += 1
        queue = self._queue
        if not queue:
            self._oldest_at = time.monotonic()
        queue.append(_Job(item, done))
        self._wakeup.set()
        if len(self._queue) >= self.max_batch:
            self._full.set()

    async def close(self, drain: bool = True, timeout: float | None = None) -> None:
        """Stop taking items; with `drain`, first store everything already submitted.

        While draining, an unavailable database is still waited for (up to `timeout` seconds,
        forever if None). Whatever is left after that fails with WriterClosed.
        """
        self._closing = True
        if drain and self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Batches being written are cancelled; their items fail below unless already settled.
        batches = list(self._inflight)
        for batch_task in list(self._batches):
            batch_task.cancel()
        if self._batches:
            await asyncio.wait(list(self._batches))
        leftover = [job for batch in batches for job in batch] + list(self._queue)
        self._inflight = []
        self._queue.clear()
        for job in leftover:
            self._finish(job, WriterClosed("the store writer closed before this was stored"))

    # --- the background task ---

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            # With `concurrency` > 1, a batch is started while others are still committing
            # (a slow commit then delays only its own items).
            await self._slots.acquire()
            # Let other connections join this batch for up to `max_delay` after its first
            # item arrived, unless it is already full. Items that came while the batch before
            # was being written have waited already: they go at once.
            delay = self._oldest_at + self.max_delay_s - time.monotonic()
            if len(self._queue) < self.max_batch and delay > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), delay)
            batch = self._take(self.max_batch)
            if not batch:  # taken by a retrying batch meanwhile
                self._slots.release()
                continue
            self._inflight.append(batch)
            task = asyncio.get_running_loop().create_task(self._write_batch(batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _write_batch(self, batch: list[_Job]) -> None:
        try:
            await self._write(batch)
        except Exception as exc:  # a bug of ours must not stop every ack of the gateway
            log.exception("store writer: unexpected error, failing the batch")
            for job in batch:
                self._finish(job, exc)
        finally:
            self._inflight = [b for b in self._inflight if b is not batch]
            self._slots.release()

    def _take(self, count: int) -> list[_Job]:
        queue = self._queue
        if count <= 0:
            return []
        if len(queue) <= count:
            taken = list(queue)
            queue.clear()
            return taken
        taken = [queue.popleft() for _ in range(count)]
        # What is left of the queue has waited at least until now.
        self._oldest_at = time.monotonic()
        return taken

    async def _write(self, batch: list[_Job]) -> None:
        """Write `batch` until it is committed, retrying transient errors and isolating poison."""
        delay = self.retry_initial_s
        while True:
            started = time.perf_counter()
            try:
                result = await write_batch(self.db, [job.item for job in batch],
                                           self.frames_per_device)
            except Exception as exc:
                if not is_transient_error(exc):
                    await self._isolate(batch, exc)
                    return
                self._failed(exc, len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                # Items that arrived during the outage join the retry (up to a full batch).
                batch.extend(self._take(self.max_batch - len(batch)))
                continue
            self._committed(batch, result, time.perf_counter() - started)
            return

    async def _isolate(self, jobs: list[_Job], error: Exception) -> None:
        """Store `jobs` minus the poison: split in halves until the failing items stand alone.

        A single bad item costs about 2*log2(n) extra transactions instead of n.
        """
        if len(jobs) == 1:
            job = jobs[0]
            log.error("store writer: item of device %s rejected by the database: %s",
                      job.item.device_id, error)
            self.stats.rejected += 1
            self._finish(job, ItemRejected(f"device {job.item.device_id}: {error}"))
            return
        middle = len(jobs) // 2
        for half in (jobs[:middle], jobs[middle:]):
            delay = self.retry_initial_s
            while True:
                started = time.perf_counter()
                try:
                    result = await write_batch(self.db, [job.item for job in half],
                                               self.frames_per_device)
                except Exception as exc:
                    if is_transient_error(exc):
                        self._failed(exc, len(half), delay)
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self.retry_max_s)
                        continue
                    await self._isolate(half, exc)
                    break
                self._committed(half, result, time.perf_counter() - started)
                break

    def _failed(self, exc: BaseException, size: int, delay: float) -> None:
        if self.healthy:
            log.warning("store writer: database unavailable (%s); %d items wait, retrying",
                        exc, size)
        else:
            log.debug("store writer: still failing (%s), retry in %.2fs", exc, delay)
        self.healthy = False
        self.stats.failures += 1
        if self.on_failure is not None:
            self.on_failure(exc)

    def _committed(self, jobs: list[_Job], result: BatchResult, seconds: float) -> None:
        if not self.healthy:
            log.warning("store writer: database available again")
        self.healthy = True
        stats = self.stats
        stats.batches += 1
        stats.committed += len(jobs)
        stats.last_batch_size = len(jobs)
        stats.largest_batch = max(stats.largest_batch, len(jobs))
        stats.last_commit_seconds = seconds
        for job in jobs:
            self._finish(job, None)
        if self.on_commit is not None:
            self.on_commit(len(jobs), seconds)

    def _finish(self, job: _Job, error: BaseException | None) -> None:
        if job.finished:
            return
        job.finished = True
        try:
            job.done(error)
        except Exception:  # a transport's bug must not stop the other items' acks
            log.exception("store writer: completion callback failed")
        self._pending -= 1
        if self._pending < self.max_pending and self._room_waiters:
            waiters, self._room_waiters = self._room_waiters, []
            loop = asyncio.get_running_loop()
            for callback in waiters:
                loop.call_soon(callback)
        if self._pending == 0:
            self._idle.set()
