"""Commands that do not start on the device's own connection: an MQTT device with no stream on
any instance (published on its down topic, where the broker keeps it), and `gateway command`
(queued by another process, sent by the running gateway)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.store import audit
from gateway.store.database import Database
from gateway.store.ingest import IngestItem, write_batch
from protocols import Login
from tests.gateway.mqtt.conftest import devices, mqtt_sections, prefix, wait_up  # noqa: F401

from .conftest import FAST, StartAct, connect, fix_now, imei, owner_of, wait_status


async def test_an_mqtt_device_without_a_stream_gets_its_command_on_its_down_topic(
    start_act: StartAct, db: Database, prefix: str, devices: Any,  # noqa: F811 (fixtures)
) -> None:
    act = await start_act(mqtt=mqtt_sections(prefix), **FAST)
    await wait_up(act.gateway)
    device = imei(860)
    # What an instance stored from the device's MQTT traffic before it restarted: the device
    # is known as an MQTT device (remote_addr mqtt:<id>), and no instance has its stream now.
    await write_batch(db, [IngestItem(device, "gl300", f"mqtt:{device}", datetime.now(UTC),
                                      b"+RESP:GTPNA", (Login(device),))], 10)
    await owner_of(act, db, device)
    assert act.gateway.pipeline is not None and device not in act.gateway.pipeline.online
    tracker = await devices(device)

    answer = await act.http.post(f"/api/v1/devices/{device}/commands",
                                 json={"type": "position_single"})
    assert answer.status_code == 202, answer.text
    await tracker.expect(b"AT+GTRTO=,1,,,,,,FFFF$")
    command_id = answer.json()["id"]
    await wait_status(act.http, device, command_id, "sent")

    from protocols import get_codec

    gl300 = get_codec("gl300").device(device)
    reply = gl300.command_answer(b"AT+GTRTO=,1,,,,,,FFFF$", fix_now())
    assert reply is not None
    await tracker.send(reply, f"{prefix}/{device}/up/gl300")
    command = await wait_status(act.http, device, command_id, "acknowledged")
    assert command["result"] == "RTL"
    await tracker.nothing_more(0.5)  # published once


async def test_gateway_command_is_sent_by_the_running_gateway(
    start_act: StartAct, db: Database, link_factory: Any, store_url: str, tmp_path: Path,
) -> None:
    act = await start_act(**FAST)
    device = imei(861)
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)
    env = {**os.environ, "GATEWAY_DATABASE__URL": store_url}

    async def gateway(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", *args, env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

        async def device_side() -> None:
            if args[0] != "command" or "--wait" not in args:
                return
            sent = b"AT+GTRTO=,1,,,,,,FFFF$"
            await tracker.expect(sent, timeout=20)
            reply = tracker.device.command_answer(sent, fix_now())
            assert reply is not None
            await tracker.send(reply)

        (out, err), _ = await asyncio.gather(process.communicate(), device_side())
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, err = await gateway("command", device, "position_single", "--wait", "20")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["status"] == "queued" and lines[0]["requested_by"] == "cli"
    assert lines[0]["imei"] == device and lines[0]["type"] == "position_single"
    assert lines[-1]["status"] == "acknowledged" and lines[-1]["result"] == "RTL"
    assert lines[0]["sent_hex"] is None and "payload" not in lines[-1]
    assert lines[-1]["sent_hex"] == b"AT+GTRTO=,1,,,,,,FFFF$".hex()
    [entry] = await audit.read(db, imei=device, action="command")
    assert entry.outcome == "queued" and (entry.detail or {}).get("by") == "cli"

    code, out, err = await gateway("command", imei(862), "reboot")
    assert code == 1 and f"no device {imei(862)} has been seen" in err
    code, out, err = await gateway("command", device, "report_interval")
    assert code == 1 and "report_interval needs the seconds between reports" in err
    code, out, err = await gateway("command", device, "report_interval", "--interval", "2")
    assert code == 1 and "GL300 report interval must be 0 or 5..86400 s" in err
    await tracker.link.nothing_more(0.5)
