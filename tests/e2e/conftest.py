"""A real HTTP server (uvicorn, in a background thread, on a free port) over the test store:
``server`` serves the API, ``dashboard`` the API with the dashboard over a store opened with
the test module's ``model_text``."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn

pytest.register_assert_rewrite("tests.integration.scoring_support")

CHROMIUM = "/usr/bin/chromium"

from leadflow import Leadflow, Settings, SourceRecord  # noqa: E402
from leadflow.api.app import create_app  # noqa: E402
from leadflow.web import create_site  # noqa: E402
from leadflow.web.screenshots import CHROMIUM_ARGS  # noqa: E402
from tests.conftest import need_service  # noqa: E402
from tests.integration.scoring_support import T0, Clock, open_with_model  # noqa: E402


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    source: SourceRecord


@pytest.fixture
def server(leadflow: Leadflow) -> Iterator[Server]:
    """uvicorn serving create_app() for the `leadflow` store (SQLite file or PostgreSQL)."""
    source = leadflow.create_source("e2e")
    with serving(create_app(leadflow=leadflow)) as (url, port):
        yield Server(url, port, source)


@contextmanager
def chromium(*extra: str) -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Python Playwright (no browser download), with
    every host but 127.0.0.1 unresolvable; a missing browser or Playwright skips (fails in CI)."""
    if not Path(CHROMIUM).exists():
        need_service(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need_service("Python Playwright is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra]
        )
        try:
            yield browser
        finally:
            browser.close()


# --- the dashboard (create_site) over a store opened with the module's scoring model ------
@contextmanager
def serving(asgi: Any, lifespan: str = "off") -> Iterator[tuple[str, int]]:
    """uvicorn serving an ASGI app in a background thread on a free 127.0.0.1 port
    (``lifespan="on"`` runs the app's startup and shutdown, e.g. staged ingestion's drainer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        asgi, log_level="warning", lifespan=lifespan, access_log=False, timeout_graceful_shutdown=2
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", port
    finally:
        instance.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def dashboard_clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def dashboard_app(
    leadflow: Leadflow, settings: Settings, dashboard_clock: Clock, model_text: str
) -> Iterator[Leadflow]:
    """leadflow on the test's emptied database with the module's ``model_text`` written to
    leadflow.yaml (closed before ``leadflow`` empties the database again)."""
    app = open_with_model(settings, dashboard_clock, model_text)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def dashboard(dashboard_app: Leadflow) -> Iterator[Server]:
    """uvicorn serving create_site() (the API and the dashboard) for ``dashboard_app``."""
    source = dashboard_app.create_source("website")
    with serving(create_site(leadflow=dashboard_app)) as (url, port):
        yield Server(url, port, source)
