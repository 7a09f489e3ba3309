"""Shared pieces of the web layer: the activation service, the client's address, the signed-in
owner, and the answers for the activation errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from gateway.activation import ActivationService, Failure, InvalidInput, RateLimited
from gateway.activation.service import OwnerInfo

#: The owner's session cookie: HttpOnly, SameSite=Lax, Secure when activation.secure_cookies.
SESSION_COOKIE = "gw_session"

#: What every failed check answers: nothing about why (wrong, expired, used, capped...).
GENERIC_FAILURE = ("the code did not work: check it and try again, or ask for a new code "
                   "(a code works once, for a limited time)")


def service(request: Request) -> ActivationService:
    activation: ActivationService | None = request.app.state.gateway.activation
    if activation is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the gateway is starting")
    return activation


def client_addr(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


async def optional_owner(
    request: Request, activation: Annotated[ActivationService, Depends(service)]
) -> OwnerInfo | None:
    return await activation.owner_for_session(request.cookies.get(SESSION_COOKIE))


async def require_owner(
    owner: Annotated[OwnerInfo | None, Depends(optional_owner)],
) -> OwnerInfo:
    if owner is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "sign in first: POST /api/v1/sessions with your contact")
    return owner


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    secure = request.app.state.gateway.settings.activation.secure_cookies
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax", secure=secure,
        path="/")


def invalid_input(exc: InvalidInput) -> JSONResponse:
    return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=422)


def rate_limited(exc: RateLimited) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=429,
                        headers={"Retry-After": str(exc.retry_after)})


def failed(_exc: Failure) -> JSONResponse:
    return JSONResponse({"detail": GENERIC_FAILURE}, status_code=400)
