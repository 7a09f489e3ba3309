"""Limits that hit attackers and not carriers, and the PROXY header of a load balancer, over
real sockets: a trickling peer is closed, a connection that never identifies is closed, a flood
of junk connections from one address does not lock out the real devices behind it, and behind
a balancer the device's own address is the one limited, logged and shown."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
from proxyprotocol.result import ProxyResultIPv4
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from gateway.server import Gateway
from tests.gateway.e2e.conftest import ADMIN_TOKEN, DeviceLink, StartGateway, eventually

GL_HBD = b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$"
GL_SACK = b"+SACK:GTHBD,1A0401,11F0$"


def metric(gateway: Gateway, name: str, **labels: str) -> float:
    value = gateway.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def heartbeat(n: int) -> tuple[bytes, bytes]:
    """A GL300 heartbeat of device n and the gateway's answer to it."""
    imei = f"86{n:013d}"
    return (f"+ACK:GTHBD,1A0401,{imei},,20100214093254,11F0$".encode(),
            b"+SACK:GTHBD,1A0401,11F0$")


async def test_a_peer_trickling_bytes_is_closed(start_gateway: StartGateway, link_factory) -> None:
    """Slowloris: one byte at a time, never completing a frame, keeps resetting the idle timer;
    the frame timeout closes it."""
    gateway = await start_gateway(tcp={"frame_timeout_s": 0.6})
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    closed = asyncio.create_task(link.closed_by_peer(timeout=10))
    for byte in GL_HBD[:-1]:  # never the final `$`
        if closed.done():
            break
        await link.send(bytes([byte]))
        await asyncio.sleep(0.1)
    assert await closed
    assert metric(gateway, "gateway_connections_closed_total", protocol="gl300",
                  reason="frame_timeout") == 1


async def test_a_device_sending_frames_in_pieces_is_not_cut(
    start_gateway: StartGateway, link_factory
) -> None:
    """The timeout counts from a frame's first byte: a device whose frames keep straddling
    reads is served as long as each frame completes in time."""
    gateway = await start_gateway(tcp={"frame_timeout_s": 0.6})
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    pending = b""
    for _ in range(6):
        await link.send(pending + GL_HBD[:30])
        pending = GL_HBD[30:]
        await asyncio.sleep(0.3)  # 1.8 s in all, each frame 0.3 s old when it completes
        if _ > 0:
            await link.expect(GL_SACK)
    await link.send(pending)
    await link.expect(GL_SACK)


async def test_a_connection_that_never_identifies_is_closed(
    start_gateway: StartGateway, link_factory
) -> None:
    gateway = await start_gateway(tcp={"identify_timeout_s": 0.5})
    junk: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    device: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await device.send(GL_HBD)
    await device.expect(GL_SACK)
    for _ in range(5):  # frames that never name a device (the gateway may close it meanwhile)
        try:
            await junk.send(b"+RESP:GTFRI,garbage$")
        except (ConnectionResetError, BrokenPipeError):
            break
        await asyncio.sleep(0.1)
    assert await junk.closed_by_peer(timeout=5)
    assert metric(gateway, "gateway_connections_closed_total", protocol="gl300",
                  reason="identify_timeout") == 1
    await asyncio.sleep(0.6)  # the identified device is past the timeout too, and stays
    await device.send(GL_HBD)
    await device.expect(GL_SACK)


async def test_a_flood_from_a_carrier_address_does_not_lock_out_its_devices(
    start_gateway: StartGateway, link_factory
) -> None:
    """A mobile operator's NAT puts many devices behind one address. 200 junk connections from
    it (over a limit of 20 unidentified) neither refuse nor disturb the 30 identified devices,
    and a device connecting in the middle of the flood is served."""
    gateway = await start_gateway(tcp={"max_connections_per_addr": 20})
    port = gateway.tcp.ports["gl300"]
    devices = []
    for n in range(30):
        link: DeviceLink = await link_factory(port)
        frame, answer = heartbeat(n)
        await link.send(frame)
        await link.expect(answer)
        devices.append((link, frame, answer))
    junk = [await link_factory(port) for _ in range(200)]
    for link in junk[:10]:
        await link.send(b"+RES")  # a start, never finished
    late: DeviceLink = await link_factory(port)
    late_frame, late_answer = heartbeat(99)
    await late.send(late_frame)
    await late.expect(late_answer)
    more = [await link_factory(port) for _ in range(50)]
    for link, frame, answer in [*devices, (late, late_frame, late_answer)]:
        await link.send(frame)
        await link.expect(answer)

    async def evicted() -> bool:
        return metric(gateway, "gateway_connections_evicted_total", protocol="gl300") >= 230

    await eventually(evicted)
    assert gateway.tcp is not None and gateway.tcp.connection_count <= 31 + 20
    for link in (*junk[-5:], *more):
        await link.close()


def _header(version: str, source: str) -> bytes:
    result = ProxyResultIPv4((ipaddress.IPv4Address(source), 40123),
                             (ipaddress.IPv4Address("127.0.0.1"), 5004))
    return (ProxyProtocolV2() if version == "v2" else ProxyProtocolV1()).pack(result)


async def test_behind_a_balancer_the_device_address_is_the_one_seen(
    start_gateway: StartGateway, link_factory
) -> None:
    gateway = await start_gateway(tcp={"proxy_protocol": "v2",
                                       "trusted_proxies": ["127.0.0.0/8"],
                                       "max_connections_per_addr": 1})
    port = gateway.tcp.ports["gl300"]
    link: DeviceLink = await link_factory(port)
    await link.send(_header("v2", "203.0.113.7") + GL_HBD)
    await link.expect(GL_SACK)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:
        async def shown() -> bool:
            answer = await http.get("/api/v1/admin/devices/135790246811220/frames")
            frames = answer.json().get("frames", []) if answer.status_code == 200 else []
            return bool(frames) and frames[0]["remote_addr"] == "203.0.113.7"

        await eventually(shown)
    # Limits count the devices' addresses, not the balancer's: two unidentified connections
    # from two devices behind the same balancer are both kept (the limit is 1 per address).
    first: DeviceLink = await link_factory(port)
    second: DeviceLink = await link_factory(port)
    await first.send(_header("v2", "198.51.100.1") + GL_HBD[:4])
    await second.send(_header("v2", "198.51.100.2") + GL_HBD[:4])
    await first.send(GL_HBD[4:])
    await first.expect(GL_SACK)
    assert metric(gateway, "gateway_connections_evicted_total", protocol="gl300") == 0


async def test_a_connection_without_the_expected_header_is_refused(
    start_gateway: StartGateway, link_factory
) -> None:
    gateway = await start_gateway(tcp={"proxy_protocol": "v1", "trusted_proxies": ["127.0.0.1"]})
    port = gateway.tcp.ports["gl300"]
    link: DeviceLink = await link_factory(port)
    await link.send(GL_HBD)  # straight from a trusted address, but no header
    assert await link.closed_by_peer(timeout=5)
    assert metric(gateway, "gateway_connections_refused_total", protocol="gl300") == 1
    v1: DeviceLink = await link_factory(port)
    await v1.send(_header("v1", "192.0.2.44") + GL_HBD)
    await v1.expect(GL_SACK)


async def test_untrusted_peers_connect_directly(start_gateway: StartGateway, link_factory) -> None:
    """A PROXY header is only taken from the balancers listed: anyone else is a device whose
    first bytes are its own (a forged header from a device is just a bad frame)."""
    gateway = await start_gateway(tcp={"proxy_protocol": "v2", "trusted_proxies": ["10.9.8.0/24"]})
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await link.send(GL_HBD)
    await link.expect(GL_SACK)
