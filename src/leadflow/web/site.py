"""What every dashboard page shares: the signed-in user, roles, CSRF, rendering, headers.

A page asks for a permission with :func:`require`; a browser that is not signed in is sent to
the login page, a user without the permission gets a 403 page. Every form posts a CSRF token
that must match the session's (and, when the browser sends one, an Origin of this site).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from leadflow.api.state import leadflow_of
from leadflow.bootstrap import Leadflow
from leadflow.services.users import Permission, Session

HERE = Path(__file__).parent
DASH = "\N{EN DASH}"  # shown for a figure that does not exist
COOKIE = "leadflow_session"
LOGIN_COOKIE = "leadflow_login"  # the CSRF token of the login form, before any session
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = [
    ("/", "Overview", Permission.VIEW),
    ("/leads", "Leads", Permission.VIEW),
    ("/queue", "Sales queue", Permission.VIEW),
    ("/journeys", "Journeys", Permission.MARKETING),
    ("/segments", "Segments", Permission.MARKETING),
    ("/reports", "Reports", Permission.MARKETING),
    ("/model", "Scoring model", Permission.MARKETING),
    ("/settings", "Settings", Permission.COSTS),
]


class LoginRequired(Exception):
    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _fmt_time(value: datetime | str | None) -> str:
    if value is None or value == "":
        return DASH
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fmt_pct(value: float | None, digits: int = 0) -> str:
    return DASH if value is None else f"{value:.{digits}%}"


def _fmt_num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{digits}f}"


def _fmt_hours(seconds: float | None) -> str:
    if seconds is None:
        return DASH
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(time=_fmt_time, pct=_fmt_pct, num=_fmt_num, hours=_fmt_hours)


def core(request: Request) -> Leadflow:
    return leadflow_of(request)


def current(request: Request) -> Session | None:
    if not hasattr(request.state, "web_session"):
        token = request.cookies.get(COOKIE, "")
        request.state.web_session = core(request).web_session(token) if token else None
    found: Session | None = request.state.web_session
    return found


def require(request: Request, permission: Permission = Permission.VIEW) -> Session:
    session = current(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    if not session.user.can(permission):
        raise Forbidden(f"Your role ({session.user.role.value}) cannot open this page.")
    return session


def same_origin(request: Request) -> bool:
    """A browser's Origin (or Referer) must name this site; a request without either (an
    old browser, a command-line client) is judged by its CSRF token alone."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed or claimed == "null":
        return claimed is None
    host = request.headers.get("host", "")
    return urlsplit(claimed).netloc == host


async def form_of(request: Request, session: Session) -> dict[str, str]:
    """The posted form, after the CSRF checks (a 403 page when they fail)."""
    form = await request.form()
    values = {key: str(value) for key, value in form.items() if isinstance(value, str)}
    token = values.pop("csrf", "")
    if not same_origin(request) or not hmac.compare_digest(token.encode(), session.csrf.encode()):
        raise Forbidden("The form was stale or came from another site; reload the page and retry.")
    return values


def local_path(value: str | None, default: str = "/") -> str:
    """A redirect target inside this site only (no scheme, no host, no //)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def redirect(target: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        target += ("&" if "?" in target else "?") + "notice=" + quote(notice)
    return RedirectResponse(target, status_code=303, headers=HEADERS)


def render(
    request: Request,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    session = current(request)
    nav = [
        (href, label)
        for href, label, permission in NAV
        if session is not None and session.user.can(permission)
    ]
    notice = request.query_params.get("notice")
    html = templates.get_template(template).render(
        request=request,
        session=session,
        user=session.user if session else None,
        csrf=session.csrf if session else "",
        nav=nav,
        path=request.url.path,
        notice=notice[:300] if notice else None,
        can=lambda name: session is not None and session.user.can(Permission(name)),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


class LoginThrottle:
    """At most ``limit`` failed sign-ins per address and per email in ``window`` seconds."""

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self.failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self.failures.setdefault(key, deque())
        while found and found[0] <= now - self.window:
            found.popleft()
        return found

    def blocked(self, keys: list[str]) -> int:
        """Seconds until a sign-in may be tried again (0: now)."""
        now = time.monotonic()
        waits = [
            int(found[0] + self.window - now) + 1
            for key in keys
            if len(found := self._recent(key, now)) >= self.limit
        ]
        return max(waits, default=0)

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            self._recent(key, now).append(now)
        if len(self.failures) > 10_000:  # forget the idle keys
            for key in [k for k, v in self.failures.items() if not v]:
                del self.failures[key]

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)


def new_login_token() -> str:
    return secrets.token_urlsafe(24)


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def set_session_cookie(response: Response, request: Request, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE, token, max_age=max_age, httponly=True, samesite="lax",
        secure=secure_cookies(request), path="/",
    )  # fmt: skip
