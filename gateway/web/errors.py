"""Error answers in the form the client reads: an HTML page for a browser, JSON for the rest.

A browser that follows a stale link or a mistyped address gets a page of the site (with its
navigation), not `{"detail": "Not Found"}`. The API (`/api/...`), `/openapi.json`, the health
and metrics endpoints, and every client that does not ask for HTML keep FastAPI's JSON.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from gateway.activation import OwnerInfo
from gateway.web.deps import SESSION_COOKIE
from gateway.web.pages import render

log = logging.getLogger("gateway.web")

#: Paths whose answers are JSON (or text) whatever the client accepts.
_MACHINE_PREFIXES = ("/api/", "/openapi.json", "/healthz", "/readyz", "/metrics", "/static/")

#: Titles of the pages; the message is the error's own detail (written for people), except for
#: Starlette's generic ones, replaced by a sentence that says what to do.
_TITLES = {404: "Page not found", 405: "Not available this way", 403: "Not allowed",
           413: "Too much data"}
_GENERIC = {"Not Found", "Method Not Allowed", "Forbidden"}


def wants_html(request: Request) -> bool:
    """True for a browser's page request: it accepts HTML and prefers it to JSON."""
    path = request.url.path
    if path.startswith(_MACHINE_PREFIXES):
        return False
    accept = request.headers.get("accept", "").lower()
    html = accept.find("text/html")
    json = accept.find("application/json")
    return html >= 0 and (json < 0 or html < json)


async def _owner(request: Request) -> OwnerInfo | None:
    """The signed-in owner for the page's navigation; None without a session cookie (a scan
    of missing pages costs no database query) or when the database does not answer."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        owner: OwnerInfo | None = await request.app.state.context.activation.account \
            .owner_for_session(token)
    except Exception as exc:  # the error page must render whatever the database does
        log.debug("no owner for the error page: %s", exc)
        return None
    return owner


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not wants_html(request):
        return await http_exception_handler(request, exc)
    detail = str(exc.detail)
    if exc.status_code == 404 and detail in _GENERIC:
        message = (f"There is no page at {request.url.path[:200]}. Check the address, or "
                   "start again from the home page.")
    elif detail in _GENERIC:
        message = "This address cannot be used this way: go back and try again."
    else:
        message = detail[:1:].upper() + detail[1:]
    title = _TITLES.get(exc.status_code, "Something went wrong")
    response = render(request, request.app.state.context, "error.html", exc.status_code,
                      owner=await _owner(request), title=title, message=message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
