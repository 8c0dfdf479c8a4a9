"""Full-page screenshots of the dashboard, taken in a real browser (docs/dashboard.md).

:func:`take_screenshots` signs in through the login form of a running dashboard with
Playwright and Debian's Chromium (headless), opens the main pages and saves one PNG each.
Chromium is started so that no host but 127.0.0.1 resolves: nothing leaves the machine.
Playwright is a development dependency, imported only when screenshots are taken.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from leadflow.domain.errors import LeadflowError

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

__all__ = [
    "CHROMIUM_ARGS", "FIRST_JOURNEY_PAGE", "PAGES", "TOP_MQL_PAGE", "ScreenshotError",
    "take_screenshots",
]  # fmt: skip

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Nothing but 127.0.0.1 resolves: a request elsewhere fails in the browser itself.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
TIMEOUT_MS = 15_000
TOP_MQL = "/leads?sort=engagement&stage=mql"
# The pages shot by default, in order. Two paths are looked up once signed in: TOP_MQL_PAGE
# (the first MQL of the leads sorted by engagement) and FIRST_JOURNEY_PAGE.
TOP_MQL_PAGE = "<top MQL>"
FIRST_JOURNEY_PAGE = "<first journey>"
PAGES: tuple[tuple[str, str], ...] = (
    ("01-overview", "/"),
    ("02-leads", "/leads?sort=engagement"),
    ("03-lead", TOP_MQL_PAGE),
    ("04-queue", "/queue"),
    ("05-journeys", "/journeys"),
    ("06-journey", FIRST_JOURNEY_PAGE),
    ("07-segments", "/segments"),
    ("08-reports", "/reports?by=utm_campaign"),
    ("09-model", "/model"),
    ("10-settings", "/settings"),
)
INSTALL = "run `make browser-deps` (or `apt-get install chromium`)"


class ScreenshotError(LeadflowError):
    """The screenshots could not be taken: no browser, no sign-in, or a page that failed."""

    code = "screenshot_failed"


def take_screenshots(
    base_url: str,
    email: str,
    password: str,
    out_dir: Path,
    pages: Sequence[tuple[str, str]] | None = None,
    chromium: str = "/usr/bin/chromium",
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Sign in as ``email`` and save a full-page PNG of each page into ``out_dir``.

    ``pages`` are ``(name, path)`` pairs (``("02-leads", "/leads")`` saves ``02-leads.png``);
    by default :data:`PAGES`. The paths TOP_MQL_PAGE and FIRST_JOURNEY_PAGE are looked up once
    signed in, and their pages left out when there is no MQL or no journey.
    ``progress(done, total)`` is called after each page. Returns the files written, in order.
    """
    if urlsplit(base_url).hostname != "127.0.0.1":
        raise ScreenshotError(
            f"{base_url}: screenshots are taken of a dashboard on 127.0.0.1 only "
            "(the browser resolves no other host)"
        )
    if not Path(chromium).exists():
        raise ScreenshotError(f"Chromium is missing at {chromium}: {INSTALL}")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ScreenshotError(
            "Python Playwright is missing: pip install -e '.[dev]' (it is a development "
            f"dependency; never download its browsers, use Debian's Chromium: {INSTALL})"
        ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            try:
                context = browser.new_context(viewport=VIEWPORT)
                context.set_default_timeout(TIMEOUT_MS)
                page = context.new_page()
                _sign_in(page, base_url, email, password)
                chosen = _resolve(page, base_url, PAGES if pages is None else pages)
                for done, (name, path) in enumerate(chosen, start=1):
                    written.append(_shoot(page, base_url, name, path, out_dir))
                    if progress is not None:
                        progress(done, len(chosen))
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ScreenshotError(f"the browser failed: {exc.message.splitlines()[0]}") from exc
    return written


def _sign_in(page: Page, base_url: str, email: str, password: str) -> None:
    """Fill in and send the login form; a refusal raises with the page's own message."""
    answer = page.goto(urljoin(base_url, "/login"), wait_until="load")
    if answer is None or answer.status != 200:
        status = answer.status if answer is not None else "no answer"
        raise ScreenshotError(f"the login page of {base_url} answered {status}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation(wait_until="load"):
        page.click("form.login-card button[type=submit]")
    if urlsplit(page.url).path == "/login":
        alert = page.locator(".alert")
        reason = alert.inner_text().strip() if alert.count() else "no session was opened"
        raise ScreenshotError(f"signing in as {email} at {base_url} failed: {reason}")


def _resolve(page: Page, base_url: str, pages: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pages with TOP_MQL_PAGE and FIRST_JOURNEY_PAGE looked up; left out when missing."""
    lookups = {
        TOP_MQL_PAGE: (TOP_MQL, "table.leads tbody a[href^='/leads/']"),
        FIRST_JOURNEY_PAGE: ("/journeys", "a[href^='/journeys/']"),
    }
    chosen = []
    for name, path in pages:
        target: str | None = path
        if path in lookups:
            target = _first_link(page, base_url, *lookups[path])
        if target is not None:
            chosen.append((name, target))
    return chosen


def _first_link(page: Page, base_url: str, path: str, selector: str) -> str | None:
    _open(page, base_url, path)
    link = page.locator(f"main {selector}").first
    return link.get_attribute("href") if link.count() else None


def _open(page: Page, base_url: str, path: str) -> None:
    answer = page.goto(urljoin(base_url, path), wait_until="load")
    if answer is None or answer.status != 200:
        status = answer.status if answer is not None else "no answer"
        raise ScreenshotError(f"{path} answered {status}")
    if urlsplit(page.url).path == "/login":
        raise ScreenshotError(f"{path} sent the browser back to the login page")


def _shoot(page: Page, base_url: str, name: str, path: str, out_dir: Path) -> Path:
    _open(page, base_url, path)  # the pages are drawn on the server: "load" is complete
    target = out_dir / (name if name.endswith(".png") else f"{name}.png")
    page.screenshot(path=str(target), full_page=True)
    return target
