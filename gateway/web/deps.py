"""Typed dependencies of the web layer: the context the gateway handed over, the activation
flows, the client's address, the signed-in owner, the same-origin check of JSON writes, and the
answers for the activation errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response

from gateway.activation import Failure, InvalidInput, OwnerInfo, RateLimited
from gateway.activation.account import AccountFlow
from gateway.activation.claims import ClaimFlow
from gateway.activation.provisioning import Provisioning
from gateway.activation.releases import ReleaseFlow
from gateway.activation.signin import SignInFlow
from gateway.store.database import Database
from gateway.web.context import WebContext

#: The owner's session cookie: HttpOnly, SameSite=Lax, Secure unless served on plain-http
#: loopback (`WebContext.secure_cookies`).
SESSION_COOKIE = "gw_session"
#: Kept by a browser that signed in (400 days): its later sign-in codes are counted apart from
#: the ones anybody can ask for the contact (`SignInFlow.start`).
KNOWN_COOKIE = "gw_known"

#: What every failed check answers: nothing about why (wrong, expired, used, capped...).
GENERIC_FAILURE = ("the code did not work: check it and try again, or ask for a new code "
                   "(a code works once, for a limited time)")

_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def context(request: Request) -> WebContext:
    """The one place that reads the app's state: everything else depends on this."""
    ctx: WebContext = request.app.state.context
    return ctx


Context = Annotated[WebContext, Depends(context)]


def claims(ctx: Context) -> ClaimFlow:
    return ctx.activation.claims


def sign_in(ctx: Context) -> SignInFlow:
    return ctx.activation.sign_in


def releases(ctx: Context) -> ReleaseFlow:
    return ctx.activation.releases


def account(ctx: Context) -> AccountFlow:
    return ctx.activation.account


def provisioning(ctx: Context) -> Provisioning:
    return ctx.activation.provisioning


def database(ctx: Context) -> Database:
    return ctx.db


Claims = Annotated[ClaimFlow, Depends(claims)]
SignIn = Annotated[SignInFlow, Depends(sign_in)]
Releases = Annotated[ReleaseFlow, Depends(releases)]
Account = Annotated[AccountFlow, Depends(account)]
Provision = Annotated[Provisioning, Depends(provisioning)]
Db = Annotated[Database, Depends(database)]


def client_addr(request: Request, ctx: Context) -> str | None:
    """The client's address (rule 27): the TCP peer, unless the peer is a trusted proxy; then
    the nearest address in X-Forwarded-For that is not a trusted proxy itself."""
    peer = request.client.host if request.client is not None else None
    if peer is None or not ctx.is_trusted_proxy(peer):
        return peer
    hops = [hop.strip() for value in request.headers.getlist("x-forwarded-for")
            for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not ctx.is_trusted_proxy(hop):
            return hop[:64]
    return hops[0][:64] if hops else peer


ClientAddr = Annotated[str | None, Depends(client_addr)]


async def optional_owner(request: Request, account: Account) -> OwnerInfo | None:
    return await account.owner_for_session(request.cookies.get(SESSION_COOKIE))


async def require_owner(
    owner: Annotated[OwnerInfo | None, Depends(optional_owner)],
) -> OwnerInfo:
    if owner is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "sign in first: POST /api/v1/sessions with your contact")
    return owner


def same_origin_json(request: Request, ctx: Context) -> None:
    """CSRF defence of the JSON API (rule 29), whose writes a session cookie authenticates.

    A write must carry a JSON body (a cross-site form cannot send one, and a cross-site script
    cannot without a CORS preflight this app never answers), and a browser's Origin and
    Sec-Fetch-Site, when sent, must say the request comes from this site.
    """
    if request.method not in _WRITES:
        return
    has_body = request.method != "DELETE" or request.headers.get("content-length", "0") != "0"
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if has_body and not (kind == "application/json" or kind.endswith("+json")):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                            "send the request body as JSON (Content-Type: application/json)")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            f"cross-site request refused (Sec-Fetch-Site: {fetch_site[:20]})")
    origin = request.headers.get("origin")
    if origin is not None:
        own = {ctx.public_origin}
        host = request.headers.get("host")
        if host:
            own.add(f"{request.url.scheme}://{host}".lower())
        if origin.lower() not in own:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                "cross-site request refused: Origin is not this site")


def set_session_cookie(response: Response, ctx: WebContext, token: str, max_age: int,
                       contact: str | None = None) -> None:
    """The session cookie and, with `contact`, the mark of a browser that signed in as it."""
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age, httponly=True, samesite="lax",
        secure=ctx.secure_cookies, path="/")
    if contact is not None:
        response.set_cookie(
            KNOWN_COOKIE, ctx.activation.sign_in.known_mark(contact), max_age=400 * 86400,
            httponly=True, samesite="lax", secure=ctx.secure_cookies, path="/")


def invalid_input(exc: InvalidInput) -> JSONResponse:
    """422 naming the first wrong field (`detail`, `field`) and every one (`errors`)."""
    return JSONResponse({"detail": exc.message, "field": exc.field, "errors": exc.errors},
                        status_code=422)


def rate_limited(exc: RateLimited) -> JSONResponse:
    return JSONResponse({"detail": exc.message}, status_code=429,
                        headers={"Retry-After": str(exc.retry_after)})


def failed(_exc: Failure) -> JSONResponse:
    return JSONResponse({"detail": GENERIC_FAILURE}, status_code=400)
