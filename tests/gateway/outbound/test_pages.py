"""The device page's commands and alarms without JavaScript: plain form posts with the CSRF
token, and the code page of an engine stop."""

from __future__ import annotations

import re
from typing import Any

from gateway.store.database import Database

from .conftest import ALICE, FAST, StartAct, connect, imei, owner_of, wait_status


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def test_commands_from_the_device_page_without_javascript(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(**FAST)
    device = imei(870)
    tracker = await connect(act, link_factory, "gl300", device)
    await tracker.login()
    await owner_of(act, db, device)
    page = await act.http.get(f"/devices/{device}")
    assert page.status_code == 200
    for label in ("Request position", "Set report interval", "Reboot", "Stop engine…",
                  "Resume engine…"):
        assert label in page.text
    csrf = csrf_of(page.text)

    forged = await act.http.post(f"/devices/{device}/commands",
                                 data={"type": "reboot", "csrf": "forged"})
    assert forged.status_code == 403
    bad = await act.http.post(f"/devices/{device}/commands",
                              data={"type": "report_interval", "interval_s": "often",
                                    "csrf": csrf})
    assert bad.status_code == 422 and "whole seconds" in bad.text
    sent = await act.http.post(f"/devices/{device}/commands",
                               data={"type": "report_interval", "interval_s": "30",
                                     "csrf": csrf})
    assert sent.status_code == 303
    assert re.fullmatch(rf"/devices/{device}\?command=\d+#commands", sent.headers["location"])
    await tracker.expect(b"AT+GTFRI=,1,,,,,,30,30,,,,,,,,,,,,FFFF$")
    shown = await act.http.get(sent.headers["location"])
    assert "Command queued" in shown.text and "report interval (30 s)" in shown.text

    # Engine stop: a code page, as for a release.
    started = await act.http.post(f"/devices/{device}/commands",
                                  data={"type": "engine_stop", "csrf": csrf})
    assert started.status_code == 303
    code_page = started.headers["location"]
    assert code_page.startswith(f"/devices/{device}/engine/")
    form = await act.http.get(code_page)
    assert f"Stop the engine of device {device}" in form.text
    assert 'name="code"' in form.text
    code = await act.code_for(ALICE, "engine_stop")
    wrong = await act.http.post(code_page, data={"code": f"{(int(code) + 1) % 10**6:06d}",
                                                 "csrf": csrf})
    assert wrong.status_code == 400 and "did not work" in wrong.text
    await tracker.link.nothing_more(0.3)
    done = await act.http.post(code_page, data={"code": code, "csrf": csrf})
    assert done.status_code == 303
    await tracker.expect(b"AT+GTOUT=,1,,,0,0,0,0,0,0,0,,,,,,,FFFF$")
    command_id = int(re.search(r"command=(\d+)", done.headers["location"]).group(1))  # type: ignore[union-attr]
    await wait_status(act.http, device, command_id, "sent")


async def test_the_page_offers_only_what_the_protocol_can_do(
    start_act: StartAct, db: Database, link_factory: Any,
) -> None:
    act = await start_act(**FAST)
    device = imei(871)
    tracker = await connect(act, link_factory, "eelink", device)
    await tracker.login()
    await owner_of(act, db, device)
    page = await act.http.get(f"/devices/{device}")
    # eelink has no report interval: no such button; its engine commands are offered.
    assert "Request position" in page.text and "Set report interval" not in page.text
    assert "Stop engine…" in page.text
