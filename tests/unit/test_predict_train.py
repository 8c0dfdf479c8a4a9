"""Training from a CSV, the model file, scoring new rows, the baselines and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from leadflow.cli.main import app
from leadflow.domain.errors import ValidationError
from leadflow.services.predict_bayes import naive_bayes_scores
from leadflow.services.predict_csv import EvaluateOptions
from leadflow.services.predict_files import load_model_file, save_model_file, score_csv
from leadflow.services.predict_model import ModelFile, Predictor
from leadflow.services.predict_report import capacity_share, threshold_report
from leadflow.services.predict_train import train_csv


def _leads(path: Path, rows: int = 600, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3, rows)
    industry = rng.choice(["software", "retail", "education"], rows)
    logit = -2.5 + 0.5 * visits + np.where(industry == "software", 1.2, 0.0)
    won = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {"lead": [f"L{i}" for i in range(rows)], "visits": visits, "industry": industry,
         "noise": rng.normal(size=rows).round(3), "won": np.where(won, "yes", "no")}
    )  # fmt: skip
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def trained(tmp_path: Path) -> tuple[ModelFile, Path]:
    csv = _leads(tmp_path / "leads.csv")
    return train_csv(csv, EvaluateOptions(label="won", folds=3)), csv


def test_a_csv_model_compares_both_baselines_and_keeps_its_features(
    trained: tuple[ModelFile, Path],
) -> None:
    model, _ = trained
    aucs = model.metrics["auc_cv"]
    assert set(aucs) == {"lightgbm", "logistic", "naive_bayes"}
    assert min(aucs.values()) > 0.7  # the signal is strong: every model finds it
    assert [f.name for f in model.features] == ["visits", "noise", "industry"]
    assert {"column": "lead", "reason": "identifier: a different value on every row"} in (
        model.metrics["dropped_columns"]
    )
    assert model.outcome == "won = yes"


def test_the_model_file_scores_like_the_model_it_saved(
    trained: tuple[ModelFile, Path], tmp_path: Path
) -> None:
    model, csv = trained
    path = tmp_path / "model.lfm"
    save_model_file(model, path)
    loaded = load_model_file(path)
    assert loaded.version == model.version
    row = {"visits": "7", "industry": "software", "noise": "0.1"}
    assert Predictor(loaded).predict(row) == pytest.approx(Predictor(model).predict(row))
    out = tmp_path / "scored.csv"
    summary = score_csv(path, csv, out=out)
    scored = pd.read_csv(out)
    assert summary["rows"] == len(scored) == 600
    assert scored["p_convert"].between(0, 1).all()
    first = pd.read_csv(csv, dtype=str).iloc[0].to_dict()  # one row, the live path's way
    assert scored["p_convert"][0] == pytest.approx(Predictor(loaded).predict(first), abs=1e-6)
    high = scored[scored.visits >= 6]["p_convert"].mean()
    assert high > scored[scored.visits <= 1]["p_convert"].mean()


def test_factors_name_what_pushes_a_lead_up(trained: tuple[ModelFile, Path]) -> None:
    model, _ = trained
    found = Predictor(model).factors({"visits": 9, "industry": "software", "noise": 0})
    assert found["factors"][0]["feature"] in ("visits", "industry")
    assert found["factors"][0]["direction"] == "up"


def test_a_model_file_of_an_older_format_gets_a_clear_message(
    trained: tuple[ModelFile, Path], tmp_path: Path
) -> None:
    model, _ = trained
    path = tmp_path / "old.lfm"
    path.write_bytes(orjson.dumps(model.to_json() | {"format_version": 0}))
    with pytest.raises(ValidationError, match=r"older version of leadflow .* train it again"):
        load_model_file(path)
    path.write_text("not a model")
    with pytest.raises(ValidationError, match="not a leadflow model"):
        load_model_file(path)


def test_scoring_a_file_without_the_model_columns_names_them(
    trained: tuple[ModelFile, Path], tmp_path: Path
) -> None:
    model, _ = trained
    save_model_file(model, tmp_path / "m.lfm")
    (tmp_path / "new.csv").write_text("visits,other\n3,x\n")
    with pytest.raises(ValidationError, match=r"lacks the model's column.*'noise'"):
        score_csv(tmp_path / "m.lfm", tmp_path / "new.csv")


def test_too_few_positives_are_refused_with_the_number_needed(tmp_path: Path) -> None:
    csv = tmp_path / "rare.csv"
    csv.write_text("x,won\n" + "".join(f"{i},{'yes' if i < 3 else 'no'}\n" for i in range(50)))
    with pytest.raises(ValidationError, match="too few positive rows to validate: 3, at least 10"):
        train_csv(csv, EvaluateOptions(label="won"))


def test_naive_bayes_learns_from_frequency_tables() -> None:
    frame = pd.DataFrame({"plan": pd.Categorical(["a", "a", "b", "b"] * 25),
                          "size": [1.0, 2.0, 3.0, np.nan] * 25})  # fmt: skip
    y = np.array([1, 1, 0, 0] * 25)
    rows = np.arange(100)
    scores = naive_bayes_scores(frame, ["size"], y, rows, rows)
    assert (scores[y == 1] > 0).all() and (scores[y == 0] < 0).all()


def test_the_threshold_that_fits_a_capacity() -> None:
    curve = [[0.9, 0.8, 0.2, 0.05], [0.5, 0.5, 0.5, 0.2], [0.1, 0.2, 1.0, 1.0]]
    found = threshold_report({"curve": curve}, {"leads_per_week": 1000}, 0.4, "200/week")
    assert found["at_capacity"]["threshold"] == 0.5  # 20 % of 1000 leads a week
    assert found["at_threshold"]["recall"] == 0.5
    assert capacity_share("10%", None) == pytest.approx(0.1)
    with pytest.raises(ValidationError, match="does not know how many leads arrive"):
        capacity_share("200/week", None)
    with pytest.raises(ValidationError, match="not N/day"):
        capacity_share("lots", 10)


def test_the_cli_trains_to_a_file_and_scores_new_rows(tmp_path: Path) -> None:
    csv = _leads(tmp_path / "leads.csv", rows=300)
    runner = CliRunner()
    model = tmp_path / "m.lfm"
    trained = runner.invoke(app, ["model", "train", "--csv", str(csv), "--label", "won",
                                  "--folds", "3", "--out", str(model)])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "naive-Bayes baseline" in trained.stdout and model.exists()
    scored = runner.invoke(app, ["model", "score", "--model", str(model), "--csv", str(csv)])
    assert scored.exit_code == 0
    assert scored.stdout.splitlines()[0].endswith(",p_convert")
    bad = runner.invoke(app, ["model", "train", "--csv", str(csv), "--label", "nope"])
    assert bad.exit_code == 1 and "no label column 'nope'" in bad.output
    both = runner.invoke(app, ["model", "train", "--csv", str(csv), "--outcome", "sql"])
    assert both.exit_code == 1 and "either --csv" in both.output
