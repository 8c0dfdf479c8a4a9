"""Scoring and qualification on a real store (SQLite and PostgreSQL): ingestion makes MQLs,
decay and expiring windows recycle them through the worker, and the SLA escalates once."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from leadflow import LeadFilter, Leadflow, SourceRecord
from leadflow.adapters.db.tables import Lead, Outbox, StageChangeRow, cast_table
from leadflow.jobs.worker import run_once
from tests.integration.scoring_support import (
    T0,
    Clock,
    Opener,
    identify,
    ingest,
    lead_id,
    page,
    track,
)

MODEL = """\
scoring:
  engagement:
    groups:
      web: {ceiling: 20}
    rules:
      - id: pricing
        match: {type: page, path: ["/pricing*"]}
        points: 10
        half_life: 7d
        daily_limit: 3
        group: web
      - id: webinar
        match: {event: Webinar Attended}
        points: 30
        half_life: 7d
      - id: demo
        match: {event: Demo Requested}
        points: 5
        half_life: none
  fit:
    rules:
      - id: industry
        when: [{field: traits.industry, op: in, value: [software]}]
        points: 50
    grades: {A: 50, B: 30, C: 10}
lifecycle:
  mql_policy: >-
    fit.grade in ('A', 'B') and engagement >= 40
    or happened('Demo Requested', within='2d')
  recycle_when_cold: true
  sales:
    sla: 24h
    accept_reasons: [meets_criteria, strategic_account]
    reject_reasons: [not_a_fit, bad_timing]
"""
ENGAGEMENT_CLAUSE = "fit.grade in ('A', 'B') and engagement >= 40"
DEMO_CLAUSE = "happened('Demo Requested', within='2d')"


# --- the store, with MODEL written to leadflow.yaml (fixtures in conftest.py) -------------
@pytest.fixture
def model_text() -> str:
    return MODEL


def rows(app: Leadflow, model: type, **where: Any) -> list[dict[str, Any]]:
    table = cast_table(model)
    query = select(table).order_by(table.c.id)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with app.transaction() as conn:
        return [dict(row) for row in conn.execute(query).mappings()]


def next_review(app: Leadflow, lead: int) -> datetime | None:
    [row] = rows(app, Lead, id=lead)
    found: datetime | None = row["next_review_at"]
    return found


def make_mql(app: Leadflow, source: SourceRecord, user: str = "ann") -> int:
    """A grade A lead with an engagement of 50 at T0 (webinar 30 + pricing 2 x 10)."""
    ingest(
        app,
        source,
        identify(user, industry="software"),
        track(user, "Webinar Attended"),
        page(user, "/pricing"),
        page(user, "/pricing/enterprise"),
    )
    found = lead_id(app, user)
    assert app.lead(found).stage == "mql"
    assert app.lead(found).engagement_score == 50.0
    return found


# --- real time ----------------------------------------------------------------------------
def test_a_lead_becomes_an_mql_the_moment_the_policy_holds(
    app: Leadflow, source: SourceRecord
) -> None:
    ingest(app, source, identify("ann", industry="software"), track("ann", "Webinar Attended"))
    ann = lead_id(app, "ann")
    lead = app.lead(ann)
    assert (lead.stage, lead.fit_grade, lead.engagement_score) == ("lead", "A", 30.0)
    assert rows(app, StageChangeRow) == []
    assert rows(app, Outbox) == []

    ingest(app, source, page("ann", "/pricing"))  # 30 + 10: exactly the threshold

    lead = app.lead(ann)
    assert (lead.stage, lead.engagement_score) == ("mql", 40.0)
    assert (lead.mql_at, lead.sla_due_at) == (T0, T0 + timedelta(hours=24))
    [change] = rows(app, StageChangeRow)
    reason = f"policy: {ENGAGEMENT_CLAUSE}"
    assert {k: change[k] for k in ("lead_id", "from_stage", "to_stage", "actor", "reason")} == {
        "lead_id": ann,
        "from_stage": "lead",
        "to_stage": "mql",
        "actor": "policy",
        "reason": reason,
    }
    assert (change["at"], change["model_version"]) == (T0, app.model.version)
    [event] = rows(app, Outbox)
    assert (event["topic"], event["lead_id"], event["processed_at"]) == (
        "lead.stage_changed",
        ann,
        None,
    )
    assert event["payload"] == {
        "lead_id": ann,
        "from": "lead",
        "to": "mql",
        "at": T0.isoformat(),
        "actor": "policy",
        "reason": reason,
        "model_version": app.model.version,
    }


def test_both_clauses_are_named_when_both_hold(app: Leadflow, source: SourceRecord) -> None:
    ingest(
        app,
        source,
        identify("ann", industry="software"),
        track("ann", "Webinar Attended"),
        track("ann", "Demo Requested"),
        page("ann", "/pricing"),
    )
    [change] = rows(app, StageChangeRow)
    assert change["reason"] == f"policy: {ENGAGEMENT_CLAUSE} | {DEMO_CLAUSE}"


def test_a_lead_below_the_threshold_stays_a_lead(app: Leadflow, source: SourceRecord) -> None:
    ingest(
        app,
        source,
        identify("ann", industry="software"),
        track("ann", "Webinar Attended"),
        identify("bob", industry="retail"),  # grade D: engagement alone is not enough
        track("bob", "Webinar Attended"),
        page("bob", "/pricing"),
        page("bob", "/pricing"),
    )
    ann, bob = app.lead(lead_id(app, "ann")), app.lead(lead_id(app, "bob"))
    assert (ann.stage, ann.fit_grade, ann.engagement_score) == ("lead", "A", 30.0)
    assert (bob.stage, bob.fit_grade, bob.engagement_score) == ("lead", "D", 50.0)
    assert rows(app, StageChangeRow) == []
    assert rows(app, Outbox) == []


def test_a_late_event_is_scored_as_of_its_own_time(app: Leadflow, source: SourceRecord) -> None:
    ingest(app, source, identify("ann", industry="software"), track("ann", "Webinar Attended"))
    ann = lead_id(app, "ann")
    # a webinar from a week ago arrives now: half its 30 points count, not all of them
    ingest(app, source, track("ann", "Webinar Attended", at=T0 - timedelta(days=7)))
    lead = app.lead(ann)
    assert (lead.engagement_score, lead.stage) == (45.0, "mql")


def test_mql_listing_carries_scores_and_grade(app: Leadflow, source: SourceRecord) -> None:
    ann = make_mql(app, source, "ann")
    ingest(app, source, identify("bob", industry="software"), page("bob", "/pricing"))
    [item] = app.leads(LeadFilter(stage="mql")).items
    assert item.id == ann
    assert (item.stage, item.fit_score, item.fit_grade, item.engagement_score) == (
        "mql",
        50.0,
        "A",
        50.0,
    )
    scores = item.to_json()["scores"]
    assert (scores["fit"], scores["fit_grade"], scores["engagement"]) == (50.0, "A", 50.0)
    assert scores["model_version"] == app.model.version
    assert [lead.id for lead in app.leads(LeadFilter(stage="lead")).items] == [lead_id(app, "bob")]


# --- time alone ---------------------------------------------------------------------------
COLD_AFTER = timedelta(seconds=7 * 86_400 * math.log2(50 / 40))  # 50 decays to 40


def test_engagement_decays_and_a_cold_mql_is_recycled_by_the_worker(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_mql(app, source)
    due = next_review(app, ann)
    assert due is not None
    assert abs((due - (T0 + COLD_AFTER)).total_seconds()) <= 1.0

    clock.at = due - timedelta(minutes=1)
    assert run_once(app).reviewed == 0  # not due yet: not even looked at
    assert app.lead(ann).stage == "mql"

    clock.at = due
    report = run_once(app)
    assert (report.reviewed, report.changes) == (1, 1)
    lead = app.lead(ann)
    assert lead.stage == "recycled"
    assert lead.engagement_score < 40
    assert lead.sla_due_at is None
    last = rows(app, StageChangeRow)[-1]
    assert (last["from_stage"], last["to_stage"], last["actor"], last["reason"]) == (
        "mql",
        "recycled",
        "policy",
        "went_cold",
    )
    assert last["at"] == due
    assert [o["payload"]["to"] for o in rows(app, Outbox, topic="lead.stage_changed")] == [
        "mql",
        "recycled",
    ]


def test_a_cold_mql_stays_an_mql_without_recycle_when_cold(
    open_store: Opener, clock: Clock
) -> None:
    app = open_store(MODEL.replace("recycle_when_cold: true", "recycle_when_cold: false"))
    source = app.create_source("website")
    ann = make_mql(app, source)
    accepted = make_mql(app, source, "bob")
    app.decide(accepted, "accept", "meets_criteria", actor="user:sam")
    clock.advance(days=30)
    run_once(app)
    lead = app.lead(ann)
    assert lead.stage == "mql"
    assert lead.engagement_score < 40
    assert [r["to_stage"] for r in rows(app, StageChangeRow, lead_id=ann)] == ["mql"]


def test_only_leads_whose_answer_may_change_get_a_review_time(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ingest(
        app,
        source,
        identify("far", industry="software"),
        page("far", "/pricing"),  # 10, decaying away from 40
        identify("nobody"),
        track("nobody", "Webinar Attended"),  # grade D: no threshold in reach
    )
    mql = make_mql(app, source)
    assert next_review(app, lead_id(app, "far")) is None
    assert next_review(app, lead_id(app, "nobody")) is None
    assert next_review(app, mql) is not None

    clock.advance(days=1)
    assert run_once(app).reviewed == 0
    clock.advance(days=2)
    assert run_once(app).reviewed == 1  # the MQL, and only it


def test_a_happened_window_expires_with_no_new_event(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ingest(app, source, identify("ann"), track("ann", "Demo Requested"))
    ann = lead_id(app, "ann")
    lead = app.lead(ann)
    assert (lead.stage, lead.fit_grade) == ("mql", "D")
    [change] = rows(app, StageChangeRow)
    assert change["reason"] == f"policy: {DEMO_CLAUSE}"
    assert next_review(app, ann) == T0 + timedelta(days=2)

    clock.at = T0 + timedelta(days=2) - timedelta(seconds=1)
    assert run_once(app).reviewed == 0
    assert app.lead(ann).stage == "mql"

    clock.at = T0 + timedelta(days=2)  # the demo is exactly two days old: it no longer counts
    assert run_once(app).changes == 1
    assert app.lead(ann).stage == "recycled"
    assert rows(app, StageChangeRow)[-1]["reason"] == "went_cold"
    assert app.lead(ann).engagement_score == 5.0  # the points stay; the window closed


def test_an_mql_past_its_sla_is_escalated_exactly_once(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_mql(app, source, "ann")
    handled = make_mql(app, source, "bob")
    clock.advance(hours=23)
    app.decide(handled, "accept", "meets_criteria", actor="user:sam")
    assert run_once(app).escalated == 0
    assert rows(app, Outbox, topic="lead.sla_breached") == []

    clock.at = T0 + timedelta(hours=24, seconds=1)
    assert run_once(app).escalated == 1
    assert run_once(app).escalated == 0
    clock.advance(hours=1)
    run_once(app)

    [breach] = rows(app, Outbox, topic="lead.sla_breached")
    assert breach["lead_id"] == ann
    assert breach["payload"]["stage"] == "mql"
    assert breach["payload"]["sla_due_at"] == (T0 + timedelta(hours=24)).isoformat()
    assert breach["payload"]["escalated_at"] == (T0 + timedelta(hours=24, seconds=1)).isoformat()
    assert app.lead(ann).stage == "mql"
