"""The command queue every instance shares: a command goes out once, whoever claims it; stale
ones are closed; a device's waiting commands come oldest first."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from gateway.store import commands, queries
from gateway.store.database import Database
from gateway.store.ingest import write_batch

from .support import T0, fix_item, imei


async def _queued(db: Database, device: str, ttl_s: float = 3600.0) -> int:
    async with db.begin() as conn:
        target = await commands.target(conn, device)
        assert target is not None
        return await commands.insert_command(
            conn, target, type="reboot", interval_s=None, requested_by="cli", owner_id=None,
            now=T0, expires_at=T0 + timedelta(seconds=ttl_s))


async def test_a_command_is_claimed_once_by_concurrent_senders(db: Database) -> None:
    device = imei(1)
    await write_batch(db, [fix_item(device, 0)], 10)
    command_id = await _queued(db, device)
    [due] = await commands.due(db, T0, imeis=[device])
    assert (due.id, due.imei, due.type) == (command_id, device, "reboot")
    claims = await asyncio.gather(*(commands.claim(db, command_id, b"x%d" % n, T0, f"i{n}")
                                    for n in range(4)))
    assert sorted(claims) == [False, False, False, True]
    assert await commands.due(db, T0) == []
    [waiting] = await commands.waiting(db, device, T0)
    assert waiting.id == command_id and waiting.payload in (b"x0", b"x1", b"x2", b"x3")
    assert await commands.settle(db, command_id, commands.ACKNOWLEDGED, "ok", T0)
    assert not await commands.settle(db, command_id, commands.FAILED, "late", T0)
    info = await commands.get_command(db, command_id)
    assert info is not None and (info.status, info.result) == ("acknowledged", "ok")


async def test_stale_commands_are_expired_or_failed_and_never_claimed(db: Database) -> None:
    device = imei(2)
    await write_batch(db, [fix_item(device, 0)], 10)
    short = await _queued(db, device, ttl_s=10)
    later = T0 + timedelta(seconds=11)
    assert (await commands.get_command(db, short, later)).status == "expired"  # type: ignore[union-attr]
    assert not await commands.claim(db, short, b"x", later, "i")
    await queries.bind_device(db, device, "a@example.com")
    under_binding = await _queued(db, device)
    await queries.release_device(db, device)
    assert await commands.due(db, later) == []
    assert await commands.close_stale(db, later) == (1, 1)
    assert await commands.close_stale(db, later) == (0, 0)
    assert (await commands.get_command(db, under_binding)).result == commands.CHANGED_HANDS  # type: ignore[union-attr]
