"""Health, metrics and the installer's view of devices, over real HTTP."""

from __future__ import annotations

import asyncio

import httpx

from gateway.server import Gateway
from tests.gateway.e2e.conftest import DeviceLink, StartGateway, eventually

GPS_LOGIN = b"##,imei:359586015829802,A;"
GPS_POSITION = (b"imei:359586015829802,tracker,151030080103,,F,000101.000,A,5443.3834,N,"
                b"02512.9071,E,0.00,0;")


async def test_unclaimed_devices_and_their_frames(gateway: Gateway, http, link_factory) -> None:
    link: DeviceLink = await link_factory(gateway.tcp.ports["gps103"])
    await link.send(GPS_LOGIN + GPS_POSITION)
    await link.expect(b"LOAD")
    await link.send(b"359586015829802;")
    await link.expect(b"ON")

    async def three_frames_stored() -> bool:
        response = await http.get("/api/v1/admin/devices/359586015829802/frames")
        return response.status_code == 200 and len(response.json()["frames"]) == 3

    await eventually(three_frames_stored)
    listed = (await http.get("/api/v1/admin/devices", params={"state": "unclaimed"})).json()
    [device] = listed["devices"]
    assert device["imei"] == "359586015829802"
    assert device["protocol"] == "gps103"
    assert device["state"] == "unclaimed"
    assert device["remote_addr"].startswith("127.0.0.1")
    assert device["first_seen"] <= device["last_seen"]
    fix = device["last_fix"]
    assert abs(fix["lat"] - 54.72306) < 1e-5 and abs(fix["lon"] - 25.21512) < 1e-5
    assert fix["fix_time"].startswith("2015-10-30T00:01:01")
    assert fix["speed_kmh"] == 0.0

    assert (await http.get("/api/v1/admin/devices", params={"state": "claimed"})).json() == {
        "devices": []}

    frames = (await http.get("/api/v1/admin/devices/359586015829802/frames")).json()["frames"]
    assert [f["text"] for f in frames] == [
        "359586015829802;", GPS_POSITION.decode(), GPS_LOGIN.decode()]
    assert frames[0]["hex"] == b"359586015829802;".hex()


async def test_admin_api_needs_the_token(gateway: Gateway) -> None:
    base = f"http://127.0.0.1:{gateway.http_port}"
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/api/v1/admin/devices")).status_code == 401
        wrong = await client.get("/api/v1/admin/devices",
                                 headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "Bearer" in wrong.json()["detail"]


async def test_admin_api_disabled_without_a_token(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(admin={"token": ""})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http_port}") as client:
        response = await client.get("/api/v1/admin/devices",
                                    headers={"Authorization": "Bearer anything"})
        assert response.status_code == 503
        assert "admin.token" in response.json()["detail"]


async def test_unknown_device_frames_is_404(http) -> None:
    response = await http.get("/api/v1/admin/devices/000000000000000/frames")
    assert response.status_code == 404


async def test_bad_state_is_422(http) -> None:
    assert (await http.get("/api/v1/admin/devices", params={"state": "x"})).status_code == 422


async def test_healthz_and_metrics(gateway: Gateway, http, link_factory) -> None:
    health = await http.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["database"] == "up"
    # Live updates: in the process on SQLite, over a LISTEN connection on PostgreSQL.
    expected_live = "in-process" if gateway.settings.database.url.startswith("sqlite") else "up"
    for _ in range(100):  # the LISTEN connection comes up in the background
        if (await http.get("/healthz")).json()["live"] == expected_live:
            break
        await asyncio.sleep(0.05)
    assert (await http.get("/healthz")).json()["live"] == expected_live
    link: DeviceLink = await link_factory(gateway.tcp.ports["gps103"])
    await link.send(GPS_LOGIN + b"garbage-without-terminator\n" + GPS_POSITION)
    await link.expect(b"LOAD")
    await link.send(b"359586015829802;")
    await link.expect(b"ON")
    text = (await http.get("/metrics")).text
    assert 'gateway_connections{protocol="gps103"} 1.0' in text
    assert 'gateway_frames_total{protocol="gps103",result="ok"} 3.0' in text
    assert 'gateway_positions_total{protocol="gps103"} 1.0' in text
    assert "gateway_store_batch_size_count" in text
    assert "gateway_store_commit_seconds_bucket" in text
    assert "gateway_acks_pending 0.0" in text
    assert 'gateway_rejected_frames_total{protocol="gps103"' in text


async def test_openapi_is_served(http) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert "/api/v1/admin/devices" in spec["paths"]
