"""The sales step and manual stage changes on a real store (SQLite and PostgreSQL): reasons,
the transition table, compare-and-set under concurrency, and requalifying after a reject."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from leadflow import Conflict, Leadflow, NotFound, SourceRecord, ValidationError
from leadflow.adapters.db.tables import Outbox, ScoreLedger, StageChangeRow, cast_table
from leadflow.domain.lifecycle import StageChange
from leadflow.jobs.worker import run_once
from tests.integration.scoring_support import (
    T0,
    Clock,
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
        group: web
      - id: webinar
        match: {event: Webinar Attended}
        points: 30
        half_life: 7d
      - id: click
        match: {event: Email Clicked}
        points: 1
        half_life: none
  fit:
    rules:
      - id: industry
        when: [{field: traits.industry, op: in, value: [software]}]
        points: 50
    grades: {A: 50, B: 30, C: 10}
lifecycle:
  mql_policy: fit.grade in ('A', 'B') and engagement >= 40
  sales:
    sla: 24h
    accept_reasons: [meets_criteria, strategic_account]
    reject_reasons: [not_a_fit, bad_timing]
"""
ON_POSTGRESQL = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


# --- the store, with MODEL written to leadflow.yaml (fixtures in conftest.py) -------------
@pytest.fixture
def model_text() -> str:
    return MODEL


def history(app: Leadflow, lead: int) -> list[tuple[str, str, str, str]]:
    table = cast_table(StageChangeRow)
    query = select(table).where(table.c.lead_id == lead).order_by(table.c.id)
    with app.transaction() as conn:
        return [
            (row.from_stage, row.to_stage, row.actor, row.reason) for row in conn.execute(query)
        ]


def outbox(app: Leadflow, lead: int) -> list[dict[str, Any]]:
    table = cast_table(Outbox)
    query = select(table.c.topic, table.c.payload).where(table.c.lead_id == lead)
    with app.transaction() as conn:
        return [{"topic": t, **p} for t, p in conn.execute(query.order_by(table.c.id))]


def make_mql(app: Leadflow, source: SourceRecord, user: str = "ann") -> int:
    """A grade A lead with 40 engagement points at T0: webinar 30 + pricing 10."""
    ingest(
        app,
        source,
        identify(user, industry="software"),
        track(user, "Webinar Attended"),
        page(user, "/pricing"),
    )
    found = lead_id(app, user)
    assert app.lead(found).stage == "mql"
    return found


POLICY = "policy: fit.grade in ('A', 'B') and engagement >= 40"


# --- the sales step -----------------------------------------------------------------------
def test_accept_with_a_reason_makes_a_sal(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_mql(app, source)
    clock.advance(hours=2)
    change = app.decide(ann, "accept", "meets_criteria", actor="user:sam", note="called her")
    assert change == StageChange(
        ann,
        "mql",
        "sal",
        clock.now(),
        "user:sam",
        "meets_criteria",
        "called her",
        app.model.version,
    )
    lead = app.lead(ann)
    assert (lead.stage, lead.sla_due_at) == ("sal", None)
    assert history(app, ann) == [
        ("lead", "mql", "policy", POLICY),
        ("mql", "sal", "user:sam", "meets_criteria"),
    ]
    last = outbox(app, ann)[-1]
    assert (last["topic"], last["from"], last["to"], last["actor"], last["reason"]) == (
        "lead.stage_changed",
        "mql",
        "sal",
        "user:sam",
        "meets_criteria",
    )


@pytest.mark.parametrize(
    ("decision", "allowed"),
    [("accept", "meets_criteria, strategic_account"), ("reject", "not_a_fit, bad_timing")],
)
def test_a_reason_not_in_the_list_is_refused_naming_the_allowed_ones(
    app: Leadflow, source: SourceRecord, decision: str, allowed: str
) -> None:
    ann = make_mql(app, source)
    with pytest.raises(ValidationError) as caught:
        app.decide(ann, decision, "because", actor="user:sam")
    assert "'because'" in caught.value.message
    assert allowed in caught.value.message
    assert app.lead(ann).stage == "mql"
    assert len(history(app, ann)) == 1


def test_accepting_an_accepted_lead_is_a_conflict(app: Leadflow, source: SourceRecord) -> None:
    ann = make_mql(app, source)
    app.decide(ann, "accept", "meets_criteria", actor="user:sam")
    with pytest.raises(Conflict):
        app.decide(ann, "accept", "strategic_account", actor="user:kim")
    with pytest.raises(Conflict) as caught:  # the sales step decides about MQLs only
        app.decide(ann, "reject", "not_a_fit", actor="user:kim")
    assert caught.value.message == f"lead {ann} is in stage 'sal', not 'mql'"
    assert app.lead(ann).stage == "sal"
    assert [h[1] for h in history(app, ann)] == ["mql", "sal"]
    app.move_stage(ann, "recycled", "no_response", actor="user:sam")  # a person still may
    assert app.lead(ann).stage == "recycled"


def test_reject_recycles_and_engagement_starts_again(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_mql(app, source)
    clock.advance(hours=1)
    change = app.decide(ann, "reject", "bad_timing", actor="user:sam")
    assert (change.from_stage, change.to_stage, change.reason) == ("mql", "recycled", "bad_timing")
    lead = app.lead(ann)
    assert (lead.stage, lead.engagement_score, lead.sla_due_at) == ("recycled", 0.0, None)

    explained = app.explain(ann)
    assert explained["engagement"]["total"] == 0
    events = [e for rule in explained["engagement"]["rules"] for e in rule["events"]]
    assert len(events) == 2
    assert {(e["counted"], e["reason"], e["decayed"]) for e in events} == {
        (False, "before the lead was recycled", 0.0)
    }
    assert history(app, ann)[-1] == ("mql", "recycled", "user:sam", "bad_timing")


def test_a_recycled_lead_requalifies_only_with_new_engagement(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_mql(app, source)
    clock.advance(hours=1)
    app.decide(ann, "reject", "bad_timing", actor="user:sam")

    clock.advance(hours=1)
    ingest(app, source, identify("ann", title="CTO"))  # no engagement
    ingest(app, source, track("ann", "Webinar Attended", at=T0))  # late: before the reject
    ingest(app, source, page("ann", "/pricing", at=T0 + timedelta(minutes=30)))
    clock.advance(days=3)
    run_once(app)
    lead = app.lead(ann)
    assert (lead.stage, lead.engagement_score) == ("recycled", 0.0)

    ingest(
        app,
        source,
        track("ann", "Webinar Attended", at=clock.now()),
        page("ann", "/pricing", at=clock.now()),
    )
    lead = app.lead(ann)
    assert (lead.stage, lead.engagement_score) == ("mql", 40.0)
    assert history(app, ann) == [
        ("lead", "mql", "policy", POLICY),
        ("mql", "recycled", "user:sam", "bad_timing"),
        ("recycled", "mql", "policy", POLICY),
    ]
    assert lead.mql_at == clock.now()
    assert lead.sla_due_at == clock.now() + timedelta(hours=24)


# --- moving along the lifecycle -----------------------------------------------------------
def test_move_along_sal_sql_opportunity_customer(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_mql(app, source)
    app.decide(ann, "accept", "meets_criteria", actor="user:sam")
    for stage in ("sql", "opportunity", "customer"):
        clock.advance(days=1)
        change = app.move_stage(ann, stage, "progress", actor="user:sam")
        assert (change.to_stage, change.at) == (stage, clock.now())
        assert app.lead(ann).stage == stage
    assert [(h[0], h[1]) for h in history(app, ann)] == [
        ("lead", "mql"),
        ("mql", "sal"),
        ("sal", "sql"),
        ("sql", "opportunity"),
        ("opportunity", "customer"),
    ]
    assert {h[2] for h in history(app, ann)[1:]} == {"user:sam"}


@pytest.mark.parametrize(("start", "target"), [("lead", "customer"), ("mql", "sql")])
def test_a_forbidden_transition_is_a_conflict(
    app: Leadflow, source: SourceRecord, start: str, target: str
) -> None:
    if start == "mql":
        ann = make_mql(app, source)
    else:
        ingest(app, source, identify("ann"))
        ann = lead_id(app, "ann")
    with pytest.raises(Conflict) as caught:
        app.move_stage(ann, target, "why not", actor="user:sam")
    assert f"'{start}' cannot move to '{target}'" in caught.value.message
    assert app.lead(ann).stage == start


def test_disqualify_from_any_stage_and_back_to_lead(app: Leadflow, source: SourceRecord) -> None:
    ann = make_mql(app, source)
    app.move_stage(ann, "disqualified", "spam", actor="user:sam")
    assert app.lead(ann).stage == "disqualified"
    app.move_stage(ann, "lead", "a mistake", actor="user:sam")
    assert app.lead(ann).stage == "lead"


def test_unknown_stage_is_refused(app: Leadflow, source: SourceRecord) -> None:
    ann = make_mql(app, source)
    with pytest.raises(ValidationError) as caught:
        app.move_stage(ann, "won", "yes", actor="user:sam")
    assert "unknown stage 'won'" in caught.value.message


def test_unknown_lead_is_not_found(app: Leadflow) -> None:
    with pytest.raises(NotFound):
        app.decide(424242, "accept", "meets_criteria", actor="user:sam")
    with pytest.raises(NotFound):
        app.move_stage(424242, "sql", "x", actor="user:sam")
    with pytest.raises(NotFound):
        app.explain(424242)


# --- concurrency (PostgreSQL) -------------------------------------------------------------
def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each result or the exception raised."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@ON_POSTGRESQL
@pytest.mark.parametrize("other", ["accept", "reject"])
def test_two_reps_deciding_one_mql_at_once_get_one_success_and_one_conflict(
    app: Leadflow, source: SourceRecord, other: str
) -> None:
    reasons = {"accept": "meets_criteria", "reject": "not_a_fit"}
    for attempt in range(5):
        lead = make_mql(app, source, f"lead-{attempt}")
        results = at_once(
            lambda lead=lead: app.decide(lead, "accept", "meets_criteria", actor="user:sam"),
            lambda lead=lead: app.decide(lead, other, reasons[other], actor="user:kim"),
        )
        changes = [r for r in results if isinstance(r, StageChange)]
        conflicts = [r for r in results if isinstance(r, Conflict)]
        assert (len(changes), len(conflicts)) == (1, 1), results
        decided = history(app, lead)[1:]
        assert len(decided) == 1
        assert decided[0][1] == changes[0].to_stage == app.lead(lead).stage


@ON_POSTGRESQL
def test_concurrent_ingestion_for_one_lead_never_loses_an_update(
    app: Leadflow, source: SourceRecord
) -> None:
    ingest(app, source, identify("ann"))
    ann = lead_id(app, "ann")
    threads, batches, per_batch = 4, 6, 3

    def send(thread: int) -> None:
        for batch in range(batches):
            at = T0 + timedelta(minutes=thread * 100 + batch)
            ingest(app, source, *[track("ann", "Email Clicked", at) for _ in range(per_batch)])

    results = at_once(*[lambda t=t: send(t) for t in range(threads)])
    assert results == [None] * threads
    assert app.lead(ann).engagement_score == threads * batches * per_batch
    ledger = cast_table(ScoreLedger)
    with app.transaction() as conn:
        counted = conn.execute(
            select(ledger.c.event_id).where(ledger.c.lead_id == ann, ledger.c.counted)
        ).all()
    assert len(counted) == threads * batches * per_batch
