"""The FastAPI application: health, metrics, the owner pages and the JSON APIs (activation,
owner, admin).

`create_app` takes a `WebContext` (what the web needs, built in `gateway/server.py`), never the
gateway itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.activation.codes import KeyNotReady
from gateway.web import (
    admin,
    api_activation,
    api_commands,
    api_live,
    api_owner,
    docs,
    errors,
    pages,
    pages_commands,
)
from gateway.web.context import WebContext
from gateway.web.deps import ClientAddr, Context
from gateway.web.security import BodyLimit, SecurityHeaders

_bearer = HTTPBearer(auto_error=False)


def create_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(
        title="tracker-gateway",
        description="GPS tracker gateway with device activation by one-time codes.",
        version="0.1.0",
        # /docs is served from the gateway's own files (gateway/web/docs.py); ReDoc would
        # load from a CDN, and is not offered.
        docs_url=None, redoc_url=None,
    )
    app.state.context = ctx

    @app.exception_handler(KeyNotReady)
    async def key_not_ready(_request: Request, exc: KeyNotReady) -> JSONResponse:
        # The shared server key comes from a database that has not answered since start.
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.get("/healthz", tags=["operations"])
    async def healthz(ctx: Context) -> JSONResponse:
        """200 when the gateway can store and acknowledge data, 503 (with details) when not.
        Answers within a second whatever the database does."""
        healthy, body = await ctx.health()
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/readyz", tags=["operations"])
    async def readyz(ctx: Context) -> JSONResponse:
        """For load balancers: 200 while this instance should get devices (listeners up,
        database answering, not shutting down), 503 otherwise."""
        ready, body = await ctx.ready()
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics(
        ctx: Context, client: ClientAddr,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Response:
        """Prometheus text format (with `metrics.token` set: `Authorization: Bearer <token>`)."""
        if ctx.metrics_settings.token:
            await admin.check_token(ctx, ctx.metrics_settings.token,
                                    credentials.credentials if credentials else None, client,
                                    "metrics.token")
        ctx.refresh_metrics()
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(admin.router)
    app.include_router(api_activation.router)
    app.include_router(api_owner.router)
    app.include_router(api_live.router)
    app.include_router(docs.router)
    app.include_router(api_commands.router)
    app.include_router(pages_commands.router)
    pages.install(app)
    errors.install(app)
    # Outermost last: security headers on every answer, the 413 included.
    app.add_middleware(BodyLimit, max_body_bytes=ctx.http.max_body_bytes,
                       max_upload_bytes=ctx.http.max_upload_bytes)
    app.add_middleware(SecurityHeaders, tile_source=ctx.web.tile_source)
    return app
