"""The FastAPI application: health, metrics, the owner pages and the JSON APIs (activation,
owner, admin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.web import admin, api_activation, api_owner, pages

if TYPE_CHECKING:
    from gateway.server import Gateway


def create_app(gateway: Gateway) -> FastAPI:
    app = FastAPI(
        title="tracker-gateway",
        description="GPS tracker gateway with device activation by one-time codes.",
        version="0.1.0",
    )
    app.state.gateway = gateway

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> JSONResponse:
        """200 when the gateway can store and acknowledge data, 503 (with details) when not.
        Answers within a second whatever the database does."""
        if gateway.health is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        ok, body = await gateway.health.live()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """For load balancers: 200 while this instance should get devices (listeners up,
        database answering, not shutting down), 503 otherwise."""
        if gateway.health is None:
            return JSONResponse({"ready": False}, status_code=503)
        ok, body = await gateway.health.ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        """Prometheus text format."""
        if gateway.writer is not None:
            gateway.metrics.store_pending.set(gateway.writer.pending)
        return Response(generate_latest(gateway.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(admin.router)
    app.include_router(api_activation.router)
    app.include_router(api_owner.router)
    pages.install(app)
    return app
