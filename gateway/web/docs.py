"""`/docs`: Swagger UI for `/openapi.json`, served from the gateway's own static files (vendored
from npm `swagger-ui-dist` by scripts/vendor-web-assets.sh), so it works without internet and
under a Content-Security-Policy without inline scripts."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

router = APIRouter(include_in_schema=False)


@router.get("/docs", response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    title = f"{request.app.title} · API"
    return TEMPLATES.TemplateResponse(request, "docs.html", {
        "title": title, "openapi_url": request.app.openapi_url})
