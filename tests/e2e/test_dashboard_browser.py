"""The dashboard in Debian's headless Chromium, driven by Python Playwright, on both backends.

A sales user signs in through the form, finds a lead with the top-bar search, reads why it is
an MQL, accepts it from the queue and rejects another (through the confirmation dialog), and
the overview's funnel follows. Hostile lead data stays text; a form posted from another origin
changes nothing; the pages work on a phone-sized screen; screenshots of the main pages are
saved to test-artifacts/screenshots/. On every page, no request leaves 127.0.0.1 (Chromium
resolves no other host) and nothing is logged to the console but the expected HTTP errors.
"""

from __future__ import annotations

import html
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from leadflow import Leadflow, SourceRecord
from leadflow.web.screenshots import CHROMIUM_ARGS, PAGES, ScreenshotError, take_screenshots
from tests.e2e.conftest import CHROMIUM, Server, chromium
from tests.integration.scoring_support import T0, ingest, lead_id, message, page, track

pytestmark = pytest.mark.xdist_group("browser")

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery"
SALES = "sam@acme.test"
ADMIN = "ada@acme.test"
XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=2">'
POLICY = "fit.grade in ('A', 'B') and engagement >= 40"
MODEL = f"""\
scoring:
  engagement:
    rules:
      - id: pricing
        description: Visited the pricing page
        match: {{type: page, path: ["/pricing*"]}}
        points: 10
        half_life: 7d
      - id: webinar
        description: Attended a webinar
        match: {{event: Webinar Attended}}
        points: 30
        half_life: 7d
  fit:
    rules:
      - id: industry
        description: Software company
        when: [{{field: traits.industry, op: in, value: [software]}}]
        points: 50
    grades: {{A: 50, B: 30, C: 10}}
lifecycle:
  mql_policy: {POLICY}
  sales:
    sla: 24h
    accept_reasons: [meets_criteria, strategic_account]
    reject_reasons: [not_a_fit, bad_timing]
"""


@pytest.fixture
def model_text() -> str:
    return MODEL


# --- the store ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    user: str
    email: str
    traits: dict[str, str]
    webinars: int = 1
    pricing: int = 1
    campaign: str = "spring-launch"


PEOPLE = (
    Person("ann", "ann.lee@acme.test", {"first_name": "Ann", "last_name": "Lee",
           "company": "Acme", "industry": "software"}, webinars=2),
    Person("bob", "bob.stone@globex.test", {"first_name": "Bob", "last_name": "Stone",
           "company": "Globex", "industry": "software"}),
    Person("cid", "cid.park@initech.test", {"first_name": "Cid", "last_name": "Park",
           "company": "Initech", "industry": "software"}, campaign="webinar-series"),
    Person("dee", "dee.moss@shop.test", {"first_name": "Dee", "last_name": "Moss",
           "company": "Shop", "industry": "retail"}, pricing=0),
    Person("eli", "eli.ng@umbrella.test", {"first_name": "Eli", "last_name": "Ng",
           "company": "Umbrella", "industry": "software"}, webinars=0, campaign="webinar-series"),
)  # fmt: skip


def seed(app: Leadflow, source: SourceRecord, *extra: Person) -> dict[str, int]:
    """Leads from two campaigns (ann, bob and cid become MQLs; ann is the most engaged), a
    segment and a journey; returns the lead ids by user."""
    app.put_segment("software", {"field": "trait.industry", "op": "eq", "value": "software"})
    app.save_journey(
        "mql-nurture", {"trigger": {"stage": "mql"}, "steps": [{"id": "pause", "wait": "2d"}]}
    )
    ids = {}
    for person in (*PEOPLE, *extra):
        campaign = {"name": person.campaign, "source": "newsletter", "medium": "email"}
        ingest(
            app, source,
            message("identify", person.user, T0, traits={**person.traits, "email": person.email},
                    context={"campaign": campaign}),
            *(track(person.user, "Webinar Attended") for _ in range(person.webinars)),
            *(page(person.user, "/pricing") for _ in range(person.pricing)),
        )  # fmt: skip
        ids[person.user] = lead_id(app, person.user)
    assert {u for u, i in ids.items() if app.lead(i).stage == "mql"} == {
        "ann", "bob", "cid", *(p.user for p in extra)
    }  # fmt: skip
    return ids


# --- the browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


@dataclass
class Watch:
    """What a browser context did: requests to other hosts, failed requests, console errors."""

    hosts: set[str] = field(default_factory=lambda: {"127.0.0.1"})
    foreign: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def page(self, context: Any) -> Any:
        found = context.new_page()
        found.on("console", lambda m: self._console(found, m))
        found.on("requestfailed", self._failed)
        found.on("request", self._request)
        return found

    def _request(self, request: Any) -> None:
        self.seen.append(request.url)
        if urlsplit(request.url).hostname not in self.hosts:
            self.foreign.append(request.url)

    def _failed(self, request: Any) -> None:
        # The browser asks for the icon after the page's load event and drops that request
        # when the page is left at once: not a failure of the page.
        if request.url.endswith("/favicon.svg") and request.failure == "net::ERR_ABORTED":
            return
        self.failed.append(f"{request.url}: {request.failure}")

    def _console(self, page: Any, msg: Any) -> None:
        if msg.type == "error":
            self.console.append(f"{urlsplit(page.url).path}: {msg.text}")

    def assert_clean(self, *expected: str) -> None:
        """Only the allowed loopback hosts were asked, nothing failed, and the console errors
        are the expected ones (each ``path: text``), in order."""
        assert self.seen, "no request was watched"
        assert self.foreign == []
        assert self.failed == []
        assert self.console == list(expected)


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    found = browser.new_context(viewport={"width": 1400, "height": 900})
    found.set_default_timeout(10_000)
    try:
        yield found
    finally:
        found.close()


def http_error(status: int, reason: str) -> str:
    return f"Failed to load resource: the server responded with a status of {status} ({reason})"


def sign_in(page: Any, url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login", wait_until="load")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation(wait_until="load"):
        page.click("form.login-card button[type=submit]")


def kpi(page: Any, stage: str) -> str:
    return str(page.locator(f".kpi[data-stage={stage}] .value").inner_text()).strip()


def history(app: Leadflow, lead: int) -> dict[str, Any]:
    found: dict[str, Any] = app.explain(lead)["history"][-1]
    return found


# --- the tests ------------------------------------------------------------------------------
def test_sign_in_find_a_lead_see_why_it_is_an_mql_and_decide(
    context: Any, watch: Watch, dashboard: Server, dashboard_app: Leadflow
) -> None:
    app, url = dashboard_app, dashboard.url
    ids = seed(app, dashboard.source)
    ann, bob = ids["ann"], ids["bob"]
    app.add_user(SALES, PASSWORD, "sales", "Sam")
    page = watch.page(context)

    # signing in: the overview sends to the login form; a wrong password says so
    page.goto(f"{url}/", wait_until="load")
    assert page.url == f"{url}/login?next=/"
    page.fill("input[name=email]", SALES)
    page.fill("input[name=password]", "not the password")
    with page.expect_navigation(wait_until="load"):
        page.click("form.login-card button[type=submit]")
    assert urlsplit(page.url).path == "/login"
    assert page.locator(".login-card .alert").inner_text() == "Wrong email or password."
    assert page.locator("input[name=email]").input_value() == SALES
    assert page.locator("nav#nav").count() == 0
    page.fill("input[name=password]", PASSWORD)
    with page.expect_navigation(wait_until="load"):
        page.click("form.login-card button[type=submit]")
    assert page.url == f"{url}/"
    assert page.locator("h1").inner_text() == "Overview"
    assert page.locator(".topbar .who .email").inner_text() == "Sam"
    assert (kpi(page, "lead"), kpi(page, "mql"), kpi(page, "sal")) == ("5", "3", "0")

    # the top-bar search finds the lead by part of its email
    search = page.locator("header.topbar form.search input[name=q]")
    search.fill("ann.le")
    with page.expect_navigation(wait_until="load"):
        search.press("Enter")
    assert page.url == f"{url}/leads?q=ann.le"
    rows = page.locator("table.leads tbody tr")
    assert rows.count() == 1
    with page.expect_navigation(wait_until="load"):
        rows.get_by_role("link", name="ann.lee@acme.test").click()
    assert page.url == f"{url}/leads/{ann}"
    assert page.locator("main h1").inner_text() == "Ann Lee"

    # why it is an MQL: the policy and the clause that holds, the rules, the fit criteria
    why = page.locator("#why")
    assert why.locator("p").first.inner_text() == f"Policy {POLICY} is true."
    assert why.locator("ul.fired li").all_inner_texts() == [POLICY]
    engagement = why.locator("h3").first.inner_text()
    assert engagement == "Engagement 70.0"
    rules = [
        [cell.strip() for cell in row.split("\t")]
        for row in why.locator("table.compact").first.locator("tbody tr").all_inner_texts()
    ]
    assert rules == [
        ["Attended a webinar half-life 7d", "2", "60.0", "60.0"],
        ["Visited the pricing page half-life 7d", "1", "10.0", "10.0"],
    ]
    assert why.locator("ul.criteria li").all_inner_texts() == [
        "+50 Software company traits.industry is one of software"
    ]
    assert page.locator("section.action form.decide-accept").count() == 1

    # the sales queue: accept that lead with a reason; it leaves the queue
    with page.expect_navigation(wait_until="load"):
        page.locator("nav#nav a[href='/queue']").click()
    assert page.locator("article.qitem").first.get_attribute("data-lead") == str(ann)
    item = page.locator(f"article.qitem[data-lead='{ann}']")
    item.locator("form.decide-accept select[name=reason]").select_option("strategic_account")
    with page.expect_navigation(wait_until="load"):
        item.locator("form.decide-accept button[type=submit]").click()
    assert urlsplit(page.url).path == "/queue"
    assert page.locator(".notice").inner_text() == f"Lead {ann} accepted (SAL)."
    assert page.locator(f"article.qitem[data-lead='{ann}']").count() == 0
    assert page.locator(f"article.qitem[data-lead='{bob}']").count() == 1
    assert app.lead(ann).stage == "sal"
    accepted = history(app, ann)
    assert (accepted["from"], accepted["to"], accepted["actor"]) == ("mql", "sal", f"user:{SALES}")
    assert "strategic_account" in accepted["reason"]

    # rejecting asks first: dismissed, nothing happens; accepted, the lead is recycled
    dialogs: list[str] = []
    reject = page.locator(f"article.qitem[data-lead='{bob}'] form.decide-reject")
    reject.locator("select[name=reason]").select_option("bad_timing")
    page.once("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    reject.locator("button[type=submit]").click()
    assert page.evaluate("document.readyState") == "complete"
    assert dialogs == [f"Reject lead {bob} (bad_timing)?"]
    assert urlsplit(page.url).path == "/queue" and app.lead(bob).stage == "mql"
    page.once("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    with page.expect_navigation(wait_until="load"):
        reject.locator("button[type=submit]").click()
    assert dialogs[1:] == [f"Reject lead {bob} (bad_timing)?"]
    assert page.locator(".notice").inner_text() == f"Lead {bob} rejected (RECYCLED)."
    assert page.locator(f"article.qitem[data-lead='{bob}']").count() == 0
    assert [page.locator("article.qitem").nth(0).get_attribute("data-lead")] == [str(ids["cid"])]
    assert app.lead(bob).stage == "recycled"
    rejected = history(app, bob)
    assert (rejected["to"], rejected["actor"]) == ("recycled", f"user:{SALES}")
    assert "bad_timing" in rejected["reason"]

    # the funnel follows: one lead accepted by sales, the MQLs reached unchanged
    with page.expect_navigation(wait_until="load"):
        page.locator("nav#nav a[href='/']").click()
    assert (kpi(page, "lead"), kpi(page, "mql"), kpi(page, "sal")) == ("5", "3", "1")
    watch.assert_clean(f"/login: {http_error(401, 'Unauthorized')}")


def test_hostile_lead_data_shows_as_text_and_never_runs(
    context: Any, watch: Watch, dashboard: Server, dashboard_app: Leadflow
) -> None:
    app = dashboard_app
    hostile = Person(
        "mal", "mal@evil.test",
        {"first_name": XSS_SCRIPT, "last_name": "", "company": XSS_IMG, "industry": "software"},
    )  # fmt: skip
    ids = seed(app, dashboard.source, hostile)
    app.add_user(ADMIN, PASSWORD, "admin", "Ada")
    page = watch.page(context)
    sign_in(page, dashboard.url, ADMIN)
    for path in (f"/leads/{ids['mal']}", "/leads?sort=engagement", "/leads?q=mal", "/queue"):
        answer = page.goto(f"{dashboard.url}{path}", wait_until="load")
        assert answer.status == 200, path
        page.wait_for_load_state("networkidle")
        assert page.evaluate("typeof window.__xss") == "undefined", path
        main = page.locator("main").inner_text()
        assert XSS_SCRIPT in main and XSS_IMG in main, path
        # the markup came through as text: no element was made from it
        assert page.locator("img[src=x]").count() == 0, path
        assert page.locator("script").count() == 1, path  # /static/app.js alone
    assert page.locator(f"article.qitem[data-lead='{ids['mal']}'] .muted").first.inner_text() == (
        XSS_IMG
    )
    watch.assert_clean()


@dataclass
class Attacker:
    """A page on another origin whose form posts itself to the dashboard on load."""

    origin: str
    folder: Path

    def page(self, name: str, action: str, fields: dict[str, str]) -> str:
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in fields.items()
        )
        (self.folder / name).write_text(
            '<!doctype html><title>Win a prize</title><link rel="icon" href="data:,">'
            f'<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(action)}">{inputs}</form></body>'
        )
        return f"{self.origin}/{name}"


@pytest.fixture
def attacker(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Attacker]:
    """Served on another port of 127.0.0.1 (the same site), or on 127.0.0.2 (another site;
    still the loopback interface)."""
    host = getattr(request, "param", "127.0.0.1")
    folder = tmp_path / "attacker"
    folder.mkdir()
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    httpd = ThreadingHTTPServer((host, 0), partial(quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Attacker(f"http://{host}:{httpd.server_address[1]}", folder)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_form_posted_from_another_port_is_refused_by_the_token_and_origin_checks(
    context: Any, watch: Watch, dashboard: Server, dashboard_app: Leadflow, attacker: Attacker
) -> None:
    app = dashboard_app
    cid = seed(app, dashboard.source)["cid"]
    app.add_user(SALES, PASSWORD, "sales")
    page = watch.page(context)
    sign_in(page, dashboard.url, SALES)
    page.goto(f"{dashboard.url}/leads/{cid}", wait_until="load")
    token = page.locator("form.decide-accept input[name=csrf]").input_value()
    action = f"{dashboard.url}/leads/{cid}/decide"
    decision = {"decision": "accept", "reason": "meets_criteria", "next": "/queue"}
    # Another port is the same site, so SameSite=Lax lets the session cookie go along: the
    # dashboard sees the user and refuses the form itself, without the token and with a
    # leaked one (the Origin names the other port).
    for name, fields in (("guess", {**decision, "csrf": "guessed"}),
                         ("leaked", {**decision, "csrf": token})):  # fmt: skip
        with page.expect_navigation(url=action, wait_until="load"):
            page.goto(attacker.page(f"{name}.html", action, fields))
        assert "came from another site" in page.locator("main").inner_text(), name
        assert page.locator(".topbar .who .email").inner_text() == SALES, name
        assert app.lead(cid).stage == "mql", name
    assert history(app, cid)["to"] == "mql"
    forbidden = f"/leads/{cid}/decide: {http_error(403, 'Forbidden')}"
    watch.assert_clean(forbidden, forbidden)


@pytest.fixture
def two_sites(browser: Any) -> Iterator[Any]:
    """A browser context where 127.0.0.2 resolves too (both are the loopback interface)."""
    rules = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2"
    args = [rules if a.startswith("--host-resolver-rules=") else a for a in CHROMIUM_ARGS]
    wider = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=args)
    try:
        context = wider.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(10_000)
        yield context
    finally:
        wider.close()


@pytest.mark.parametrize("attacker", ["127.0.0.2"], indirect=True)
def test_a_form_posted_from_another_site_goes_without_the_session_cookie(
    two_sites: Any, dashboard: Server, dashboard_app: Leadflow, attacker: Attacker
) -> None:
    app = dashboard_app
    cid = seed(app, dashboard.source)["cid"]
    app.add_user(SALES, PASSWORD, "sales")
    watch = Watch(hosts={"127.0.0.1", "127.0.0.2"})
    page = watch.page(two_sites)
    sign_in(page, dashboard.url, SALES)
    page.goto(f"{dashboard.url}/leads/{cid}", wait_until="load")
    token = page.locator("form.decide-accept input[name=csrf]").input_value()
    action = f"{dashboard.url}/leads/{cid}/decide"
    fields = {"decision": "accept", "reason": "meets_criteria", "csrf": token}
    # even with the right token: SameSite=Lax keeps the cookie off a cross-site POST, so the
    # dashboard sees nobody signed in and sends the browser to the login page
    with page.expect_navigation(url=f"{dashboard.url}/login**", wait_until="load"):
        page.goto(attacker.page("leaked.html", action, fields))
    assert page.url == f"{dashboard.url}/login?next=/leads/{cid}/decide"
    assert app.lead(cid).stage == "mql"
    assert history(app, cid)["to"] == "mql"
    watch.assert_clean()


def test_on_a_phone_the_sidebar_opens_from_the_menu_button(
    browser: Any, watch: Watch, dashboard: Server, dashboard_app: Leadflow
) -> None:
    ids = seed(dashboard_app, dashboard.source)
    dashboard_app.add_user(ADMIN, PASSWORD, "admin")
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = watch.page(phone)
        sign_in(page, dashboard.url, ADMIN)
        for path in ("/", "/leads", f"/leads/{ids['ann']}", "/queue", "/model"):
            page.goto(f"{dashboard.url}{path}", wait_until="load")
            nav, menu = page.locator("nav#nav"), page.locator("header.topbar button.menu")
            assert menu.is_visible() and menu.inner_text() == "☰", path
            assert not nav.is_visible() and menu.get_attribute("aria-expanded") == "false", path
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)  # nothing makes the page scroll sideways
            menu.click()
            assert nav.is_visible() and menu.get_attribute("aria-expanded") == "true", path
            assert nav.get_by_role("link", name="Scoring model").is_visible(), path
        with page.expect_navigation(wait_until="load"):
            page.locator("nav#nav").get_by_role("link", name="Sales queue").click()
        assert urlsplit(page.url).path == "/queue"
        assert not page.locator("nav#nav").is_visible()  # closed again on the new page
        # the search stays at hand, on its own row under the top bar
        search = page.get_by_role("searchbox", name="Find a lead")
        assert search.is_visible()
        box = search.bounding_box()
        assert box is not None and box["width"] > 300 and box["x"] + box["width"] <= 390
        search.fill("ann.lee@acme.test")
        with page.expect_navigation(wait_until="load"):
            search.press("Enter")
        assert urlsplit(page.url).path == "/leads"
        found = page.locator("main table tbody tr")
        assert found.count() == 1 and "ann.lee@acme.test" in found.first.inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "phone-queue.png"), full_page=True)
    finally:
        phone.close()
    watch.assert_clean()


# --- screenshots ----------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG and head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def in_thread(call: Callable[[], Any]) -> Any:
    """Run a call on another thread: the module's Playwright already runs on this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=300)


def test_screenshots_of_the_main_pages(
    browser: Any, dashboard: Server, dashboard_app: Leadflow
) -> None:
    seed(dashboard_app, dashboard.source)
    dashboard_app.add_user(ADMIN, PASSWORD, "admin", "Ada")
    steps: list[tuple[int, int]] = []
    written = in_thread(
        lambda: take_screenshots(
            dashboard.url, ADMIN, PASSWORD, SHOTS, progress=lambda *step: steps.append(step)
        )
    )
    names = [name for name, _ in PAGES]
    assert written == [SHOTS / f"{name}.png" for name in names]
    assert steps == [(n, len(names)) for n in range(1, len(names) + 1)]
    for path in written:
        assert path.stat().st_size > 10_000, path
        width, height = png_size(path)
        assert width == 1400 and height >= 900, (path, width, height)
    # full pages: the lead's page is taller than the window
    assert png_size(SHOTS / "03-lead.png")[1] > 900


def test_screenshots_explain_what_is_missing(
    browser: Any,
    dashboard: Server,
    dashboard_app: Leadflow,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dashboard_app.add_user(ADMIN, PASSWORD, "admin")
    with pytest.raises(
        ScreenshotError, match=r"Chromium is missing at /nowhere/chromium: run `make browser-deps`"
    ):
        take_screenshots(dashboard.url, ADMIN, PASSWORD, tmp_path, chromium="/nowhere/chromium")
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "playwright.sync_api", None)  # as if not installed
        with pytest.raises(ScreenshotError, match=r"Python Playwright is missing: pip install"):
            take_screenshots(dashboard.url, ADMIN, PASSWORD, tmp_path)
    with pytest.raises(ScreenshotError, match=r"on 127\.0\.0\.1 only"):
        take_screenshots(f"http://localhost:{dashboard.port}", ADMIN, PASSWORD, tmp_path)
    with pytest.raises(ScreenshotError, match="Wrong email or password"):
        in_thread(lambda: take_screenshots(dashboard.url, ADMIN, "wrong password", tmp_path))
    # no MQL and no journey yet: those two pages are left out, the others are taken
    taken = in_thread(lambda: take_screenshots(dashboard.url, ADMIN, PASSWORD, tmp_path / "empty"))
    assert [p.stem for p in taken] == [
        name for name, _ in PAGES if name not in ("03-lead", "06-journey")
    ]
    assert list(tmp_path.glob("*.png")) == []
