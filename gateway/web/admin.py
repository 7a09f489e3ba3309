"""Installer and admin API (`/api/v1/admin/...`), behind the bearer token `admin.token`."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, UploadFile, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from gateway.activation import ActivationService, InvalidInput
from gateway.activation import audit as audit_log
from gateway.activation.csv_import import import_csv
from gateway.store import queries
from gateway.store.database import Database
from gateway.store.models import DeviceState

_bearer = HTTPBearer(auto_error=False)


def _require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    token = request.app.state.gateway.settings.admin.token
    if not token:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the admin API is disabled: set admin.token (GATEWAY_ADMIN__TOKEN) to enable it")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "send Authorization: Bearer <admin.token>",
            headers={"WWW-Authenticate": "Bearer"})


def _db(request: Request) -> Database:
    db: Database | None = request.app.state.gateway.db
    if db is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not connected")
    return db


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
    )


@router.get("/devices")
async def list_devices(
    db: Annotated[Database, Depends(_db)],
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


def _activation(request: Request) -> ActivationService:
    activation: ActivationService | None = request.app.state.gateway.activation
    if activation is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the gateway is starting")
    return activation


class ProvisionIn(BaseModel):
    imei: str
    #: The buyer's e-mail address or phone number (E.164): where activation codes will go.
    contact: str


@router.post("/devices", status_code=201)
async def provision_device(
    body: ProvisionIn, activation: Annotated[ActivationService, Depends(_activation)]
) -> JSONResponse:
    """Register a device's contact of record (before or after it first connects)."""
    try:
        contact = await activation.provision(body.imei, body.contact)
    except InvalidInput as exc:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
    return JSONResponse({"imei": body.imei.strip(), "contact_of_record": contact},
                        status_code=201)


@router.post("/devices/import")
async def import_devices(
    file: UploadFile, activation: Annotated[ActivationService, Depends(_activation)]
) -> dict[str, Any]:
    """Provision many devices from a CSV file with the columns `imei,contact` (a header row is
    optional). Good rows are registered; bad ones are listed with their line and the reason."""
    text = (await file.read()).decode("utf-8-sig", "replace")
    result = await import_csv(activation, text)
    return {"provisioned": result.provisioned,
            "errors": [{"line": e.line, "detail": e.detail} for e in result.errors]}


@router.post("/devices/{imei}/unlock")
async def unlock_device(
    imei: str, activation: Annotated[ActivationService, Depends(_activation)]
) -> JSONResponse:
    """Let a device locked after too many failed codes be claimed again."""
    try:
        was_locked = await activation.unlock(imei)
    except InvalidInput as exc:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)
    return JSONResponse({"imei": imei, "was_locked": was_locked, "state": "unlocked"})


@router.get("/audit")
async def read_audit(
    db: Annotated[Database, Depends(_db)],
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
    db: Annotated[Database, Depends(_db)],
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
