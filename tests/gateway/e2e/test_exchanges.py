"""Each protocol's exchange with the real gateway over real sockets: byte-exact replies, and the
acknowledgement of data only once that data is in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.server import Gateway
from gateway.store import queries
from protocols import Fix, get_codec
from tests.gateway.e2e.conftest import DeviceLink, StartGateway, bind_when_seen, eventually
from tests.gateway.store.support import count_positions, scalar

IMEI = "359586015829802"
T0 = datetime(2026, 11, 25, 23, 59, 50, tzinfo=UTC)


def fix(seconds: int, lat: float = -33.86, lon: float = 151.21) -> Fix:
    return Fix(fix_time=T0 + timedelta(seconds=seconds), lat=lat, lon=lon, speed_kmh=36.0,
               course_deg=180.0, altitude_m=12.0)


async def bind(gateway: Gateway, imei: str) -> None:
    assert gateway.db is not None
    await bind_when_seen(gateway.db, imei)


async def test_gps103_login_heartbeat_position_sos(gateway: Gateway, link_factory) -> None:
    device = get_codec("gps103").device(IMEI)
    link: DeviceLink = await link_factory(gateway.tcp.ports["gps103"])
    await link.send(b"##,imei:359586015829802,A;")
    await link.expect(b"LOAD")
    await link.send(b"359586015829802;")
    await link.expect(b"ON")
    await bind(gateway, IMEI)
    await link.send(device.position(fix(0)))
    # gps103 positions get no reply; the SOS reply proves everything before it was stored too.
    await link.send(device.sos(fix(5)))
    await link.expect(b"**,imei:359586015829802,E;")
    assert await count_positions(gateway.db, IMEI) == 2
    alarms = await queries.alarms_of_device(gateway.db, IMEI)
    assert [a.alarm_type for a in alarms] == ["sos"]


async def test_tk103_registration_heartbeat_and_acked_position(
    gateway: Gateway, link_factory
) -> None:
    device = get_codec("tk103").device(IMEI)
    dev_id = IMEI[-12:]
    link: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
    await link.send(device.heartbeat())
    await link.expect(f"({dev_id}AP01HSO)".encode())
    await bind(gateway, dev_id)
    login = (b"(088046338039BP05000088046338039160727A3354.7768N03540.7258E000.0140309065.10"
             b"00000000L00BEB0D4+017.3)")
    other = await link_factory(gateway.tcp.ports["tk103"])
    await other.send(login)
    await other.expect(b"(088046338039AP05)")
    # The AP05 went out after the position was committed: it is in the device's last fix now.
    device_info = await queries.get_device(gateway.db, "088046338039")
    assert device_info is not None and device_info.last_fix is not None
    assert abs(device_info.last_fix.lat - 33.912946) < 1e-5
    await link.send(device.position(fix(0)) + device.position(fix(10)))
    await link.send(device.login())
    await link.expect(f"({dev_id}AP05)".encode())
    assert await count_positions(gateway.db, dev_id) >= 2


async def test_gl300_heartbeat_gets_sack_and_reports_are_stored(
    gateway: Gateway, link_factory
) -> None:
    device = get_codec("gl300").device(IMEI)
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await link.send(b"+ACK:GTHBD,1A0401,135790246811220,,20100214093254,11F0$")
    await link.expect(b"+SACK:GTHBD,1A0401,11F0$")
    second: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await second.send(device.login())
    heartbeat = device.heartbeat()
    await second.send(heartbeat)
    count = heartbeat.rstrip(b"$").rsplit(b",", 1)[1]
    await second.expect(b"+SACK:GTHBD,1A0401," + count + b"$")
    await bind(gateway, IMEI)
    await second.send(device.report([fix(0), fix(30), fix(60)]))

    async def three_stored() -> bool:
        return await count_positions(gateway.db, IMEI) == 3

    await eventually(three_stored)


async def test_gl300_generic_sack_after_commit(start_gateway: StartGateway, link_factory) -> None:
    gateway = await start_gateway(protocols={"gl300": {"sack": True}})
    device = get_codec("gl300").device(IMEI)
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    first = device.login()
    await link.send(first)
    count = first.rstrip(b"$").rsplit(b",", 1)[1]
    await link.expect(b"+SACK:" + count + b"$")
    await bind(gateway, IMEI)
    for seconds in range(0, 50, 10):
        frame = device.position(fix(seconds))
        await link.send(frame)
        count = frame.rstrip(b"$").rsplit(b",", 1)[1]
        await link.expect(b"+SACK:" + count + b"$")
        # Acknowledged means committed: the position is already in the database.
        assert await count_positions(gateway.db, IMEI) == seconds // 10 + 1


async def test_unbound_device_is_registered_unclaimed_without_history(
    gateway: Gateway, link_factory
) -> None:
    device = get_codec("gl300").device(IMEI)
    link: DeviceLink = await link_factory(gateway.tcp.ports["gl300"])
    await link.send(device.position(fix(0)) + device.heartbeat())
    await link.expect_prefix(b"+SACK:GTHBD,")

    async def registered_with_fix() -> bool:
        info = await queries.get_device(gateway.db, IMEI)
        return info is not None and info.last_fix is not None

    await eventually(registered_with_fix)
    info = await queries.get_device(gateway.db, IMEI)
    assert info is not None
    assert str(info.state) == "unclaimed"
    assert info.protocol == "gl300"
    assert info.remote_addr is not None and info.remote_addr.startswith("127.0.0.1")
    assert info.last_fix is not None and info.last_fix.fix_time == T0
    assert await count_positions(gateway.db, IMEI) == 0


async def test_auto_port_detects_each_protocol(gateway: Gateway, link_factory) -> None:
    port = gateway.tcp.ports["auto"]
    gps = await link_factory(port)
    await gps.send(b"##,imei:359586015829802,A;")
    await gps.expect(b"LOAD")
    tk = await link_factory(port)
    await tk.send(b"(087073005534BP00HSO)")
    await tk.expect(b"(087073005534AP01HSO)")
    gl = await link_factory(port)
    # Split in the middle of the header: detection waits for enough bytes.
    await gl.send(b"+AC")
    await gl.send(b"K:GTHBD,1A0401,135790246811220,,20100214093254,11F0$")
    await gl.expect(b"+SACK:GTHBD,1A0401,11F0$")
    http = await link_factory(port)
    await http.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await http.closed_by_peer()


async def test_duplicate_resend_is_stored_once(gateway: Gateway, link_factory) -> None:
    device = get_codec("tk103").device(IMEI)
    dev_id = IMEI[-12:]
    link: DeviceLink = await link_factory(gateway.tcp.ports["tk103"])
    await link.send(device.heartbeat())
    await link.expect(f"({dev_id}AP01HSO)".encode())
    await bind(gateway, dev_id)
    frame = device.position(fix(0))
    # The login's AP05 is sent after its commit, and the resent frames were queued before it.
    await link.send(frame + frame + frame + device.login())
    await link.expect(f"({dev_id}AP05)".encode())
    # Three copies of the fix, and the login repeating the device's last fix: stored once.
    assert await count_positions(gateway.db, dev_id) == 1
    assert await scalar(gateway.db, "SELECT count(*) FROM device_frames") >= 4
