"""Installer and admin API (`/api/v1/admin/...`), behind the bearer token `admin.token`."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

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
) -> dict[str, Any]:
    """Devices the gateway has seen, most recently seen first, with their last fix."""
    devices = await queries.list_devices(db, state, limit=limit, offset=offset)
    return {"devices": [_device_out(d) for d in devices]}


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
        "frames": [
            FrameOut(
                received_at=f.received_at, remote_addr=f.remote_addr, result=f.result,
                text=f.raw.decode("ascii", "backslashreplace"), hex=f.raw.hex())
            for f in frames
        ],
    }
