"""Score quality on both backends: conversion by engagement decile, the A1-D4 matrix and the
calibration of the predicted probability, through the library, the API and the CLI."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from leadflow import Leadflow, Settings
from leadflow.adapters.db.tables import leads
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.domain.errors import ValidationError
from tests.integration.scoring_support import T0, identify, ingest, lead_id

GRADES = "AAAAABBBBBCCCCCDDDDD"


def _company(leadflow: Leadflow) -> list[int]:
    """20 leads, engagement 100 down to 5, grades A to D by fives, a prediction for the
    first ten; leads 0 and 2 are customers and SQLs now, 1 and 5 were opportunities and
    went back to nurture."""
    source = leadflow.ensure_source("web")
    ids = []
    for i in range(20):
        ingest(leadflow, source, identify(f"q{i}", T0, email=f"q{i}@acme.com"))
        ids.append(lead_id(leadflow, f"q{i}"))
    with leadflow.transaction() as conn:
        for i, lead in enumerate(ids):
            values = {"engagement_score": 100.0 - 5 * i, "fit_grade": GRADES[i],
                      "p_convert": (20 - i) / 20 if i < 10 else None}  # fmt: skip
            conn.execute(update(leads).where(leads.c.id == lead).values(**values))
    for i in (1, 5):
        for stage in ("mql", "sal", "sql", "opportunity", "recycled"):
            leadflow.move_stage(ids[i], stage, "test")
    with leadflow.transaction() as conn:
        conn.execute(update(leads).where(leads.c.id == ids[0]).values(stage="customer"))
        conn.execute(update(leads).where(leads.c.id == ids[2]).values(stage="sql"))
    return ids


def test_conversion_by_decile_matrix_and_calibration(leadflow: Leadflow) -> None:
    _company(leadflow)
    found = leadflow.score_quality_report().to_json()
    assert (found["leads"], found["converted"], found["conversion"]) == (20, 4, 0.2)
    deciles = {d["decile"]: (d["leads"], d["converted"]) for d in found["deciles"]}
    assert deciles[1] == (2, 2) and deciles[2] == (2, 1) and deciles[3] == (2, 1)
    assert all(deciles[d] == (2, 0) for d in range(4, 11))
    assert found["deciles"][0]["max_engagement"] == 100
    cells = {c["cell"]: (c["leads"], c["converted"]) for c in found["matrix"]}
    assert len(cells) == 16
    assert cells["A1"] == (5, 3) and cells["B2"] == (5, 1)
    assert cells["C3"] == (5, 0) and cells["D4"] == (5, 0) and cells["A4"] == (0, 0)
    calibration = found["calibration"]
    assert calibration["leads_with_prediction"] == 10
    assert calibration["brier"] == pytest.approx(0.30125)
    top = calibration["bins"][-1]
    assert top["range"] == [0.9, 1.0] and top["leads"] == 3 and top["observed"] == 1.0
    assert top["mean_predicted"] == pytest.approx(0.95)
    later = leadflow.score_quality_report(outcome="customer").to_json()
    assert later["converted"] == 1
    with pytest.raises(ValidationError, match="outcome: 'recycled' is not a funnel stage"):
        leadflow.score_quality_report(outcome="recycled")


def test_score_quality_through_the_api_and_the_cli(leadflow: Leadflow, settings: Settings) -> None:
    _company(leadflow)
    with TestClient(create_app(settings, leadflow)) as client:
        answer = client.get("/api/reports/score-quality", params={"outcome": "opportunity"})
        assert answer.status_code == 200 and answer.json()["converted"] == 3
        assert client.get("/api/reports/score-quality", params={"outcome": "x"}).status_code == 400
    runner = CliRunner()
    args = ["--db", settings.database_url, "report", "score-quality", "--csv"]
    result = runner.invoke(cli, args, env={"LEADFLOW_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 16 and rows[0]["cell"] == "A1" and rows[0]["converted"] == "3"
    table = runner.invoke(cli, args[:-1], env={"LEADFLOW_HOME": str(settings.home)})
    assert (
        table.exit_code == 0 and "A1-D4" in table.output and "Brier score: 0.30125" in table.output
    )
