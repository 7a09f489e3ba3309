"""The PostgreSQL link of live updates between instances (LISTEN/NOTIFY), on the real server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.store.live_bus import WANT_EVERY_S, PgLiveBus

pytestmark = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)

DEVICE = "359586015829802"


def bus(url: str, watched: list[str] | None = None,
        got: list[tuple[str, dict[str, Any]]] | None = None) -> PgLiveBus:
    return PgLiveBus(url, deliver=lambda d, b: (got if got is not None else []).append((d, b)),
                     watched=lambda: list(watched or []), resync=lambda: None)


async def up(*buses: PgLiveBus) -> None:
    for one in buses:
        await one.start()
    deadline = time.monotonic() + 10
    while not all(one.up for one in buses):
        assert time.monotonic() < deadline, "not connected"
        await asyncio.sleep(0.01)


async def test_an_instance_that_starts_later_learns_at_once_what_the_others_watch(
    store_url: str,
) -> None:
    watcher = bus(store_url, watched=[DEVICE])
    await up(watcher)
    newcomer = bus(store_url)
    try:
        await up(newcomer)
        started = time.monotonic()
        while not newcomer.wants(DEVICE):
            # Its hello is answered now, not at the next periodic announcement.
            assert time.monotonic() - started < WANT_EVERY_S / 4, "hello not answered"
            await asyncio.sleep(0.01)
        assert not newcomer.wants("359586015829810")
    finally:
        await newcomer.stop()
        await watcher.stop()


async def test_many_events_arrive_whole_in_payloads_under_the_limit(store_url: str) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    watcher = bus(store_url, watched=[DEVICE], got=got)
    sender = bus(store_url)
    try:
        await up(watcher, sender)
        while not sender.wants(DEVICE):
            await asyncio.sleep(0.01)
        sent = 500
        for n in range(sent):
            sender.publish(DEVICE, json.dumps({"type": "position", "n": n, "pad": "x" * 200}))
        deadline = time.monotonic() + 10
        while len(got) < sent:
            assert time.monotonic() < deadline, f"{len(got)} of {sent} arrived"
            await asyncio.sleep(0.01)
        assert [body["n"] for _device, body in got] == list(range(sent))  # in order
    finally:
        await sender.stop()
        await watcher.stop()


async def test_stopping_while_events_flow_never_hangs(store_url: str) -> None:
    for _ in range(5):
        sender = bus(store_url)
        await up(sender)
        sender._remote[DEVICE] = time.monotonic() + 60  # as if another instance watched
        for n in range(50):
            sender.publish(DEVICE, json.dumps({"n": n}))
            if n % 10 == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(sender.stop(), 5)
