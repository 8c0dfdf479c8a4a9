"""What the email tests share: a lead with an email address, a sent delivery of a template,
and the API client."""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

from leadflow import Leadflow
from leadflow.adapters.db.deliveries import SqlDeliveryRepository
from leadflow.ports import DeliveryRecord, EmailMessage, NewDelivery

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

__all__ = ["TestClient", "add_lead", "deliver", "events_named"]

NEWS = """\
subject: News for {{ lead.first_name | default('you') }}
text: |
  Hi {{ lead.first_name | default('there') }}, see https://acme.test/pricing
html: |
  <html><body><p>Hi {{ lead.first_name | default('there') }},
  see <a href="https://acme.test/pricing">pricing</a>
  and <a href="https://acme.test/blog">the blog</a>.</p></body></html>
"""


def add_lead(app: Leadflow, email: str = "ann@example.com", user_id: str = "u1") -> int:
    source = app.ensure_source("website")
    message = {"type": "identify", "userId": user_id, "traits": {"email": email,
               "first_name": "Ann"}}  # fmt: skip
    app.ingest(source, [message], raise_on_error=True)
    found = app.leads().items
    return next(lead.id for lead in found if lead.email == email)


def deliver(
    app: Leadflow,
    lead_id: int,
    key: str = "run:1:welcome:1",
    sent_ago: timedelta | None = timedelta(hours=1),
) -> tuple[DeliveryRecord, EmailMessage]:
    """A delivery of the 'news' template, composed and (unless ``sent_ago`` is None) sent."""
    folder = app.settings.home / "templates"
    folder.mkdir(exist_ok=True)
    (folder / "news.email.yaml").write_text(NEWS, encoding="utf-8")
    lead = app.lead(lead_id)
    now = app.clock.now()
    with app.transaction() as conn:
        repo = SqlDeliveryRepository(conn)
        new = NewDelivery(key=key, lead_id=lead_id, channel="email", address=lead.email,
                          template="news", journey="welcome", step="welcome")  # fmt: skip
        delivery, _ = repo.create(new, now - (sent_ago or timedelta()))
        message, content = app.email_composer().email(delivery, lead)
        repo.set_content(delivery.id, content, now)
        if sent_ago is not None:
            repo.mark_sent(delivery.id, content["message_id"], 1, "250 ok", now - sent_ago)
        found = repo.get(delivery.id)
    assert found is not None
    return found, message


def events_named(app: Leadflow, lead_id: int, name: str) -> list[dict[str, Any]]:
    return [e.properties for e in app.lead_events(lead_id) if e.name == name]
