"""write_batch: registration, last fix, frame ring, positions, duplicates, bindings, alarms."""

from __future__ import annotations

import pytest

from gateway.store.database import Database
from gateway.store.ingest import trim_frame_rings, write_batch
from gateway.store.models import DeviceState
from gateway.store.queries import (
    alarms_of_device,
    bind_device,
    get_device,
    positions_for_binding,
    recent_frames,
    release_device,
)
from protocols.events import Rejected

from .support import T0, count_positions, fix_item, imei, item, position, rows, scalar, sos


async def test_unseen_device_is_registered_unclaimed(db: Database) -> None:
    device = imei(1)
    result = await write_batch(db, [item(device, received=5, remote="198.51.100.7:1234")], 20)
    assert result.devices == 1 and result.items == 1
    info = await get_device(db, device)
    assert info is not None
    assert info.state == DeviceState.UNCLAIMED
    assert info.protocol == "gps103"
    assert info.first_seen == info.last_seen == item(device, received=5).received_at
    assert info.remote_addr == "198.51.100.7:1234"
    assert info.last_fix is None and info.current_binding_id is None


async def test_last_seen_advances_and_first_seen_stays(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [item(device, received=10)], 20)
    await write_batch(db, [item(device, received=20, remote=None),
                           item(device, received=30, remote="203.0.113.9:1")], 20)
    # An older frame committed late (another process) does not move last_seen back.
    await write_batch(db, [item(device, received=15, remote=None)], 20)
    info = await get_device(db, device)
    assert info is not None
    assert info.first_seen == item(device, received=10).received_at
    assert info.last_seen == item(device, received=30).received_at
    assert info.remote_addr == "203.0.113.9:1"


async def test_latest_fix_time_wins(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [fix_item(device, 100, lat=1.0), fix_item(device, 50, lat=2.0)], 20)
    info = await get_device(db, device)
    assert info is not None and info.last_fix is not None
    assert info.last_fix.lat == 1.0
    # A buffered (older) fix arriving later does not replace it ...
    await write_batch(db, [fix_item(device, 70, lat=3.0)], 20)
    info = await get_device(db, device)
    assert info is not None and info.last_fix is not None and info.last_fix.lat == 1.0
    # ... a newer one does, with all its fields.
    await write_batch(db, [fix_item(device, 200, lat=4.0, valid=False, speed=None)], 20)
    info = await get_device(db, device)
    assert info is not None and info.last_fix is not None
    assert (info.last_fix.lat, info.last_fix.valid, info.last_fix.speed_kmh) == (4.0, False, None)
    # A heartbeat keeps the last fix.
    await write_batch(db, [item(device, received=300)], 20)
    info = await get_device(db, device)
    assert info is not None and info.last_fix is not None and info.last_fix.lat == 4.0


async def test_frame_ring_keeps_the_last_n(db: Database) -> None:
    device, other = imei(1), imei(2)
    for start in range(0, 12, 4):  # three batches of 4 frames
        await write_batch(db, [item(device, received=s, raw=b"f%d" % s)
                               for s in range(start, start + 4)], 5)
    await write_batch(db, [item(other, received=0)], 5)
    frames = await recent_frames(db, device, limit=100)
    assert [f.raw for f in frames] == [b"f11", b"f10", b"f9", b"f8", b"f7"]
    assert [f.seq for f in frames] == [12, 11, 10, 9, 8]
    assert await scalar(db, "SELECT count(*) FROM device_frames") == 6
    # One batch with more frames than the ring holds.
    await write_batch(db, [item(device, received=100 + s, raw=b"g%d" % s) for s in range(8)], 5)
    frames = await recent_frames(db, device, limit=100)
    assert [f.raw for f in frames] == [b"g7", b"g6", b"g5", b"g4", b"g3"]
    assert frames[0].result == "ok" and frames[0].remote_addr == "192.0.2.1:40000"


async def test_frame_ring_records_rejections_and_can_shrink(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [item(device, received=0, rejected="bad checksum"),
                           item(device, Rejected("garbled", device), received=1)], 20)
    frames = await recent_frames(db, device)
    assert [f.result for f in frames] == ["rejected: garbled", "rejected: bad checksum"]
    await write_batch(db, [item(device, received=s) for s in range(2, 12)], 20)
    assert await trim_frame_rings(db, 3) > 0
    await write_batch(db, [item(device, received=20)], 3)
    assert len(await recent_frames(db, device)) <= 3 + 1
    await write_batch(db, [item(device, received=s) for s in range(21, 30)], 3)
    assert len(await recent_frames(db, device)) == 3


async def test_no_ring_when_n_is_zero(db: Database) -> None:
    await write_batch(db, [item(imei(1))], 0)
    assert await scalar(db, "SELECT count(*) FROM device_frames") == 0


async def test_positions_are_stored_only_for_bound_devices(db: Database) -> None:
    bound, unbound = imei(1), imei(2)
    await write_batch(db, [item(bound), item(unbound)], 20)
    binding = await bind_device(db, bound, "alice@example.org")
    result = await write_batch(db, [fix_item(bound, 1), fix_item(unbound, 1),
                                    fix_item(bound, 2)], 20)
    assert (result.positions_stored, result.positions_unbound) == (2, 1)
    assert await count_positions(db, bound) == 2
    assert await count_positions(db, unbound) == 0
    assert {row[0] for row in await rows(db, "SELECT binding_id FROM positions")} == {binding.id}
    stored = await positions_for_binding(db, binding.id)
    assert [p.fix_time for p in stored] == [position(bound, 1).fix_time,
                                            position(bound, 2).fix_time]
    first = stored[0]
    assert (first.lat, first.lon, first.valid, first.speed_kmh, first.course_deg,
            first.altitude_m, first.satellites, first.hdop) == (
        52.5, 13.4, True, 10.0, 90.0, 30.0, 7, 1.2)
    # The unbound device still has its last fix for the admin list.
    info = await get_device(db, unbound)
    assert info is not None and info.last_fix is not None


async def test_duplicates_are_stored_once(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [item(device)], 20)
    await bind_device(db, device, "alice@example.org")
    # Same fix twice in one batch (the device resent it before the ack arrived).
    result = await write_batch(db, [fix_item(device, 1), fix_item(device, 1),
                                    fix_item(device, 2)], 20)
    assert (result.positions_stored, result.positions_duplicate) == (2, 1)
    # And again in a later batch (the ack was lost).
    result = await write_batch(db, [fix_item(device, 2), fix_item(device, 3)], 20)
    assert (result.positions_stored, result.positions_duplicate) == (1, 1)
    assert await count_positions(db, device) == 3
    # Re-running a whole batch (commit outcome unknown) stores nothing twice.
    result = await write_batch(db, [fix_item(device, 2), fix_item(device, 3)], 20)
    assert result.positions_stored == 0
    assert await count_positions(db, device) == 3



async def test_counts_add_up_over_a_large_batch(db: Database) -> None:
    # More rows than one SQLite statement carries (256): what each statement inserted adds up.
    device = imei(1)
    await write_batch(db, [item(device)], 20)
    await bind_device(db, device, "alice@example.org")
    await write_batch(db, [fix_item(device, s) for s in range(100)], 20)
    batch = [fix_item(device, s) for s in range(300)] * 2
    result = await write_batch(db, batch, 20)
    assert (result.positions_stored, result.positions_duplicate) == (200, 400)
    assert await count_positions(db, device) == 300
    assert await scalar(db, "SELECT count(*) FROM device_frames") == 20

async def test_release_and_rebind_separate_histories(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [item(device)], 20)
    first = await bind_device(db, device, "alice@example.org")
    await write_batch(db, [fix_item(device, s) for s in (1, 2, 3)], 20)
    closed = await release_device(db, device)
    assert closed is not None and closed.id == first.id and closed.ended_at is not None
    info = await get_device(db, device)
    assert info is not None and info.state == DeviceState.UNCLAIMED
    # While unclaimed, nothing is kept.
    await write_batch(db, [fix_item(device, 4)], 20)
    second = await bind_device(db, device, "bob@example.org")
    assert second.id != first.id
    await write_batch(db, [fix_item(device, s) for s in (5, 6)], 20)
    mine = await positions_for_binding(db, second.id)
    assert [p.fix_time for p in mine] == [position(device, s).fix_time for s in (5, 6)]
    theirs = await positions_for_binding(db, first.id)
    assert len(theirs) == 3


async def test_alarms_are_stored_with_their_binding(db: Database) -> None:
    device, other = imei(1), imei(2)
    await write_batch(db, [item(device), item(other)], 20)
    binding = await bind_device(db, device, "alice@example.org")
    result = await write_batch(db, [
        item(device, sos(device, 10), received=10),
        item(other, sos(other, 11, with_fix=False), received=11),
    ], 20)
    assert result.alarms_stored == 2
    # The alarm's fix is a position too (bound device only), marked with the alarm.
    assert result.positions_stored == 1
    alarms = await alarms_of_device(db, device)
    assert len(alarms) == 1
    alarm = alarms[0]
    assert (alarm.alarm_type, alarm.raw_code, alarm.binding_id) == ("sos", "help me", binding.id)
    assert alarm.event_time == position(device, 10).fix_time
    assert (alarm.lat, alarm.lon) == (52.5, 13.4)
    stored = await positions_for_binding(db, binding.id)
    assert stored[0].attributes == {"alarm": "sos"}
    unbound_alarm = (await alarms_of_device(db, other))[0]
    assert unbound_alarm.binding_id is None and unbound_alarm.lat is None
    # A resent alarm is stored once.
    result = await write_batch(db, [item(device, sos(device, 10), received=12)], 20)
    assert result.alarms_stored == 0 and result.alarms_duplicate == 1
    assert len(await alarms_of_device(db, device)) == 1


async def test_batch_with_many_devices(db: Database) -> None:
    devices = [imei(n) for n in range(100)]
    await write_batch(db, [item(d) for d in devices], 20)
    for d in devices[::2]:
        await bind_device(db, d, f"owner-{d}@example.org")
    batch = [fix_item(d, s) for s in range(10) for d in devices]
    result = await write_batch(db, batch, 20)
    assert result.devices == 100 and result.items == 1000
    assert (result.positions_stored, result.positions_unbound) == (500, 500)
    assert await count_positions(db) == 500
    assert await scalar(db, "SELECT count(*) FROM device_frames") == 100 * 11
    assert await scalar(db, "SELECT count(DISTINCT last_fix_time) FROM devices") == 1


async def test_empty_batch_does_nothing(db: Database) -> None:
    assert (await write_batch(db, [], 20)).items == 0


async def test_poison_position_fails_the_whole_batch(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [item(device)], 20)
    await bind_device(db, device, "alice@example.org")
    with pytest.raises(Exception) as raised:
        await write_batch(db, [fix_item(device, 1), fix_item(device, 2, lat=123.0)], 20)
    assert "lat" in str(raised.value).lower() or "check" in str(raised.value).lower()
    assert await count_positions(db) == 0  # one transaction: nothing of it committed
    info = await get_device(db, device)
    assert info is not None and info.last_seen == T0
