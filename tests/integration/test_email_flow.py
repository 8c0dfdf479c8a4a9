"""The whole email path on both backends: the worker composes a queued delivery and sends it
over SMTP to a real server; the links in the message as it arrived then open, click and
unsubscribe, and the next message to that address is stopped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from leadflow import Leadflow, Settings
from leadflow.adapters.db.deliveries import SqlDeliveryRepository
from leadflow.adapters.email.capture_server import CaptureServer
from leadflow.api.app import create_app
from leadflow.jobs.nurture import Messaging, send_due
from leadflow.ports import NewDelivery
from leadflow.services.activity import EMAIL_CLICKED, EMAIL_OPENED
from tests.integration.email_support import NEWS, TestClient, add_lead, events_named
from tests.integration.scoring_support import Clock

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0"}


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    with CaptureServer() as smtp:
        yield smtp


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def app(
    leadflow: Leadflow, settings: Settings, server: CaptureServer, clock: Clock
) -> Iterator[Leadflow]:
    settings.config_file.write_text(
        f"public_url: https://t.acme.test\nemail:\n  port: {server.port}\n"
        "  from_address: news@acme.test\n  from_name: Acme\n",
        encoding="utf-8",
    )
    (settings.home / "templates").mkdir()
    (settings.home / "templates" / "news.email.yaml").write_text(NEWS, encoding="utf-8")
    opened = Leadflow(Settings(database_url=settings.database_url, home=settings.home), clock)
    opened.migrate()
    yield opened
    opened.close()


def queue(app: Leadflow, lead_id: int, key: str) -> int:
    with app.transaction() as conn:
        new = NewDelivery(key=key, lead_id=lead_id, channel="email", address="ann@example.com",
                          template="news", journey="welcome", step="news")  # fmt: skip
        delivery, _ = SqlDeliveryRepository(conn).create(new, app.clock.now())
    return delivery.id


def local(url: str) -> str:
    return url.removeprefix("https://t.acme.test")


def test_send_track_and_unsubscribe(app: Leadflow, server: CaptureServer, clock: Clock) -> None:
    lead_id = add_lead(app)
    first = queue(app, lead_id, "run:1:news:1")
    sender = app.email_sender()
    try:
        report = send_due(app, Messaging(app.email_composer(), sender))
    finally:
        sender.close()
    assert report.sent == 1
    [received] = server.received
    message = received.message
    [delivery] = app.deliveries(lead_id)
    assert delivery.status == "sent" and delivery.provider_id == message["Message-ID"]
    assert delivery.content["links"] == ["https://acme.test/pricing", "https://acme.test/blog"]
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "acme.test/pricing" not in html

    clock.advance(minutes=30)  # a person reads it later
    with TestClient(create_app(leadflow=app)) as client:
        pixel = re.search(r'src="(https://t\.acme\.test/o/[^"]+)"', html)
        assert pixel is not None
        assert client.get(local(pixel.group(1)), headers=BROWSER).status_code == 200
        click = re.search(r'href="(https://t\.acme\.test/c/[^"]+)">pricing', html)
        assert click is not None
        answer = client.get(local(click.group(1)), headers=BROWSER, follow_redirects=False)
        assert answer.headers["location"] == "https://acme.test/pricing"
        unsubscribe = str(message["List-Unsubscribe"]).strip("<>")
        done = client.post(local(unsubscribe), content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200

    assert events_named(app, lead_id, EMAIL_OPENED)[0]["machine"] is False
    assert events_named(app, lead_id, EMAIL_CLICKED)[0]["url"] == "https://acme.test/pricing"
    tracked = app.deliveries(lead_id)[0]
    assert tracked.id == first and tracked.opened_at == tracked.clicked_at == clock.now()
    assert tracked.unsubscribed_at == clock.now()

    queue(app, lead_id, "run:1:news:2")
    with app.email_sender() as again:
        send_due(app, Messaging(app.email_composer(), again))
    latest = app.deliveries(lead_id)[0]
    assert latest.status == "skipped" and "suppress" in latest.reason
    assert len(server.received) == 1
