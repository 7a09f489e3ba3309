"""A real gateway (TCP, web, database on both dialects) set up for activation tests.

* `act`: a started gateway whose codes go to an outbox file, with an httpx client (`act.http`,
  no credentials) and an admin client (`act.admin`).
* `outbox_codes(path)`: the messages written so far.
* `seen(db, imei)`: make the gateway see a device (its first frame stored), unclaimed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.server import Gateway
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from protocols.events import Login, Position
from protocols.imei import complete_imei
from tests.gateway.e2e.conftest import (  # noqa: F401 (fixtures)
    ADMIN_TOKEN,
    DeviceLink,
    StartGateway,
    link_factory,
    start_gateway,
)


def imei(n: int) -> str:
    """A valid 15-digit IMEI (Luhn) numbered `n`."""
    return complete_imei(f"35958601{n:06d}")


@dataclass
class Act:
    gateway: Gateway
    http: httpx.AsyncClient
    admin: httpx.AsyncClient
    outbox: Path

    def messages(self) -> list[dict[str, Any]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text().splitlines() if line]

    async def code_for(self, to: str, purpose: str = "activation", count: int = 1) -> str:
        """The latest code sent to `to` once `count` such messages are in the outbox."""
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            found = [m for m in self.messages() if m["to"] == to and m["purpose"] == purpose]
            if len(found) >= count:
                return str(found[-1]["code"])
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no {purpose} code for {to}: {self.messages()}")
            await asyncio.sleep(0.02)

    async def drain(self) -> None:
        assert self.gateway.activation is not None
        await self.gateway.activation.drain()

    @property
    def comparisons(self) -> int:
        assert self.gateway.activation is not None
        return self.gateway.activation.comparisons

    def client(self) -> httpx.AsyncClient:
        """Another browser: its own cookies."""
        return httpx.AsyncClient(base_url=str(self.http.base_url), timeout=30)


#: Activation settings of the tests: generous start limits (the tests start many flows).
TEST_ACTIVATION: dict[str, Any] = {
    "server_key": "activation-test-key-0123456789abcdef",
    "starts_per_minute_per_client": 1000,
}

StartAct = Callable[..., Awaitable[Act]]


@pytest.fixture
async def start_act(
    start_gateway: StartGateway, tmp_path: Path  # noqa: F811 (fixture)
) -> AsyncIterator[StartAct]:
    clients: list[httpx.AsyncClient] = []

    async def start(**sections: dict[str, Any]) -> Act:
        outbox = tmp_path / f"outbox-{len(clients)}.jsonl"
        activation = {**TEST_ACTIVATION, **sections.pop("activation", {})}
        notify = {"outbox_path": str(outbox), "retry_delay_s": 0.0,
                  **sections.pop("notify", {})}
        gateway = await start_gateway(activation=activation, notify=notify, **sections)
        base = f"http://127.0.0.1:{gateway.http_port}"
        http = httpx.AsyncClient(base_url=base, timeout=30)
        admin = httpx.AsyncClient(base_url=base, timeout=30,
                                  headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        clients.extend([http, admin])
        return Act(gateway, http, admin, outbox)

    yield start
    for client in clients:
        await client.aclose()


@pytest.fixture
async def act(start_act: StartAct) -> Act:
    return await start_act()


async def seen(db: Database, device_id: str, protocol: str = "gps103") -> None:
    """Store a first frame of `device_id`, as if it had connected."""
    now = datetime.now(UTC)
    await write_batch(db, [IngestItem(device_id, protocol, "127.0.0.1", now, b"login",
                                      (Login(device_id),))], 10)


async def send_position(db: Database, device_id: str, when: datetime, lat: float = 52.5,
                        protocol: str = "gps103") -> None:
    """Store one fix of `device_id` (kept only while the device has an owner)."""
    position = Position(device_id, when, True, lat, 13.4)
    await write_batch(db, [IngestItem(device_id, protocol, "127.0.0.1", datetime.now(UTC),
                                      b"fix", (position,))], 10)


async def start_claim(http: httpx.AsyncClient, device: str, contact: str) -> dict[str, Any]:
    response = await http.post("/api/v1/activations", json={"imei": device, "contact": contact})
    assert response.status_code == 202, response.text
    return dict(response.json())


async def status_of(http: httpx.AsyncClient, started: dict[str, Any]) -> dict[str, Any]:
    response = await http.get(f"/api/v1/activations/{started['activation_id']}",
                              headers={"Authorization": f"Bearer {started['token']}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def verify(http: httpx.AsyncClient, started: dict[str, Any], code: str) -> httpx.Response:
    return await http.post(f"/api/v1/activations/{started['activation_id']}/verify",
                           json={"token": started["token"], "code": code})


def wrong(code: str) -> str:
    """A well-formed code that is not `code`."""
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


async def establish(act: Act, device: str) -> DeviceLink:
    """The tracker's own connection: open and logged in (its login stored) before a claim, as
    the device-signal proof requires (rule 23). Close it when done."""
    from protocols import get_codec

    assert act.gateway.tcp is not None
    link = await DeviceLink.open(act.gateway.tcp.ports["gps103"])
    await link.send(get_codec("gps103").device(device).login())
    await link.expect(b"LOAD")
    await asyncio.sleep(0.05)  # the login's commit records the connection
    return link


async def press_sos(link: DeviceLink, device: str) -> None:
    """The tracker's SOS button, on its own connection (answered once stored)."""
    from protocols import Fix, get_codec

    fix = Fix(datetime.now(UTC).replace(microsecond=0), 52.5, 13.4)
    await link.send(get_codec("gps103").device(device).sos(fix))
    await link.expect(f"**,imei:{device},E;".encode())
