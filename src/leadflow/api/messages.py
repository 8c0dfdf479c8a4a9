"""The links in leadflow's emails: open pixel, click redirect, one-click unsubscribe; and the
bounce and complaint intake.

``GET /o/TOKEN.gif`` always answers the 1x1 GIF (a broken image helps nobody), ``GET
/c/TOKEN`` redirects only to the destination stored for that link, ``GET /u/TOKEN`` shows a
confirmation page and never unsubscribes (link scanners prefetch), ``POST /u/TOKEN``
unsubscribes at once: RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's form.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from leadflow.api.state import leadflow_of
from leadflow.bootstrap import Leadflow
from leadflow.domain.errors import LeadflowError, NotFound, PayloadTooLarge, ValidationError
from leadflow.services.bounces import report_from_json
from leadflow.services.email_tracking import Hit

log = logging.getLogger("leadflow.api")
router = APIRouter(tags=["email"])

# The smallest transparent GIF: 1x1, one colour.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0"}
MAX_BOUNCE_BYTES = 10 * 1024 * 1024


def _hit(request: Request, core: Leadflow) -> Hit:
    return Hit(
        at=core.clock.now(),
        user_agent=request.headers.get("user-agent", ""),
        method=request.method,
        ip=request.client.host if request.client else None,
    )


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='robots' content='noindex'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;"
        "padding:0 1rem;color:#222}button{font-size:1rem;padding:.6rem 1.2rem}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(text, status_code=status, headers=NO_STORE)


def _gone() -> HTMLResponse:
    return _page("Link not found", "<p>This link is not valid or no longer exists.</p>", 404)


@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"], include_in_schema=False)
def open_pixel(request: Request, token: str) -> Response:
    core = leadflow_of(request)
    try:
        core.track_open(token, _hit(request, core))
    except LeadflowError:
        pass  # a bad or stale token still gets its image
    except Exception:
        log.exception("cannot record an email open")
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
def click(request: Request, token: str) -> Response:
    core = leadflow_of(request)
    try:
        url = core.track_click(token, _hit(request, core))
    except (ValidationError, NotFound):
        return _gone()
    if url is None:  # the hidden honeypot link: only machines follow it
        return _page("Nothing here", "<p>There is nothing at this address.</p>")
    return RedirectResponse(url, status_code=302, headers=NO_STORE)


def _mask(address: str) -> str:
    name, _, domain = address.partition("@")
    shown = name[:2] + "*" * max(1, len(name) - 2)
    return f"{shown}@{domain}"


@router.get("/u/{token}", include_in_schema=False)
def unsubscribe_page(request: Request, token: str) -> Response:
    try:
        delivery = leadflow_of(request).unsubscribe_target(token)
    except (ValidationError, NotFound):
        return _gone()
    address = html.escape(_mask(delivery.address or ""))
    return _page(
        "Unsubscribe",
        f"<p>Stop all marketing email to <strong>{address}</strong>?</p>"
        "<form method='post'>"
        "<input type='hidden' name='confirm' value='yes'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


async def _read(request: Request, limit: int) -> bytes:
    """At most ``limit`` bytes of the body; the rest is not read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


@router.post("/u/{token}", include_in_schema=False)
async def unsubscribe(request: Request, token: str) -> Response:
    body = await _read(request, 4096)
    fields = parse_qs(body.decode("utf-8", "replace"))
    one_click = "One-Click" in fields.get("List-Unsubscribe", [])
    method = "one-click" if one_click else "form"
    try:
        done = await run_in_threadpool(leadflow_of(request).unsubscribe, token, method)
    except (ValidationError, NotFound):
        return _gone()
    address = html.escape(_mask(done.address))
    return _page(
        "You are unsubscribed",
        f"<p>{address} will get no more marketing email from us.</p>",
    )


@router.get("/confirm/{token}", include_in_schema=False)
def confirm_page(request: Request, token: str) -> Response:
    try:
        delivery = leadflow_of(request).opt_in_target(token)
    except (ValidationError, NotFound):
        return _gone()
    address = html.escape(_mask(delivery.address or ""))
    return _page(
        "Confirm your subscription",
        f"<p>Receive our email at <strong>{address}</strong>?</p>"
        "<form method='post'><button type='submit'>Yes, subscribe me</button></form>",
    )


@router.post("/confirm/{token}", include_in_schema=False)
async def confirm(request: Request, token: str) -> Response:
    ip = request.client.host if request.client else None
    try:
        done = await run_in_threadpool(leadflow_of(request).confirm_email_opt_in, token, ip)
    except (ValidationError, NotFound):
        return _gone()
    address = html.escape(_mask(done.address))
    return _page("Subscription confirmed", f"<p>{address} is subscribed. Thank you.</p>")


@router.post("/api/email/bounces", tags=["email"], summary="Report bounces or a complaint")
async def bounces(request: Request) -> dict[str, Any]:
    """A raw DSN (RFC 3464) or ARF complaint (RFC 5965) message as the body, or JSON
    ``{address, kind: hard|soft|complaint, diagnostic}`` (or a list of such objects)."""
    body = await _read(request, MAX_BOUNCE_BYTES + 1)
    if len(body) > MAX_BOUNCE_BYTES:
        raise PayloadTooLarge(f"body: larger than {MAX_BOUNCE_BYTES} bytes")
    core = leadflow_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValidationError(f"body: not valid JSON: {exc}") from None
        items = data if isinstance(data, list) else [data]
        reports = []
        for index, item in enumerate(items):
            try:
                reports.append(report_from_json(item))
            except ValidationError as exc:
                raise ValidationError(f"item {index}: {exc.message}") from None
        outcomes = await run_in_threadpool(core.process_bounces, reports)
    else:
        outcomes = await run_in_threadpool(core.process_bounce, body, "body")
    return {"items": [o.to_json() for o in outcomes]}
