"""Pure ASGI middlewares at the edge of the web app: request body limits (rule 28) and the
security headers of every response (rule 29)."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Paths that take a file upload (the larger limit).
UPLOAD_PATHS = frozenset({"/api/v1/admin/devices/import"})


def page_csp(tile_source: str | None = None) -> str:
    """The pages' policy: everything from this origin only, and map tiles from the configured
    tile server (`web.tile_url`), nothing else."""
    images = "img-src 'self' data:" + (f" {tile_source}" if tile_source else "")
    return (f"default-src 'self'; {images}; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; object-src 'none'")


#: /docs: Swagger UI from this origin only (gateway/web/docs.py), as strict as the pages; it
#: shows no map, so no tile server either.
DOCS_CSP = page_csp(None)
_DOCS_PATHS = frozenset({"/docs"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` while the app reads a body over the limit (FastAPI passes
    HTTPExceptions raised during body parsing through unchanged)."""

    def __init__(self, limit: int, key: str) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes ({key}): "
                              "send less")


class BodyLimit:
    """413 for bodies over the limit, before they are read whole: at once when Content-Length
    says so, else as soon as the streamed bytes pass it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in UPLOAD_PATHS:
            limit, key = self.max_upload_bytes, "http.max_upload_bytes"
        else:
            limit, key = self.max_body_bytes, "http.max_body_bytes"
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, BodyTooLarge(limit, key))
            return
        received = 0
        started = exceeded = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge(limit, key)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if exceeded:
                    # The rest of the body is never read: the connection cannot be reused.
                    message = {**message, "headers": [*message.get("headers", ()),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _refuse(send, exc)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, exc: BodyTooLarge) -> None:
    body = json.dumps({"detail": exc.detail}).encode()
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    """CSP, no framing, no sniffing, no referrer (claim URLs carry a claim key)."""

    def __init__(self, app: ASGIApp, tile_source: str | None = None) -> None:
        self.app = app
        self.page_csp = page_csp(tile_source).encode()
        self.docs_csp = DOCS_CSP.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = self.docs_csp if scope["path"] in _DOCS_PATHS else self.page_csp

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ())
                           if h[0].lower() not in _SET_HERE]
                headers += [(b"content-security-policy", csp), (b"x-frame-options", b"DENY"),
                            (b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_SET_HERE = frozenset({b"content-security-policy", b"x-frame-options",
                       b"x-content-type-options", b"referrer-policy"})
