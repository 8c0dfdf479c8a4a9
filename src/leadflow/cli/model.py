"""``leadflow model evaluate``: how well conversion can be predicted from a CSV of leads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli.common import group, print_json, stderr, stdout
from leadflow.services.predict_csv import EvaluateOptions, evaluate_csv

app = group("Predictive scoring: evaluate a conversion model on a table of leads.")


@app.command("evaluate")
def evaluate(
    csv: Annotated[
        Path, typer.Option("--csv", metavar="FILE", help="A CSV of leads with an outcome column.")
    ],
    label: Annotated[
        str, typer.Option("--label", metavar="COLUMN", help="The outcome column (two values).")
    ],
    sep: Annotated[str, typer.Option("--sep", help="The field separator.")] = ",",
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time-column",
            metavar="COL",
            help="Also train on the earliest 80 % by this column and test on the rest; "
            "`row` uses the file's row order.",
        ),
    ] = None,
    exclude: Annotated[
        str, typer.Option("--exclude", metavar="A,B", help="Columns not to use, comma-separated.")
    ] = "",
    keep_leaks: Annotated[
        bool,
        typer.Option("--keep-leaks", help="Use the suspected leaks instead of excluding them."),
    ] = False,
    folds: Annotated[int, typer.Option("--folds", min=2, max=20, help="CV folds.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold shuffle and models.")] = 0,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Cross-validate LightGBM (calibrated) and a one-hot logistic baseline on any CSV of
    leads with an outcome, with no feature code: columns typed, identifiers dropped,
    placeholders treated as missing, suspected leaks flagged and excluded."""
    options = EvaluateOptions(
        label=label,
        sep=sep,
        time_column=time_column,
        exclude=tuple(c.strip() for c in exclude.split(",") if c.strip()),
        keep_leaks=keep_leaks,
        folds=folds,
        seed=seed,
    )
    if json:
        print_json(evaluate_csv(csv, options))
        return
    with stderr().status("evaluating") as status:
        result = evaluate_csv(csv, options, lambda step: status.update(escape(step)))
    _print(result)


def _print(result: dict[str, Any]) -> None:
    out = stdout()
    out.print(
        f"[bold]{escape(result['file'])}[/]: {result['rows']:,} rows, "
        f"{result['positives']:,} positive ({escape(result['positive_label'])}), "
        f"{result['seconds']:g}s"
    )
    table = Table(title="ROC AUC", title_justify="left")
    for column in ("model", f"{result['folds']}-fold CV", "time split", "Brier (CV)"):
        table.add_column(column, justify="left" if column == "model" else "right")

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    table.add_row(
        result["model"], fmt(result["auc_cv"]), fmt(result["auc_time_split"]),
        fmt(result["brier"]),
    )  # fmt: skip
    table.add_row(
        "logistic baseline", fmt(result["baseline_auc_cv"]),
        fmt(result["baseline_auc_time_split"]), "-",
    )  # fmt: skip
    out.print(table)
    for leak in result["suspected_leaks"]:
        action = "excluded" if result["leaks_excluded"] else "kept"
        out.print(f"[yellow]suspected leak ({action}):[/] {escape(leak['column'])}: "
                  f"{escape(leak['reason'])}")  # fmt: skip
    used = ", ".join(c["column"] for c in result["used_columns"])
    out.print(f"used: {escape(used)}")
    for item in result["dropped_columns"]:
        out.print(f"dropped {escape(item['column'])}: {escape(item['reason'])}")
