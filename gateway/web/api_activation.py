"""JSON API of claims and sign-ins: `/api/v1/activations` and `/api/v1/sessions`.

The shapes are a contract (issue 5): extend them, don't rename them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.activation import ActivationService, Failure, InvalidInput, RateLimited
from gateway.activation.service import SignedIn
from gateway.web.deps import (
    SESSION_COOKIE,
    client_addr,
    failed,
    invalid_input,
    rate_limited,
    service,
    set_session_cookie,
)

router = APIRouter(prefix="/api/v1", tags=["activation"])

Service = Annotated[ActivationService, Depends(service)]


class ClaimIn(BaseModel):
    imei: str
    #: The claimant's e-mail address or phone number (E.164, `+...`): their account.
    contact: str


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
    #: Delivery of the last code: sending, sent or failed (then `hint` says what to do).
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


def _signed_in(request: Request, signed: SignedIn) -> JSONResponse:
    body = VerifiedOut(
        device=DeviceRef(imei=signed.imei) if signed.imei else None, owner=signed.contact,
        session_expires_at=signed.session_expires_at)
    response = JSONResponse(body.model_dump(mode="json"))
    max_age = int((signed.session_expires_at - datetime.now(signed.session_expires_at.tzinfo))
                  .total_seconds())
    set_session_cookie(response, request, signed.session_token, max_age)
    return response


@router.post("/activations", status_code=202, response_model=StartedOut,
             responses={422: {"description": "malformed IMEI or contact"},
                        429: {"description": "rate limited (see Retry-After)"}})
async def start_activation(body: ClaimIn, request: Request, activation: Service) -> JSONResponse:
    """Start claiming a device. Same answer whatever the device's state (unknown, unclaimed,
    owned, locked): the code goes to the device's contact of record, or to `contact` once the
    device's SOS signal arrived; an owned or locked device never gets a code."""
    try:
        started = await activation.start_claim(body.imei, body.contact, client_addr(request))
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
    activation_id: str, activation: Service,
    authorization: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Status of a claim, for the client that started it (`Authorization: Bearer <token>`)."""
    try:
        view = await activation.status(activation_id, _bearer(authorization))
    except Failure as exc:
        return failed(exc)
    out = StatusOut(status=view.status, expires_at=view.expires_at,  # type: ignore[arg-type]
                    hint=view.hint, attempts_left=view.attempts_left, delivery=view.delivery)
    return JSONResponse(out.model_dump(mode="json"))


@router.post("/activations/{activation_id}/verify", response_model=VerifiedOut,
             responses={400: {"description": "any failure (generic)"}})
async def verify_activation(
    activation_id: str, body: VerifyIn, request: Request, activation: Service
) -> JSONResponse:
    """Check the code; on success the device is the claimant's and they are signed in (cookie)."""
    try:
        signed = await activation.verify_claim(activation_id, body.token, body.code,
                                               client_addr(request))
    except Failure as exc:
        return failed(exc)
    return _signed_in(request, signed)


@router.post("/activations/{activation_id}/resend", status_code=202,
             responses={400: {"description": "not pending or wrong token"},
                        429: {"description": "too soon or too many sends (see Retry-After)"}})
async def resend_activation(
    activation_id: str, body: TokenIn, request: Request, activation: Service
) -> JSONResponse:
    """A new code; the previous one stops working and the attempts made still count."""
    return await _resend(activation, activation_id, body.token, request)


async def _resend(
    activation: ActivationService, challenge_id: str, token: str, request: Request
) -> JSONResponse:
    try:
        started = await activation.resend(challenge_id, token, client_addr(request))
    except RateLimited as exc:
        return rate_limited(exc)
    except Failure as exc:
        return failed(exc)
    return JSONResponse({"status": started.status,
                         "expires_at": started.expires_at.isoformat()}, status_code=202)


@router.post("/sessions", status_code=202, response_model=SessionStartedOut,
             responses={422: {"description": "malformed contact"},
                        429: {"description": "rate limited"}})
async def start_session(body: SessionIn, request: Request, activation: Service) -> JSONResponse:
    """Sign in: a code is sent to the contact (same answer for unknown contacts), or with
    `method: "totp"` the code comes from the owner's authenticator app."""
    try:
        started = await activation.start_sign_in(body.contact, client_addr(request),
                                                 body.method)
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
    session_id: str, body: VerifyIn, request: Request, activation: Service
) -> JSONResponse:
    """Check the sign-in code; 200 with the session cookie."""
    try:
        signed = await activation.verify_sign_in(session_id, body.token, body.code,
                                                 client_addr(request))
    except Failure as exc:
        return failed(exc)
    return _signed_in(request, signed)


@router.post("/sessions/{session_id}/resend", status_code=202)
async def resend_session(
    session_id: str, body: TokenIn, request: Request, activation: Service
) -> JSONResponse:
    """A new sign-in code (same limits as activation resends)."""
    return await _resend(activation, session_id, body.token, request)


@router.delete("/sessions/current", status_code=204)
async def sign_out(request: Request, activation: Service) -> JSONResponse:
    """Sign out: the session ends on the server too."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await activation.end_session(token)
    response = JSONResponse(None, status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
