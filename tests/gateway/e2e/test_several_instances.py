"""Two gateway instances on one PostgreSQL database behind a real HAProxy (the shipped
config/haproxy.cfg), with PROXY protocol v2: devices connect through the balancer, positions
from both instances are stored once, the device's own address is what the gateway sees, a code
started on one instance verifies on the other (they share the server key through the database),
and SIGKILL of one instance loses no acknowledged position (its devices reconnect through
HAProxy to the other and send again what was not acknowledged)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gateway.store import queries
from gateway.store.database import Database
from protocols import Fix, get_codec
from protocols.imei import complete_imei
from tests.gateway.e2e.conftest import ADMIN_TOKEN, free_port
from tests.gateway.e2e.process import GatewayProcess
from tests.gateway.mqtt.test_failover import bound_devices
from tests.gateway.store.support import scalar

pytestmark = [pytest.mark.cluster,
              pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)]

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
#: The devices' own address: loopback, but not the balancer's (127.0.0.1).
DEVICE_ADDR = "127.0.0.7"


def haproxy_config(front: int, backends: list[tuple[int, int]]) -> str:
    """config/haproxy.cfg with its ports replaced: the balancer's, and each instance's device
    and HTTP ports."""
    text = (REPO / "config" / "haproxy.cfg").read_text()
    text = text.replace("bind 127.0.0.1:5004", f"bind 127.0.0.1:{front}")
    servers = iter(backends)

    def server(match: re.Match[str]) -> str:
        port, http = next(servers)
        return f"server {match.group(1)} 127.0.0.1:{port} check port {http}"

    return re.sub(r"server (\S+) 127\.0\.0\.1:\d+ check port \d+", server, text)


@pytest.fixture
async def cluster(store_url: str, tmp_path: Path) -> AsyncIterator[dict]:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        pytest.fail("haproxy is not installed: apt install haproxy (.ci/run does it)")
    instances = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        instances.append(GatewayProcess(
            store_url, workdir, INSTANCE__NAME=f"cluster-{name}",
            TCP__PROXY_PROTOCOL="v2", TCP__TRUSTED_PROXIES='["127.0.0.1"]',
            PROTOCOLS__GL300__SACK="true", DATABASE__BATCH_DELAY_MS="2",
            ADMIN__TOKEN=ADMIN_TOKEN))
    for instance in instances:
        await instance.start()
    front = free_port()
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(haproxy_config(front, [(i.ports["gl300"], i.http_port) for i in instances]))
    log = (tmp_path / "haproxy.log").open("wb")
    proxy = subprocess.Popen([binary, "-db", "-f", str(conf)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _r, writer = await asyncio.open_connection("127.0.0.1", front)
                writer.close()
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("HAProxy did not start:\n" + (tmp_path / "haproxy.log").read_text())
        yield {"front": front, "instances": instances}
    finally:
        proxy.terminate()
        proxy.wait(10)
        for instance in instances:
            instance.kill()


class Device:
    """A GL300 with SACK: sends positions, keeps each until its +SACK:<count>$ arrives, and
    on a lost connection reconnects (through the balancer) and sends the rest again."""

    def __init__(self, imei: str, front: int) -> None:
        self.encoder = get_codec("gl300").device(imei)
        self.front = front
        self.unacked: dict[bytes, bytes] = {}  # count field -> frame
        self.acked: list[bytes] = []
        self.reconnects = 0
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.front, local_addr=(DEVICE_ADDR, 0))
        for frame in self.unacked.values():
            self.writer.write(frame)

    async def run(self, count: int, interval: float) -> None:
        await self.connect()
        reader = asyncio.create_task(self._read())
        try:
            for i in range(count):
                frame = self.encoder.position(Fix(T0 + timedelta(seconds=i), 45.0 + i * 1e-5, 9.0))
                self.unacked[frame.rsplit(b",", 1)[1][:-1]] = frame
                with contextlib.suppress(ConnectionError, AttributeError):
                    assert self.writer is not None
                    self.writer.write(frame)
                await asyncio.sleep(interval)
            for _ in range(300):
                if not self.unacked:
                    break
                await asyncio.sleep(0.1)
        finally:
            reader.cancel()
            if self.writer is not None:
                self.writer.close()

    async def _read(self) -> None:
        while True:
            try:
                assert self.reader is not None
                reply = await self.reader.readuntil(b"$")
            except (asyncio.IncompleteReadError, ConnectionError):
                self.reconnects += 1
                await asyncio.sleep(0.2)
                with contextlib.suppress(OSError):
                    await self.connect()
                continue
            count = reply[len(b"+SACK:"):-1]
            if count in self.unacked:
                self.acked.append(self.unacked.pop(count))


async def frames_shown(http_port: int, imei: str) -> list[dict]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        answer = await http.get(f"/api/v1/admin/devices/{imei}/frames")
        return list(answer.json().get("frames", [])) if answer.status_code == 200 else []


async def test_two_instances_behind_haproxy_lose_nothing_when_one_is_killed(
    cluster: dict, store_url: str
) -> None:
    front, (first, second) = cluster["front"], cluster["instances"]
    imeis = await bound_devices(store_url, 20, 3)
    devices = [Device(imei, front) for imei in imeis]
    per_device = 40
    runs = [asyncio.create_task(d.run(per_device, 0.1)) for d in devices]
    await asyncio.sleep(1.5)
    # Both instances serve devices (HAProxy spreads them), then one is killed mid-stream.
    async with httpx.AsyncClient() as http:
        served = [(await http.get(f"http://127.0.0.1:{i.http_port}/healthz")).json()
                  ["connections"] for i in (first, second)]
    assert all(count > 0 for count in served), served
    first.kill()
    await asyncio.gather(*runs)
    assert all(not d.unacked for d in devices), "positions never acknowledged"
    assert sum(d.reconnects for d in devices) > 0  # the killed instance's devices moved
    db = Database.create(store_url)
    try:
        # Every acknowledged position is stored, once (resends after the kill are duplicates).
        assert int(await scalar(db, "SELECT count(*) FROM positions")) == per_device * len(imeis)
        for imei in imeis[:3]:
            assert await queries.current_binding(db, imei) is not None
    finally:
        await db.dispose()
    # The device's own address, from the PROXY header, not the balancer's.
    shown = await frames_shown(second.http_port, imeis[0])
    assert shown and {f["remote_addr"] for f in shown} == {DEVICE_ADDR}


async def test_a_code_started_on_one_instance_verifies_on_the_other(
    cluster: dict, store_url: str
) -> None:
    """Neither instance is given activation.server_key: they share the one in the database."""
    first, second = cluster["instances"]
    imei = complete_imei("86123400000001")
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{first.http_port}") as a, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{second.http_port}") as b:
        provisioned = await a.post("/api/v1/admin/devices", headers=headers,
                                   json={"imei": imei, "contact": "buyer@example.com"})
        assert provisioned.status_code == 201, provisioned.text
        started = (await a.post("/api/v1/activations",
                                json={"imei": imei, "contact": "buyer@example.com"})).json()
        outbox = first.workdir / "outbox.jsonl"
        for _ in range(200):
            lines = outbox.read_text().splitlines() if outbox.exists() else []
            codes = [json.loads(line)["code"] for line in lines
                     if json.loads(line).get("purpose") == "activation"]
            if codes:
                break
            await asyncio.sleep(0.05)
        assert codes, "no code sent"
        verified = await b.post(f"/api/v1/activations/{started['activation_id']}/verify",
                                json={"token": started["token"], "code": codes[-1]})
        assert verified.status_code == 200, verified.text
