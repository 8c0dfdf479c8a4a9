"""The one place where domain errors become HTTP answers: ``{code, message}`` bodies."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from leadflow.domain.errors import (
    AuthenticationError,
    BatchErrors,
    Conflict,
    LeadflowError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ValidationError,
)

log = logging.getLogger("leadflow.api")

STATUS: list[tuple[type[LeadflowError], int]] = [
    (PayloadTooLarge, 413),
    (BatchErrors, 400),
    (ValidationError, 400),
    (AuthenticationError, 401),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_body(exc: LeadflowError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, BatchErrors):
        body["accepted"] = exc.accepted
        body["errors"] = [
            {"index": e.index, "field": e.field, "reason": e.reason} for e in exc.errors
        ]
    return body


def status_of(exc: LeadflowError) -> int:
    """The HTTP status of a domain error (400 for one not listed in ``STATUS``)."""
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 400)


def error_response(exc: LeadflowError, headers: dict[str, str] | None = None) -> Response:
    status = status_of(exc)
    extra = dict(headers or {})
    if isinstance(exc, RateLimited):
        extra["Retry-After"] = str(exc.retry_after)
    return json_response(error_body(exc), status, extra)


def install(app: FastAPI) -> None:
    """Register the handlers: domain errors, request validation, HTTP errors, crashes."""

    @app.exception_handler(LeadflowError)
    async def _domain(_request: Request, exc: LeadflowError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in err['loc'][1:]) or 'request'}: {err['msg']}"
            for err in exc.errors()
        ]
        return json_response({"code": "invalid_request", "message": "; ".join(problems)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        code = "not_found" if exc.status_code == 404 else "http_error"
        return json_response({"code": code, "message": str(exc.detail)}, exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return json_response(
            {"code": "internal_error", "message": "internal error; it has been logged"}, 500
        )
