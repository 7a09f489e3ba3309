"""One timer for many devices: a heap of deadlines driven by a single loop callback.

Ten thousand devices at one frame a second need ten thousand wake-ups a second. An asyncio task
(or a loop timer) per device costs a coroutine switch or a TimerHandle each; here every due
device is fired from one callback, in deadline order, with deadlines within `resolution` of each
other fired together.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from typing import Protocol


class Timed(Protocol):
    def fire(self, now: float, when: float) -> None:
        """Called at (or just after) `when`; stale entries are recognised by their `when`."""


class Scheduler:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None,
                 resolution: float = 0.002) -> None:
        self.loop = loop or asyncio.get_running_loop()
        self.resolution = resolution
        self._heap: list[tuple[float, int, Timed]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self.fired = 0

    def time(self) -> float:
        return self.loop.time()

    def schedule(self, when: float, target: Timed) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), target))
        if when < self._armed_at - self.resolution:
            self._arm(when)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self.loop.call_at(when, self._run)

    def _run(self) -> None:
        self._handle = None
        self._armed_at = math.inf
        heap = self._heap
        now = self.loop.time()
        limit = now + self.resolution
        pop = heapq.heappop
        # Entries pushed while firing wait for the next run (a target that keeps rescheduling
        # itself into the past cannot starve the loop).
        budget = len(heap)
        while budget and heap and heap[0][0] <= limit:
            budget -= 1
            when, _seq, target = pop(heap)
            self.fired += 1
            # Within `resolution` of its deadline a target counts as due.
            target.fire(when if when > now else now, when)
        if heap:
            # Targets fired above may have armed the timer for their own next deadline, which
            # can be later than an entry that was already waiting: the earliest entry decides.
            first = max(heap[0][0], now + self.resolution / 2) if budget == 0 else heap[0][0]
            if self._handle is None or first < self._armed_at:
                self._arm(first)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._heap.clear()
        self._armed_at = math.inf
