"""analytics.js, the real npm package, in Debian's headless Chromium, sending to leadflow.

The page is served by a static server of the test's own on one port and leadflow (uvicorn over
the test store) listens on another, so every request analytics.js makes is cross-origin: the
settings fetch, the CORS preflight its Authorization header triggers and the `text/plain`
POSTs. leadflow's side of each exchange is recorded by an ASGI wrapper; what analytics.js
produced is read back from the store. Requests to any host other than 127.0.0.1 are refused
and fail the test (the machine has no internet, and analytics.js must not need it).
"""

from __future__ import annotations

import base64
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from leadflow import Leadflow
from leadflow.adapters.db.tables import Event
from leadflow.api.app import create_app
from tests.conftest import need_service
from tests.e2e.conftest import Server, chromium, serving

pytestmark = pytest.mark.xdist_group("browser")

ROOT = Path(__file__).resolve().parents[2]
PAGE_DIR = Path(__file__).resolve().parent / "browser"
BUNDLE_DIR = ROOT / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
LOCALE = "de-DE"
TIMEZONE = "America/Chicago"
UTM = "utm_source=newsletter&utm_medium=email&utm_campaign=spring-launch"
# Request headers analytics.js sets that are not CORS-safelisted: they cost a preflight.
UNSAFELISTED = {"authorization", "x-retry-count"}


# -- leadflow, with every exchange recorded -------------------------------------------------
@dataclass
class Exchange:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""


class Recorder:
    """ASGI wrapper keeping each request leadflow received and the answer it gave."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = Exchange(
            scope["method"],
            scope["path"],
            {k.decode().lower(): v.decode() for k, v in scope["headers"]},
        )
        self.exchanges.append(exchange)

        async def receive_body() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                exchange.body += message.get("body", b"")
            return message

        async def send_answer(message: Any) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.response_headers = {
                    k.decode().lower(): v.decode() for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                exchange.response_body += message.get("body", b"")
            await send(message)

        await self.app(scope, receive_body, send_answer)

    def of(self, method: str, prefix: str = "/") -> list[Exchange]:
        return [e for e in self.exchanges if e.method == method and e.path.startswith(prefix)]


@dataclass(frozen=True)
class Recorded:
    server: Server
    recorder: Recorder


@pytest.fixture
def recorded(leadflow: Leadflow) -> Iterator[Recorded]:
    """uvicorn serving create_app() for the test store, its exchanges recorded."""
    source = leadflow.create_source("website")
    recorder = Recorder(create_app(leadflow=leadflow))
    with serving(recorder) as (url, port):
        yield Recorded(Server(url, port, source), recorder)


@pytest.fixture
def throttled(
    leadflow: Leadflow, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Recorded:
    """leadflow answering every ingestion request with 429: none may be in flight."""
    monkeypatch.setattr(leadflow.settings, "max_inflight_requests", 0)
    recorded: Recorded = request.getfixturevalue("recorded")
    return recorded


# -- the site: a static server on another port ----------------------------------------------
class SiteHandler(SimpleHTTPRequestHandler):
    """The test page from tests/e2e/browser/, analytics.js from node_modules under /vendor/."""

    served: list[str]

    def translate_path(self, path: str) -> str:
        self.served.append(path)
        prefix = "/vendor/analytics-next/"
        clean = urlsplit(path).path
        if clean.startswith(prefix):
            return str(BUNDLE_DIR / clean.removeprefix(prefix))
        return super().translate_path(path)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Site:
    origin: str
    served: list[str]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    served: list[str] = []
    handler = type("Handler", (SiteHandler,), {"served": served})
    httpd = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(PAGE_DIR))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{httpd.server_address[1]}", served)
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- the browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (BUNDLE_DIR / "index.js").exists():
        need_service(f"{BUNDLE_DIR / 'index.js'} is missing: run `npm ci` at the repo root")
    with chromium() as found:
        yield found


@dataclass
class Visit:
    report: dict[str, Any]
    journey: list[dict[str, Any]] | None
    url: str
    served: list[str]
    foreign: list[str]
    console_errors: list[str]


def visit(
    browser: Any,
    site: Site,
    config: dict[str, Any],
    *,
    journey: bool,
    settle: Callable[[], None],
) -> Visit:
    """Open the page with analytics.js set up by config, noting every non-local request.

    No `context.route()`: while Playwright intercepts, it answers CORS preflights itself and
    they never reach leadflow. Non-local hosts fail to resolve (--host-resolver-rules).
    settle() runs while the page is still open, so that nothing in flight is cut off.
    """
    context = browser.new_context(locale=LOCALE, timezone_id=TIMEZONE)
    foreign: list[str] = []
    console_errors: list[str] = []

    def note(request: Any) -> None:
        if urlsplit(request.url).hostname != "127.0.0.1":
            foreign.append(request.url)

    context.on("request", note)
    context.add_init_script(f"window.LEADFLOW_TEST = {json.dumps(config)};")
    already = len(site.served)
    page = context.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    try:
        url = f"{site.origin}/index.html?{UTM}"
        page.goto(url, wait_until="load", timeout=10_000)
        page.evaluate("window.leadflowLoaded")
        sent = page.evaluate("window.leadflowJourney") if journey else None
        settle()
        report = page.evaluate("window.leadflowReport")
    finally:
        context.close()
    served = [urlsplit(path).path for path in site.served[already:]]
    if journey:
        assert console_errors == [], console_errors
    return Visit(report, sent, url, served, foreign, console_errors)


def stored_raw(leadflow: Leadflow) -> dict[str, dict[str, Any]]:
    """Each stored event's raw message, by messageId (the facade's EventView has no context)."""
    with leadflow.transaction() as conn:
        rows = conn.execute(select(Event.message_id, Event.raw)).all()
    return {message_id: raw for message_id, raw in rows}


def wait_until(done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


def check_preflight(recorder: Recorder, post: Exchange, origin: str) -> None:
    """A POST with a header outside the CORS safelist came after a preflight leadflow allowed."""
    unsafe = set(post.headers) & UNSAFELISTED
    if not unsafe:
        return
    preflights = recorder.of("OPTIONS", post.path)
    assert preflights, f"POST {post.path} carries {unsafe} but no preflight reached leadflow"
    for preflight in preflights:
        assert preflight.headers["origin"] == origin
        assert preflight.headers["access-control-request-method"] == "POST"
        asked = set(preflight.headers["access-control-request-headers"].split(","))
        assert unsafe <= asked
        assert preflight.status == 204
        answer = preflight.response_headers
        assert answer["access-control-allow-origin"] == origin
        assert "POST" in answer["access-control-allow-methods"]
        allowed = {h.strip().lower() for h in answer["access-control-allow-headers"].split(",")}
        assert asked <= allowed


# -- the tests ------------------------------------------------------------------------------
@pytest.mark.parametrize("delivery", ["one-by-one", "batching"])
def test_analytics_js_in_chromium_loads_settings_and_its_events_are_stored(
    browser: Any, site: Site, recorded: Recorded, leadflow: Leadflow, delivery: str
) -> None:
    server, recorder = recorded.server, recorded.recorder
    key = server.source.write_key
    config = {"writeKey": key, "cdnURL": server.url, "batching": delivery == "batching"}
    seen = visit(
        browser,
        site,
        config,
        journey=True,
        settle=lambda: wait_until(lambda: len(stored_raw(leadflow)) >= 3),
    )

    assert seen.foreign == []
    assert seen.report == {**seen.report, "loaded": True, "loadError": None}
    assert seen.journey is not None
    assert [s["type"] for s in seen.journey] == ["page", "identify", "track"]
    assert [s["failed"] for s in seen.journey] == [None, None, None], seen.console_errors
    anonymous_id = seen.journey[0]["anonymousId"]
    assert anonymous_id
    assert {s["anonymousId"] for s in seen.journey} == {anonymous_id}
    # the page and analytics.js came from the site; no lazy chunk was fetched from anywhere
    assert sorted(seen.served) == ["/index.html", "/journey.js", "/vendor/analytics-next/index.js"]

    # the settings fetch: a cross-origin GET, answered with the CORS header
    [settings] = recorder.of("GET")
    assert settings.path == f"/v1/projects/{key}/settings"
    assert settings.headers["origin"] == site.origin
    assert settings.status == 200
    assert settings.response_headers["access-control-allow-origin"] == site.origin

    # text/plain POSTs with Basic auth, each answered 200 with the CORS header
    posts = recorder.of("POST")
    if delivery == "batching":
        assert [p.path for p in posts] == ["/v1/b"]
        [body] = [json.loads(p.body) for p in posts]
        assert body["writeKey"] == key
        assert [m["type"] for m in body["batch"]] == ["page", "identify", "track"]
    else:
        assert sorted(p.path for p in posts) == ["/v1/i", "/v1/p", "/v1/t"], [
            (p.path, p.status, p.response_body) for p in posts
        ]
        assert all(json.loads(p.body)["writeKey"] == key for p in posts)
    basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    for post in posts:
        assert post.headers["origin"] == site.origin
        assert post.headers["content-type"].startswith("text/plain")
        assert post.headers["authorization"] == basic
        assert (post.status, post.response_headers["access-control-allow-origin"]) == (
            200,
            site.origin,
        )
        # Authorization is not CORS-safelisted: Chromium asked leadflow first
        check_preflight(recorder, post, site.origin)
    assert {e.method for e in recorder.exchanges} == {"GET", "OPTIONS", "POST"}

    # what leadflow stored, read back through the facade
    [listed] = leadflow.leads().items
    lead = leadflow.lead(listed.id)
    assert lead.email == "jane.doe@acme.com"
    assert lead.identities == {
        "anonymousId": [anonymous_id],
        "userId": ["u-42"],
        "email": ["jane.doe@acme.com"],
    }
    assert lead.traits == {"name": "Jane Doe", "company": "Acme"}
    assert lead.event_count == 3
    campaign = {"source": "newsletter", "medium": "email", "name": "spring-launch"}
    # the first touch: analytics.js parsed the utm_* parameters into context.campaign
    assert lead.first_touch == {"campaign": campaign, "url": seen.url, "path": "/index.html"}

    events = {e.message_id: e for e in leadflow.lead_events(lead.id)}
    ids = [s["messageId"] for s in seen.journey]
    assert sorted(events) == sorted(ids)
    page_id, identify_id, track_id = ids
    page = {
        "path": "/index.html",
        "referrer": "",
        "search": f"?{UTM}",
        "title": "Acme pricing (leadflow browser test)",
        "url": seen.url,
    }
    assert (events[page_id].type, events[page_id].name) == ("page", "Pricing")
    assert events[page_id].properties == {**page, "name": "Pricing", "plan": "growth"}
    assert (events[identify_id].type, events[identify_id].name) == ("identify", None)
    assert (events[track_id].type, events[track_id].name) == ("track", "Demo Requested")
    assert events[track_id].properties == {"seats": 5}

    # context as the browser filled it in, kept in each event's raw message
    raw = stored_raw(leadflow)
    for message_id in ids:
        context = raw[message_id]["context"]
        assert context["page"] == page
        assert context["userAgent"] == seen.report["userAgent"]
        assert "Chrome/" in context["userAgent"]
        assert context["locale"] == LOCALE
        assert context["timezone"] == TIMEZONE
        assert context["campaign"] == campaign
        assert context["library"]["name"] == "analytics.js"
        assert raw[message_id]["anonymousId"] == anonymous_id
        assert raw[message_id]["writeKey"] == key
    assert raw[identify_id]["userId"] == raw[track_id]["userId"] == "u-42"
    assert raw[identify_id]["traits"] == {
        "email": "Jane.Doe@Acme.com",
        "name": "Jane Doe",
        "company": "Acme",
    }


def test_an_unknown_write_key_fails_the_settings_fetch_and_nothing_is_stored(
    browser: Any, site: Site, recorded: Recorded, leadflow: Leadflow
) -> None:
    server, recorder = recorded.server, recorded.recorder
    config = {"writeKey": "wk_not_a_source", "cdnURL": server.url, "batching": False}
    # the journey's calls stay buffered forever; give anything that would be sent time to come
    seen = visit(browser, site, config, journey=False, settle=lambda: time.sleep(0.3))

    assert seen.foreign == []
    assert seen.report["loaded"] is False
    [settings] = recorder.exchanges
    assert (settings.method, settings.path) == ("GET", "/v1/projects/wk_not_a_source/settings")
    assert settings.headers["origin"] == site.origin
    assert settings.status == 401
    assert settings.response_headers["access-control-allow-origin"] == site.origin
    # analytics.js failed with leadflow's own answer, readable thanks to the CORS header
    assert seen.report["loadError"] == settings.response_body.decode()
    assert json.loads(settings.response_body)["code"] == "unauthorized"
    assert recorder.of("POST") == []
    assert leadflow.leads().items == []
    assert stored_raw(leadflow) == {}


# analytics.js honours a 429's Retry-After (parseRetryAfter), which a browser shows it only
# when the answer lists the header in Access-Control-Expose-Headers.
FETCH_AS_ANALYTICS_JS = """async ([url, key]) => {
  const answer = await fetch(url, {
    method: "post",
    headers: { "Content-Type": "text/plain", Authorization: "Basic " + btoa(key + ":") },
    body: JSON.stringify({ type: "track", event: "Clicked", anonymousId: "a-1", writeKey: key }),
  });
  return { status: answer.status, retryAfter: answer.headers.get("Retry-After") };
}"""


def test_a_throttled_post_shows_its_retry_after_to_the_page(
    browser: Any, site: Site, throttled: Recorded, leadflow: Leadflow
) -> None:
    server, recorder = throttled.server, throttled.recorder
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{site.origin}/blank.html", wait_until="load", timeout=10_000)
        seen = page.evaluate(FETCH_AS_ANALYTICS_JS, [f"{server.url}/v1/t", server.source.write_key])
    finally:
        context.close()
    assert [(e.method, e.status) for e in recorder.exchanges] == [("OPTIONS", 204), ("POST", 429)]
    [post] = recorder.of("POST")
    assert post.response_headers["retry-after"] == "1"
    assert seen == {"status": 429, "retryAfter": "1"}
    assert stored_raw(leadflow) == {}
