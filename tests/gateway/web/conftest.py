"""The web app's map, live updates and docs against a real gateway (both database dialects).

* `act`, `start_act`: a started gateway with an outbox (tests/gateway/activation/conftest.py).
* `online(act, link_factory, imei)`: a gps103 device connected over TCP and logged in.
* `claim(client, act, imei, contact)`: `contact` owns the device; `client` is signed in.
* `live(client, imei)`: the device's live stream, read event by event (`Sse`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx

from protocols import get_codec
from protocols.codec import DeviceEncoder
from tests.gateway.activation.conftest import (  # noqa: F401 (fixtures)
    Act,
    act,
    imei,
    start_act,
    start_claim,
    verify,
)
from tests.gateway.e2e.conftest import (  # noqa: F401 (fixtures)
    DeviceLink,
    link_factory,
    start_gateway,
)

ALICE = "alice@example.com"
BOB = "bob@example.com"

LinkFactory = Callable[[int], Awaitable[DeviceLink]]


async def online(gateway: Act, links: LinkFactory, device: str,
                 protocol: str = "gps103") -> tuple[DeviceLink, DeviceEncoder]:
    """A device of `protocol` connected and logged in (the gateway has seen it)."""
    assert gateway.gateway.tcp is not None
    encoder = get_codec(protocol).device(device)
    link = await links(gateway.gateway.tcp.ports[protocol])
    await link.send(encoder.login())
    await link.expect(b"LOAD")
    for _ in range(500):  # the login's frame is committed after its reply
        devices = (await gateway.admin.get("/api/v1/admin/devices")).json()["devices"]
        if device in [d["imei"] for d in devices]:
            break
        await asyncio.sleep(0.02)
    return link, encoder


async def claim(client: httpx.AsyncClient, gateway: Act, device: str, contact: str) -> None:
    """`contact` claims `device` through the API; `client` holds their session afterwards."""
    provisioned = await gateway.admin.post("/api/v1/admin/devices",
                                       json={"imei": device, "contact": contact})
    assert provisioned.status_code in (200, 201), provisioned.text
    count = len([m for m in gateway.messages() if m["to"] == contact and
                 m["purpose"] == "activation"]) + 1
    started = await start_claim(client, device, contact)
    code = await gateway.code_for(contact, count=count)
    answer = await verify(client, started, code)
    assert answer.status_code == 200, answer.text


class Sse:
    """A Server-Sent Events stream read as a browser's EventSource would parse it."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.retry_ms: int | None = None

    async def next(self, timeout: float = 10.0) -> tuple[str, Any]:
        """The next event as (name, JSON data); (":", text) for a comment; ("<end>", None)
        when the server ended the stream."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        kind, data = "message", []
        while True:
            try:
                line = await asyncio.wait_for(self._lines.__anext__(),
                                              max(0.0, deadline - loop.time()))
            except StopAsyncIteration:
                return "<end>", None
            except TimeoutError:
                raise AssertionError(f"no event within {timeout} s") from None
            if line.startswith(":"):
                return ":", line[1:].strip()
            if line == "":
                if data:
                    return kind, json.loads("\n".join(data))
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)
            elif field == "retry":
                self.retry_ms = int(value)

    async def until(self, wanted: str, timeout: float = 10.0) -> tuple[list[tuple[str, Any]],
                                                                        Any]:
        """Events up to the first `wanted` one: (those before it, its data)."""
        before: list[tuple[str, Any]] = []
        while True:
            kind, data = await self.next(timeout)
            if kind == wanted:
                return before, data
            if kind == "<end>":
                raise AssertionError(f"stream ended before {wanted!r}: {before}")
            before.append((kind, data))


@contextlib.asynccontextmanager
async def live(client: httpx.AsyncClient, device: str) -> AsyncIterator[Sse]:
    async with client.stream("GET", f"/api/v1/devices/{device}/live",
                             headers={"Accept": "text/event-stream"},
                             timeout=httpx.Timeout(30, read=None)) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Sse(response)
