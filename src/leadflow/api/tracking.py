"""The tracking routes that Segment and RudderStack clients call unchanged.

These handlers are plain Starlette endpoints: the body is read with a size bound, inflated
with a bound when gzipped, parsed with orjson whatever the Content-Type, and handed to the
ingestion service in a worker thread. Success is HTTP 200 exactly: clients retry anything
else.
"""

from __future__ import annotations

import base64
import logging
import threading
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from leadflow.api.errors import error_response, json_response
from leadflow.bootstrap import Leadflow
from leadflow.domain.errors import (
    AuthenticationError,
    BatchErrors,
    LeadflowError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ValidationError,
)
from leadflow.domain.events import BATCH_ROUTES, MAX_EVENT_BYTES, SINGLE_ROUTES, split_request

log = logging.getLogger("leadflow.api")

CORS_HEADERS = "Content-Type, Authorization, Content-Encoding, X-Requested-With"
OK = b'{"success":true}'


@dataclass
class Limits:
    batch_bytes: int
    in_flight: int


def cors(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    # Retry-After is no CORS-safelisted response header: without this, a browser hides it from
    # analytics.js, which then ignores the back-off a 429 asks for.
    headers = {
        "Access-Control-Allow-Origin": origin or "*",
        "Access-Control-Expose-Headers": "Retry-After",
    }
    if origin:
        headers["Vary"] = "Origin"
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


async def read_body(request: Request, limit: int, inflated_limit: int) -> bytes:
    """The request body, inflated when gzipped; PayloadTooLarge past either bound."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").lower()
    if "gzip" in encoding or body[:2] == b"\x1f\x8b":
        body = inflate(body, inflated_limit)
    return body


def inflate(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise ValidationError(f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"body inflates to more than {limit} bytes")
    return out


def parse(body: bytes) -> Any:
    if not body.strip():
        raise ValidationError("body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"body is not valid JSON: {exc}") from None


def write_key(request: Request, payload: Any) -> str:
    """The write key from Basic auth, the query, the body or a Bearer token."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and credentials:
        try:
            user = base64.b64decode(credentials).decode().partition(":")[0]
        except (ValueError, UnicodeDecodeError):
            raise AuthenticationError("malformed Basic authorization header") from None
        if user:
            return user
    key = request.query_params.get("writeKey")
    if not key and isinstance(payload, dict) and isinstance(payload.get("writeKey"), str):
        key = payload["writeKey"]
    if not key and scheme.lower() == "bearer" and credentials:
        key = credentials.strip()
    if not key:
        raise AuthenticationError("missing write key: use Basic auth, writeKey or ?writeKey=")
    return key


class Drainer:
    """Staged ingestion: processes the inbox in a background thread while the app runs,
    woken by each accepted request; on its own, it looks every ``idle`` seconds (for rows
    that another process accepted)."""

    def __init__(self, leadflow: Leadflow, requests: int = 50, idle: float = 0.5) -> None:
        self.leadflow = leadflow
        self.requests = requests
        self.idle = idle
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="inbox-drainer", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the batch in progress, then stop; what is left stays in the inbox."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                busy = self.leadflow.drain_inbox(self.requests).requests > 0
            except Exception:  # logged, then tried again: the rows stay in the inbox
                log.exception("draining the inbox failed; retrying")
                self._stop.wait(1.0)
                continue
            if not busy:
                self._wake.wait(self.idle)


class TrackingEndpoints:
    def __init__(self, leadflow: Leadflow, limits: Limits) -> None:
        self.leadflow = leadflow
        self.limits = limits
        self.in_flight = 0
        self.staged = leadflow.settings.ingest_mode == "staged"
        self.drainer = Drainer(leadflow)

    async def handle(self, request: Request) -> Response:
        headers = cors(request)
        if self.in_flight >= self.limits.in_flight:
            return error_response(RateLimited("too many requests in progress", 1), headers)
        self.in_flight += 1
        try:
            return await self._handle(request, headers)
        except LeadflowError as exc:
            return error_response(exc, headers)
        except Exception:  # a fault: 500 (clients retry), readable by the browser too
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            body = {"code": "internal_error", "message": "internal error; it has been logged"}
            return json_response(body, 500, headers)
        finally:
            self.in_flight -= 1

    async def _handle(self, request: Request, headers: dict[str, str]) -> Response:
        route = request.path_params["kind"]
        single = route in SINGLE_ROUTES
        if not single and route not in BATCH_ROUTES:
            raise NotFound(f"no tracking route /v1/{route}")
        limit = self.limits.batch_bytes
        body = await read_body(request, limit, limit)
        if single and len(body) > MAX_EVENT_BYTES:
            raise PayloadTooLarge(f"a single message may be at most {MAX_EVENT_BYTES // 1024} KB")
        payload = parse(body)
        if not isinstance(payload, dict):
            raise ValidationError("body must be a JSON object")
        source = self.leadflow.source_for_key(write_key(request, payload))
        parts = split_request(route, payload)
        if self.staged:
            result = await run_in_threadpool(self.leadflow.enqueue, source, route, body, parts)
            self.drainer.wake()  # a no-op when the drainer does not run here
        else:
            result = await run_in_threadpool(
                self.leadflow.ingest, source, parts.messages, route_type=parts.route_type,
                defaults=parts.defaults,
            )  # fmt: skip
        if result.errors:
            raise BatchErrors(errors=result.errors, accepted=result.accepted + result.duplicates)
        return Response(OK, 200, headers, media_type="application/json")

    async def preflight(self, request: Request) -> Response:
        headers = cors(request)
        headers["Access-Control-Allow-Methods"] = "POST, GET, OPTIONS"
        headers["Access-Control-Allow-Headers"] = (
            request.headers.get("access-control-request-headers") or CORS_HEADERS
        )
        headers["Access-Control-Max-Age"] = "86400"
        return Response(status_code=204, headers=headers)

    async def settings(self, request: Request) -> Response:
        """The document analytics.js loads before it sends anything."""
        key = request.path_params["write_key"]
        try:
            self.leadflow.source_for_key(key)
        except LeadflowError as exc:
            return error_response(exc, cors(request))
        public = self.leadflow.settings.public_url.rstrip("/")
        base = public or f"{request.url.scheme}://{request.url.netloc}"
        scheme, _, host = base.partition("://")
        body = {
            "integrations": {
                "Segment.io": {
                    "apiKey": key,
                    "apiHost": f"{host}/v1",
                    "protocol": scheme,
                    "unbundledIntegrations": [],
                    "addBundledMetadata": False,
                }
            },
            "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
            "edgeFunction": {},
            "analyticsNextEnabled": True,
            "middlewareSettings": {},
            "enabledMiddleware": {},
            "metrics": {"sampleRate": 0},
            "legacyVideoPluginsEnabled": False,
            "remotePlugins": [],
        }
        return json_response(body, headers=cors(request))


def install(app: FastAPI, leadflow: Leadflow) -> Drainer | None:
    """Add the tracking routes; in staged mode, return the drainer the app runs."""
    settings = leadflow.settings
    endpoints = TrackingEndpoints(
        leadflow,
        Limits(settings.max_batch_bytes, settings.max_inflight_requests),
    )
    kinds = "{kind:str}"
    app.add_route(f"/v1/{kinds}", endpoints.handle, methods=["POST"], include_in_schema=False)
    app.add_route(f"/v1/{kinds}", endpoints.preflight, methods=["OPTIONS"], include_in_schema=False)
    app.add_route(
        "/v1/projects/{write_key}/settings",
        endpoints.settings,
        methods=["GET"],
        include_in_schema=False,
    )
    return endpoints.drainer if endpoints.staged and settings.inbox_drainer else None
