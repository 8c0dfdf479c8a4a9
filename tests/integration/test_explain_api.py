"""Why a lead has its scores and stage, on a real store (SQLite and PostgreSQL): through the
library, over HTTP and from the command line, with the totals adding up."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner, Result

from leadflow import Leadflow, Settings, SourceRecord
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli_app
from leadflow.jobs.worker import run_once
from tests.integration.scoring_support import T0, Clock, lead_id, message, page, track

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

HALF_LIFE = 7 * 86_400
MODEL = """\
scoring:
  engagement:
    groups:
      web: {ceiling: 20}
      events: {}
    rules:
      - id: pricing
        description: Looked at pricing
        match: {type: page, path: ["/pricing*"]}
        points: 10
        half_life: 7d
        cap: 25
        daily_limit: 3
        group: web
      - id: blog
        match: {type: page, path: ["/blog/*"]}
        points: 3
        half_life: 7d
        group: web
      - id: webinar
        match: {event: Webinar Attended}
        points: 30
        half_life: 7d
        group: events
      - id: demo
        match: {event: Demo Requested}
        points: 5
        half_life: none
  fit:
    rules:
      - id: industry
        description: An industry we sell to
        when: [{field: traits.industry, op: in, value: [software]}]
        points: 40
      - id: decision-maker
        when: [{field: traits.title, op: contains_any, value: [vp, head]}]
        points: 20
      - id: free-mail
        when: [{field: email_domain_type, op: eq, value: free}]
        points: -20
    grades: {A: 50, B: 30, C: 10}
lifecycle:
  mql_policy: >-
    fit.grade in ('A', 'B') and engagement >= 40
    or happened('Demo Requested', within='2d')
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


PRICING_AT = [T0 - timedelta(days=1, minutes=m) for m in (0, 5, 10, 15)]
BLOG_AT = T0 - timedelta(days=2)
WEBINAR_AT = T0 - timedelta(days=3)
DEMO_AT = T0 - timedelta(hours=1)


def decayed(points: float, at: datetime, now: datetime = T0) -> float:
    return points * 2 ** (-(now - at).total_seconds() / HALF_LIFE)


def make_ann(app: Leadflow, source: SourceRecord, now: datetime = T0) -> int:
    """An A-grade MQL: pricing four times a day ago (three count, capped), a blog post, a
    webinar three days ago and a demo request an hour ago."""
    shift = now - T0
    messages = [
        message("identify", "ann", now, traits={"industry": "software", "title": "VP Sales"}),
        *[page("ann", "/pricing", at + shift) for at in PRICING_AT],
        page("ann", "/blog/why", BLOG_AT + shift),
        track("ann", "Webinar Attended", WEBINAR_AT + shift),
        track("ann", "Demo Requested", DEMO_AT + shift),
    ]
    assert app.ingest(source, messages).errors == []
    found = lead_id(app, "ann")
    assert app.lead(found).stage == "mql"
    return found


def rules_by_id(explained: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["rule"]: rule for rule in explained["engagement"]["rules"]}


# --- the library --------------------------------------------------------------------------
def test_totals_equal_the_sum_of_their_parts_and_the_leads_score(
    app: Leadflow, source: SourceRecord
) -> None:
    ann = make_ann(app, source)
    engagement = app.explain(ann)["engagement"]
    rules = engagement["rules"]
    for name, group in engagement["groups"].items():
        summed = sum(r["score"] for r in rules if r["group"] == name)
        assert group["sum_of_rules"] == summed
        ceiling = group["ceiling"]
        assert group["score"] == (min(summed, ceiling) if ceiling is not None else summed)
    assert engagement["ungrouped"] == sum(r["score"] for r in rules if r["group"] is None)
    assert engagement["total"] == engagement["ungrouped"] + sum(
        g["score"] for g in engagement["groups"].values()
    )
    assert abs(engagement["total"] - app.lead(ann).engagement_score) <= 1e-6
    # web is at its ceiling of 20; webinar decayed three days; the demo never decays
    assert engagement["groups"]["web"]["score"] == 20.0
    expected = 20 + decayed(30, WEBINAR_AT) + 5
    assert engagement["total"] == pytest.approx(expected, rel=1e-12)


def test_the_totals_still_agree_after_time_passes(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_ann(app, source)
    clock.advance(days=5, seconds=17)
    run_once(app)  # the policy answer changed: the lead was refreshed
    engagement = app.explain(ann)["engagement"]
    lead = app.lead(ann)
    assert lead.scored_at == clock.now()
    assert abs(engagement["total"] - lead.engagement_score) <= 1e-6


def test_every_counted_event_appears_under_its_rule_with_its_decayed_points(
    app: Leadflow, source: SourceRecord
) -> None:
    ann = make_ann(app, source)
    rules = rules_by_id(app.explain(ann))
    assert list(rules) == ["pricing", "blog", "webinar", "demo"]

    pricing = rules["pricing"]
    assert pricing["description"] == "Looked at pricing"
    assert (pricing["events_counted"], pricing["events_not_counted"]) == (3, 1)
    shown = sorted(pricing["events"], key=lambda e: e["timestamp"])
    counted = [e for e in shown if e["counted"]]
    [skipped] = [e for e in shown if not e["counted"]]
    assert skipped["reason"] == "daily limit 3"
    assert skipped["decayed"] == 0.0
    assert skipped["timestamp"] == PRICING_AT[3].isoformat()  # the fourth to arrive
    assert [e["decayed"] for e in counted] == [
        round(decayed(10, at), 4) for at in sorted(PRICING_AT[:3])
    ]
    raw = sum(decayed(10, at) for at in PRICING_AT[:3])
    assert pricing["raw"] == pytest.approx(raw, rel=1e-12)
    assert (pricing["cap"], pricing["score"], pricing["capped"]) == (25.0, 25.0, True)
    assert rules["blog"]["capped"] is False

    [webinar] = rules["webinar"]["events"]
    assert webinar["event"] == "Webinar Attended"
    assert webinar["decayed"] == round(decayed(30, WEBINAR_AT), 4)
    assert rules["webinar"]["half_life"] == "7d"
    [demo] = rules["demo"]["events"]
    assert (demo["decayed"], rules["demo"]["half_life"]) == (5.0, "none")

    events = {e.id: e for e in app.lead_events(ann)}
    listed = [e["event_id"] for rule in rules.values() for e in rule["events"]]
    assert sorted(listed) == sorted(i for i, e in events.items() if e.type != "identify")


def test_fit_criteria_policy_clause_and_history_with_model_versions(
    app: Leadflow, source: SourceRecord, clock: Clock
) -> None:
    ann = make_ann(app, source)
    clock.advance(hours=2)
    app.decide(ann, "accept", "strategic_account", actor="user:sam")
    explained = app.explain(ann)
    assert explained["stage"] == "sal"
    assert explained["model_version"] == explained["live_model_version"] == app.model.version
    assert explained["fit"] == {
        "score": 60.0,
        "grade": "A",
        "thresholds": {"A": 50.0, "B": 30.0, "C": 10.0},
        "criteria": [
            {
                "rule": "industry",
                "description": "An industry we sell to",
                "points": 40.0,
                "conditions": ["traits.industry is one of software"],
            },
            {
                "rule": "decision-maker",
                "description": "",
                "points": 20.0,
                "conditions": ["traits.title contains any of vp, head"],
            },
        ],
    }
    assert explained["policy"] == {
        "expression": f"{ENGAGEMENT_CLAUSE} or {DEMO_CLAUSE}",
        "result": True,
        "fired": [ENGAGEMENT_CLAUSE, DEMO_CLAUSE],
    }
    version = app.model.version
    assert explained["history"] == [
        {
            "from": "lead",
            "to": "mql",
            "at": T0.isoformat(),
            "actor": "policy",
            "reason": f"policy: {ENGAGEMENT_CLAUSE} | {DEMO_CLAUSE}",
            "note": "",
            "model_version": version,
        },
        {
            "from": "mql",
            "to": "sal",
            "at": (T0 + timedelta(hours=2)).isoformat(),
            "actor": "user:sam",
            "reason": "strategic_account",
            "note": "",
            "model_version": version,
        },
    ]


# --- HTTP ---------------------------------------------------------------------------------
@pytest.fixture
def client(app: Leadflow) -> Iterator[TestClient]:
    with TestClient(create_app(leadflow=app)) as test_client:
        yield test_client


def test_explain_over_http_is_the_libraries_answer(
    app: Leadflow, source: SourceRecord, client: TestClient
) -> None:
    ann = make_ann(app, source)
    response = client.get(f"/api/leads/{ann}/explain")
    assert response.status_code == 200, response.text
    assert response.json() == app.explain(ann)
    missing = client.get("/api/leads/999999/explain")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"


def test_accept_over_http(app: Leadflow, source: SourceRecord, client: TestClient) -> None:
    ann = make_ann(app, source)
    body = {"reason": "meets_criteria", "by": "sam", "note": "booked a call"}
    response = client.post(f"/api/leads/{ann}/accept", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "lead_id": ann,
        "from": "mql",
        "to": "sal",
        "at": T0.isoformat(),
        "actor": "user:sam",
        "reason": "meets_criteria",
        "note": "booked a call",
        "model_version": app.model.version,
    }
    assert app.lead(ann).stage == "sal"

    again = client.post(f"/api/leads/{ann}/accept", json=body)
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"


@pytest.mark.parametrize("route", ["accept", "reject"])
def test_sales_step_errors_over_http(
    app: Leadflow, source: SourceRecord, client: TestClient, route: str
) -> None:
    ann = make_ann(app, source)
    bad = client.post(f"/api/leads/{ann}/{route}", json={"reason": "because"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"
    allowed = "meets_criteria, strategic_account" if route == "accept" else "not_a_fit, bad_timing"
    assert allowed in bad.json()["message"]

    missing = client.post(f"/api/leads/{ann}/{route}", json={"by": "sam"})
    assert missing.status_code == 422
    assert missing.json()["code"] == "invalid_request"
    assert "reason" in missing.json()["message"]

    unknown = client.post("/api/leads/999999/" + route, json={"reason": "meets_criteria"})
    assert unknown.status_code == 404
    assert app.lead(ann).stage == "mql"


def test_reject_and_stage_changes_over_http(
    app: Leadflow, source: SourceRecord, client: TestClient
) -> None:
    ann = make_ann(app, source)
    rejected = client.post(f"/api/leads/{ann}/reject", json={"reason": "bad_timing", "by": "kim"})
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["from"], rejected.json()["to"]) == ("mql", "recycled")
    assert app.lead(ann).engagement_score == 0.0

    to_customer = client.post(f"/api/leads/{ann}/stage", json={"stage": "customer", "reason": "x"})
    assert to_customer.status_code == 409
    unknown_stage = client.post(f"/api/leads/{ann}/stage", json={"stage": "won", "reason": "x"})
    assert unknown_stage.status_code == 400
    no_stage = client.post(f"/api/leads/{ann}/stage", json={"reason": "x"})
    assert no_stage.status_code == 422

    moved = client.post(
        f"/api/leads/{ann}/stage", json={"stage": "Disqualified", "reason": "spam", "by": "kim"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["to"] == "disqualified"
    assert moved.json()["actor"] == "user:kim"
    assert app.lead(ann).stage == "disqualified"
    gone = client.post("/api/leads/999999/stage", json={"stage": "lead", "reason": "x"})
    assert gone.status_code == 404


def test_model_over_http(app: Leadflow, client: TestClient) -> None:
    response = client.get("/api/model")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == app.model.version
    assert [r["id"] for r in body["scoring"]["engagement"]["rules"]] == [
        "pricing",
        "blog",
        "webinar",
        "demo",
    ]
    assert body["lifecycle"]["mql_policy"] == f"{ENGAGEMENT_CLAUSE} or {DEMO_CLAUSE}"
    assert body["lifecycle"]["sales"]["accept_reasons"] == ["meets_criteria", "strategic_account"]


# --- the command line ---------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture
def workdir(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The commands run in the folder of leadflow.yaml, so they read the same model."""
    monkeypatch.chdir(settings.home)
    return settings.home


def cli(database_url: str, *args: str) -> Result:
    env = {"LEADFLOW_DATABASE_URL": None, "LEADFLOW_HOME": None}
    result = runner.invoke(cli_app, ["--db", database_url, *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def failure(result: Result) -> str:
    """The one line a failing command prints, exit code 1."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def real_time(app: Leadflow, clock: Clock) -> datetime:
    """The commands use the wall clock: the test's clock starts there too."""
    clock.at = datetime.now(UTC).replace(microsecond=0)
    return clock.at


def test_explain_command(
    app: Leadflow, source: SourceRecord, database_url: str, workdir: Path, real_time: datetime
) -> None:
    ann = make_ann(app, source, now=real_time)
    result = cli(database_url, "explain", str(ann), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    expected = app.explain(ann)
    for key in ("lead_id", "stage", "model_version", "fit", "policy", "history"):
        assert shown[key] == expected[key], key
    assert shown["engagement"]["total"] == pytest.approx(expected["engagement"]["total"], rel=1e-5)
    assert [r["rule"] for r in shown["engagement"]["rules"]] == [
        "pricing",
        "blog",
        "webinar",
        "demo",
    ]

    table = cli(database_url, "explain", str(ann))
    assert table.exit_code == 0, table.output
    assert f"lead {ann}" in table.stdout and "stage mql" in table.stdout
    assert f"fired: {ENGAGEMENT_CLAUSE}" in table.stdout

    assert failure(cli(database_url, "explain", "999999")) == "error: no lead with id 999999"


def test_accept_command(
    app: Leadflow, source: SourceRecord, database_url: str, workdir: Path, real_time: datetime
) -> None:
    ann = make_ann(app, source, now=real_time)
    refused = failure(cli(database_url, "leads", "accept", str(ann), "--reason", "because"))
    assert "meets_criteria, strategic_account" in refused
    result = cli(
        database_url, "leads", "accept", str(ann), "--reason", "meets_criteria", "--by", "sam"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"lead {ann}: mql -> sal (meets_criteria)"
    assert app.lead(ann).stage == "sal"
    assert app.explain(ann)["history"][-1]["actor"] == "user:sam"

    again = failure(cli(database_url, "leads", "accept", str(ann), "--reason", "meets_criteria"))
    assert again == f"error: lead {ann} is already in stage 'sal'"
    unknown = failure(cli(database_url, "leads", "accept", "999999", "--reason", "meets_criteria"))
    assert unknown == "error: no lead with id 999999"


def test_score_show_and_rebuild_commands(
    app: Leadflow, source: SourceRecord, database_url: str, workdir: Path, real_time: datetime
) -> None:
    ann = make_ann(app, source, now=real_time)
    shown = cli(database_url, "score", "show", "--json")
    assert shown.exit_code == 0, shown.output
    model = json.loads(shown.stdout)
    assert model["version"] == app.model.version
    assert model["lifecycle"]["mql_policy"] == f"{ENGAGEMENT_CLAUSE} or {DEMO_CLAUSE}"
    assert [h["version"] for h in model["history"]] == [app.model.version]

    rebuilt = cli(database_url, "score", "rebuild", "--json")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(rebuilt.stdout) == {
        "model_version": app.model.version,
        "leads": 1,
        "events": 8,
        "stage_changes": 0,
    }
    assert app.lead(ann).stage == "mql"

    two = cli(database_url, "score", "rebuild", "--processes", "2", "--json")
    if database_url.startswith("postgresql"):
        assert two.exit_code == 0, two.output
        assert json.loads(two.stdout)["leads"] == 1
    else:
        assert failure(two) == (
            "error: processes: 2 needs PostgreSQL; SQLite lets one writer work at a time, so "
            "rebuild with one process"
        )


def test_worker_command_escalates_a_late_mql(
    app: Leadflow, source: SourceRecord, database_url: str, workdir: Path, real_time: datetime
) -> None:
    a_day_and_more_ago = real_time - timedelta(hours=30)
    messages = [
        message("identify", "bob", a_day_and_more_ago, traits={"industry": "software"}),
        track("bob", "Webinar Attended", a_day_and_more_ago),
        page("bob", "/pricing", a_day_and_more_ago),
        page("bob", "/pricing", a_day_and_more_ago),
    ]
    app.ingest(source, messages, received_at=a_day_and_more_ago)
    bob = lead_id(app, "bob")
    assert app.lead(bob).stage == "mql"
    assert app.lead(bob).sla_due_at == a_day_and_more_ago + timedelta(hours=24)

    result = cli(database_url, "worker", "--once")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().startswith("reviewed 0, stage changes 0, escalated 1,")
    result = cli(database_url, "worker", "--once")
    assert result.stdout.strip().startswith("reviewed 0, stage changes 0, escalated 0,")


def test_leads_list_command_shows_mqls_with_scores(
    app: Leadflow, source: SourceRecord, database_url: str, workdir: Path, real_time: datetime
) -> None:
    ann = make_ann(app, source, now=real_time)
    app.ingest(source, [message("identify", "bob", real_time, traits={"industry": "retail"})])
    result = cli(database_url, "leads", "list", "--stage", "mql", "--json")
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)
    assert item["id"] == ann
    assert item["stage"] == "mql"
    assert item["scores"]["fit_grade"] == "A"
    assert item["scores"]["engagement"] == app.lead(ann).engagement_score


def test_a_model_that_does_not_validate_stops_the_command_with_one_line(
    app: Leadflow, database_url: str, workdir: Path
) -> None:
    text = MODEL.replace("half_life: none", "half_life: forever")
    (workdir / "leadflow.yaml").write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "half_life: forever" in t)
    shown = failure(cli(database_url, "score", "show"))
    assert shown.startswith("error: ")
    assert f"leadflow.yaml:{line}: scoring.engagement.rules[3].half_life:" in shown
