"""The handoff payload of a lead moved to SQL carries what a CRM maps: the contact, the
account, the scores and why, the stage history and the last touches; and the CSV export
flattens it into import columns (CLI and API)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow import Leadflow, Settings
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.jobs.outbox import dispatch
from leadflow.jobs.webhooks import handoff_consumers
from leadflow.services.handoff import CSV_COLUMNS
from leadflow.services.webhooks import new_secret
from tests.integration.scoring_support import T0, Clock, identify, ingest, lead_id, message, track

HOOKS = {
    "allow_private_targets": True,
    "last_touches": 3,
    "endpoints": [{"name": "crm", "url": "http://127.0.0.1:9/hooks", "secret": new_secret()}],
}


@pytest.fixture
def app(leadflow: Leadflow, settings: Settings) -> Iterator[Leadflow]:
    clock = Clock(T0)
    found = Leadflow(settings.model_copy(update={"webhooks": HOOKS}), clock)
    found.migrate()
    yield found
    found.close()


def qualified_lead(app: Leadflow, user: str = "ada") -> int:
    """A good-fit lead who came from a campaign, asked for a demo (MQL by the policy),
    was accepted by sales and moved to SQL."""
    source = app.ensure_source("website")
    traits = {
        "email": f"{user}@acme-corp.com",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "title": "VP Marketing",
        "company": "Acme Corp",
        "industry": "software",
        "company_size": 200,
        "country": "US",
    }
    campaign = {"source": "google", "medium": "cpc", "name": "spring-launch"}
    page = message(
        "page",
        user,
        T0 + timedelta(minutes=1),
        name="Pricing",
        context={
            "page": {"path": "/pricing", "url": "https://acme.test/pricing"},
            "campaign": campaign,
        },
    )
    ingest(
        app,
        source,
        identify(user, T0, **traits),
        page,
        track(user, "Demo Requested", T0 + timedelta(minutes=2)),
    )
    found = lead_id(app, user)
    assert app.lead(found).stage == "mql"
    app.decide(found, "accept", "meets_criteria", "user:bo")
    app.move_stage(found, "sql", "budget_confirmed", "user:bo")
    return found


def test_the_payload_of_a_lead_moved_to_sql(app: Leadflow) -> None:
    lead = qualified_lead(app)
    dispatch(app, handoff_consumers(app))
    [delivery] = app.webhook_deliveries()
    payload = delivery.payload
    assert payload["type"] == "lead.handoff"
    data = payload["data"]
    contact = data["lead"]
    assert contact["id"] == lead
    assert contact["email"] == "ada@acme-corp.com"
    assert (contact["first_name"], contact["last_name"]) == ("Ada", "Lovelace")
    assert (contact["title"], contact["company"], contact["stage"]) == (
        "VP Marketing",
        "Acme Corp",
        "sql",
    )
    assert contact["identities"]["userId"] == ["ada"]
    assert contact["first_touch"] == {}  # the identify came first, with no page or campaign
    scores = data["scores"]
    assert scores["fit_grade"] == "A"
    assert scores["engagement"] > 50
    why = scores["explanation"]
    assert why["top_rules"][0]["rule"] == "demo-request"
    assert why["top_rules"][0]["points"] == pytest.approx(50, abs=0.1)
    assert {c["rule"] for c in why["fit_criteria"]} >= {"target-industry", "decision-maker"}
    assert any("Demo Requested" in clause for clause in why["fired"])
    history = [(h["from"], h["to"], h["actor"]) for h in data["stage_history"]]
    assert history == [
        ("lead", "mql", "policy"),
        ("mql", "sal", "user:bo"),
        ("sal", "sql", "user:bo"),
    ]
    assert data["stage_change"]["to"] == "sql"
    assert data["stage_change"]["reason"] == "budget_confirmed"
    demo, pricing = data["last_touches"][:2]
    assert demo["name"] == "Demo Requested"
    assert pricing["url"] == "https://acme.test/pricing"
    assert pricing["utm"] == {"source": "google", "medium": "cpc", "campaign": "spring-launch"}
    assert data["assigned_rep"] is None


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_export_from_the_cli(app: Leadflow, settings: Settings, tmp_path: Path) -> None:
    lead = qualified_lead(app)
    out = tmp_path / "sql.csv"
    result = CliRunner().invoke(
        cli, ["--db", settings.resolved_database_url(), "handoff", "export", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.splitlines()[0].split(",") == list(CSV_COLUMNS)
    [row] = _rows(text)
    assert row["lead_id"] == str(lead)
    assert (row["email"], row["first_name"], row["company"]) == (
        "ada@acme-corp.com",
        "Ada",
        "Acme Corp",
    )
    assert (row["stage"], row["fit_grade"]) == ("sql", "A")
    assert row["reached_stage_at"].startswith(T0.date().isoformat())
    assert row["last_touch"] == "Demo Requested"


def test_export_since_and_stage_filters(app: Leadflow, settings: Settings, tmp_path: Path) -> None:
    qualified_lead(app)
    out = tmp_path / "x.csv"
    base = ["--db", settings.resolved_database_url(), "handoff", "export", "--out", str(out)]
    later = (T0 + timedelta(days=1)).date().isoformat()
    assert CliRunner().invoke(cli, [*base, "--since", later]).exit_code == 0
    assert _rows(out.read_text()) == []
    assert CliRunner().invoke(cli, [*base, "--stage", "mql"]).exit_code == 0
    assert _rows(out.read_text()) == []
    bad = CliRunner().invoke(cli, [*base, "--stage", "hot"])
    assert bad.exit_code == 1
    assert "unknown stage 'hot'" in bad.output


def test_the_csv_export_and_payload_over_the_api(app: Leadflow) -> None:
    lead = qualified_lead(app)
    with TestClient(create_app(leadflow=app)) as client:
        answer = client.get("/api/handoff/export.csv", params={"stage": "sql"})
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        [row] = _rows(answer.text)
        assert row["lead_id"] == str(lead)
        assert row["why"].startswith("demo-request 50; pricing-page 12")  # as of the clock
        assert row["utm_campaign"] == ""  # the first touch had no campaign
        payload: Any = client.get(f"/api/leads/{lead}/handoff").json()
        assert payload["data"]["lead"]["email"] == "ada@acme-corp.com"
        assert client.get("/api/handoff/export.csv", params={"stage": "hot"}).status_code == 400
