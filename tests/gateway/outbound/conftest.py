"""Commands and alarms against the real gateway (TCP, MQTT, web, both databases).

* `act`, `start_act`: the activation tests' gateway (codes to an outbox file, httpx clients).
* `Tracker`: a simulated device of any protocol on a raw TCP connection: its frames come from
  the protocol's own device encoder, and it reads what the gateway writes to it.
* `owner_of(act, db, tracker_imei)`: claim a device through the API; `act.http` is then signed
  in as its owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from gateway.store import queries
from gateway.store.database import Database
from protocols import Fix, get_codec
from protocols.codec import Codec
from tests.gateway.activation.conftest import (  # noqa: F401 (fixtures)
    Act,
    StartAct,
    act,
    imei,
    start_act,
    start_claim,
    verify,
)
from tests.gateway.e2e.conftest import (  # noqa: F401 (fixtures)
    DeviceLink,
    eventually,
    link_factory,
    start_gateway,
)

ALICE = "alice@example.com"
BOB = "bob@example.com"
#: The settings of these tests: queued commands looked for often, so that tests stay short.
FAST = {"commands": {"poll_s": 0.2}}


def fix_now(lat: float = 48.8566, lon: float = 2.3522) -> Fix:
    return Fix(datetime.now(UTC).replace(microsecond=0), lat, lon, speed_kmh=10.0)


class Tracker:
    """One simulated device of `protocol` talking to the gateway over TCP."""

    def __init__(self, protocol: str, device_imei: str, link: DeviceLink) -> None:
        self.codec: Codec = get_codec(protocol)
        self.device = self.codec.device(device_imei)
        self.imei = device_imei
        self.link = link
        self._downlink = self.codec.downlink_framer() if self.codec.downlink_framer else None
        self._buffer = b""

    @property
    def device_id(self) -> str:
        return str(getattr(self.device, "device_id", self.device.imei))

    async def send(self, frame: bytes) -> None:
        await self.link.send(frame)

    async def login(self) -> None:
        await self.send(self.device.login())

    async def expect(self, data: bytes, timeout: float = 10.0) -> None:
        """The gateway writes exactly `data` next (replies this protocol sends are skipped
        only when they are not what the test waits for: none for gl300 without SACK)."""
        await self.link.expect(data, timeout)

    async def next_message(self, timeout: float = 10.0) -> bytes:
        """The next message the gateway writes (cut by the protocol's downlink framer)."""
        assert self._downlink is not None
        while True:
            for out in self._downlink.feed(await asyncio.wait_for(
                    self.link.reader.read(65536), timeout)):
                assert isinstance(out, bytes)
                return out


TrackerFactory = Callable[..., Awaitable[Tracker]]


async def connect(gateway_act: Act, links: Any, protocol: str, device_imei: str) -> Tracker:
    assert gateway_act.gateway.tcp is not None
    link = await links(gateway_act.gateway.tcp.ports[protocol])
    return Tracker(protocol, device_imei, link)


async def owner_of(on: Act, db: Database, device_imei: str, contact: str = ALICE,
                   http: httpx.AsyncClient | None = None) -> None:
    """Claim `device_imei` (already seen) for `contact` through the API; the client is then
    signed in as `contact`."""
    http = http or on.http

    async def seen() -> bool:
        return await queries.get_device(db, device_imei) is not None

    await eventually(seen)
    made = await on.admin.post("/api/v1/admin/devices",
                                json={"imei": device_imei, "contact": contact})
    assert made.status_code == 201, made.text
    count = len([m for m in on.messages() if m["to"] == contact
                 and m["purpose"] == "activation"]) + 1
    started = await start_claim(http, device_imei, contact)
    answer = await verify(http, started, await on.code_for(contact, count=count))
    assert answer.status_code == 200, answer.text


async def status_of(http: httpx.AsyncClient, device_imei: str, command_id: int) -> dict[str, Any]:
    listed = await http.get(f"/api/v1/devices/{device_imei}/commands")
    assert listed.status_code == 200, listed.text
    [command] = [c for c in listed.json()["commands"] if c["id"] == command_id]
    return dict(command)


async def wait_status(http: httpx.AsyncClient, device_imei: str, command_id: int,
                      wanted: str, timeout: float = 10.0) -> dict[str, Any]:
    """The command once its status is `wanted` (AssertionError after `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        command = await status_of(http, device_imei, command_id)
        if command["status"] == wanted:
            return command
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"command {command_id} is {command['status']}, not {wanted}")
        await asyncio.sleep(0.05)
