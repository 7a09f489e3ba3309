"""Server-rendered pages (Jinja2): claim, sign in, my devices, release, account.

They work without JavaScript (forms, redirects, a refresh while waiting for the device) and are
nicer with it (`static/app.js` polls the status and counts down). Every form carries a CSRF
token: HMAC(server key, a random HttpOnly SameSite=Strict cookie), checked on every POST. The
client's challenge token lives in an HttpOnly cookie (`gw_flow`), never in the page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.activation import Failure, InvalidInput, OwnerInfo, RateLimited, SignedIn, Started
from gateway.store.owned import owned_devices, owner_positions
from gateway.web.api_owner import device_out
from gateway.web.context import WebContext
from gateway.web.deps import (
    GENERIC_FAILURE,
    KNOWN_COOKIE,
    SESSION_COOKIE,
    Context,
    client_addr,
    optional_owner,
    set_session_cookie,
)
from gateway.web.device_commands import device_commands_and_alarms

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
CSRF_COOKIE = "gw_csrf"
FLOW_COOKIE = "gw_flow"

router = APIRouter(include_in_schema=False)

MaybeOwner = Annotated[OwnerInfo | None, Depends(optional_owner)]


# CSRF ---------------------------------------------------------------------------------------

def _csrf_for(ctx: WebContext, cookie: str) -> str:
    return hmac.new(ctx.activation.key, f"csrf:{cookie}".encode(), hashlib.sha256).hexdigest()


def _csrf_cookie(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a new one (True: it must be set on the response)."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if cookie and len(cookie) >= 32:
        return cookie, False
    return secrets.token_urlsafe(32), True


async def _check_csrf(request: Request, ctx: WebContext) -> None:
    form = await request.form()
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = str(form.get("csrf", ""))
    if not cookie or not hmac.compare_digest(given.encode(),
                                             _csrf_for(ctx, cookie).encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            "this form has expired: go back, reload the page and submit again")


def render(
    request: Request, ctx: WebContext, template: str, status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    cookie, new = _csrf_cookie(request)
    context.setdefault("owner", None)
    response = TEMPLATES.TemplateResponse(
        request, template, {"csrf": _csrf_for(ctx, cookie), **context},
        status_code=status_code)
    if new:
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/",
                            secure=ctx.secure_cookies)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def _set_flow(ctx: WebContext, response: Response, started: Started) -> None:
    response.set_cookie(
        FLOW_COOKIE, f"{started.challenge_id}.{started.token}", max_age=3600, httponly=True,
        samesite="lax", path="/",
        secure=ctx.secure_cookies)


def _flow_token(request: Request, challenge_id: str) -> str | None:
    value = request.cookies.get(FLOW_COOKIE, "")
    flow_id, _, token = value.partition(".")
    return token if flow_id == challenge_id and token else None


def _signed_in(ctx: WebContext, signed: SignedIn, to: str) -> RedirectResponse:
    response = _redirect(to)
    max_age = int((signed.session_expires_at - datetime.now(UTC)).total_seconds())
    set_session_cookie(response, ctx, signed.session_token, max_age, signed.contact)
    response.delete_cookie(FLOW_COOKIE, path="/")
    return response


# Home ---------------------------------------------------------------------------------------

@router.get("/", response_class=HTMLResponse)
async def home(request: Request, ctx: Context, owner: MaybeOwner) -> HTMLResponse:
    return render(request, ctx, "home.html", owner=owner)


# Claim --------------------------------------------------------------------------------------

@router.get("/claim", response_class=HTMLResponse)
async def claim_form(
    request: Request, ctx: Context, owner: MaybeOwner, imei: str = "", key: str = "",
) -> HTMLResponse:
    """The claim form; a label's QR code opens it filled in (`/claim?imei=...&key=...`)."""
    return render(request, ctx, "claim.html", owner=owner, imei=imei[:20], claim_key=key[:40],
                  contact=owner.contact if owner else "", errors={})


@router.post("/claim", response_class=HTMLResponse)
async def claim_start(
    request: Request, ctx: Context, owner: MaybeOwner,
    imei: Annotated[str, Form()] = "", contact: Annotated[str, Form()] = "",
    claim_key: Annotated[str, Form()] = "",
) -> Response:
    await _check_csrf(request, ctx)
    again = {"owner": owner, "imei": imei, "contact": contact, "claim_key": claim_key}
    try:
        started = await ctx.activation.claims.start(imei, contact, client_addr(request, ctx),
                                                    claim_key)
    except InvalidInput as exc:
        return render(request, ctx, "claim.html", 422, errors=exc.errors, **again)
    except RateLimited as exc:
        response = render(request, ctx, "claim.html", 429, errors={"form": exc.message},
                          **again)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = _redirect(f"/claim/{started.challenge_id}")
    _set_flow(ctx, response, started)
    return response


async def _flow_page(
    request: Request, ctx: WebContext, owner: OwnerInfo | None,
    challenge_id: str, kind: str, error: str | None = None, status_code: int = 200,
    imei: str | None = None,
) -> HTMLResponse:
    token = _flow_token(request, challenge_id)
    view = None
    if token is not None:
        try:
            view = await ctx.activation.engine.status(challenge_id, token)
        except Failure:
            view = None
    base = {"claim": f"/claim/{challenge_id}", "signin": f"/signin/{challenge_id}",
            "release": f"/devices/{imei}/release/{challenge_id}",
            "engine": f"/devices/{imei}/engine/{challenge_id}"}[kind]
    return render(request, ctx, "flow.html", status_code, owner=owner, view=view,
                  kind=kind, base=base, error=error, imei=imei)


@router.get("/claim/{challenge_id}", response_class=HTMLResponse)
async def claim_page(
    challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> HTMLResponse:
    return await _flow_page(request, ctx, owner, challenge_id, "claim")


@router.get("/flow/{challenge_id}/status")
async def flow_status(challenge_id: str, request: Request, ctx: Context) -> JSONResponse:
    """The status for the page's script (the token is in the HttpOnly flow cookie)."""
    token = _flow_token(request, challenge_id)
    try:
        view = await ctx.activation.engine.status(challenge_id, token or "")
    except Failure:
        return JSONResponse({"detail": "start again"}, status_code=400)
    return JSONResponse({"status": view.status, "hint": view.hint,
                         "attempts_left": view.attempts_left,
                         "expires_at": view.expires_at.isoformat()})


@router.post("/claim/{challenge_id}/verify", response_class=HTMLResponse)
async def claim_verify(
    challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner,
    code: Annotated[str, Form()] = "",
) -> Response:
    return await _verify(request, ctx, owner, challenge_id, "claim", code,
                         ctx.activation.claims.verify, "/devices/{imei}?claimed=1")


@router.post("/claim/{challenge_id}/resend", response_class=HTMLResponse)
async def claim_resend(
    challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    return await _resend(request, ctx, owner, challenge_id, "claim")


async def _resend(
    request: Request, ctx: WebContext, owner: OwnerInfo | None,
    challenge_id: str, kind: str, imei: str | None = None,
) -> Response:
    await _check_csrf(request, ctx)
    token = _flow_token(request, challenge_id) or ""
    try:
        await ctx.activation.engine.resend(challenge_id, token, client_addr(request, ctx))
    except RateLimited as exc:
        return await _flow_page(request, ctx, owner, challenge_id, kind,
                                f"Please wait: {exc.message} (about {exc.retry_after} s).", 429,
                                imei)
    except Failure:
        return await _flow_page(request, ctx, owner, challenge_id, kind,
                                "A new code cannot be sent for this request: start again.",
                                400, imei)
    base = (f"/devices/{imei}/{kind}/{challenge_id}" if kind in ("release", "engine")
            else f"/{kind}/{challenge_id}")
    return _redirect(f"{base}?resent=1")


# Sign in ------------------------------------------------------------------------------------

@router.get("/signin", response_class=HTMLResponse)
async def signin_form(request: Request, ctx: Context, owner: MaybeOwner) -> HTMLResponse:
    return render(request, ctx, "signin.html", owner=owner, contact="", errors={})


@router.post("/signin", response_class=HTMLResponse)
async def signin_start(
    request: Request, ctx: Context, owner: MaybeOwner,
    contact: Annotated[str, Form()] = "", method: Annotated[str, Form()] = "code",
) -> Response:
    await _check_csrf(request, ctx)
    try:
        started = await ctx.activation.sign_in.start(contact, client_addr(request, ctx), method,
                                                     request.cookies.get(KNOWN_COOKIE))
    except InvalidInput as exc:
        return render(request, ctx, "signin.html", 422, owner=owner, contact=contact,
                      errors={exc.field: exc.message})
    except RateLimited as exc:
        return render(request, ctx, "signin.html", 429, owner=owner, contact=contact,
                      errors={"form": exc.message})
    response = _redirect(f"/signin/{started.challenge_id}")
    _set_flow(ctx, response, started)
    return response


@router.get("/signin/{challenge_id}", response_class=HTMLResponse)
async def signin_page(
    challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> HTMLResponse:
    return await _flow_page(request, ctx, owner, challenge_id, "signin")


@router.post("/signin/{challenge_id}/verify", response_class=HTMLResponse)
async def signin_verify(
    challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner,
    code: Annotated[str, Form()] = "",
) -> Response:
    return await _verify(request, ctx, owner, challenge_id, "signin", code,
                         ctx.activation.sign_in.verify, "/devices")


async def _verify(
    request: Request, ctx: WebContext, owner: OwnerInfo | None,
    challenge_id: str, kind: str, code: str,
    verify: Callable[[str, str, str, str | None], Awaitable[SignedIn]], next_url: str,
) -> Response:
    """Check a code typed into a claim or sign-in page; sign in and go to `next_url`
    (`{imei}` is filled in), or show the page again with the generic failure."""
    await _check_csrf(request, ctx)
    token = _flow_token(request, challenge_id) or ""
    try:
        signed = await verify(challenge_id, token, code.strip(), client_addr(request, ctx))
    except Failure:
        return await _flow_page(request, ctx, owner, challenge_id, kind,
                                GENERIC_FAILURE, 400)
    return _signed_in(ctx, signed, next_url.format(imei=signed.imei))


@router.post("/signin/{challenge_id}/resend", response_class=HTMLResponse)
async def signin_resend(
    challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    return await _resend(request, ctx, owner, challenge_id, "signin")


@router.post("/signout")
async def signout(request: Request, ctx: Context) -> Response:
    await _check_csrf(request, ctx)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await ctx.activation.account.end_session(token)
    response = _redirect("/")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# My devices ---------------------------------------------------------------------------------

def _need_owner(owner: OwnerInfo | None) -> OwnerInfo:
    if owner is None:
        raise _SignInFirst()
    return owner


class _SignInFirst(Exception):
    """Redirect to the sign-in page."""


@router.get("/devices", response_class=HTMLResponse)
async def devices_page(request: Request, ctx: Context, owner: MaybeOwner) -> Response:
    me = _need_owner(owner)
    devices = [device_out(ctx, d) for d in await owned_devices(ctx.db, me.id)]
    return render(request, ctx, "devices.html", owner=me, devices=devices)


@router.get("/devices/{imei}", response_class=HTMLResponse)
async def device_page(
    imei: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    me = _need_owner(owner)
    found = await owned_devices(ctx.db, me.id, imei)
    if not found:
        return render(request, ctx, "message.html", 404, owner=me,
                      title="Device not found",
                      message=f"You have no device {imei}. Claim it first.")
    device = found[0]
    positions = await owner_positions(ctx.db, device.binding_ids, limit=200,
                                      newest_first=True)
    return render(request, ctx, "device.html", owner=me,
                  device=device_out(ctx, device), positions=positions,
                  track=_track(positions), web=ctx.web,
                  claimed=request.query_params.get("claimed"),
                  **await device_commands_and_alarms(request, ctx, device))


def _track(positions: list[Any]) -> list[dict[str, Any]]:
    """The positions for the map (static/device.js), oldest first."""
    return [{"fix_time": p.fix_time.isoformat(), "lat": p.lat, "lon": p.lon,
             "speed_kmh": p.speed_kmh, "valid": p.valid} for p in reversed(positions)]


@router.post("/devices/{imei}/release", response_class=HTMLResponse)
async def release_start(
    imei: str, request: Request, ctx: Context, owner: MaybeOwner,
    method: Annotated[str, Form()] = "code",
) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)
    try:
        started = await ctx.activation.releases.start(me, imei, client_addr(request, ctx), method)
    except (LookupError, InvalidInput, RateLimited) as exc:
        message = getattr(exc, "message", None) or f"You have no device {imei}."
        return render(request, ctx, "message.html", 400, owner=me,
                      title="Cannot release", message=message)
    response = _redirect(f"/devices/{imei}/release/{started.challenge_id}")
    _set_flow(ctx, response, started)
    return response


@router.get("/devices/{imei}/release/{challenge_id}", response_class=HTMLResponse)
async def release_page(
    imei: str, challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    _need_owner(owner)
    return await _flow_page(request, ctx, owner, challenge_id, "release", imei=imei)


@router.post("/devices/{imei}/release/{challenge_id}", response_class=HTMLResponse)
async def release_confirm(
    imei: str, challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner,
    code: Annotated[str, Form()] = "",
) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)
    token = _flow_token(request, challenge_id) or ""
    try:
        await ctx.activation.releases.confirm(me, imei, challenge_id, token, code.strip(),
                                 client_addr(request, ctx))
    except (Failure, InvalidInput):
        return await _flow_page(request, ctx, owner, challenge_id, "release",
                                GENERIC_FAILURE, 400, imei)
    response = _redirect("/devices?released=" + imei)
    response.delete_cookie(FLOW_COOKIE, path="/")
    return response


@router.post("/devices/{imei}/release/{challenge_id}/resend", response_class=HTMLResponse)
async def release_resend(
    imei: str, challenge_id: str, request: Request, ctx: Context, owner: MaybeOwner
) -> Response:
    return await _resend(request, ctx, owner, challenge_id, "release", imei)


# Account ------------------------------------------------------------------------------------

@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, ctx: Context, owner: MaybeOwner) -> Response:
    me = _need_owner(owner)
    return render(request, ctx, "account.html", owner=me, qr=None, uri=None, error=None)


@router.post("/account/totp", response_class=HTMLResponse)
async def account_totp(request: Request, ctx: Context, owner: MaybeOwner) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)
    try:
        uri = await ctx.activation.account.totp_begin(me, None, client_addr(request, ctx))
    except Failure:
        return render(request, ctx, "account.html", 400, owner=me, qr=None, uri=None,
                      error="Your authenticator app is on: turn it off first with a code "
                            "from it, then set up the new one.")
    qr = segno.make(uri).svg_inline(scale=5, title="QR code for your authenticator app")
    return render(request, ctx, "account.html", owner=me, qr=qr, uri=uri, error=None)


@router.post("/account/totp/confirm", response_class=HTMLResponse)
async def account_totp_confirm(
    request: Request, ctx: Context, owner: MaybeOwner, code: Annotated[str, Form()] = "",
) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)
    if not await ctx.activation.account.totp_confirm(me, code.strip(), client_addr(request, ctx)):
        return render(request, ctx, "account.html", 400, owner=me, qr=None, uri=None,
                      error="That code did not match: scan the QR code again and enter the "
                            "code your app shows now.")
    return _redirect("/account?enabled=1")


@router.post("/account/totp/disable", response_class=HTMLResponse)
async def account_totp_disable(
    request: Request, ctx: Context, owner: MaybeOwner, code: Annotated[str, Form()] = "",
) -> Response:
    await _check_csrf(request, ctx)
    me = _need_owner(owner)
    if not await ctx.activation.account.totp_disable(me, code.strip(),
                                                     client_addr(request, ctx)):
        return render(request, ctx, "account.html", 400, owner=me, qr=None, uri=None,
                      error="That code did not match: enter the code your app shows now. "
                            "Lost the app? Sign in with a code sent to you instead; it keeps "
                            "working while the app is on.")
    return _redirect("/account")


def install(app: Any) -> None:
    """Add the pages, their static files and the sign-in redirect to `app`."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")),
              name="static")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        """Browsers ask for it whatever the pages link: the same icon (no 404 in the console)."""
        return Response((Path(__file__).parent / "static" / "favicon.svg").read_bytes(),
                        media_type="image/svg+xml",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.exception_handler(_SignInFirst)
    async def sign_in_first(_request: Request, _exc: _SignInFirst) -> Response:
        return _redirect("/signin")
