"""Installer and admin API (`/api/v1/admin/...`), behind the bearer token `admin.token`."""

from __future__ import annotations

import hmac
import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, UploadFile, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from gateway.activation import InvalidInput
from gateway.activation.claim_keys import format_claim_key
from gateway.activation.csv_text import NotText, decode_csv
from gateway.activation.engine import utcnow
from gateway.outbound.commands import CommandRefused, supported_types
from gateway.store import audit as audit_log
from gateway.store import commands as command_store
from gateway.store import counters, queries
from gateway.store.commands import CommandInfo
from gateway.store.models import DeviceState
from gateway.web.api_commands import CommandParams, Commands, command_out, refused
from gateway.web.context import WebContext
from gateway.web.deps import ClientAddr, Context, Db, Provision

log = logging.getLogger("gateway.web")

_bearer = HTTPBearer(auto_error=False)


async def check_token(
    ctx: WebContext, expected: str, given: str | None, client: str | None, what: str
) -> None:
    """Compare a bearer token in constant time; failures are logged, counted and throttled
    per client address (rule 30): past `admin.max_failures_per_minute`, 429 without a
    comparison."""
    limit = ctx.admin.max_failures_per_minute
    now = utcnow()
    async with ctx.db.engine.connect() as conn:
        failures = await counters.current(conn, "admin", client or "-", now, 60)
    if failures >= limit:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"too many wrong tokens from your address: wait a minute ({what})",
                            headers={"Retry-After": "60"})
    if hmac.compare_digest((given or "").encode(), expected.encode()):
        return
    async with ctx.db.begin() as conn:
        failures, _ = await counters.bump(conn, "admin", client or "-", now, 60)
    ctx.metrics.admin_auth_failures.inc()
    log.warning("authentication failed", extra={"what": what, "remote": client,
                                                "failures_last_minute": failures})
    raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"send Authorization: Bearer <{what}>",
                        headers={"WWW-Authenticate": "Bearer"})


async def _require_admin(
    ctx: Context, client: ClientAddr,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = ctx.admin.token
    if not token:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the admin API is disabled: set admin.token (GATEWAY_ADMIN__TOKEN) to enable it")
    await check_token(ctx, token, credentials.credentials if credentials else None, client,
                      "admin.token")


router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(_require_admin)])


class LastFixOut(BaseModel):
    lat: float
    lon: float
    fix_time: datetime
    speed_kmh: float | None
    course_deg: float | None
    valid: bool | None


class DeviceOut(BaseModel):
    imei: str
    protocol: str
    state: str
    first_seen: datetime
    last_seen: datetime
    remote_addr: str | None
    last_fix: LastFixOut | None
    #: The IMEI the device's login reported when it names itself otherwise (not authenticated:
    #: check the label, then `gateway provision IMEI --wire-id ID` to let owners claim it).
    reported_imei: str | None = None


class FrameOut(BaseModel):
    received_at: datetime
    remote_addr: str | None
    result: str
    #: The frame as text (these protocols are ASCII; other bytes shown as \\xNN).
    text: str
    hex: str


def _device_out(device: queries.DeviceInfo) -> DeviceOut:
    fix = device.last_fix
    return DeviceOut(
        imei=device.imei,
        protocol=device.protocol,
        state=str(device.state),
        first_seen=device.first_seen,
        last_seen=device.last_seen,
        remote_addr=device.remote_addr,
        last_fix=None if fix is None else LastFixOut(
            lat=fix.lat, lon=fix.lon, fix_time=fix.fix_time, speed_kmh=fix.speed_kmh,
            course_deg=fix.course_deg, valid=fix.valid),
        reported_imei=device.reported_imei,
    )


@router.get("/devices")
async def list_devices(
    db: Db,
    state: Annotated[DeviceState | None, Query(description="unclaimed, claimed or locked")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    frames: Annotated[int, Query(ge=0, le=100,
                                 description="also the last N raw frames of each")] = 0,
) -> dict[str, Any]:
    """Devices the gateway has seen, most recently seen first, with their last fix (and, with
    `frames=N`, their last N raw frames: what an installer checks on site)."""
    devices = await queries.list_devices(db, state, limit=limit, offset=offset)
    out: list[dict[str, Any]] = []
    for device in devices:
        item = _device_out(device).model_dump(mode="json")
        if frames:
            item["frames"] = [_frame_out(f).model_dump(mode="json")
                              for f in await queries.recent_frames(db, device.imei,
                                                                   limit=frames)]
        out.append(item)
    return {"devices": out}


def _frame_out(f: queries.FrameInfo) -> FrameOut:
    return FrameOut(received_at=f.received_at, remote_addr=f.remote_addr, result=f.result,
                    text=f.raw.decode("ascii", "backslashreplace"), hex=f.raw.hex())


class ProvisionIn(BaseModel):
    imei: str
    #: The buyer's e-mail address or phone number (E.164): where activation codes will go,
    #: and whose account the device joins.
    contact: str | None = None
    #: The claim key printed on the device's label, or `"generate"` for a new random one
    #: (returned once in the answer, never again: only its HMAC is kept).
    claim_key: str | None = None
    #: The id the device sends when it is not its IMEI and it does not report its IMEI (a
    #: JT/T 808 unit's terminal phone): claims by the IMEI then find the device.
    wire_id: str | None = None


@router.post("/devices", status_code=201)
async def provision_device(body: ProvisionIn, provisioning: Provision) -> JSONResponse:
    """Register a device's contact of record and/or claim key (before or after it first
    connects)."""
    try:
        done = await provisioning.provision(body.imei, body.contact, body.claim_key,
                                            wire_id=body.wire_id)
    except InvalidInput as exc:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
    out: dict[str, Any] = {"imei": done.imei, "contact_of_record": done.contact,
                           "claim_key_set": done.claim_key_set}
    if done.generated_claim_key is not None:
        out["claim_key"] = format_claim_key(done.generated_claim_key)
    return JSONResponse(out, status_code=201)


@router.post("/devices/import")
async def import_devices(
    file: UploadFile, provisioning: Provision, encoding: str = "auto",
) -> JSONResponse:
    """Provision many devices from a CSV file with the columns `imei,contact[,claim_key]`
    (comma, semicolon or tab separated; a header row naming them, in any order, is optional).
    The encoding is detected (UTF-8, UTF-16 with a byte-order mark, else Windows-1252: `note`
    says so) unless `encoding` names it. Good rows are registered; bad ones are listed with
    their line and the reason. A file that is not text is a 422 naming the line."""
    try:
        decoded = decode_csv(await file.read(), encoding)
    except NotText as exc:
        return JSONResponse({"detail": exc.message, "line": exc.line, "field": "file"},
                            status_code=422)
    result = await provisioning.import_csv(decoded.text)
    body: dict[str, Any] = {
        "provisioned": result.provisioned,
        "errors": [{"line": e.line, "detail": e.detail} for e in result.errors]}
    if decoded.note:
        body["note"] = decoded.note
    return JSONResponse(body)


@router.post("/devices/{imei}/unlock")
async def unlock_device(imei: str, provisioning: Provision) -> JSONResponse:
    """Let a locked device be claimed again now (a lock also lapses by itself)."""
    try:
        was_locked = await provisioning.unlock(imei)
    except InvalidInput as exc:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
    return JSONResponse({"imei": imei, "was_locked": was_locked, "state": "unlocked"})


@router.get("/audit")
async def read_audit(
    db: Db,
    imei: str | None = None,
    action: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The audit log, newest first: every start, send, check, claim, release (never a code)."""
    rows = await audit_log.read(db, imei=imei, action=action, limit=limit)
    return {"entries": [{
        "id": r.id, "at": r.at.isoformat(), "action": r.action, "outcome": r.outcome,
        "imei": r.imei, "owner_id": r.owner_id, "challenge_id": r.challenge_id,
        "client_addr": r.client_addr, "detail": r.detail} for r in rows]}


@router.get("/devices/{imei}/frames")
async def device_frames(
    imei: str,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> dict[str, Any]:
    """The device's most recent raw frames, newest first, for installer diagnostics."""
    if await queries.get_device(db, imei) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {imei} has been seen")
    frames = await queries.recent_frames(db, imei, limit=limit)
    return {
        "imei": imei,
        "frames": [_frame_out(f) for f in frames],
    }


class AdminCommandIn(BaseModel):
    #: position_single, report_interval, engine_stop, engine_resume or reboot.
    type: str
    params: CommandParams = CommandParams()


@router.post("/devices/{imei}/commands", status_code=202)
async def send_command(
    imei: str, body: AdminCommandIn, commands: Commands, client: ClientAddr,
) -> JSONResponse:
    """Queue a command for any seen device (no code asked; audited as `admin`)."""
    try:
        info = await commands.queue_as_admin(imei, body.type, body.params.interval_s,
                                             by="admin", client_addr=client)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no device {imei} has been seen") from None
    except CommandRefused as exc:
        return refused(exc)
    return JSONResponse(_admin_command(info), status_code=202)


@router.get("/devices/{imei}/commands")
async def list_commands(
    imei: str, db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """Every command of the device (whoever asked), newest first."""
    device = await queries.get_device(db, imei)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {imei} has been seen")
    commands = await command_store.commands_of_device(db, imei, limit=limit, now=utcnow())
    return {"imei": imei, "supported": supported_types(device.protocol),
            "commands": [_admin_command(c) for c in commands]}


def _admin_command(info: CommandInfo) -> dict[str, Any]:
    """A command as the owner sees it, and the bytes sent (hex), for installers."""
    out = command_out(info).model_dump(mode="json")
    out["sent_hex"] = info.payload.hex() if info.payload is not None else None
    return out
