"""JSON API of a signed-in owner for their device's commands and alarms.

* `POST /api/v1/devices/{imei}/commands` `{type, params}`: queue a command (202);
  `GET .../commands`: the recent ones with their status and the types the device can do.
* An engine stop or resume first needs `POST .../commands/confirmations` `{type}`: a fresh
  code is sent to the owner (or they use their authenticator app); the command is then posted
  with `"confirm": {challenge_id, token, code}`.
* `GET /api/v1/devices/{imei}/alarms`: the alarms recorded while the device was the owner's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.activation import Failure, InvalidInput, OwnerInfo, RateLimited
from gateway.outbound.commands import (
    DANGEROUS,
    CommandRefused,
    CommandService,
    Confirm,
    ConfirmationNeeded,
    supported_types,
    utcnow,
)
from gateway.store import commands as command_store
from gateway.store.commands import CommandInfo
from gateway.store.owned import owner_alarms
from gateway.web.api_owner import one_device
from gateway.web.deps import (
    ClientAddr,
    Context,
    Db,
    failed,
    invalid_input,
    rate_limited,
    require_owner,
    same_origin_json,
)

router = APIRouter(prefix="/api/v1", tags=["owner"], dependencies=[Depends(same_origin_json)])

Owner = Annotated[OwnerInfo, Depends(require_owner)]


def command_service(ctx: Context) -> CommandService:
    if ctx.commands is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "commands are not available on this server")
    return ctx.commands


Commands = Annotated[CommandService, Depends(command_service)]


class CommandParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: `report_interval`: seconds between reports (0 stops periodic reports where the
    #: protocol can say so).
    interval_s: int | None = Field(None, ge=0, le=2_000_000_000)


class ConfirmIn(BaseModel):
    """The code confirming an engine command (from `POST .../commands/confirmations`)."""

    challenge_id: str = Field(max_length=64)
    token: str = Field(max_length=128)
    code: str = Field(max_length=16)


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: position_single, report_interval, engine_stop, engine_resume or reboot (those the
    #: device's protocol can do: `GET .../commands` lists them).
    type: str = Field(max_length=40)
    params: CommandParams = CommandParams()
    #: Required for engine_stop and engine_resume.
    confirm: ConfirmIn | None = None


class CommandOut(BaseModel):
    id: int
    type: str
    params: dict[str, int]
    #: queued, sent, acknowledged, failed or expired.
    status: str
    #: owner, admin or cli.
    requested_by: str
    created_at: datetime
    expires_at: datetime
    sent_at: datetime | None
    answered_at: datetime | None
    #: The device's answer, or why the command failed.
    result: str | None


class ConfirmationIn(BaseModel):
    type: Literal["engine_stop", "engine_resume"]
    #: `code`: a code is sent to you; `totp`: your authenticator app.
    method: Literal["code", "totp"] = "code"


class AlarmOut(BaseModel):
    alarm_type: str
    raw_code: str
    event_time: datetime
    received_at: datetime
    lat: float | None
    lon: float | None


def command_out(info: CommandInfo) -> CommandOut:
    return CommandOut(
        id=info.id, type=info.type,
        params={} if info.interval_s is None else {"interval_s": info.interval_s},
        status=info.status, requested_by=info.requested_by, created_at=info.created_at,
        expires_at=info.expires_at, sent_at=info.sent_at, answered_at=info.answered_at,
        result=info.result)


def refused(exc: CommandRefused) -> JSONResponse:
    return JSONResponse({"detail": exc.message, "field": exc.field, "supported": exc.supported},
                        status_code=422)


@router.get("/devices/{imei}/commands")
async def list_commands(
    imei: str, owner: Owner, db: Db, limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    """Commands of your device, newest first (those asked while it was yours), and the types
    it can do (`supported`; `confirm` lists those that need a fresh code)."""
    device = await one_device(db, owner, imei)
    commands = await command_store.commands_of_bindings(
        db, device.binding_ids, limit=limit, now=utcnow())
    supported = supported_types(device.protocol)
    return {"imei": device.imei, "supported": supported,
            "confirm": [t.value for t in DANGEROUS if t.value in supported],
            "commands": [command_out(c) for c in commands]}


@router.post("/devices/{imei}/commands", status_code=202,
             responses={400: {"description": "wrong confirmation code (generic)"},
                        403: {"description": "engine command without a fresh code"},
                        404: {"description": "not your device"},
                        422: {"description": "a type or interval the device cannot do"}})
async def send_command(
    imei: str, body: CommandIn, owner: Owner, commands: Commands, client: ClientAddr,
) -> JSONResponse:
    """Queue a command for your device: it is sent at once when the device is connected,
    else when it connects (until `commands.ttl_s`). Follow its status with `GET`."""
    confirm = None
    if body.confirm is not None:
        confirm = Confirm(body.confirm.challenge_id, body.confirm.token, body.confirm.code)
    try:
        info = await commands.queue_for_owner(owner, imei, body.type, body.params.interval_s,
                                              confirm=confirm, client_addr=client)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no device {imei}") from None
    except CommandRefused as exc:
        return refused(exc)
    except ConfirmationNeeded as exc:
        return JSONResponse({"detail": exc.message.replace("{imei}", imei)}, status_code=403)
    except InvalidInput as exc:
        return invalid_input(exc)
    except RateLimited as exc:
        return rate_limited(exc)
    except Failure as exc:
        return failed(exc)
    return JSONResponse(command_out(info).model_dump(mode="json"), status_code=202)


@router.post("/devices/{imei}/commands/confirmations", status_code=202,
             responses={404: {"description": "not your device"}})
async def confirm_command(
    imei: str, body: ConfirmationIn, owner: Owner, ctx: Context, db: Db, client: ClientAddr,
) -> JSONResponse:
    """Step 1 of an engine stop or resume: a fresh code is sent to you (or use your
    authenticator app). Then post the command with `"confirm": {challenge_id, token, code}`."""
    device = await one_device(db, owner, imei)
    supported = supported_types(device.protocol)
    if body.type not in supported:
        return refused(CommandRefused(
            "type", f"{device.protocol} devices cannot do {body.type}; they take: "
            f"{', '.join(supported)}", supported))
    try:
        started = await ctx.activation.confirmations.start(owner, imei, body.type, client,
                                                           body.method)
    except InvalidInput as exc:
        return invalid_input(exc)
    except RateLimited as exc:
        return rate_limited(exc)
    except LookupError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"you have no device {imei}") from None
    return JSONResponse({"challenge_id": started.challenge_id, "token": started.token,
                         "status": started.status,
                         "expires_at": started.expires_at.isoformat()}, status_code=202)


@router.get("/devices/{imei}/alarms")
async def list_alarms(
    imei: str, owner: Owner, db: Db, since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Alarms your device reported while it was yours (SOS, low battery, ...), newest first."""
    device = await one_device(db, owner, imei)
    alarms = await owner_alarms(db, device.binding_ids, since=since, limit=limit)
    return {"imei": device.imei, "alarms": [
        AlarmOut(alarm_type=a.alarm_type, raw_code=a.raw_code, event_time=a.event_time,
                 received_at=a.received_at, lat=a.lat, lon=a.lon) for a in alarms]}
