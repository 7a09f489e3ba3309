"""The device page's command forms: plain form posts (they work without JavaScript); an
engine stop or resume goes through a code page like a release."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from gateway.activation import Failure, InvalidInput, RateLimited
from gateway.outbound.commands import DANGEROUS, CommandRefused, Confirm, ConfirmationNeeded
from gateway.web.deps import GENERIC_FAILURE, Context, client_addr
from gateway.web.pages import (
    FLOW_COOKIE,
    MaybeOwner,
    _check_csrf,
    _flow_page,
    _flow_token,
    _need_owner,
    _redirect,
    _resend,
    _set_flow,
    render,
)

router = APIRouter(include_in_schema=False)

_ENGINE = frozenset(kind.value for kind in DANGEROUS)


@router.post("/devices/{imei}/commands", response_class=HTMLResponse)
async def command_form(
    imei: str, request: Request, ctx: Context, owner: MaybeOwner,
    type: Annotated[str, Form()] = "", interval_s: Annotated[str, Form()] = "",
    method: Annotated[str, Form()] = "code",
) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)

    def problem(message: str, status_code: int) -> HTMLResponse:
        return render(request, ctx, "message.html", status_code, owner=me,
                      title="Command not sent", message=message,
                      back=f"/devices/{imei}#commands")

    if ctx.commands is None:
        return problem("Commands are not available on this server.", 503)
    client = client_addr(request, ctx)
    if type in _ENGINE:
        try:
            started = await ctx.activation.confirmations.start(me, imei, type, client, method)
        except LookupError:
            return problem(f"You have no device {imei}.", 404)
        except (InvalidInput, RateLimited) as exc:
            return problem(exc.message, 400)
        response = _redirect(f"/devices/{imei}/engine/{started.challenge_id}")
        _set_flow(ctx, response, started)
        return response
    interval = None
    if type == "report_interval":
        try:
            interval = int(interval_s.strip())
        except ValueError:
            return problem("Enter the report interval in whole seconds.", 422)
    try:
        info = await ctx.commands.queue_for_owner(me, imei, type, interval, confirm=None,
                                                  client_addr=client)
    except LookupError:
        return problem(f"You have no device {imei}.", 404)
    except (CommandRefused, ConfirmationNeeded) as exc:
        return problem(exc.message, 422)
    except RateLimited as exc:
        return problem(exc.message, 429)
    return _redirect(f"/devices/{imei}?command={info.id}#commands")


@router.get("/devices/{imei}/engine/{challenge_id}", response_class=HTMLResponse)
async def engine_page(
    imei: str, challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    _need_owner(owner)
    return await _flow_page(request, ctx, owner, challenge_id, "engine", imei=imei)


@router.post("/devices/{imei}/engine/{challenge_id}", response_class=HTMLResponse)
async def engine_confirm(
    imei: str, challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner,
    code: Annotated[str, Form()] = "",
) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)
    token = _flow_token(request, challenge_id) or ""
    try:
        row = await ctx.activation.engine.load(challenge_id, token)
        if ctx.commands is None or row.purpose not in _ENGINE:
            raise Failure("not an engine command")
        info = await ctx.commands.queue_for_owner(
            me, imei, row.purpose, None, confirm=Confirm(challenge_id, token, code.strip()),
            client_addr=client_addr(request, ctx))
    except (Failure, InvalidInput, LookupError, CommandRefused, ConfirmationNeeded,
            RateLimited):
        return await _flow_page(request, ctx, owner, challenge_id, "engine",
                                GENERIC_FAILURE, 400, imei)
    response = _redirect(f"/devices/{imei}?command={info.id}#commands")
    response.delete_cookie(FLOW_COOKIE, path="/")
    return response


@router.post("/devices/{imei}/engine/{challenge_id}/resend", response_class=HTMLResponse)
async def engine_resend(
    imei: str, challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    return await _resend(request, ctx, owner, challenge_id, "engine", imei)
