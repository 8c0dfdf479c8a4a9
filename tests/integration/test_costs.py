"""Costs on SQLite and PostgreSQL: the library, the file import, the API, the CLI, the schema,
and the campaign each ingested event carries for attribution."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from leadflow import Leadflow, NotFound, Settings, ValidationError
from leadflow.adapters.db.tables import Base, events
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.services.costs import CostError
from tests.integration.scoring_support import T0, ingest, message

FILE = """dimension,name,period_start,period_end,amount,currency,note
source,google-ads,2025-03,,1200,,March budget
campaign,spring,2025-03-01,2025-03-15,-5,USD,refund?
campaign,spring,2025-03-01,2025-03-15,750.50,usd,
journey,welcome,2025-13,,10,USD,
webinar,x,2025-03,,10,USD,
campaign,spring,2025-03-15,2025-03-01,10,USD,
"""


@pytest.fixture
def client(leadflow: Leadflow) -> Iterator[TestClient]:
    with TestClient(create_app(leadflow=leadflow)) as test_client:
        yield test_client


# --- library ---------------------------------------------------------------------------------
def test_add_list_and_delete_costs(leadflow: Leadflow) -> None:
    march = leadflow.add_cost("source", "google-ads", "2025-03", None, "1200", note="budget")
    assert (march.period_start, march.period_end, march.amount) == (
        date(2025, 3, 1), date(2025, 4, 1), Decimal("1200"),
    )  # fmt: skip
    spring = leadflow.add_cost("Campaign", " spring ", date(2025, 3, 1), date(2025, 3, 15),
                               Decimal("750.5"), currency="eur")  # fmt: skip
    assert (spring.dimension, spring.name, spring.currency) == ("campaign", "spring", "EUR")
    stored = leadflow.list_costs()
    assert [(c.id, c.name, c.amount, c.note) for c in stored] == [
        (spring.id, "spring", Decimal("750.5"), ""),
        (march.id, "google-ads", Decimal("1200"), "budget"),
    ]  # fmt: skip
    assert [c.id for c in leadflow.list_costs("source")] == [march.id]
    assert march.to_json()["amount"] == 1200.0
    assert march.to_json()["period_end"] == "2025-04-01"
    leadflow.delete_cost(march.id)
    assert [c.id for c in leadflow.list_costs()] == [spring.id]
    with pytest.raises(NotFound, match=f"no cost with id {march.id}"):
        leadflow.delete_cost(march.id)


def test_bad_costs_are_refused_naming_the_field(leadflow: Leadflow) -> None:
    with pytest.raises(CostError, match="amount: -20 is not positive") as raised:
        leadflow.add_cost("source", "web", "2025-03", None, -20)
    assert (raised.value.field, raised.value.value) == ("amount", "-20")
    with pytest.raises(ValidationError, match="dimension: 'region' is not one of"):
        leadflow.add_cost("region", "emea", "2025-03", None, 10)
    with pytest.raises(ValidationError, match="period_start: 'soon' is not a date"):
        leadflow.add_cost("source", "web", "soon", None, 10)
    with pytest.raises(ValidationError, match="period_end: 2025-02-01 is not after"):
        leadflow.add_cost("source", "web", "2025-03-01", "2025-02-01", 10)
    with pytest.raises(ValidationError, match="dimension"):
        leadflow.list_costs("region")
    assert leadflow.list_costs() == []


def test_import_keeps_valid_rows_and_reports_the_others_by_line(
    leadflow: Leadflow, tmp_path: Path
) -> None:
    file = tmp_path / "costs.csv"
    file.write_text(FILE, encoding="utf-8")
    result = leadflow.import_costs(file)
    assert (result.rows, result.imported, result.duplicates, result.invalid) == (6, 2, 0, 4)
    assert [(e.line, e.field, e.value) for e in result.errors] == [
        (3, "amount", "-5"), (5, "period_start", "2025-13"), (6, "dimension", "webinar"),
        (7, "period_end", "2025-03-01"),
    ]  # fmt: skip
    assert result.errors[0].raw == "campaign,spring,2025-03-01,2025-03-15,-5,USD,refund?"
    assert [(c.name, c.amount, c.currency) for c in leadflow.list_costs()] == [
        ("spring", Decimal("750.5"), "USD"), ("google-ads", Decimal("1200"), "USD"),
    ]  # fmt: skip
    again = leadflow.import_costs(file)
    assert (again.imported, again.duplicates, again.invalid) == (0, 2, 4)
    assert len(leadflow.list_costs()) == 2
    with pytest.raises(ValidationError, match="no such file"):
        leadflow.import_costs(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("dimension,name,amount\n", encoding="utf-8")
    with pytest.raises(
        ValidationError, match=r"bad\.csv: line 1: the header has no 'period_start'"
    ):
        leadflow.import_costs(tmp_path / "bad.csv")


# --- API -----------------------------------------------------------------------------------
def test_api_costs(client: TestClient) -> None:
    body = {"dimension": "campaign", "name": "spring", "period_start": "2025-03",
            "amount": 1200.5, "note": "ads"}  # fmt: skip
    created = client.post("/api/costs", json=body)
    assert created.status_code == 201, created.text
    cost = created.json()
    assert {k: cost[k] for k in ("dimension", "name", "period_start", "period_end", "amount",
                                 "currency", "note")} == {
        "dimension": "campaign", "name": "spring", "period_start": "2025-03-01",
        "period_end": "2025-04-01", "amount": 1200.5, "currency": "USD", "note": "ads",
    }  # fmt: skip
    other = {"dimension": "source", "name": "web", "period_start": "2025-03-01",
             "period_end": "2025-03-08", "amount": "70"}  # fmt: skip
    assert client.post("/api/costs", json=other).status_code == 201
    listed = client.get("/api/costs").json()["items"]
    assert [c["name"] for c in listed] == ["spring", "web"]
    only = client.get("/api/costs", params={"dimension": "source"}).json()["items"]
    assert [c["amount"] for c in only] == [70.0]
    negative = client.post("/api/costs", json={**body, "amount": -3})
    assert negative.status_code == 400
    assert negative.json()["message"].startswith("amount: -3 is not positive")
    dimension = client.post("/api/costs", json={**body, "dimension": "region"})
    assert dimension.status_code == 400 and "dimension" in dimension.json()["message"]
    missing = client.post("/api/costs", json={"dimension": "source", "name": "web"})
    assert missing.status_code == 422 and "amount" in missing.text
    assert client.get("/api/costs", params={"dimension": "x"}).status_code == 400
    assert client.delete(f"/api/costs/{cost['id']}").status_code == 204
    gone = client.delete(f"/api/costs/{cost['id']}")
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"
    assert [c["name"] for c in client.get("/api/costs").json()["items"]] == ["web"]


# --- CLI -----------------------------------------------------------------------------------
def _cli(settings: Settings, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(
        cli, ["--db", settings.database_url, *args], env={"LEADFLOW_HOME": str(settings.home)}
    )
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def test_cli_add_list_delete(leadflow: Leadflow, settings: Settings) -> None:
    added = _cli(settings, "costs", "add", "campaign", "spring", "--amount", "1200",
                 "--start", "2025-03", "--note", "LinkedIn", "--json").stdout  # fmt: skip
    cost = json.loads(added)
    assert (cost["period_start"], cost["period_end"], cost["amount"]) == (
        "2025-03-01", "2025-04-01", 1200.0,
    )  # fmt: skip
    text = _cli(settings, "costs", "add", "source", "web", "--amount", "99.5", "--start",
                "2025-03-01", "--end", "2025-03-08", "--currency", "EUR").stdout  # fmt: skip
    assert "99.5 EUR on source 'web' from 2025-03-01 until 2025-03-08" in text
    table = _cli(settings, "costs", "list").stdout
    assert "spring" in table and "1,200 USD" in table and "LinkedIn" in table
    listed = json.loads(_cli(settings, "costs", "list", "--dimension", "source", "--json").stdout)
    assert [c["name"] for c in listed] == ["web"]
    assert f"deleted cost {cost['id']}" in _cli(settings, "costs", "delete", str(cost["id"])).stdout
    assert [c.name for c in leadflow.list_costs()] == ["web"]
    unknown = _cli(settings, "costs", "delete", str(cost["id"]), code=1)
    assert f"no cost with id {cost['id']}" in unknown.output
    negative = _cli(settings, "costs", "add", "source", "web", "--amount", "-5", "--start",
                    "2025-03", code=1)  # fmt: skip
    assert "amount: -5 is not positive" in negative.output
    no_end = _cli(settings, "costs", "add", "source", "web", "--amount", "5", "--start",
                  "2025-03-01", code=1)  # fmt: skip
    assert "period_end: is required unless period_start is a month" in no_end.output


def test_cli_import_writes_the_error_file(leadflow: Leadflow, settings: Settings,
                                          tmp_path: Path) -> None:  # fmt: skip
    file = tmp_path / "march.csv"
    file.write_text(FILE, encoding="utf-8")
    result = _cli(settings, "costs", "import", str(file), "--json", code=1)
    summary = json.loads(result.stdout)
    assert (summary["imported"], summary["invalid"]) == (2, 4)
    assert summary["errors_file"] == str(tmp_path / "march.errors.csv")
    assert "4 invalid row(s) were not imported" in result.stderr
    errors = list(csv.DictReader(io.StringIO((tmp_path / "march.errors.csv").read_text())))
    assert [(e["line"], e["field"], e["value"]) for e in errors] == [
        ("3", "amount", "-5"), ("5", "period_start", "2025-13"), ("6", "dimension", "webinar"),
        ("7", "period_end", "2025-03-01"),
    ]  # fmt: skip
    assert errors[0]["reason"].startswith("-5 is not positive")
    good = tmp_path / "good.csv"
    good.write_text("dimension,name,period_start,amount\njourney,welcome,2025-04,300\n")
    text = _cli(settings, "costs", "import", str(good), "--errors", str(tmp_path / "e.csv")).stdout
    assert "imported       1" in text and not (tmp_path / "e.csv").exists()
    assert "duplicates     1" in _cli(settings, "costs", "import", str(good)).stdout
    missing = _cli(settings, "costs", "import", str(tmp_path / "nope.csv"), code=1)
    assert "no such file" in missing.output


# --- schema and ingestion ------------------------------------------------------------------
def test_migration_matches_the_declared_costs_and_event_campaign(leadflow: Leadflow) -> None:
    with leadflow.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
        names = set(conn.dialect.get_table_names(conn))
        indexes = {ix["name"] for ix in conn.dialect.get_indexes(conn, "events")}
        columns = {c["name"] for c in conn.dialect.get_columns(conn, "events")}
    ours = [d for d in diff if any(n in repr(d) for n in ("costs", "campaign", "touches"))]
    assert ours == []
    assert "costs" in names and "ix_events_touches" in indexes and "campaign" in columns


def test_each_event_carries_its_utm_campaign(leadflow: Leadflow) -> None:
    source = leadflow.create_source("web")
    long_name = "x" * 250
    ingest(
        leadflow, source,
        message("page", "u1", T0, context={"campaign": {"name": "spring", "source": "g"}}),
        message("page", "u1", T0, context={"campaign": {"name": long_name}}),
        message("track", "u1", T0, event="Signed Up", context={"campaign": "not an object"}),
        message("track", "u1", T0, event="Signed Up"),
    )  # fmt: skip
    with leadflow.engine.connect() as conn:
        found = list(conn.scalars(select(events.c.campaign).order_by(events.c.id)))
    assert found == ["spring", "x" * 200, None, None]
