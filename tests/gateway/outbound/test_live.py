"""The live hub's streams end when their browser goes away, whatever arrives meanwhile."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.config import WebSettings
from gateway.metrics import Metrics
from gateway.outbound.live import LiveHub, Subscription


async def stream_loop(sub: Subscription) -> None:
    """What a stream does with its subscription: wait for events, send, again."""
    while True:
        await sub.next(10.0)


async def test_a_stream_stops_when_cancelled_as_an_event_arrives() -> None:
    """The browser leaves (the server cancels its stream) in the very loop iteration an event
    is queued: the stream still stops (Python 3.11's asyncio.wait_for would swallow that
    cancellation, and the stream would run on, sending heartbeats to nobody)."""
    hub = LiveHub(WebSettings(), Metrics())
    for steps in range(6):  # every interleaving of the event and the cancellation
        sub = await hub.subscribe("359586015829802", owner_id=1)
        task = asyncio.create_task(stream_loop(sub))
        await asyncio.sleep(0)
        sub.push("position", "{}")
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        for _ in range(10):
            await asyncio.sleep(0)
        assert task.done(), f"stream still running after its cancellation ({steps} steps)"
        with contextlib.suppress(asyncio.CancelledError):
            await task
        hub.unsubscribe(sub)
    assert hub.streams == 0


async def test_closing_the_hub_wakes_every_stream_and_refuses_new_ones() -> None:
    hub = LiveHub(WebSettings(), Metrics())
    subs = [await hub.subscribe("359586015829802", owner_id=n) for n in range(3)]
    waiting = [asyncio.create_task(sub.next(30.0)) for sub in subs]
    await asyncio.sleep(0)
    await hub.close()
    assert await asyncio.wait_for(asyncio.gather(*waiting), 1.0) == [[], [], []]
    assert all(sub.closed for sub in subs) and hub.streams == 0
    try:
        await hub.subscribe("359586015829802", owner_id=9)
    except Exception as exc:
        assert getattr(exc, "status", None) == 503
    else:
        raise AssertionError("a closed hub took a new stream")
