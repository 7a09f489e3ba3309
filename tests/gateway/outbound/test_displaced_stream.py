"""Attack pass: a connection that names an owned device for a moment (one login frame, then
it hangs up) must not leave the real tracker, still connected and still reporting, without
its commands. Text protocols carry no secret, so while the impostor's connection is open the
gateway cannot tell which one is the tracker (the newest wins: a documented limit); once the
impostor is gone, or once the tracker speaks again, the tracker's connection is the device's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.store.database import Database
from protocols import Command, CommandType

from .conftest import FAST, StartAct, connect, imei, owner_of


@pytest.mark.parametrize("impostor_stays", [False, True])
async def test_a_passing_impostor_does_not_cut_the_tracker_off_its_commands(
    start_act: StartAct, db: Database, link_factory: Any, impostor_stays: bool
) -> None:
    act = await start_act(**FAST)
    device = imei(3200 if impostor_stays else 3201)
    tracker = await connect(act, link_factory, "gps103", device)
    await tracker.login()
    await tracker.expect(b"LOAD")
    await owner_of(act, db, device)

    impostor = await connect(act, link_factory, "gps103", device)
    await impostor.login()
    await impostor.expect(b"LOAD")
    if impostor_stays:
        await tracker.send(tracker.device.heartbeat())  # the tracker speaks again
        await tracker.expect(b"ON")
    else:
        await impostor.link.close()
        await asyncio.sleep(0.3)  # the gateway sees it go

    answer = await act.http.post(f"/api/v1/devices/{device}/commands",
                                 json={"type": "position_single"})
    assert answer.status_code == 202, answer.text
    await tracker.expect(tracker.codec.encode_command(
        device, Command(CommandType.POSITION_SINGLE)))
