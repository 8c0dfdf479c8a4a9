"""Journeys on a real database: triggers from the outbox, steps, the delivery ledger, the last
checks before a send (consent, suppression, frequency cap, local hours), retries, goals,
re-entry and offers. The transports are in-tree fakes that record what they were handed:
the email and SMS servers themselves are exercised in their own tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from leadflow import Leadflow, Settings
from leadflow.domain.errors import (
    ConfigError,
    Conflict,
    PermanentDeliveryError,
    TransientDeliveryError,
    ValidationError,
)
from leadflow.jobs.nurture import Messaging, enroll_dates, journey_consumer, run_steps, send_due
from leadflow.jobs.outbox import dispatch
from leadflow.ports import DeliveryRecord, EmailMessage, LeadView, SendReceipt, SmsMessage
from tests.integration.scoring_support import T0, Clock, identify, ingest, track

MODEL = "{}\n"


class FakeComposer:
    def email(
        self, delivery: DeliveryRecord, lead: LeadView
    ) -> tuple[EmailMessage, dict[str, Any]]:
        offer = delivery.content.get("offer", {}).get("code", "")
        subject = (
            f"{delivery.template} for {lead.traits.get('first_name', 'there')} {offer}".strip()
        )
        message = EmailMessage(delivery.key, lead.email or "", "team@leadflow.test", subject, "hi")
        return message, {"subject": subject}

    def sms(self, delivery: DeliveryRecord, lead: LeadView) -> tuple[SmsMessage, dict[str, Any]]:
        return SmsMessage(delivery.key, lead.phone or "", f"{delivery.template}"), {}


class FakeTransport:
    """Records each hand-off; can be told to fail the next sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.failures: list[Exception] = []

    def send(self, message: Any) -> SendReceipt:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return SendReceipt(provider_id=f"p-{len(self.sent)}")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def app(leadflow: Leadflow, settings: Settings, clock: Clock) -> Iterator[Leadflow]:
    (settings.home / "leadflow.yaml").write_text(
        "nurture:\n  frequency_cap: 2\n  frequency_window: 7d\n", encoding="utf-8"
    )
    folder = settings.home / "templates"
    folder.mkdir(exist_ok=True)
    for name in ("welcome", "thanks", "one", "two", "three", "a", "b", "short", "long"):
        (folder / f"{name}.email.yaml").write_text(
            f"subject: {name}\ntext: Hello {{{{ lead.first_name | default('there') }}}}\n",
            encoding="utf-8",
        )
    for name in ("nudge", "hello"):
        (folder / f"{name}.sms.txt").write_text(f"{name}", encoding="utf-8")
    opened = Leadflow(Settings(database_url=settings.database_url, home=settings.home), clock)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def messaging() -> Messaging:
    return Messaging(FakeComposer(), FakeTransport(), FakeTransport())


NURTURE = {
    "trigger": {"stage": "mql"},
    "goals": [{"stage": "sql"}],
    "offers": {"spring": {"expires_in": "14d", "prefix": "SPRING"}},
    "steps": [
        {"id": "welcome", "email": "welcome", "offer": "spring"},
        {"id": "pause", "wait": "2d"},
        {"id": "check", "if": {"opened": "welcome"}, "then": "thanks", "else": "nudge"},
        {"id": "nudge", "sms": "nudge"},
        {"exit": True},
        {"id": "thanks", "email": "thanks"},
    ],
}


def _lead(app: Leadflow, user: str, **traits: Any) -> int:
    source = app.ensure_source("web")
    ingest(app, source, identify(user, T0, **traits))
    return _id_of(app, user)


def _id_of(app: Leadflow, user: str) -> int:
    for lead in app.leads(limit=500).items:
        if user in lead.identities.get("userId", []):
            return lead.id
    raise AssertionError(f"no lead for {user}")


def _work(app: Leadflow, messaging: Messaging) -> None:
    """One pass of the worker's nurture duties."""
    dispatch(app, [journey_consumer(app)])
    run_steps(app)
    send_due(app, messaging)
    run_steps(app)


def test_an_mql_gets_the_journey_with_a_coupon_then_waits_and_branches(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey("nurture", NURTURE)
    lead = _lead(app, "u1", email="ana@example.com", phone="+14155550101", first_name="Ana")
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    email = messaging.email
    assert isinstance(email, FakeTransport)
    assert [m.subject.split(" SPRING-")[0] for m in email.sent] == ["welcome for Ana"]
    code = email.sent[0].subject.split()[-1]
    assert code.startswith("SPRING-") and len(code) == len("SPRING-") + 8
    [run] = app.journey_runs("nurture")
    assert run["status"] == "active" and run["step"] == "pause"
    clock.advance(days=2, minutes=1)
    app.set_consent(lead, "sms", "granted", "form", {"form": "signup"})
    _work(app, messaging)
    sms = messaging.sms
    assert isinstance(sms, FakeTransport)
    assert [m.text for m in sms.sent] == ["nudge"]  # not opened: the SMS branch
    [run] = app.journey_runs("nurture")
    assert run["status"] == "done" and run["exit_reason"] == "exit step"
    outcomes = [entry["outcome"] for entry in run["log"]]
    assert outcomes[:3] == ["send", "waiting", "branch"]
    # the coupon is the lead's, redeemable once, and the redemption is an event
    redeemed = app.redeem_coupon(code.lower())
    assert redeemed["lead_id"] == lead
    with pytest.raises(Conflict, match="already redeemed"):
        app.redeem_coupon(code)
    names = [e.name for e in app.lead_events(lead)]
    assert "Coupon Redeemed" in names


def test_an_opened_email_takes_the_other_branch(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey("nurture", NURTURE)
    lead = _lead(app, "u2", email="bo@example.com")
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    [delivery] = app.deliveries(lead)
    with app.transaction() as conn:
        from leadflow.adapters.db.deliveries import SqlDeliveryRepository

        assert SqlDeliveryRepository(conn).mark_first(delivery.id, "opened_at", clock.now())
    clock.advance(days=3)
    _work(app, messaging)
    email = messaging.email
    assert isinstance(email, FakeTransport)
    assert [m.subject.split()[0] for m in email.sent] == ["welcome", "thanks"]


def test_no_address_or_no_consent_is_skipped_with_the_reason_and_the_journey_goes_on(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey("nurture", NURTURE)
    lead = _lead(app, "u3")  # no email, no phone
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    clock.advance(days=2, minutes=1)
    _work(app, messaging)
    reasons = {d.step: (d.status, d.reason) for d in app.deliveries(lead)}
    assert reasons["welcome"][0] == "skipped" and reasons["welcome"][1].startswith("no_address")
    assert reasons["nudge"][0] == "skipped" and reasons["nudge"][1].startswith("no_address")
    [run] = app.journey_runs("nurture")
    assert run["status"] == "done"


def test_suppressed_and_revoked_addresses_are_never_sent_to(
    app: Leadflow, messaging: Messaging
) -> None:
    app.save_journey("nurture", NURTURE)
    first = _lead(app, "u4", email="gone@example.com")
    second = _lead(app, "u5", email="revoked@example.com")
    app.suppress("email", "gone@example.com", "unsubscribe")
    app.set_consent(second, "email", "revoked", "unsubscribe_link")
    for lead in (first, second):
        app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    assert isinstance(messaging.email, FakeTransport) and messaging.email.sent == []
    assert app.deliveries(first)[0].reason.startswith("suppressed")
    assert app.deliveries(second)[0].reason.startswith("consent_revoked")


def test_sms_waits_for_the_recipients_local_hours(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey(
        "texts", {"trigger": {"stage": "mql"}, "steps": [{"id": "hello", "sms": "hello"}]}
    )
    # T0 is 12:00 UTC = 04:00 in Los Angeles: outside 08:00-21:00 there
    lead = _lead(app, "u6", phone="+14155550102", timezone="America/Los_Angeles")
    app.set_consent(lead, "sms", "granted", "form")
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    assert isinstance(messaging.sms, FakeTransport) and messaging.sms.sent == []
    [delivery] = app.deliveries(lead)
    assert delivery.status == "queued" and "America/Los_Angeles" in delivery.reason
    clock.advance(hours=4, minutes=1)  # 08:01 in Los Angeles
    _work(app, messaging)
    assert [m.to for m in messaging.sms.sent] == ["+14155550102"]


def test_the_frequency_cap_defers_across_journeys(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    for name in ("one", "two", "three"):
        app.save_journey(name, {"trigger": {"stage": "mql"}, "steps": [{"id": "m", "email": name}]})
    lead = _lead(app, "u7", email="busy@example.com")
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    assert isinstance(messaging.email, FakeTransport)
    assert len(messaging.email.sent) == 2  # the cap is 2 per 7 days
    waiting = [d for d in app.deliveries(lead) if d.status == "queued"]
    assert len(waiting) == 1 and waiting[0].reason.startswith("frequency_cap")
    clock.advance(days=7, minutes=2)
    _work(app, messaging)
    assert len(messaging.email.sent) == 3


def test_transient_failures_are_retried_with_backoff_and_permanent_ones_fail(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey(
        "pair",
        {
            "trigger": {"stage": "mql"},
            "steps": [{"id": "a", "email": "a"}, {"id": "b", "email": "b"}],
        },
    )
    lead = _lead(app, "u8", email="flaky@example.com")
    email = messaging.email
    assert isinstance(email, FakeTransport)
    email.failures = [TransientDeliveryError("421 try later")]
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    [delivery] = app.deliveries(lead)
    assert delivery.status == "queued" and delivery.attempts == 1 and "421" in delivery.reason
    clock.advance(minutes=1, seconds=1)  # the first retry comes after 1m
    email.failures = [PermanentDeliveryError("550 no such user")]
    _work(app, messaging)
    clock.advance(seconds=1)
    _work(app, messaging)
    statuses = {d.step: d.status for d in app.deliveries(lead)}
    assert statuses["a"] == "failed"  # and the journey went on to b
    assert statuses["b"] == "sent"


def test_a_goal_ends_the_run_and_reentry_is_refused(app: Leadflow, messaging: Messaging) -> None:
    app.save_journey("nurture", NURTURE)
    lead = _lead(app, "u9", email="win@example.com")
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    app.move_stage(lead, "sal", "accepted")
    app.move_stage(lead, "sql", "qualified")
    _work(app, messaging)
    [run] = app.journey_runs("nurture")
    assert run["status"] == "done" and run["exit_reason"] == "goal: stage sql"
    app.move_stage(lead, "opportunity", "deal")
    app.move_stage(lead, "recycled", "lost")
    app.move_stage(lead, "mql", "back again")
    _work(app, messaging)
    assert len(app.journey_runs("nurture")) == 1  # reentry: never (the default)


def test_bad_journeys_are_refused_with_the_path(app: Leadflow) -> None:
    with pytest.raises(
        ValidationError, match=r"journeys.x.steps\[1\].wait: 'soon' is not a duration"
    ):
        app.save_journey(
            "x", {"trigger": {"stage": "mql"}, "steps": [{"email": "a"}, {"wait": "soon"}]}
        )
    with pytest.raises(ValidationError, match="no segment named 'vips'"):
        app.save_journey("y", {"trigger": {"segment": "vips"}, "steps": [{"email": "a"}]})
    with pytest.raises(ValidationError, match="then: no step with id 'nowhere'"):
        app.save_journey(
            "z",
            {"trigger": {"stage": "mql"}, "steps": [{"if": {"stage": "sql"}, "then": "nowhere"}]},
        )


def test_a_journey_in_the_config_file_is_checked_with_file_and_line(settings: Settings) -> None:
    (settings.home / "leadflow.yaml").write_text(
        "journeys:\n  welcome:\n    trigger: {stage: mql}\n    steps:\n      - email: hi\n"
        "      - wait: 3 fortnights\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"leadflow.yaml:6: journeys.welcome.steps\[1\].wait"):
        Leadflow(Settings(database_url=settings.database_url, home=settings.home))


def test_journey_report_counts_sends_per_step(app: Leadflow, messaging: Messaging) -> None:
    app.save_journey(
        "ab",
        {
            "trigger": {"stage": "mql"},
            "steps": [{"id": "pitch", "ab": {"variants": {"a": "short", "b": "long"}}}],
        },
    )
    for index in range(6):
        lead = _lead(app, f"ab{index}", email=f"ab{index}@example.com")
        app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    app.move_stage(lead, "sal", "accepted")
    app.move_stage(lead, "sql", "qualified")  # the last lead converts after its message
    found = app.journey_report("ab")
    assert found["runs"] == {"done": 6}
    assert sum(row["sent"] for row in found["steps"]) == 6
    assert {row["variant"] for row in found["steps"]} <= {"a", "b"}
    assert sum(row["converted"] for row in found["steps"]) == 1
    assert sum(row["unsubscribed"] for row in found["steps"]) == 0


def test_an_event_starts_its_journey(app: Leadflow, messaging: Messaging, clock: Clock) -> None:
    app.save_journey(
        "webinar",
        {"trigger": {"event": "Webinar Registered"}, "steps": [{"id": "m", "email": "thanks"}]},
    )
    lead = _lead(app, "w1", email="webinar@example.com")
    ingest(app, app.ensure_source("web"), track("w1", "Webinar Registered", clock.now()))
    ingest(app, app.ensure_source("web"), track("w1", "Pricing Viewed", clock.now()))
    _work(app, messaging)
    [run] = app.journey_runs("webinar")
    assert run["lead_id"] == lead and run["status"] == "done"
    assert isinstance(messaging.email, FakeTransport)
    assert [m.to for m in messaging.email.sent] == ["webinar@example.com"]


def test_an_ab_winner_takes_the_new_runs(app: Leadflow, messaging: Messaging) -> None:
    app.save_journey(
        "ab",
        {
            "trigger": {"stage": "mql"},
            "reentry": "always",
            "steps": [
                {"id": "pitch", "ab": {"variants": {"a": "short", "b": "long"}, "decide_after": 3}}
            ],
        },
    )
    for index in range(20):
        lead = _lead(app, f"w{index}", email=f"w{index}@example.com")
        app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    first = app.journey_report("ab")["steps"]
    assert {row["variant"] for row in first} == {"a", "b"}
    with app.transaction() as conn:
        from sqlalchemy import update

        from leadflow.adapters.db.tables import deliveries

        conn.execute(update(deliveries).where(deliveries.c.variant == "a").values(clicked_at=T0))
    for index in range(20, 26):
        lead = _lead(app, f"w{index}", email=f"w{index}@example.com")
        app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    runs = app.journey_runs("ab", limit=6)
    assert all("(a winner)" in run["log"][0]["detail"] for run in runs), [r["log"] for r in runs]
    tests = {t["metric"]: t for t in app.journey_report("ab")["ab_tests"]}
    assert tests["clicked"]["leader"] == "a" and tests["clicked"]["significant"]


def test_a_score_rising_above_a_threshold_starts_its_journey(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey(
        "warm",
        {
            "trigger": {"score": "engagement", "above": 25},
            "steps": [{"id": "m", "email": "thanks"}],
        },
    )
    lead = _lead(app, "s1", email="warm@example.com")
    source = app.ensure_source("web")
    ingest(app, source, track("s1", "Webinar Attended", clock.now()))  # 20: below
    _work(app, messaging)
    assert app.journey_runs("warm") == []
    ingest(app, source, track("s1", "Webinar Registered", clock.now()))  # 28: crossed
    ingest(app, source, track("s1", "Webinar Registered", clock.now()))  # still above: no 2nd
    _work(app, messaging)
    [run] = app.journey_runs("warm")
    assert run["lead_id"] == lead and run["status"] == "done"
    with pytest.raises(
        ValidationError, match=r"warm\.trigger\.above: a score trigger needs a number"
    ):
        app.save_journey("warm", {"trigger": {"score": "engagement"}, "steps": ["exit"]})


def test_adjust_score_moves_engagement_through_the_scoring_model(
    app: Leadflow, messaging: Messaging
) -> None:
    app.save_journey(
        "bonus",
        {
            "trigger": {"stage": "mql"},
            "steps": [{"id": "boost", "adjust_score": {"points": 15, "reason": "onboarding"}}],
        },
    )
    lead = _lead(app, "b1", email="bonus@example.com")
    before = app.lead(lead).engagement_score
    app.move_stage(lead, "mql", "test")
    _work(app, messaging)
    _work(app, messaging)  # once only, however often the worker passes
    assert app.lead(lead).engagement_score == pytest.approx(before + 15)
    [event] = [e for e in app.lead_events(lead) if e.name == "Score Adjusted"]
    assert event.properties == {"points": 15.0, "reason": "onboarding", "journey": "bonus"}
    rules = {r["rule"]: r for r in app.explain(lead)["engagement"]["rules"]}
    assert rules["journey-adjustment"]["score"] == pytest.approx(15)


def test_a_date_trait_starts_its_journey_on_the_day(
    app: Leadflow, messaging: Messaging, clock: Clock
) -> None:
    app.save_journey(
        "renewal",
        {
            "trigger": {"date": "trait.renewal_date", "offset": "-30d"},
            "reentry": "always",
            "steps": [{"id": "m", "email": "thanks"}],
        },
    )
    due = (clock.now() + timedelta(days=30)).date().isoformat()
    later = (clock.now() + timedelta(days=31)).date().isoformat()
    soon = _lead(app, "d1", email="due@example.com", renewal_date=due)
    _lead(app, "d2", email="later@example.com", renewal_date=f"{later}T10:00:00Z")
    _lead(app, "d3", email="none@example.com")
    assert enroll_dates(app, force=True) == 1
    assert enroll_dates(app, force=True) == 0  # once a day, even with reentry: always
    _work(app, messaging)
    [run] = app.journey_runs("renewal")
    assert run["lead_id"] == soon and run["status"] == "done"
    clock.advance(days=1)
    assert enroll_dates(app, force=True) == 1  # the next day, the other lead's date has come
    with pytest.raises(ValidationError, match=r"renewal\.trigger\.offset: must be whole days"):
        app.save_journey(
            "renewal",
            {"trigger": {"date": "trait.renewal_date", "offset": "-3h"}, "steps": ["exit"]},
        )
