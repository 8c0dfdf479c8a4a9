"""The composer: tracked links that resolve to stored destinations, pixel, honeypot,
unsubscribe link and headers; Message-IDs; machine hits; the email: settings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from leadflow.domain.errors import ConfigError
from leadflow.ports import DeliveryRecord, LeadView
from leadflow.services.email import (
    HONEYPOT_INDEX,
    EmailComposer,
    EmailSettings,
    email_settings,
    key_of_message_id,
    message_id_for,
)
from leadflow.services.email_tracking import Hit, machine_reason
from leadflow.services.templates import Templates
from leadflow.services.tokens import Purpose, Tokens

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PUBLIC = "https://t.acme.test"
TEMPLATE = """\
subject: News for {{ lead.first_name | default('you') }}
text: |
  Read https://acme.test/blog?a=1&b=2. Or https://acme.test/pricing, now.
html: |
  <html><body>
  <p><a href="https://acme.test/blog?a=1&amp;b=2">Blog</a>
  <a class="x" href='https://acme.test/pricing'>Pricing</a>
  <a href="mailto:sales@acme.test">Mail us</a>
  <a href="https://acme.test/blog?a=1&amp;b=2">Blog again</a></p>
  </body></html>
"""


def delivery(**changes: object) -> DeliveryRecord:
    values: dict[str, object] = dict(
        id=42, key="run:5:welcome:1", lead_id=7, channel="email", address="ann@example.com",
        journey="welcome", run_id=5, step="welcome", template="news", variant=None,
        status="queued", reason="", provider_id=None, attempts=0, parts=1,
        next_attempt_at=None, content={}, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    values.update(changes)
    return DeliveryRecord(**values)  # type: ignore[arg-type]


def lead() -> LeadView:
    return LeadView(
        id=7, email="ann@example.com", phone=None, identities={}, traits={"first_name": "Ann"},
        stage="mql", fit_score=0.0, fit_grade=None, engagement_score=0.0, p_convert=None,
        account=None, first_touch={}, created_at=NOW, first_seen_at=None, last_seen_at=None,
    )  # fmt: skip


@pytest.fixture
def composer(tmp_path: Path) -> EmailComposer:
    (tmp_path / "news.email.yaml").write_text(TEMPLATE, encoding="utf-8")
    settings = EmailSettings(
        from_address="news@acme.test", from_name="Acme News", unsubscribe_mailto="u@acme.test"
    )
    return EmailComposer(settings, Templates(tmp_path), Tokens("x" * 32), PUBLIC + "/")


def test_links_point_to_tracked_urls_and_the_originals_are_stored(
    composer: EmailComposer,
) -> None:
    message, content = composer.email(delivery(), lead())
    assert content["links"] == ["https://acme.test/blog?a=1&b=2", "https://acme.test/pricing"]
    html = message.html or ""
    assert "acme.test/blog" not in html and "acme.test/pricing" not in html
    assert "mailto:sales@acme.test" in html  # only web links are tracked
    clicks = re.findall(rf"{PUBLIC}/c/([A-Za-z0-9_-]+)", html)
    indexes = [composer.tokens.read(Purpose.CLICK, t).index for t in clicks]
    assert indexes[:3] == [0, 1, 0]  # the same URL keeps its index
    assert HONEYPOT_INDEX in indexes  # the hidden link for scanners
    text_clicks = re.findall(rf"{PUBLIC}/c/([A-Za-z0-9_-]+)([.,])", message.text)
    assert [(composer.tokens.read(Purpose.CLICK, t).index, p) for t, p in text_clicks] == [
        (0, "."),
        (1, ","),
    ]


def test_a_pixel_an_unsubscribe_link_and_one_click_headers(composer: EmailComposer) -> None:
    message, content = composer.email(delivery(), lead())
    unsubscribe = composer.urls(42)["unsubscribe"]
    pixel = composer.urls(42)["open"]
    html = message.html or ""
    assert html.index(pixel) < html.index("</body>")
    assert unsubscribe in html and unsubscribe in message.text
    assert message.headers["List-Unsubscribe"] == (
        f"<{unsubscribe}>, <mailto:u@acme.test?subject=unsubscribe>"
    )
    assert message.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.subject == "News for Ann"
    assert message.from_addr == "Acme News <news@acme.test>"
    assert message.key == "run:5:welcome:1" and message.to == "ann@example.com"
    assert content["message_id"] == "<run=3A5=3Awelcome=3A1@acme.test>"
    assert len(content["text_sha256"]) == 64


def test_composing_again_gives_the_same_message(composer: EmailComposer) -> None:
    assert composer.email(delivery(), lead()) == composer.email(delivery(), lead())


@pytest.mark.parametrize("key", ["run:5:welcome:1", "a.b=c@d é", "plain-key_1"])
def test_message_ids_hold_the_delivery_key(key: str) -> None:
    message_id = message_id_for(key, "acme.test")
    assert re.fullmatch(r"<[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+@acme\.test>", message_id)
    assert key_of_message_id(message_id) == key


SETTINGS = EmailSettings(machine_seconds=10)
SENT = NOW - timedelta(minutes=5)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML)"


@pytest.mark.parametrize(
    ("hit", "sent_at", "index", "reason"),
    [
        (Hit(NOW, BROWSER, "GET", "203.0.113.9"), SENT, 0, None),
        (Hit(NOW, "Mozilla/5.0", "GET", "203.0.113.9"), SENT, None, "apple_privacy_proxy"),
        (Hit(NOW, BROWSER, "GET", "17.58.1.2"), SENT, None, "apple_privacy_proxy"),
        (Hit(NOW, BROWSER, "HEAD", "203.0.113.9"), SENT, 0, "head_request"),
        (Hit(NOW, "Barracuda Sentinel (EE)", "GET", None), SENT, 0, "scanner_user_agent"),
        (Hit(NOW, "", "GET", None), SENT, 0, "no_user_agent"),
        (Hit(NOW, BROWSER, "GET", None), NOW - timedelta(seconds=3), 0, "seconds_after_send"),
        (Hit(NOW, BROWSER, "GET", None), None, 0, "before_send_confirmed"),
        (Hit(NOW, BROWSER, "GET", None), SENT, HONEYPOT_INDEX, "honeypot"),
    ],
)
def test_machine_hits_are_told_apart(
    hit: Hit, sent_at: datetime | None, index: int | None, reason: str | None
) -> None:
    assert machine_reason(hit, sent_at, SETTINGS, index) == reason


def test_configured_scanner_agents_count_too() -> None:
    settings = EmailSettings(scanner_user_agents=["AcmeGuard"])
    assert machine_reason(Hit(NOW, "acmeguard/2.0"), SENT, settings) == "scanner_user_agent"


def test_settings_errors_name_the_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "leadflow.yaml"
    config.write_text("email:\n  host: mail\n  security: tls\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"leadflow\.yaml:3: key 'email\.security'"):
        email_settings({"host": "mail", "security": "tls"}, config)
    config.write_text("email:\n  dkim:\n    selector: s1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"leadflow\.yaml:2: key 'email\.dkim\.domain'"):
        email_settings({"dkim": {"selector": "s1"}}, config)


def test_settings_defaults_and_ports(tmp_path: Path) -> None:
    config = tmp_path / "leadflow.yaml"
    found = email_settings({"security": "starttls", "dkim": {"selector": "s", "domain": "d",
                            "key_file": "dkim.key"}}, config)  # fmt: skip
    assert found.smtp_port == 587
    assert found.dkim is not None and found.dkim.key_file == tmp_path / "dkim.key"
    assert email_settings(None, config).smtp_port == 25
    assert email_settings({"security": "ssl"}, config).smtp_port == 465
