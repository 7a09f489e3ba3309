"""Codes delivered for real: e-mail to an SMTP server (aiosmtpd) and SMS to an HTTP provider,
both started by the test; failures are retried and shown on the challenge, never a 500."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller

from gateway.store.database import Database
from tests.gateway.e2e.conftest import free_port

from .conftest import StartAct, imei, seen, start_claim, status_of, verify


class Inbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


class SmsProvider(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    answer = 201

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        type(self).received.append({"form": {k: v[0] for k, v in form.items()},
                                    "auth": self.headers.get("Authorization")})
        self.send_response(type(self).answer)
        self.end_headers()
        self.wfile.write(b'{"sid": "SM1"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sms() -> Iterator[tuple[str, type[SmsProvider]]]:
    handler = type("Provider", (SmsProvider,), {"received": [], "answer": 201})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/2010-04-01/Messages.json", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_email_delivery_over_smtp(
    start_act: StartAct, db: Database, smtp: tuple[int, Inbox]
) -> None:
    port, inbox = smtp
    act = await start_act(notify={"channel": "email", "smtp_host": "127.0.0.1",
                                  "smtp_port": port, "smtp_security": "none"})
    device = imei(400)
    await seen(db, device)
    await act.admin.post("/api/v1/admin/devices",
                         json={"imei": device, "contact": "Buyer@Example.com"})
    started = await start_claim(act.http, device, "claimant@example.com")
    await act.drain()
    [mail] = inbox.messages
    assert mail["To"] == "buyer@example.com"
    assert mail["Subject"] == "Your device activation code"
    code = re.search(r"\b(\d{6})\b", mail.get_payload()).group(1)
    assert (await status_of(act.http, started))["delivery"] == "sent"
    assert (await verify(act.http, started, code)).status_code == 200
    await act.drain()
    assert inbox.messages[-1]["Subject"] == "A device was activated"


async def test_sms_delivery_over_http(
    start_act: StartAct, db: Database, sms: tuple[str, type[SmsProvider]]
) -> None:
    url, provider = sms
    act = await start_act(notify={"channel": "sms", "sms_url": url, "sms_username": "AC1",
                                  "sms_password": "secret", "sender": "+15005550006"})
    device = imei(401)
    await seen(db, device)
    await act.admin.post("/api/v1/admin/devices",
                         json={"imei": device, "contact": "+44 7911 123456"})
    started = await start_claim(act.http, device, "claimant@example.com")
    await act.drain()
    [request] = provider.received
    assert request["form"]["To"] == "+447911123456"
    assert request["form"]["From"] == "+15005550006"
    assert request["auth"].startswith("Basic ")
    code = re.search(r"\b(\d{6})\b", request["form"]["Body"]).group(1)
    view = await status_of(act.http, started)
    # The hint never shows the contact of record (rule 12: it would tell provisioned IMEIs).
    assert "+447911123456" not in view["hint"] and "456" not in view["hint"]
    assert (await verify(act.http, started, code)).status_code == 200


async def test_failed_delivery_is_retried_then_shown_to_the_admin_not_the_claimant(
    start_act: StartAct, db: Database, sms: tuple[str, type[SmsProvider]]
) -> None:
    url, provider = sms
    provider.answer = 503
    act = await start_act(notify={"channel": "sms", "sms_url": url, "attempts": 3,
                                  "retry_delay_s": 0.01,
                                  "smtp_host": "127.0.0.1", "smtp_port": free_port(),
                                  "smtp_security": "none"})
    device = imei(402)
    await act.admin.post("/api/v1/admin/devices",
                         json={"imei": device, "contact": "+447911123456"})
    started = await start_claim(act.http, device, "claimant@example.com")
    await act.drain()
    assert len(provider.received) == 3
    view = await status_of(act.http, started)
    # A claimant sees what a decoy shows: a failure only real sends can have would tell them
    # the IMEI has a contact of record (rule 12). The admin sees it in the audit log.
    assert view["status"] == "pending"
    assert view["delivery"] == "sent"
    # An e-mail contact with the SMTP server down: same, and the API still answers.
    other = imei(403)
    await act.admin.post("/api/v1/admin/devices", json={"imei": other, "contact": "x@example.com"})
    started = await start_claim(act.http, other, "claimant@example.com")
    await act.drain()
    assert (await status_of(act.http, started))["delivery"] == "sent"
    audit = (await act.admin.get("/api/v1/admin/audit", params={"action": "send"})).json()
    assert [e["outcome"] for e in audit["entries"]] == ["failed", "failed"]
    assert all("Error" in e["detail"]["error"] for e in audit["entries"])
    await asyncio.sleep(0)


async def test_a_failed_release_code_is_shown_to_its_signed_in_owner(
    start_act: StartAct, db: Database, sms: tuple[str, type[SmsProvider]]
) -> None:
    url, provider = sms
    act = await start_act(notify={"channel": "sms", "sms_url": url, "attempts": 2,
                                  "retry_delay_s": 0.01})
    device = imei(404)
    await seen(db, device)
    await act.admin.post("/api/v1/admin/devices", json={"imei": device,
                                                        "contact": "+447911123456"})
    started = await start_claim(act.http, device, "claimant@example.com")
    await act.drain()
    code = re.search(r"\b(\d{6})\b", provider.received[-1]["form"]["Body"]).group(1)
    assert (await verify(act.http, started, code)).status_code == 200
    provider.answer = 503
    release = (await act.http.post(f"/api/v1/devices/{device}/release", json={})).json()
    await act.drain()
    view = await status_of(act.http, {"activation_id": release["challenge_id"],
                                      "token": release["token"]})
    assert view["delivery"] == "failed"
    assert "could not deliver" in view["hint"]
