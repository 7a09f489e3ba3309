"""The shared timer of a fleet: every target fires at its deadline, whatever the others do."""

from __future__ import annotations

import asyncio

from simulators import Scheduler


class Periodic:
    """Re-schedules itself every `period` seconds and records how late each firing was."""

    def __init__(self, scheduler: Scheduler, first: float, period: float) -> None:
        self.scheduler = scheduler
        self.period = period
        self.when = first
        self.lateness: list[float] = []
        scheduler.schedule(first, self)

    def fire(self, now: float, when: float) -> None:
        self.lateness.append(self.scheduler.time() - when)
        self.when = when + self.period
        self.scheduler.schedule(self.when, self)


async def test_a_waiting_entry_is_not_delayed_by_a_target_rescheduling_itself() -> None:
    # A fires first and re-arms the timer for its next deadline (a second later); B was
    # already waiting for a deadline in between and must still fire on time.
    scheduler = Scheduler(resolution=0.002)
    start = scheduler.time() + 0.05
    a = Periodic(scheduler, start, 1.0)
    b = Periodic(scheduler, start + 0.3, 1.0)
    await asyncio.sleep(0.5)
    scheduler.close()
    assert len(a.lateness) == 1 and len(b.lateness) == 1
    assert max(a.lateness + b.lateness) < 0.1


async def test_many_targets_spread_over_a_period_fire_near_their_deadlines() -> None:
    scheduler = Scheduler(resolution=0.002)
    start = scheduler.time() + 0.05
    targets = [Periodic(scheduler, start + i * 0.01, 0.2) for i in range(20)]
    await asyncio.sleep(0.05 + 0.2 * 3)
    scheduler.close()
    lateness = [late for target in targets for late in target.lateness]
    assert len(lateness) >= 20 * 2
    assert max(lateness) < 0.1
