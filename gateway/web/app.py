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
        """200 when the gateway can store and acknowledge data, 503 (with details) when not."""
        db_up = gateway.db is not None and await gateway.db.ping()
        writer = gateway.writer
        body = {
            "status": "ok" if db_up else "degraded",
            "database": "up" if db_up else "down",
            "store_pending": writer.pending if writer is not None else 0,
            "connections": gateway.tcp.connection_count if gateway.tcp is not None else 0,
            "tcp_ports": gateway.tcp.ports if gateway.tcp is not None else {},
            # "disabled", or the broker connection: "connecting", "up", "down" (TCP and the
            # web app work whatever it is; MQTT reconnects by itself).
            "mqtt": gateway.mqtt.state if gateway.mqtt is not None else "disabled",
        }
        if gateway.mqtt is not None and gateway.mqtt.last_error:
            body["mqtt_error"] = gateway.mqtt.last_error
        return JSONResponse(body, status_code=200 if db_up else 503)

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
