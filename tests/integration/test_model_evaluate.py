"""``leadflow model evaluate`` on the two real data sets of ../shared/data (issue 6 goals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from leadflow.cli.main import app
from tests.conftest import need_service

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
BANK = DATA / "bank_marketing_uci" / "bank-additional-full.csv"
SHOPPERS = DATA / "online_shoppers_intention_uci" / "online_shoppers_intention.csv"


def _evaluate(path: Path, *args: str) -> dict[str, Any]:
    if not path.exists():
        need_service(f"the real data set {path} is absent (../shared/data beside the checkout)")
    result = CliRunner().invoke(app, ["model", "evaluate", "--csv", str(path), *args, "--json"])
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = orjson.loads(result.stdout)
    return found


def _used(result: dict[str, Any]) -> list[str]:
    return [c["column"] for c in result["used_columns"]]


def test_bank_marketing_beats_the_goal_and_the_baseline() -> None:
    result = _evaluate(BANK, "--label", "y", "--sep", ";", "--exclude", "duration",
                       "--time-column", "row")  # fmt: skip
    assert result["rows"] == 41188
    assert result["positives"] == 4640
    assert "duration" not in _used(result)
    assert {"column": "duration", "reason": "excluded (--exclude)"} in result["dropped_columns"]
    assert result["auc_cv"] >= 0.80
    assert abs(result["baseline_auc_cv"] - 0.791) < 0.005  # the README's reference figure
    assert result["auc_cv"] > result["baseline_auc_cv"]
    assert len(result["auc_cv_folds"]) == 5
    assert abs(result["baseline_auc_time_split"] - 0.748) < 0.005
    assert 0.5 < result["auc_time_split"] < 1
    assert result["brier"] < 0.1 * 0.9  # better than the base rate's 0.1 (11.3 % positive)


def test_online_shoppers_flags_page_values_and_beats_the_goal() -> None:
    result = _evaluate(SHOPPERS, "--label", "Revenue")
    assert result["rows"] == 12330
    assert result["positives"] == 1908
    leaks = {leak["column"]: leak for leak in result["suspected_leaks"]}
    assert "PageValues" in leaks, result["suspected_leaks"]
    assert leaks["PageValues"]["reason"]
    assert "PageValues" not in _used(result)
    assert result["auc_cv"] >= 0.78
    assert abs(result["baseline_auc_cv"] - 0.749) < 0.01  # the README's 0.749, without it
    assert result["auc_cv"] > result["baseline_auc_cv"]
    assert result["brier"] < 0.131  # the base rate's


def test_refusals_are_one_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "tiny.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{int(i < 3)}\n" for i in range(50)))
    runner = CliRunner()
    missing = runner.invoke(app, ["model", "evaluate", "--csv", str(path), "--label", "won"])
    assert missing.exit_code == 1
    assert "no label column 'won'; the columns are: a, b, y" in missing.stderr
    few = runner.invoke(app, ["model", "evaluate", "--csv", str(path), "--label", "y", "--json"])
    assert few.exit_code == 1
    assert "too few positive rows to validate: 3, at least 10 are needed" in few.stderr
    assert few.stderr.count("\n") == 1
    assert few.stdout == ""
