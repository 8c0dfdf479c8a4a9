"""create_app: the HTTP API, the tracking routes and the OpenAPI docs."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from leadflow import __version__
from leadflow.api import costs as costs_api
from leadflow.api import errors, leads, lifecycle, predict, privacy, sources, tracking
from leadflow.api import handoff as handoff_api
from leadflow.api import journeys as journeys_api
from leadflow.api import messages as email_api
from leadflow.api import reports as reports_api
from leadflow.api import segments as segments_api
from leadflow.api import sms as sms_api
from leadflow.api import webhooks as webhooks_api
from leadflow.bootstrap import Leadflow, open_leadflow
from leadflow.config import Settings


class ApiToken(BaseHTTPMiddleware):
    """Guards /api/* with a bearer token when one is configured."""

    def __init__(self, app: FastAPI, token: str) -> None:
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path.startswith("/api/"):
            given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return errors.json_response(
                    {"code": "unauthorized", "message": "missing or wrong API token"}, 401
                )
        return await call_next(request)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Staged ingestion's drainer runs while the app serves."""
    drainer = app.state.drainer
    if drainer is not None:
        drainer.start()
    try:
        yield
    finally:
        if drainer is not None:
            drainer.stop()


def create_app(settings: Settings | None = None, leadflow: Leadflow | None = None) -> FastAPI:
    """Build the app around a Leadflow (opened from settings when not given)."""
    core = leadflow or open_leadflow(settings)
    app = FastAPI(
        title="leadflow",
        version=__version__,
        description="Lead capture, identity, scoring and lifecycle API.",
        docs_url="/docs",
        openapi_url="/openapi.json",
        lifespan=_lifespan,
    )
    app.state.leadflow = core
    errors.install(app)
    app.state.drainer = tracking.install(app, core)
    app.include_router(leads.router)
    app.include_router(sources.router)
    app.include_router(lifecycle.router)
    app.include_router(webhooks_api.router)
    app.include_router(handoff_api.router)
    app.include_router(segments_api.router)
    app.include_router(email_api.router)
    app.include_router(sms_api.router)
    app.include_router(predict.router)
    app.include_router(journeys_api.router)
    app.include_router(privacy.router)
    app.include_router(reports_api.router)
    app.include_router(costs_api.router)
    if core.settings.api_token:
        app.add_middleware(ApiToken, token=core.settings.api_token)  # type: ignore[arg-type]

    @app.get("/healthz", tags=["meta"], summary="Liveness and database check")
    def healthz() -> dict[str, str]:
        core.sources()
        return {"status": "ok", "version": __version__}

    return app
