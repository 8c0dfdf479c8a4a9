"""Batch rescoring replays the event log to the state incremental scoring reached, and a new
model version rebuilds every lead's scores while the old version's ledger stays."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from leadflow import Leadflow, Settings, SourceRecord
from leadflow.adapters.db.tables import Base, Lead, ScoreLedger, ScoringModelRow, cast_table
from leadflow.domain.errors import ValidationError
from tests.integration.scoring_support import (
    T0,
    Clock,
    Opener,
    identify,
    open_with_model,
    page,
    track,
)

MODEL = """\
scoring:
  engagement:
    groups:
      web: {ceiling: 30}
    rules:
      - id: pricing
        match: {type: page, path: ["/pricing*"]}
        points: 10
        half_life: 7d
        cap: 25
        daily_limit: 2
        group: web
      - id: blog
        match: {type: page, path: ["/blog/*"]}
        points: 2
        half_life: 3d
        daily_limit: 3
        group: web
      - id: webinar
        match: {event: Webinar Attended}
        points: 20
        half_life: 14d
        cap: 30
      - id: demo
        match: {event: Demo Requested}
        points: 15
        half_life: none
        daily_limit: 1
      - id: careers
        match: {type: page, path: ["/careers*"]}
        points: -5
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
    or happened('Demo Requested', within='1d', times=2)
  sales:
    sla: 24h
    accept_reasons: [meets_criteria]
    reject_reasons: [not_a_fit]
"""
USERS = ("u0", "u1", "u2")
KINDS = (
    ("page", "/pricing"),
    ("page", "/pricing/team"),
    ("page", "/blog/post"),
    ("page", "/careers"),
    ("page", "/"),
    ("track", "Webinar Attended"),
    ("track", "webinar attended"),
    ("track", "Demo Requested"),
    ("track", "Other"),
)


def empty(app: Leadflow) -> None:
    with app.transaction() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


def message(user: str, kind: str, what: str, at: datetime) -> dict[str, Any]:
    """A message in the order KINDS and Batch give it (user first, unlike the shared
    ``scoring_support.message``): ``what`` is the page's path, the track's event name, or the
    industry an identify names."""
    if kind == "page":
        return page(user, what, at)
    if kind == "track":
        return track(user, what, at)
    return identify(user, at, industry=what)


Batch = list[tuple[str, int, float]]  # (user, index into KINDS, seconds before the clock)


def ingest_all(
    app: Leadflow, clock: Clock, source: SourceRecord, batches: list[tuple[float, Batch]]
) -> int:
    """Advance the clock and ingest each batch; finish with one message for every lead, so
    every lead was last refreshed now. The number of messages sent."""
    sent = 0
    for gap, batch in batches:
        clock.advance(seconds=gap)
        messages = [
            message(user, *KINDS[kind], clock.now() - timedelta(seconds=ago))
            for user, kind, ago in batch
        ]
        assert app.ingest(source, messages).errors == []
        sent += len(messages)
    touch = [message(user, "identify", "software", clock.now()) for user in USERS[:2]]
    touch.append(message(USERS[2], "identify", "retail", clock.now()))
    assert app.ingest(source, touch).errors == []
    return sent + len(touch)


def snapshot(app: Leadflow) -> dict[int, tuple[dict[str, Any], float, str, str | None]]:
    leads = cast_table(Lead)
    query = select(
        leads.c.id,
        leads.c.score_state,
        leads.c.engagement_score,
        leads.c.stage,
        leads.c.model_version,
    )
    with app.transaction() as conn:
        return {
            row.id: (row.score_state, row.engagement_score, row.stage, row.model_version)
            for row in conn.execute(query)
        }


def ledger_rows(app: Leadflow, version: str | None = None) -> set[tuple[Any, ...]]:
    ledger = cast_table(ScoreLedger)
    query = select(
        ledger.c.lead_id,
        ledger.c.event_id,
        ledger.c.model_version,
        ledger.c.rule_id,
        ledger.c.points,
        ledger.c.counted,
        ledger.c.reason,
    )
    if version is not None:
        query = query.where(ledger.c.model_version == version)
    with app.transaction() as conn:
        return {tuple(row) for row in conn.execute(query)}


def assert_same_state(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before["rules"].keys() == after["rules"].keys()
    for rule_id, (value, as_of, days) in before["rules"].items():
        again, again_as_of, again_days = after["rules"][rule_id]
        assert math.isclose(value, again, rel_tol=1e-9, abs_tol=1e-12), rule_id
        assert (as_of, days) == (again_as_of, again_days), rule_id
    assert before["recent"] == after["recent"]
    assert before.get("reset_at") == after.get("reset_at")


def check_rebuild(app: Leadflow, clock: Clock, batches: list[tuple[float, Batch]]) -> None:
    source = app.create_source("website")
    sent = ingest_all(app, clock, source, batches)
    incremental, ledger = snapshot(app), ledger_rows(app)

    report = app.rescore()

    assert (report.leads, report.events, report.changes) == (len(USERS), sent, 0)
    rebuilt = snapshot(app)
    assert rebuilt.keys() == incremental.keys()
    for lead, (state, engagement, stage, version) in incremental.items():
        again_state, again_engagement, again_stage, again_version = rebuilt[lead]
        assert_same_state(state, again_state)
        assert math.isclose(engagement, again_engagement, abs_tol=1.5e-6), lead
        assert (stage, version) == (again_stage, again_version) == (stage, app.model.version)
    assert ledger_rows(app) == ledger


# --- incremental == batch -----------------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Leadflow, Clock]]:
    home = tmp_path_factory.mktemp("rescore")
    clock = Clock(T0)
    store = Settings(database_url=f"sqlite:///{home / 'leadflow.db'}", home=home)
    app = open_with_model(store, clock, MODEL)
    yield app, clock
    app.close()


SECONDS_AGO = st.one_of(
    st.integers(0, 30 * 3600),  # the same day or so: daily limits
    st.integers(0, 30 * 86_400),  # weeks ago: decay, late events
).map(lambda s: s + 0.001 * (s % 997))
EVENTS = st.lists(
    st.tuples(st.sampled_from(USERS), st.integers(0, len(KINDS) - 1), SECONDS_AGO),
    min_size=1,
    max_size=8,
)
BATCHES = st.lists(st.tuples(st.integers(0, 3 * 86_400), EVENTS), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=BATCHES)
def test_rescore_lands_on_the_incremental_state(
    sqlite_store: tuple[Leadflow, Clock], batches: list[tuple[float, Batch]]
) -> None:
    app, clock = sqlite_store
    empty(app)
    clock.at = T0
    check_rebuild(app, clock, batches)


FIXED: list[tuple[float, Batch]] = [
    (0, [("u0", 0, 3600), ("u0", 0, 1800), ("u0", 1, 60), ("u1", 5, 86_400 * 9)]),
    (600, [("u0", 0, 0), ("u1", 7, 10), ("u1", 7, 20), ("u2", 3, 5), ("u2", 2, 0)]),
    (86_400, [("u0", 5, 86_400 * 20), ("u1", 6, 0), ("u1", 7, 0), ("u2", 2, 1), ("u2", 2, 2)]),
    (3600, [("u2", 2, 3), ("u2", 2, 4), ("u0", 0, 86_400 * 3 + 0.5), ("u1", 8, 0)]),
]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_rescore_lands_on_the_incremental_state_on_postgresql(
    open_store: Opener, clock: Clock
) -> None:
    check_rebuild(open_store(MODEL), clock, FIXED)


# --- several processes ----------------------------------------------------------------------
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_worker_processes_rebuild_what_one_process_rebuilds_on_postgresql(
    open_store: Opener, clock: Clock
) -> None:
    old = open_store(MODEL)
    source = old.create_source("website")
    users = [f"w{n}" for n in range(23)]
    messages = []
    for n, user in enumerate(users):
        at = T0 - timedelta(days=n % 9, hours=n)
        messages += [
            message(user, "identify", "software" if n % 3 else "retail", at),
            message(user, "page", "/pricing", at),
            message(user, "page", "/blog/post", at + timedelta(minutes=5)),
            message(user, "track", "Webinar Attended", at + timedelta(hours=n % 4)),
        ]
        if n % 5 == 0:
            messages.append(message(user, "track", "Demo Requested", at))
    assert old.ingest(source, messages).errors == []
    old.close()

    new = open_store(MODEL.replace("points: 10", "points: 25"))  # more MQLs under the new one
    seen: list[int] = []
    parallel = new.rescore(lambda done: seen.append(done.leads), processes=2, chunk=5)
    in_parallel, ledger = snapshot(new), ledger_rows(new, new.model.version)
    assert sorted(seen) == [3, 5, 5, 5, 5]  # 23 leads in chunks of 5, each reported once
    assert (parallel.leads, parallel.events) == (23, len(messages))
    assert parallel.changes > 0, "the new model should qualify some leads"

    again = new.rescore(processes=1, chunk=5)
    assert (again.leads, again.events, again.changes) == (23, len(messages), 0)
    one_process = snapshot(new)
    assert one_process.keys() == in_parallel.keys()
    for lead, (state, engagement, stage, version) in in_parallel.items():
        state_1, engagement_1, stage_1, version_1 = one_process[lead]
        assert_same_state(state, state_1)
        assert (engagement, stage, version) == (engagement_1, stage_1, version_1), lead
        assert version == new.model.version
    assert ledger_rows(new, new.model.version) == ledger


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_several_processes_need_postgresql(open_store: Opener) -> None:
    app = open_store(MODEL)
    with pytest.raises(ValidationError, match="processes: 2 needs PostgreSQL"):
        app.rescore(processes=2)
    with pytest.raises(ValidationError, match="processes: 0 is not a positive number"):
        app.rescore(processes=0)


# --- a new model version ------------------------------------------------------------------
def count_versions(app: Leadflow) -> list[str]:
    models = cast_table(ScoringModelRow)
    with app.transaction() as conn:
        return sorted(conn.scalars(select(models.c.version)))


def ledger_count(app: Leadflow, version: str) -> int:
    ledger = cast_table(ScoreLedger)
    query = select(func.count()).where(ledger.c.model_version == version)
    with app.transaction() as conn:
        return int(conn.scalar(query) or 0)


def test_a_model_change_then_rescore_rebuilds_with_the_new_version(
    open_store: Opener,
) -> None:
    old = open_store(MODEL)
    source = old.create_source("website")
    messages = [
        message("u0", "identify", "software", T0),
        message("u0", "page", "/pricing", T0),
        message("u0", "track", "Webinar Attended", T0),
        message("u1", "page", "/pricing", T0 - timedelta(days=7)),
    ]
    assert old.ingest(source, messages).errors == []
    ann, bob = sorted(snapshot(old))
    assert old.lead(ann).engagement_score == 30.0
    assert old.lead(bob).engagement_score == 5.0
    old_rows = ledger_rows(old, old.model.version)
    assert len(old_rows) == 3
    old.close()

    new = open_store(MODEL.replace("points: 10", "points: 16"))
    assert new.model.version != old.model.version
    assert count_versions(new) == sorted([old.model.version, new.model.version])
    assert new.lead(ann).model_version == old.model.version  # until the rebuild

    report = new.rescore()

    assert (report.leads, report.events) == (2, 4)
    assert (new.lead(ann).engagement_score, new.lead(bob).engagement_score) == (36.0, 8.0)
    assert {new.lead(ann).model_version, new.lead(bob).model_version} == {new.model.version}
    assert ledger_rows(new, old.model.version) == old_rows  # kept as they were
    new_rows = ledger_rows(new, new.model.version)
    assert {(r[0], r[1], r[3], r[5]) for r in new_rows} == {
        (r[0], r[1], r[3], r[5]) for r in old_rows
    }
    assert {r[4] for r in new_rows if r[3] == "pricing"} == {16.0}
    explained = new.explain(ann)
    assert explained["model_version"] == new.model.version
    assert explained["engagement"]["total"] == 36.0

    new.rescore()  # again: the same rows, not twice as many
    assert ledger_rows(new, new.model.version) == new_rows
    assert ledger_count(new, old.model.version) == 3


def test_a_recycled_lead_keeps_its_reset_through_a_model_change(
    open_store: Opener, clock: Clock
) -> None:
    old = open_store(MODEL)
    source = old.create_source("website")
    before = [
        message("u0", "identify", "software", T0),
        message("u0", "track", "Webinar Attended", T0),
        message("u0", "page", "/pricing", T0),
        message("u0", "page", "/pricing", T0),
    ]
    assert old.ingest(source, before).errors == []
    [ann] = snapshot(old)
    assert old.lead(ann).stage == "mql"
    clock.advance(hours=1)
    old.decide(ann, "reject", "not_a_fit", actor="user:sam")
    assert old.ingest(source, [message("u0", "page", "/pricing", clock.now())]).errors == []
    assert old.lead(ann).engagement_score == 10.0
    old.close()

    new = open_store(MODEL.replace("points: 10", "points: 12"))
    assert new.ingest(source, [message("u0", "page", "/pricing/a", clock.now())]).errors == []
    new.rescore()

    lead = new.lead(ann)
    # only the two pricing visits after the reject count: the webinar and the first visits
    # were before the lead was recycled
    assert (lead.engagement_score, lead.stage) == (24.0, "recycled")
