"""The links in sent emails, through the HTTP app on SQLite and PostgreSQL: the open pixel,
click redirects to stored destinations only, one-click unsubscribe, and machine hits that
are recorded but never scored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from leadflow import Leadflow
from leadflow.api.app import create_app
from leadflow.services.activity import EMAIL_CLICKED, EMAIL_OPENED, EMAIL_UNSUBSCRIBED
from leadflow.services.email import HONEYPOT_INDEX
from tests.integration.email_support import TestClient, add_lead, deliver, events_named

BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Gecko/20100101 Firefox/124.0"}
APPLE_PROXY = {"User-Agent": "Mozilla/5.0"}
SCANNER = {"User-Agent": "Mozilla/5.0 (compatible; Barracuda Sentinel)"}


@pytest.fixture
def client(leadflow: Leadflow) -> Iterator[TestClient]:
    with TestClient(create_app(leadflow=leadflow)) as test_client:
        yield test_client


def path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def links(html: str) -> list[str]:
    return [path(u) for u in re.findall(r'href="([^"]+/c/[^"]+)"', html)]


def test_the_pixel_records_an_open_that_scores(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    delivery, _ = deliver(leadflow, lead_id)
    before = leadflow.lead(lead_id).engagement_score
    pixel = path(leadflow.email_composer().urls(delivery.id)["open"])
    for _ in range(2):
        answer = client.get(pixel, headers=BROWSER)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/gif"
        assert "no-store" in answer.headers["cache-control"]
        assert answer.content.startswith(b"GIF89a") and len(answer.content) == 43
    [opened] = events_named(leadflow, lead_id, EMAIL_OPENED)  # a second open is no new event
    assert opened["machine"] is False and opened["delivery_id"] == delivery.id
    assert leadflow.deliveries(lead_id)[0].opened_at is not None
    assert leadflow.lead(lead_id).engagement_score > before


def test_a_bad_pixel_token_still_gets_the_gif(leadflow: Leadflow, client: TestClient) -> None:
    for token in ("nonsense", "A" * 30):
        answer = client.get(f"/o/{token}.gif")
        assert answer.status_code == 200 and answer.content.startswith(b"GIF89a")
        assert "no-store" in answer.headers["cache-control"]


@pytest.mark.parametrize(
    ("headers", "method", "reason"),
    [
        (APPLE_PROXY, "GET", "apple_privacy_proxy"),
        (SCANNER, "GET", "scanner_user_agent"),
        (BROWSER, "HEAD", "head_request"),
    ],
)
def test_machine_opens_are_flagged_and_not_scored(
    leadflow: Leadflow, client: TestClient, headers: dict[str, str], method: str, reason: str
) -> None:
    lead_id = add_lead(leadflow)
    delivery, _ = deliver(leadflow, lead_id)
    before = leadflow.lead(lead_id).engagement_score
    pixel = path(leadflow.email_composer().urls(delivery.id)["open"])
    assert client.request(method, pixel, headers=headers).status_code == 200
    [opened] = events_named(leadflow, lead_id, EMAIL_OPENED)
    assert opened["machine"] is True and opened["machine_reason"] == reason
    assert leadflow.deliveries(lead_id)[0].opened_at is None
    assert leadflow.lead(lead_id).engagement_score == before
    # the person opening later still counts
    client.get(pixel, headers=BROWSER)
    found = events_named(leadflow, lead_id, EMAIL_OPENED)
    assert sorted(e["machine"] for e in found) == [False, True]
    assert leadflow.lead(lead_id).engagement_score > before


def test_an_open_seconds_after_sending_is_a_machine(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    delivery, _ = deliver(leadflow, lead_id, sent_ago=timedelta(seconds=1))
    client.get(path(leadflow.email_composer().urls(delivery.id)["open"]), headers=BROWSER)
    [opened] = events_named(leadflow, lead_id, EMAIL_OPENED)
    assert opened["machine_reason"] == "seconds_after_send"


def test_a_click_redirects_to_the_stored_destination(
    leadflow: Leadflow, client: TestClient
) -> None:
    lead_id = add_lead(leadflow)
    _delivery, message = deliver(leadflow, lead_id)
    pricing, blog = links(message.html or "")[:2]
    answer = client.get(pricing + "?url=https://evil.test/", headers=BROWSER,
                        follow_redirects=False)  # fmt: skip
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://acme.test/pricing"
    assert client.get(blog, headers=BROWSER, follow_redirects=False).headers["location"] == (
        "https://acme.test/blog"
    )
    clicks = events_named(leadflow, lead_id, EMAIL_CLICKED)
    assert {c["url"] for c in clicks} == {"https://acme.test/pricing", "https://acme.test/blog"}
    assert not any(c["machine"] for c in clicks)
    assert leadflow.deliveries(lead_id)[0].clicked_at is not None
    assert leadflow.explain(lead_id)  # the clicks are scored like any event


def test_bad_click_tokens_get_a_404_page(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    delivery, message = deliver(leadflow, lead_id)
    good = links(message.html or "")[0]
    token = good.rsplit("/", 1)[1]
    edited = good[:-1] + ("A" if token[-2] != "A" else "B") + good[-1:]
    other_purpose = (
        "/c/" + path(leadflow.email_composer().urls(delivery.id)["unsubscribe"]).split("/u/")[1]
    )
    beyond = path(leadflow.email_composer().click_url(delivery.id, 7))
    for bad in (edited, other_purpose, beyond, "/c/garbage"):
        answer = client.get(bad, follow_redirects=False)
        assert answer.status_code == 404, bad
        assert "location" not in answer.headers
        assert "text/html" in answer.headers["content-type"]
    assert events_named(leadflow, lead_id, EMAIL_CLICKED) == []


def test_scanner_and_honeypot_clicks_are_machines(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    delivery, message = deliver(leadflow, lead_id)
    before = leadflow.lead(lead_id).engagement_score
    honeypot = path(leadflow.email_composer().click_url(delivery.id, HONEYPOT_INDEX))
    assert honeypot in (message.html or "")
    assert client.get(honeypot, headers=BROWSER).status_code == 200
    scanned = client.get(links(message.html or "")[0], headers=SCANNER, follow_redirects=False)
    assert scanned.status_code == 302  # the scanner still gets where the link goes
    reasons = sorted(c["machine_reason"] for c in events_named(leadflow, lead_id, EMAIL_CLICKED))
    assert reasons == ["honeypot", "scanner_user_agent"]
    assert leadflow.deliveries(lead_id)[0].clicked_at is None
    assert leadflow.lead(lead_id).engagement_score == before


def test_get_on_the_unsubscribe_link_only_asks(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    _delivery, message = deliver(leadflow, lead_id)
    link = path(message.headers["List-Unsubscribe"].strip("<>"))
    page = client.get(link, headers=SCANNER)
    assert page.status_code == 200
    assert "<form method='post'>" in page.text and "an*@example.com" in page.text
    assert leadflow.suppressions("email") == []
    assert leadflow.consent(lead_id)["current"]["email"] == "none"


def test_one_click_unsubscribe_suppresses_at_once(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    delivery, message = deliver(leadflow, lead_id)
    link = path(message.headers["List-Unsubscribe"].split(",")[0].strip().strip("<>"))
    client.cookies.clear()
    answer = client.post(
        link,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert answer.status_code == 200 and "location" not in answer.headers
    assert "unsubscribed" in answer.text
    [entry] = leadflow.suppressions("email")
    assert (entry.address, entry.reason, entry.lead_id) == ("ann@example.com", "unsubscribed",
                                                            lead_id)  # fmt: skip
    consent = leadflow.consent(lead_id)
    assert consent["current"]["email"] == "revoked"
    assert consent["history"][-1]["proof"] == {
        "delivery_id": delivery.id,
        "method": "one-click",
        "address": "ann@example.com",
    }
    [event] = events_named(leadflow, lead_id, EMAIL_UNSUBSCRIBED)
    assert event["method"] == "one-click"
    again = client.post(link, content=b"List-Unsubscribe=One-Click")
    assert again.status_code == 200
    assert len(leadflow.consent(lead_id)["history"]) == 1


def test_the_confirmation_form_unsubscribes(leadflow: Leadflow, client: TestClient) -> None:
    lead_id = add_lead(leadflow)
    delivery, message = deliver(leadflow, lead_id)
    link = path(leadflow.email_composer().urls(delivery.id)["unsubscribe"])
    assert link in path(message.text.split("Unsubscribe: ")[1].strip())
    answer = client.post(link, data={"confirm": "yes"}, follow_redirects=False)
    assert answer.status_code == 200
    assert leadflow.consent(lead_id)["history"][-1]["proof"]["method"] == "form"
    assert [s.address for s in leadflow.suppressions("email")] == ["ann@example.com"]


def test_a_forged_unsubscribe_link_changes_nothing(leadflow: Leadflow, client: TestClient) -> None:
    add_lead(leadflow)
    answer = client.post("/u/" + "A" * 30, content=b"List-Unsubscribe=One-Click")
    assert answer.status_code == 404
    assert leadflow.suppressions("email") == []
