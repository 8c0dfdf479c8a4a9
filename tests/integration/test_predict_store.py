"""Training from the store, activating the model, the live p_convert, the API and the CLI."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from leadflow import Leadflow, Settings, SourceRecord, ValidationError
from leadflow.adapters.db.tables import predictive_models
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.services.predict_store import StoreTrainOptions
from tests.integration.scoring_support import T0, identify, ingest, lead_id, page, track

MODEL = """\
scoring:
  engagement:
    rules:
      - id: pricing
        match: {type: page, path: ["/pricing*"]}
        points: 10
        half_life: 7d
  fit:
    rules:
      - id: industry
        when: [{field: traits.industry, op: in, value: [software]}]
        points: 50
    grades: {A: 50, B: 30, C: 10}
lifecycle:
  mql_policy: p_convert >= 0
  sales:
    sla: 24h
    accept_reasons: [meets_criteria]
    reject_reasons: [not_a_fit]
"""
OPTIONS = StoreTrainOptions("opportunity", windows=(7.0,), age_out_days=20, folds=3)
LEADS = 90


@pytest.fixture
def model_text() -> str:
    return MODEL


def _history(app: Leadflow, source: SourceRecord) -> None:
    """90 leads over 4 days: a quarter reach opportunity 30 days later. Pricing visits and
    the software industry each mark half of them, and some of the others too. Lead u1 comes
    back on day 35."""
    messages: list[dict[str, Any]] = []
    for i in range(LEADS):
        user, start = f"u{i}", T0 + timedelta(hours=i)
        won = i % 4 == 0
        industry = "software" if (won and i % 8 == 4) or i % 5 == 1 else "retail"
        messages.append(identify(user, start, industry=industry, plan=f"p{i % 3}"))
        messages.append(page(user, "/blog/a", start + timedelta(minutes=5)))
        if (won and i % 8 == 0) or i % 7 == 3:
            for day in range(3):
                messages.append(page(user, "/pricing", start + timedelta(days=day, hours=1)))
        if won:
            messages.append(track(user, "Opportunity Created", start + timedelta(days=30)))
    # the behaviour log runs past the outcomes (a cut-off after it would be skipped)
    messages.append(page("u1", "/blog/b", T0 + timedelta(days=35)))
    ingest(app, source, *messages)


def test_a_model_trained_from_the_store_scores_leads_live(
    app: Leadflow, source: SourceRecord
) -> None:
    _history(app, source)
    model = app.train_model(OPTIONS)
    counts = model.trained_on["leads"]
    assert counts == {"reached the outcome": 23, "aged out": 67}
    assert {"count page:/pricing", "trait industry"} <= {f.name for f in model.features}
    assert "count event:opportunity created" not in {f.name for f in model.features}
    assert set(model.metrics["auc_cv"]) == {"lightgbm", "logistic", "naive_bayes"}
    assert model.metrics["auc_time_split"] is not None
    assert "engagement_auc" in model.metrics["rules_model"]
    assert [m["version"] for m in app.predictive_models()] == [model.version]

    quiet = lead_id(app, "u2")  # no pricing visit, retail
    assert app.lead(quiet).stage == "lead"  # no model yet: p_convert is None
    assert app.activate_model(model.version) == LEADS
    before = app.prediction(quiet)
    assert before["model_version"] == model.version and 0 < before["p_convert"] < 1
    assert app.lead(quiet).p_convert == before["p_convert"]
    late = T0 + timedelta(days=40)
    ingest(app, source, *[page("u2", "/pricing", late + timedelta(hours=h)) for h in range(3)])
    after = app.prediction(quiet)
    assert after["p_convert"] != before["p_convert"]  # moved without retraining
    assert any(f["feature"].endswith("page:/pricing") for f in after["factors"])
    assert app.lead(quiet).stage == "mql"  # the policy `p_convert >= 0` now holds
    assert app.explain(quiet)["prediction"]["model_version"] == model.version


def test_the_api_shows_the_prediction_and_the_models(app: Leadflow, source: SourceRecord) -> None:
    _history(app, source)
    model = app.train_model(OPTIONS)
    client = TestClient(create_app(leadflow=app))
    lead = lead_id(app, "u0")
    assert client.get(f"/api/leads/{lead}/prediction").json()["p_convert"] is None
    app.activate_model(model.version)
    found = client.get(f"/api/leads/{lead}/prediction").json()
    assert found["p_convert"] > 0 and found["factors"][0]["direction"] in ("up", "down")
    listed = client.get("/api/models").json()["items"]
    assert listed[0]["version"] == model.version and listed[0]["active"] is True
    assert client.get("/api/models/nope").status_code == 404


def test_a_model_of_an_older_format_is_refused_with_a_message(
    app: Leadflow, source: SourceRecord
) -> None:
    _history(app, source)
    model = app.train_model(OPTIONS)
    old = model.to_json() | {"format_version": 0}
    with app.transaction() as conn:
        conn.execute(update(predictive_models).values(model=orjson.dumps(old).decode()))
    app.activate_model(model.version)
    found = app.prediction(lead_id(app, "u0"))
    assert found["p_convert"] is None
    assert "older version of leadflow" in found["reason"]


def test_training_refuses_a_store_without_outcomes(app: Leadflow, source: SourceRecord) -> None:
    ingest(app, source, identify("solo", T0, industry="software"))
    with pytest.raises(ValidationError, match="no lead has a known outcome"):
        app.train_model(OPTIONS)
    with pytest.raises(ValidationError, match="is not one of"):
        app.train_model(StoreTrainOptions("won"))


def test_the_cli_trains_lists_activates_and_reports(
    app: Leadflow, source: SourceRecord, settings: Settings
) -> None:
    _history(app, source)
    runner = CliRunner()
    db = ["--db", settings.resolved_database_url()]
    args = ["--outcome", "opportunity", "--window", "7", "--age-out", "20", "--folds", "3"]
    trained = runner.invoke(cli, [*db, "model", "train", *args, "--json"])
    assert trained.exit_code == 0, trained.output
    version = orjson.loads(trained.stdout)["version"]
    listed = runner.invoke(cli, [*db, "model", "list"])
    assert version in listed.stdout
    shown = runner.invoke(cli, [*db, "model", "show", version, "--json"])
    assert orjson.loads(shown.stdout)["features"]
    activated = runner.invoke(cli, [*db, "model", "activate", version])
    assert activated.exit_code == 0 and f"model {version} is active" in activated.stdout
    report = runner.invoke(cli, [*db, "model", "report", "--capacity", "50/week",
                                 "--threshold", "0.2", "--json"])  # fmt: skip
    assert report.exit_code == 0, report.output
    found = orjson.loads(report.stdout)
    assert found["at_capacity"]["capacity"] == "50/week"
    assert 0 <= found["at_threshold"]["recall"] <= 1
    missing = runner.invoke(cli, [*db, "model", "activate", "nope"])
    assert missing.exit_code == 1 and "no predictive model 'nope'" in missing.output
    refreshed = runner.invoke(cli, [*db, "model", "refresh"])
    assert refreshed.exit_code == 0 and f"{LEADS} lead(s) refreshed" in refreshed.stdout
    bad = runner.invoke(cli, [*db, "model", "train", "--outcome", "sql", "--window", "soon"])
    assert bad.exit_code == 1 and "--window: 'soon' is not a list of days" in bad.output
    explained = runner.invoke(cli, [*db, "explain", str(lead_id(app, "u0"))])
    assert explained.exit_code == 0, explained.output
    assert f"model {version})" in explained.stdout and "effect (log-odds)" in explained.stdout


def test_the_dashboard_shows_the_probability_and_its_factors(
    app: Leadflow, source: SourceRecord
) -> None:
    import html
    import re

    from leadflow.web import create_site

    _history(app, source)
    model = app.train_model(OPTIONS)
    app.activate_model(model.version)
    app.add_user("mia@acme.test", "a long passphrase", "marketer")
    lead = lead_id(app, "u0")
    found = app.prediction(lead)
    with TestClient(create_site(leadflow=app), follow_redirects=False) as site:
        form = site.get("/login").text
        token = re.search(r'name="login_token" value="([^"]+)"', form)
        assert token is not None
        signed = site.post(
            "/login",
            data={"email": "mia@acme.test", "password": "a long passphrase",
                  "login_token": token.group(1)},
        )  # fmt: skip
        assert signed.status_code == 303
        text = html.unescape(site.get(f"/leads/{lead}").text)
        assert f"{found['p_convert']:.1%}" in text and model.version in text
        for factor in found["factors"]:
            arrow = "▲" if factor["direction"] == "up" else "▼"
            assert f"{factor['feature']}</td>" in text
            assert f"{arrow} {factor['effect']:+.2f}" in text
        models = html.unescape(site.get("/model").text)
        assert model.version in models and "active" in models
        auc = model.metrics["auc_cv"]["lightgbm"]
        assert f"{auc:,.3f}" in models
