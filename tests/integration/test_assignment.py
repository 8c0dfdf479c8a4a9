"""New MQLs go to sales reps: territory first, then round robin, within capacity; the turn
survives a restart; a person can override; the API shows the rep and the SLA due time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow import Leadflow, NotFound, Settings
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.jobs.outbox import dispatch
from leadflow.jobs.webhooks import handoff_consumers
from tests.integration.scoring_support import T0, Clock, identify, ingest, lead_id, track

SALES = {
    "reps": [
        {"name": "Ada", "email": "ada@example.com", "territories": ["US-CA"]},
        {"name": "Bo", "email": "bo@example.com", "territories": ["DE"], "capacity": 1},
        {"name": "Cy", "email": "cy@example.com"},
    ]
}


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def opener(leadflow: Leadflow, settings: Settings, clock: Clock) -> Iterator[Any]:
    opened: list[Leadflow] = []

    def open_with(sales: dict[str, Any] = SALES) -> Leadflow:
        app = Leadflow(settings.model_copy(update={"sales": sales}), clock)
        app.migrate()
        opened.append(app)
        return app

    yield open_with
    for app in opened:
        app.close()


def new_mql(app: Leadflow, clock: Clock, user: str, **traits: Any) -> int:
    """A lead made an MQL a minute after the previous one, then dispatched."""
    clock.advance(minutes=1)
    ingest(app, app.ensure_source("website"), identify(user, clock.now(), **traits))
    found = lead_id(app, user)
    app.move_stage(found, "mql", "meets_criteria", actor="user:marketing")
    dispatch(app, handoff_consumers(app))
    return found


def rep_of(app: Leadflow, lead: int) -> tuple[str, str] | None:
    found = app.assignment(lead)["assignment"]
    return (found["rep"]["name"], found["rule"]) if found else None


def test_territory_first_then_round_robin(opener: Any, clock: Clock) -> None:
    app = opener()
    californian = new_mql(app, clock, "ca1", country="US", region="CA")
    german = new_mql(app, clock, "de1", country="de")
    assert rep_of(app, californian) == ("Ada", "territory")
    assert rep_of(app, german) == ("Bo", "territory")
    # No territory for France: everyone active with room, the longest wait first.
    order = [rep_of(app, new_mql(app, clock, f"fr{i}", country="FR")) for i in range(3)]
    assert order == [("Cy", "round_robin"), ("Ada", "round_robin"), ("Cy", "round_robin")]


def test_a_full_rep_is_skipped(opener: Any, clock: Clock) -> None:
    app = opener()
    new_mql(app, clock, "de1", country="DE")
    second = new_mql(app, clock, "de2", address={"country": "DE"})
    assert rep_of(app, second) == ("Ada", "round_robin")  # Bo is at capacity (1 open MQL)


def test_the_turn_survives_a_restart(opener: Any, clock: Clock) -> None:
    first = opener({"reps": [{"name": "Ada"}, {"name": "Bo"}]})
    a = new_mql(first, clock, "u1")
    first.close()
    again = opener({"reps": [{"name": "Ada"}, {"name": "Bo"}]})
    b = new_mql(again, clock, "u2")
    c = new_mql(again, clock, "u3")
    assert [rep_of(again, x) for x in (a, b, c)] == [
        ("Ada", "round_robin"),
        ("Bo", "round_robin"),
        ("Ada", "round_robin"),
    ]


def test_a_rep_removed_from_the_config_gets_no_more_leads(opener: Any, clock: Clock) -> None:
    app = opener({"reps": [{"name": "Ada"}, {"name": "Bo"}]})
    new_mql(app, clock, "u1")
    app.close()
    smaller = opener({"reps": [{"name": "Bo"}]})
    later = [rep_of(smaller, new_mql(smaller, clock, f"u{i}")) for i in (2, 3)]
    assert later == [("Bo", "round_robin"), ("Bo", "round_robin")]
    assert [r.name for r in smaller.sales_reps() if not r.active] == ["Ada"]


def test_assign_overrides_and_the_api_shows_rep_and_sla(
    opener: Any, clock: Clock, settings: Settings
) -> None:
    app = opener()
    lead = new_mql(app, clock, "ca1", country="US", region="CA")
    done = app.assign_lead(lead, "Cy")
    assert (done.rep.name, done.rule) == ("Cy", "manual")
    with pytest.raises(NotFound, match="no sales rep 'Zed'; reps: Ada, Bo, Cy"):
        app.assign_lead(lead, "Zed")
    with TestClient(create_app(leadflow=app)) as client:
        body = client.get(f"/api/leads/{lead}/assignment").json()
        assert client.get("/api/leads/999999/assignment").status_code == 404
    assert body["assignment"]["rep"]["name"] == "Cy"
    assert body["assignment"]["rule"] == "manual"
    due = datetime.fromisoformat(body["sla_due_at"]) - datetime.fromisoformat(body["mql_at"])
    assert due == timedelta(hours=24)  # the SLA of the sales step
    assert body["stage"] == "mql"


def test_leads_assign_from_the_cli(opener: Any, clock: Clock, settings: Settings) -> None:
    app = opener()
    lead = new_mql(app, clock, "de1", country="DE")
    home = settings.home
    (home / "leadflow.yaml").write_text(
        "sales:\n  reps:\n    - {name: Ada}\n    - {name: Bo, territories: [DE]}\n"
    )
    db = settings.resolved_database_url()
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["--db", db, "leads", "assign", str(lead), "--rep", "Ada"],
        env={"LEADFLOW_HOME": str(home)},
    )
    assert result.exit_code == 0, result.output
    assert f"lead {lead} assigned to Ada" in result.output
    assert rep_of(app, lead) == ("Ada", "manual")
    unknown = runner.invoke(
        cli,
        ["--db", db, "leads", "assign", str(lead), "--rep", "Zed"],
        env={"LEADFLOW_HOME": str(home)},
    )
    assert unknown.exit_code == 1
    assert "no sales rep 'Zed'" in unknown.output


def test_the_handoff_payload_names_the_rep(opener: Any, clock: Clock) -> None:
    app = opener()
    lead = new_mql(app, clock, "ca1", country="US", region="CA")
    app.move_stage(lead, "sal", "meets_criteria", actor="user:ada")
    rep = app.handoff_payload(lead)["data"]["assigned_rep"]
    assert (rep["name"], rep["email"], rep["rule"]) == ("Ada", "ada@example.com", "territory")


def test_the_sales_queue_ranks_mqls_with_their_rep_sla_and_reasons(
    opener: Any, clock: Clock, settings: Settings
) -> None:
    app = opener()
    source = app.ensure_source("website")
    first = new_mql(app, clock, "q1", email="q1@acme.com", state="CA", country="US")
    second = new_mql(app, clock, "q2", email="q2@acme.com", industry="software",
                     company_size=200, title="VP Sales", country="US")  # fmt: skip
    ingest(app, source, track("q2", "Demo Requested", clock.now()))  # more engaged than q1
    third = new_mql(app, clock, "q3", email="q3@acme.com")
    queue = app.sales_queue()
    assert [item["lead_id"] for item in queue][:1] == [second]
    assert {item["lead_id"] for item in queue} == {first, second, third}
    assert [item["rank"] for item in queue] == [1, 2, 3]
    top = queue[0]
    assert top["rep"] is not None and not top["overdue"]
    assert top["why"]["top_rules"][0]["rule"] == "demo-request"
    ada = app.sales_queue(rep="Ada")
    assert [item["lead_id"] for item in ada] == [first]
    with pytest.raises(NotFound, match="rep: no sales rep named 'Zed'; reps: Ada, Bo, Cy"):
        app.sales_queue(rep="Zed")
    clock.advance(hours=25)  # past the 24h SLA
    assert all(item["overdue"] for item in app.sales_queue())
    app.decide(second, "accept", "meets_criteria")
    assert second not in {item["lead_id"] for item in app.sales_queue()}
    with TestClient(create_app(settings, app)) as client:
        answer = client.get("/api/queue", params={"rep": "Ada"})
        assert answer.status_code == 200 and answer.json()[0]["lead_id"] == first
        assert client.get("/api/queue", params={"rep": "Zed"}).status_code == 404
    result = CliRunner().invoke(
        cli,
        ["--db", settings.database_url, "queue", "--json"],
        env={"LEADFLOW_HOME": str(settings.home)},
    )
    assert result.exit_code == 0, result.output
    assert {item["lead_id"] for item in json.loads(result.output)} == {first, third}
