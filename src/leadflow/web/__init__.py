"""The web dashboard, served with the API by ``leadflow serve`` (docs/dashboard.md)."""

from __future__ import annotations

import inspect
import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from leadflow.api.app import create_app
from leadflow.api.errors import status_of
from leadflow.bootstrap import Leadflow
from leadflow.config import Settings
from leadflow.domain.errors import LeadflowError
from leadflow.web import pages
from leadflow.web.site import HEADERS, HERE, Forbidden, LoginRequired, render

__all__ = ["create_site"]

log = logging.getLogger("leadflow.web")
# Paths whose errors keep the API's answers: the API, tracking, SMS callbacks, the docs, and
# the links inside messages (open pixel, click, unsubscribe, confirm), which have their own.
MACHINE = (
    "/api/", "/v1/", "/sms/", "/docs", "/redoc", "/openapi.json", "/healthz",
    "/o/", "/c/", "/u/", "/confirm/",
)  # fmt: skip


def machine_path(path: str) -> bool:
    return path.startswith(MACHINE)


async def _answer(handler: Any, request: Request, exc: Exception) -> Response:
    """Call one of the API's own handlers (sync or async)."""
    found = handler(request, exc)
    answer: Response = await found if inspect.isawaitable(found) else found
    return answer


def create_site(settings: Settings | None = None, leadflow: Leadflow | None = None) -> FastAPI:
    """The API (create_app) with the dashboard's pages and assets on the same app."""
    app = create_app(settings, leadflow)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(pages.router)
    api_domain = app.exception_handlers[LeadflowError]
    api_http = app.exception_handlers[StarletteHTTPException]
    api_crash = app.exception_handlers[Exception]

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.target)}", 303, headers=HEADERS)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "problem.html", 403, message=exc.message, back="/")

    @app.exception_handler(LeadflowError)
    async def _domain(request: Request, exc: LeadflowError) -> Response:
        if machine_path(request.url.path):
            return await _answer(api_domain, request, exc)
        return render(request, "problem.html", status_of(exc), message=exc.message, back="/")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if machine_path(request.url.path) or exc.status_code not in (404, 405):
            return await _answer(api_http, request, exc)
        message = "There is no such page." if exc.status_code == 404 else "Not allowed here."
        return render(request, "problem.html", exc.status_code, message=message, back="/")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        if machine_path(request.url.path):
            return await _answer(api_crash, request, exc)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(
            request, "problem.html", 500,
            message="Something went wrong on our side; it has been logged.", back="/",
        )  # fmt: skip

    return app
