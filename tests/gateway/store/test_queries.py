"""The read side and binding changes."""

from __future__ import annotations

import pytest

from gateway.store.database import Database
from gateway.store.ingest import write_batch
from gateway.store.models import DeviceState
from gateway.store.queries import (
    DeviceAlreadyBound,
    DeviceNotFound,
    bind_device,
    current_binding,
    list_devices,
    positions_for_binding,
    release_device,
)

from .support import fix_item, imei, item, position, scalar


async def test_list_devices_by_state_with_last_fix(db: Database) -> None:
    a, b, c = imei(1), imei(2), imei(3)
    await write_batch(db, [fix_item(a, 10), item(b, received=20), fix_item(c, 30)], 20)
    await bind_device(db, c, "carol@example.org")
    unclaimed = await list_devices(db, DeviceState.UNCLAIMED)
    assert [d.imei for d in unclaimed] == [b, a]  # most recently seen first
    assert unclaimed[1].last_fix is not None and unclaimed[1].last_fix.lat == 52.5
    assert unclaimed[0].last_fix is None
    claimed = await list_devices(db, DeviceState.CLAIMED)
    assert [d.imei for d in claimed] == [c] and claimed[0].current_binding_id is not None
    assert len(await list_devices(db)) == 3
    assert len(await list_devices(db, limit=2)) == 2


async def test_bind_rules(db: Database) -> None:
    device = imei(1)
    with pytest.raises(DeviceNotFound):
        await bind_device(db, device, "alice@example.org")
    await write_batch(db, [item(device)], 20)
    binding = await bind_device(db, device, "alice@example.org")
    with pytest.raises(DeviceAlreadyBound):
        await bind_device(db, device, "bob@example.org")
    current = await current_binding(db, device)
    assert current is not None and current.id == binding.id
    assert current.contact == "alice@example.org" and current.ended_at is None
    assert (await release_device(db, device)) is not None
    assert await release_device(db, device) is None  # nothing left to close
    assert await current_binding(db, device) is None
    # The same owner binding again reuses the owner.
    again = await bind_device(db, device, "alice@example.org")
    assert again.owner_id == binding.owner_id and again.id != binding.id
    assert await scalar(db, "SELECT count(*) FROM owners") == 1
    with pytest.raises(DeviceNotFound):
        await release_device(db, imei(99))


async def test_positions_for_binding_since_until_limit(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [item(device)], 20)
    binding = await bind_device(db, device, "alice@example.org")
    await write_batch(db, [fix_item(device, s) for s in range(10)], 20)
    since, until = position(device, 3).fix_time, position(device, 7).fix_time
    window = await positions_for_binding(db, binding.id, since=since, until=until)
    assert [p.fix_time for p in window] == [position(device, s).fix_time for s in range(3, 7)]
    assert len(await positions_for_binding(db, binding.id, limit=4)) == 4
    assert await positions_for_binding(db, binding.id + 1000) == []


async def test_stale_unclaimed_devices_are_forgotten_and_nothing_else(db: Database) -> None:
    """A script naming new IMEIs creates device rows; those nobody claimed, bound, locked or
    provisioned go once unseen long enough, with their frames and alarms."""
    from datetime import timedelta

    from gateway.store import claiming
    from gateway.store.queries import forget_stale_devices

    from .support import T0, sos

    junk = [imei(n) for n in range(10, 15)]
    await write_batch(db, [item(device, sos(device, 1), received=1) for device in junk], 20)
    kept_bound, kept_released, kept_provisioned, kept_paired, kept_fresh = (
        imei(20), imei(21), imei(22), "013912345678", imei(24))
    await write_batch(db, [item(d, received=1) for d in (
        kept_bound, kept_released, kept_provisioned, kept_paired)], 20)
    await write_batch(db, [item(kept_fresh, received=86400 * 40)], 20)
    await bind_device(db, kept_bound, "alice@example.org")
    await bind_device(db, kept_released, "bob@example.org")
    await release_device(db, kept_released)
    async with db.begin() as conn:
        await claiming.provision(conn, kept_provisioned, contact="carol@example.org",
                                 claim_key_hmac=None, now=T0)
        await claiming.provision(conn, imei(23), contact=None, claim_key_hmac=None, now=T0,
                                 wire_id=kept_paired)
    assert await scalar(db, "SELECT count(*) FROM alarms") == 5

    cutoff = T0 + timedelta(days=30)
    assert await forget_stale_devices(db, cutoff, limit=3) == 3  # bounded per run
    assert await forget_stale_devices(db, cutoff) == 2
    assert await forget_stale_devices(db, cutoff) == 0
    left = sorted(d.imei for d in await list_devices(db, limit=100))
    assert left == sorted([kept_bound, kept_released, kept_provisioned, kept_paired,
                           kept_fresh])
    assert await scalar(db, "SELECT count(*) FROM alarms") == 0
    assert await scalar(db, "SELECT count(*) FROM device_frames") == 5
