"""Typing, identifiers, placeholders, leaks and refusals of the CSV evaluation, on small files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leadflow.services.predict_csv import (
    MISSING,
    CsvModelError,
    EvaluateOptions,
    evaluate_csv,
    prepare,
    read_csv,
)


def _write(tmp_path: Path, rows: int = 400, seed: int = 1, **extra: list[str]) -> Path:
    rng = np.random.default_rng(seed)
    score = rng.normal(size=rows)
    y = (score + rng.normal(size=rows) > 1.0).astype(int)
    columns: dict[str, list[str]] = {
        "lead_id": [f"L{i:05d}" for i in range(rows)],
        "score": [f"{v:.4f}" for v in score],
        "visits": [str(int(v)) for v in rng.integers(0, 20, size=rows)],
        "country": [str(c) for c in rng.choice(["PT", "ES", "Select", "unknown", ""], size=rows)],
        "converted": ["yes" if v else "no" for v in y],
    }
    columns.update(extra)
    names = list(columns)
    lines = [",".join(names)] + [",".join(columns[n][i] for n in names) for i in range(rows)]
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _label(path: Path) -> list[str]:
    return [line.rsplit(",", 1)[1] for line in path.read_text().splitlines()[1:]]


def test_types_identifiers_and_placeholders(tmp_path: Path) -> None:
    path = _write(tmp_path)
    table = prepare(read_csv(path, ","), EvaluateOptions(label="converted"))
    assert table.numeric == ["score", "visits"]
    assert table.categorical == ["country"]
    assert table.positive_label == "yes"
    assert {"column": "lead_id", "reason": "identifier: a different value on every row"} in (
        table.dropped
    )
    # 'Select', 'unknown' and '' are one category: missing
    assert set(table.features["country"].cat.categories) == {"PT", "ES", MISSING}


def test_numeric_placeholders_are_missing(tmp_path: Path) -> None:
    rows = 400
    age = [("NA" if i % 7 == 0 else str(20 + i % 40)) for i in range(rows)]
    table = prepare(
        read_csv(_write(tmp_path, rows, age=age), ","), EvaluateOptions(label="converted")
    )
    assert "age" in table.numeric
    assert int(table.features["age"].isna().sum()) == len([a for a in age if a == "NA"])


def test_evaluate_reports_figures_and_the_baseline(tmp_path: Path) -> None:
    result = evaluate_csv(_write(tmp_path), EvaluateOptions(label="converted", time_column="row"))
    assert result["rows"] == 400
    assert 0.6 < result["auc_cv"] <= 1.0
    assert len(result["auc_cv_folds"]) == 5
    assert 0.6 < result["baseline_auc_cv"] <= 1.0
    assert 0 < result["brier"] < 0.25
    assert result["auc_time_split"] is not None
    assert result["suspected_leaks"] == []
    assert [c["column"] for c in result["used_columns"]] == ["score", "visits", "country"]


def test_a_copy_of_the_label_is_a_leak_and_excluded(tmp_path: Path) -> None:
    base = _write(tmp_path)
    copy = ["1" if v == "yes" else "0" for v in _label(base)]
    path = _write(tmp_path, outcome_copy=copy)
    result = evaluate_csv(path, EvaluateOptions(label="converted"))
    leaks = {leak["column"]: leak for leak in result["suspected_leaks"]}
    assert leaks["outcome_copy"]["single_column_auc"] >= 0.95
    assert "outcome_copy" not in [c["column"] for c in result["used_columns"]]
    kept = evaluate_csv(path, EvaluateOptions(label="converted", keep_leaks=True))
    assert "outcome_copy" in [c["column"] for c in kept["used_columns"]]
    assert kept["auc_cv"] > 0.99


def test_a_column_filled_for_one_class_only_is_a_leak(tmp_path: Path) -> None:
    base = _write(tmp_path)
    rng = np.random.default_rng(3)
    signed = [
        f"2024-0{rng.integers(1, 9)}-1{rng.integers(0, 9)}" if v == "yes" and rng.random() < 0.5
        else ""
        for v in _label(base)
    ]  # fmt: skip
    result = evaluate_csv(_write(tmp_path, signed_on=signed), EvaluateOptions(label="converted"))
    leak = next(x for x in result["suspected_leaks"] if x["column"] == "signed_on")
    assert "filled in for the positive class only" in leak["reason"]
    assert leak["filled_share_negative"] == 0.0


@pytest.mark.parametrize(
    ("extra", "label", "message"),
    [
        ({}, "won", "no label column 'won'; the columns are: lead_id, score"),
        ({"flat": ["yes"] * 400}, "flat", "label column 'flat' is constant"),
        ({"tier": ["a", "b", "c", "d"] * 100}, "tier", "has 4 values, not two: 'a', 'b', 'c'"),
    ],
)
def test_bad_labels_are_refused(
    tmp_path: Path, extra: dict[str, list[str]], label: str, message: str
) -> None:
    with pytest.raises(CsvModelError, match=message.replace("(", r"\(")):
        evaluate_csv(_write(tmp_path, **extra), EvaluateOptions(label=label))


def test_too_few_positives_says_how_many_are_needed(tmp_path: Path) -> None:
    few = ["yes" if i < 7 else "no" for i in range(400)]
    with pytest.raises(CsvModelError, match="too few positive rows to validate: 7, at least 10"):
        evaluate_csv(_write(tmp_path, few=few), EvaluateOptions(label="few"))


def test_no_usable_feature_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bare.csv"
    path.write_text("id,nothing,y\n" + "".join(f"{i},,{i % 2}\n" for i in range(40)))
    with pytest.raises(CsvModelError, match="no usable feature column"):
        evaluate_csv(path, EvaluateOptions(label="y"))


def test_unknown_excluded_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CsvModelError, match="--exclude names no column 'nope'"):
        evaluate_csv(_write(tmp_path), EvaluateOptions(label="converted", exclude=("nope",)))
