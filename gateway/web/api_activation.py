"""JSON API of claims and sign-ins: `/api/v1/activations` and `/api/v1/sessions`.

The shapes are a contract (issue 5): extend them, don't rename them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.activation import Failure, InvalidInput, RateLimited, SignedIn
from gateway.activation.engine import CodeEngine
from gateway.web.context import WebContext
from gateway.web.deps import (
    KNOWN_COOKIE,
    SESSION_COOKIE,
    Account,
    Claims,
    ClientAddr,
    Context,
    SignIn,
    failed,
    invalid_input,
    rate_limited,
    same_origin_json,
    set_session_cookie,
)

router = APIRouter(prefix="/api/v1", tags=["activation"],
                   dependencies=[Depends(same_origin_json)])


class ClaimIn(BaseModel):
    imei: str
    #: The claimant's e-mail address or phone number (E.164, `+...`): their account, unless
    #: a dealer registered a contact of record for the device (then that contact's account).
    contact: str
    #: The claim key printed on the device's label (`K7M2Q-9XHCD`), if it has one.
    claim_key: str | None = None


class StartedOut(BaseModel):
    activation_id: str
    token: str
    status: str
    expires_at: datetime


class StatusOut(BaseModel):
    status: Literal["awaiting_device_signal", "pending", "approved", "expired",
                    "max_attempts_reached", "canceled"]
    expires_at: datetime
    hint: str
    attempts_left: int
    #: `sent` once a code is due (whether it reached anyone is not shown: see
    #: docs/activation.md); null while waiting for the device or with an authenticator app.
    delivery: str | None


class VerifyIn(BaseModel):
    token: str
    code: str


class TokenIn(BaseModel):
    token: str


class DeviceRef(BaseModel):
    imei: str


class VerifiedOut(BaseModel):
    device: DeviceRef | None
    owner: str
    session_expires_at: datetime


class SessionIn(BaseModel):
    contact: str
    #: `code`: a code is sent to the contact; `totp`: the owner's authenticator app.
    method: Literal["code", "totp"] = "code"


class SessionStartedOut(BaseModel):
    session_id: str
    token: str
    expires_at: datetime


def _bearer(authorization: str | None) -> str:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return ""


def _signed_in(ctx: WebContext, signed: SignedIn) -> JSONResponse:
    body = VerifiedOut(
        device=DeviceRef(imei=signed.imei) if signed.imei else None, owner=signed.contact,
        session_expires_at=signed.session_expires_at)
    response = JSONResponse(body.model_dump(mode="json"))
    max_age = int((signed.session_expires_at - datetime.now(signed.session_expires_at.tzinfo))
                  .total_seconds())
    set_session_cookie(response, ctx, signed.session_token, max_age, signed.contact)
    return response


@router.post("/activations", status_code=202, response_model=StartedOut,
             responses={422: {"description": "malformed IMEI or contact"},
                        429: {"description": "rate limited (see Retry-After)"}})
async def start_activation(body: ClaimIn, claims: Claims, client: ClientAddr) -> JSONResponse:
    """Start claiming a device. Same answer whatever the device's state (unknown, unclaimed,
    owned, locked) and whether `claim_key` is right: the code goes to the device's contact of
    record, else to `contact` when `claim_key` is the device's; an owned or locked device, or
    one without any proof, never gets a code."""
    try:
        started = await claims.start(body.imei, body.contact, client, body.claim_key)
    except InvalidInput as exc:
        return invalid_input(exc)
    except RateLimited as exc:
        return rate_limited(exc)
    out = StartedOut(activation_id=started.challenge_id, token=started.token,
                     status=started.status, expires_at=started.expires_at)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.get("/activations/{activation_id}", response_model=StatusOut,
            responses={400: {"description": "unknown activation or wrong token"}})
async def activation_status(
    activation_id: str, ctx: Context,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Status of a claim, for the client that started it (`Authorization: Bearer <token>`)."""
    try:
        view = await ctx.activation.engine.status(activation_id, _bearer(authorization))
    except Failure as exc:
        return failed(exc)
    out = StatusOut(status=view.status, expires_at=view.expires_at,  # type: ignore[arg-type]
                    hint=view.hint, attempts_left=view.attempts_left, delivery=view.delivery)
    return JSONResponse(out.model_dump(mode="json"))


@router.post("/activations/{activation_id}/verify", response_model=VerifiedOut,
             responses={400: {"description": "any failure (generic)"}})
async def verify_activation(
    activation_id: str, body: VerifyIn, claims: Claims, client: ClientAddr, ctx: Context
) -> JSONResponse:
    """Check the code; on success the device belongs to the account of the contact the code
    was sent to, who is signed in (cookie)."""
    try:
        signed = await claims.verify(activation_id, body.token, body.code, client)
    except Failure as exc:
        return failed(exc)
    return _signed_in(ctx, signed)


@router.post("/activations/{activation_id}/resend", status_code=202,
             responses={400: {"description": "not pending or wrong token"},
                        429: {"description": "too soon or too many sends (see Retry-After)"}})
async def resend_activation(
    activation_id: str, body: TokenIn, ctx: Context, client: ClientAddr
) -> JSONResponse:
    """A new code; the previous one stops working and the attempts made still count."""
    return await _resend(ctx.activation.engine, activation_id, body.token, client)


async def _resend(
    engine: CodeEngine, challenge_id: str, token: str, client: str | None
) -> JSONResponse:
    try:
        started = await engine.resend(challenge_id, token, client)
    except RateLimited as exc:
        return rate_limited(exc)
    except Failure as exc:
        return failed(exc)
    return JSONResponse({"status": started.status,
                         "expires_at": started.expires_at.isoformat()}, status_code=202)


@router.post("/sessions", status_code=202, response_model=SessionStartedOut,
             responses={422: {"description": "malformed contact"},
                        429: {"description": "rate limited"}})
async def start_session(
    body: SessionIn, sign_in: SignIn, client: ClientAddr, request: Request,
) -> JSONResponse:
    """Sign in: a code is sent to the contact (same answer for unknown contacts), or with
    `method: "totp"` the code comes from the owner's authenticator app."""
    try:
        started = await sign_in.start(body.contact, client, body.method,
                                      request.cookies.get(KNOWN_COOKIE))
    except InvalidInput as exc:
        return invalid_input(exc)
    except RateLimited as exc:
        return rate_limited(exc)
    out = SessionStartedOut(session_id=started.challenge_id, token=started.token,
                            expires_at=started.expires_at)
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.post("/sessions/{session_id}/verify", response_model=VerifiedOut,
             responses={400: {"description": "any failure (generic)"}})
async def verify_session(
    session_id: str, body: VerifyIn, sign_in: SignIn, client: ClientAddr, ctx: Context
) -> JSONResponse:
    """Check the sign-in code; 200 with the session cookie."""
    try:
        signed = await sign_in.verify(session_id, body.token, body.code, client)
    except Failure as exc:
        return failed(exc)
    return _signed_in(ctx, signed)


@router.post("/sessions/{session_id}/resend", status_code=202)
async def resend_session(
    session_id: str, body: TokenIn, ctx: Context, client: ClientAddr
) -> JSONResponse:
    """A new sign-in code (same limits as activation resends)."""
    return await _resend(ctx.activation.engine, session_id, body.token, client)


@router.delete("/sessions/current", status_code=204, response_class=Response)
async def sign_out(request: Request, account: Account) -> Response:
    """Sign out: the session ends on the server too. (The browser keeps its `gw_known` mark.)"""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await account.end_session(token)
    response = Response(status_code=204)  # no body: a 204 carries none
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
