"""JSON API of a signed-in owner: devices, positions, release, authenticator app."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Body, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.activation import Failure, InvalidInput, OwnerInfo, RateLimited
from gateway.store.database import Database
from gateway.store.owned import OwnedDevice, owned_devices, owner_positions
from gateway.web.context import WebContext
from gateway.web.deps import (
    Account,
    ClientAddr,
    Context,
    Db,
    Releases,
    failed,
    invalid_input,
    rate_limited,
    require_owner,
    same_origin_json,
)

router = APIRouter(prefix="/api/v1", tags=["owner"], dependencies=[Depends(same_origin_json)])

Owner = Annotated[OwnerInfo, Depends(require_owner)]


class FixOut(BaseModel):
    lat: float
    lon: float
    fix_time: datetime
    speed_kmh: float | None
    course_deg: float | None
    valid: bool | None


class OwnedDeviceOut(BaseModel):
    imei: str
    protocol: str
    #: `claimed` (yours now) or `released` (yours before; its history stays yours).
    state: Literal["claimed", "released"]
    online: bool
    claimed_at: datetime
    released_at: datetime | None
    last_seen: datetime
    last_fix: FixOut | None


class PositionOut(BaseModel):
    fix_time: datetime
    received_at: datetime
    lat: float
    lon: float
    valid: bool
    speed_kmh: float | None
    course_deg: float | None
    altitude_m: float | None
    satellites: int | None
    hdop: float | None


class ReleaseStartIn(BaseModel):
    #: `code`: a code is sent to you; `totp`: your authenticator app.
    method: Literal["code", "totp"] = "code"


class ReleaseIn(BaseModel):
    challenge_id: str
    token: str
    code: str


def device_out(ctx: WebContext, device: OwnedDevice) -> OwnedDeviceOut:
    online = device.current and device.imei in ctx.online_devices()
    fix = device.last_fix
    return OwnedDeviceOut(
        imei=device.imei, protocol=device.protocol,
        state="claimed" if device.current else "released", online=online,
        claimed_at=device.claimed_at, released_at=device.released_at,
        last_seen=device.last_seen,
        last_fix=None if fix is None else FixOut(
            lat=fix.lat, lon=fix.lon, fix_time=fix.fix_time, speed_kmh=fix.speed_kmh,
            course_deg=fix.course_deg, valid=fix.valid))


async def one_device(db: Database, owner: OwnerInfo, imei: str) -> OwnedDevice:
    """The owner's device `imei` (current or released); 404 for anybody else's."""
    found = await owned_devices(db, owner.id, imei)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no device {imei}")
    return found[0]


@router.get("/devices")
async def list_devices(owner: Owner, db: Db, ctx: Context) -> dict[str, Any]:
    """Your devices: current ones first, then released ones (whose history stays yours)."""
    devices = await owned_devices(db, owner.id)
    return {"devices": [device_out(ctx, d) for d in devices]}


@router.get("/devices/{imei}", response_model=OwnedDeviceOut)
async def get_device(imei: str, owner: Owner, db: Db, ctx: Context) -> OwnedDeviceOut:
    return device_out(ctx, await one_device(db, owner, imei))


@router.get("/devices/{imei}/positions")
async def device_positions(
    imei: str, owner: Owner, db: Db,
    since: datetime | None = None, until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> dict[str, Any]:
    """Positions recorded while the device was yours, oldest first (since <= fix_time < until)."""
    device = await one_device(db, owner, imei)
    positions = await owner_positions(db, device.binding_ids, since=since,
                                      until=until, limit=limit)
    return {"imei": device.imei, "positions": [
        PositionOut(fix_time=p.fix_time, received_at=p.received_at, lat=p.lat, lon=p.lon,
                    valid=p.valid, speed_kmh=p.speed_kmh, course_deg=p.course_deg,
                    altitude_m=p.altitude_m, satellites=p.satellites, hdop=p.hdop)
        for p in positions]}


@router.post("/devices/{imei}/release", status_code=202,
             responses={404: {"description": "not your device"}})
async def start_release(
    imei: str, owner: Owner, releases: Releases, client: ClientAddr,
    body: Annotated[ReleaseStartIn | None, Body()] = None,
) -> JSONResponse:
    """Step 1 of a release: a fresh code is sent to you (or use your authenticator app).
    Then `DELETE /api/v1/devices/{imei}` with `{challenge_id, token, code}`."""
    method = body.method if body is not None else "code"
    try:
        started = await releases.start(owner, imei, client, method)
    except InvalidInput as exc:
        return invalid_input(exc)
    except RateLimited as exc:
        return rate_limited(exc)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no device {imei}") from None
    return JSONResponse({"challenge_id": started.challenge_id, "token": started.token,
                         "status": started.status,
                         "expires_at": started.expires_at.isoformat()}, status_code=202)


@router.delete("/devices/{imei}", status_code=200,
               responses={400: {"description": "any failure (generic)"},
                          404: {"description": "not your device"}})
async def release_device(
    imei: str, body: ReleaseIn, owner: Owner, releases: Releases, db: Db, client: ClientAddr
) -> JSONResponse:
    """Release your device, confirmed by the code of `POST .../release`: it becomes unclaimed;
    positions recorded while it was yours stay yours."""
    device = await one_device(db, owner, imei)
    if not device.current:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {imei} is no longer yours")
    try:
        await releases.confirm(owner, imei, body.challenge_id, body.token, body.code, client)
    except InvalidInput as exc:
        return invalid_input(exc)
    except Failure as exc:
        return failed(exc)
    return JSONResponse({"imei": device.imei, "state": "released"})


class TotpCodeIn(BaseModel):
    code: str


@router.get("/account")
async def account(owner: Owner) -> dict[str, Any]:
    return {"contact": owner.contact, "totp_enabled": owner.totp_enabled}


class TotpBeginIn(BaseModel):
    #: A current code of the app, when one is on already (replacing it).
    code: str | None = None


@router.post("/account/totp", response_model=None)
async def totp_enrol(
    owner: Owner, account: Account, client: ClientAddr, body: TotpBeginIn | None = None,
) -> dict[str, Any] | JSONResponse:
    """Start enrolling an authenticator app: scan `qr_svg` (or type `uri`), then confirm.
    Replacing an app that is on needs a current `code` from it (400 without)."""
    try:
        uri = await account.totp_begin(owner, body.code if body else None, client)
    except Failure as exc:
        return failed(exc)
    return {"uri": uri, "qr_svg": segno.make(uri).svg_inline(scale=4)}


@router.post("/account/totp/confirm")
async def totp_confirm(
    body: TotpCodeIn, owner: Owner, account: Account, client: ClientAddr
) -> JSONResponse:
    """The first code of the app turns it on (400 if it is wrong: scan again or retry)."""
    if not await account.totp_confirm(owner, body.code, client):
        return failed(Failure("wrong totp"))
    return JSONResponse({"totp_enabled": True})


@router.post("/account/totp/disable")
async def totp_disable(
    body: TotpCodeIn, owner: Owner, account: Account, client: ClientAddr
) -> JSONResponse:
    """Turn the app off with a current code from it (400 if it is wrong)."""
    if not await account.totp_disable(owner, body.code, client):
        return failed(Failure("wrong totp"))
    return JSONResponse({"totp_enabled": False})
