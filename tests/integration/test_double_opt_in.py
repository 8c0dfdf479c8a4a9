"""Double opt-in for email on both backends, through a real SMTP server: a pending grant
stops marketing email, the confirmation email goes out anyway, a GET on its link confirms
nothing (scanners prefetch), the POST grants consent with the click as proof."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from leadflow import Leadflow, Settings
from leadflow.adapters.email.capture_server import CaptureServer
from leadflow.api.app import create_app
from leadflow.cli.init import CONFIRM_TEMPLATE
from leadflow.domain.errors import Conflict
from leadflow.jobs.nurture import Messaging, send_due
from tests.integration.email_support import NEWS, TestClient, add_lead
from tests.integration.scoring_support import Clock
from tests.integration.test_email_flow import local, queue


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as smtp:
        yield smtp


@pytest.fixture
def app(leadflow: Leadflow, settings: Settings, server: CaptureServer) -> Iterator[Leadflow]:
    settings.config_file.write_text(
        f"public_url: https://t.acme.test\nemail:\n  port: {server.port}\n"
        "  from_address: news@acme.test\n",
        encoding="utf-8",
    )
    folder = settings.home / "templates"
    folder.mkdir()
    (folder / "news.email.yaml").write_text(NEWS, encoding="utf-8")
    (folder / "confirm-subscription.email.yaml").write_text(CONFIRM_TEMPLATE, encoding="utf-8")
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    opened = Leadflow(Settings(database_url=settings.database_url, home=settings.home), clock)
    opened.migrate()
    yield opened
    opened.close()


def _send(app: Leadflow) -> int:
    sender = app.email_sender()
    try:
        return send_due(app, Messaging(app.email_composer(), sender)).sent
    finally:
        sender.close()


def test_double_opt_in(app: Leadflow, server: CaptureServer) -> None:
    lead = add_lead(app)
    app.request_email_opt_in(lead, "newsletter form", {"form": "footer"})
    assert app.consent(lead)["current"]["email"] == "pending"
    queue(app, lead, "run:1:news:1")  # marketing, while the grant is pending
    assert _send(app) == 1  # the confirmation only
    news = next(d for d in app.deliveries(lead) if d.template == "news")
    assert news.status == "skipped" and news.reason.startswith("consent_pending")
    [received] = server.received
    assert received.message["Subject"] == "Please confirm your subscription"
    text = received.message.get_body(("plain",)).get_content()
    link = re.search(r"https://t\.acme\.test/confirm/\S+", text)
    assert link is not None
    with TestClient(create_app(leadflow=app)) as client:
        page = client.get(local(link.group(0)))
        assert page.status_code == 200 and "<form method='post'>" in page.text
        assert app.consent(lead)["current"]["email"] == "pending"  # a GET grants nothing
        done = client.post(local(link.group(0)))
        assert done.status_code == 200 and "subscribed" in done.text
        assert client.post(local(link.group(0))).status_code == 200  # twice is harmless
        assert client.get(local(link.group(0)) + "x").status_code == 404
    consent = app.consent(lead)
    assert consent["current"]["email"] == "granted"
    grants = [h for h in consent["history"] if h["status"] == "granted"]
    assert len(grants) == 1 and grants[0]["source"] == "double_opt_in"
    assert grants[0]["proof"]["confirmed_from"] == "testclient"
    with pytest.raises(Conflict, match="already granted"):
        app.request_email_opt_in(lead, "again")
