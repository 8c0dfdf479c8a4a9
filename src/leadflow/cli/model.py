"""``leadflow model``: evaluate, train, store, activate and use conversion models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table

from leadflow.cli.common import group, print_json, stderr, stdout, store
from leadflow.domain.errors import ValidationError
from leadflow.services.predict_csv import EvaluateOptions, evaluate_csv
from leadflow.services.predict_files import load_model_file, save_model_file, score_csv
from leadflow.services.predict_report import threshold_report
from leadflow.services.predict_store import WINDOWS, StoreTrainOptions
from leadflow.services.predict_train import train_csv

Progress = Callable[[str, int, int], None]

app = group(
    "Predictive scoring: evaluate and train conversion models (from a CSV or from the store), "
    "score rows, activate a model for the live p_convert, choose a threshold."
)


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


# --- training, storing and using models ---------------------------------------------------
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@contextmanager
def _bar(enabled: bool) -> Iterator[Progress]:
    """A rich progress bar on stderr, each step named (quiet with --json)."""
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with RichProgress(*columns, console=stderr(), disable=not enabled, transient=True) as bar:
        task = bar.add_task("starting", total=1)

        def step(what: str, done: int, total: int) -> None:
            bar.update(task, description=escape(what), completed=done, total=max(total, 1))

        yield step


@app.command("train")
def train(
    ctx: typer.Context,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", metavar="FILE", help="Train from a CSV of leads (with --label)."),
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", metavar="COLUMN", help="The CSV's outcome column.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Where to save a CSV-trained model (.lfm)."),
    ] = None,
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome",
            metavar="STAGE",
            help="Train from the store: the stage to predict (mql, sal, sql, opportunity, "
            "customer).",
        ),
    ] = None,
    window: Annotated[
        str,
        typer.Option(
            "--window",
            metavar="DAYS",
            help="Cut-offs in days after a lead was first seen (one snapshot each, one fold "
            "per lead): 14 or 3,14,45.",
        ),
    ] = ",".join(f"{d:g}" for d in WINDOWS),
    age_out: Annotated[
        float,
        typer.Option("--age-out", metavar="DAYS", help="Days without outcome that count as lost."),
    ] = 90.0,
    activate: Annotated[
        bool, typer.Option("--activate", help="Make the stored model the live one.")
    ] = False,
    sep: Annotated[str, typer.Option("--sep", help="The CSV's field separator.")] = ",",
    time_column: Annotated[
        str | None,
        typer.Option("--time-column", metavar="COL", help="CSV: also validate on a time split."),
    ] = None,
    exclude: Annotated[
        str, typer.Option("--exclude", metavar="A,B", help="CSV columns not to use.")
    ] = "",
    keep_leaks: Annotated[
        bool, typer.Option("--keep-leaks", help="Use the suspected leaks.")
    ] = False,
    exclude_converted: Annotated[
        bool,
        typer.Option(
            "--exclude-converted",
            help="Store: leave out a lead's cut-offs after it reached STAGE, so p_convert "
            "answers 'will it convert from now on' (for a store that hears of every outcome).",
        ),
    ] = False,
    folds: Annotated[int, typer.Option("--folds", min=2, max=20, help="CV folds.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the folds and models.")] = 0,
    json: JsonOption = False,
) -> None:
    """Train a conversion model (LightGBM, calibrated), compared with the logistic and the
    naive-Bayes baselines. From a CSV (`--csv FILE --label COL --out model.lfm`) it is saved
    to a file for `leadflow model score`; from the store (`--outcome STAGE`) it is stored
    under its version, to be activated for the live p_convert."""
    if (csv is None) == (outcome is None):
        raise ValidationError("give either --csv FILE --label COL, or --outcome STAGE")
    with _bar(not json) as step:
        if csv is not None:
            if label is None:
                raise ValidationError("--csv needs --label COLUMN (the outcome column)")
            options = EvaluateOptions(label=label, sep=sep, time_column=time_column,
                                      exclude=_names(exclude), keep_leaks=keep_leaks,
                                      folds=folds, seed=seed)  # fmt: skip
            model = train_csv(csv, options, step)
            if out is not None:
                save_model_file(model, out)
        else:
            assert outcome is not None
            windows = _days(window)
            store_options = StoreTrainOptions(
                outcome, windows, age_out, folds, seed, keep_leaks, exclude_converted
            )
            with store(ctx) as leadflow:
                model = leadflow.train_model(store_options, step)
                if activate:
                    leadflow.activate_model(model.version)
    summary = _summary(model.to_json()) | {"out": str(out) if out else None}
    summary["active"] = bool(activate and outcome)
    if json:
        print_json(summary)
        return
    _print_trained(summary)


def _days(text: str) -> tuple[float, ...]:
    try:
        found = tuple(sorted(float(part) for part in text.split(",") if part.strip()))
    except ValueError:
        raise ValidationError(
            f"--window: {text!r} is not a list of days (e.g. 14 or 3,14,45)"
        ) from None
    if not found or min(found) <= 0:
        raise ValidationError(f"--window: {text!r}: give at least one number of days above 0")
    return found


def _names(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def _summary(model: dict[str, Any]) -> dict[str, Any]:
    metrics = {k: v for k, v in model["metrics"].items() if k not in ("curve", "single_column_auc")}
    return {
        "version": model["version"],
        "kind": model["kind"],
        "outcome": model["outcome"],
        "created_at": model["created_at"],
        "trained_on": model["trained_on"],
        "metrics": metrics,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print_trained(summary: dict[str, Any]) -> None:
    out = stdout()
    metrics = summary["metrics"]
    out.print(
        f"model [bold]{summary['version']}[/] ({escape(summary['outcome'])}): "
        f"{metrics['rows']:,} rows, {metrics['positives']:,} positive, {metrics['seconds']:g}s"
    )
    table = Table(title="ROC AUC", title_justify="left")
    for column in ("model", f"{metrics['folds']}-fold CV", "time split"):
        table.add_column(column, justify="left" if column == "model" else "right")
    split = metrics.get("auc_time_split") or {}
    for key, name in (
        ("lightgbm", "LightGBM (calibrated, stored)"),
        ("logistic", "logistic baseline"),
        ("naive_bayes", "naive-Bayes baseline"),
    ):
        table.add_row(name, _fmt(metrics["auc_cv"][key]), _fmt(split.get(key)))  # fmt: skip
    rules = metrics.get("rules_model")
    if rules:
        for key in ("engagement", "fit"):
            table.add_row(f"scoring rules: {key}", _fmt(rules.get(f"{key}_auc")),
                          _fmt(rules.get(f"{key}_auc_time_split")))  # fmt: skip
    out.print(table)
    for warning in metrics.get("warnings", []):
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    for leak in metrics.get("suspected_leaks", []):
        out.print(f"[yellow]suspected leak:[/] {escape(leak['column'])}: {escape(leak['reason'])}")
    leads = summary["trained_on"].get("leads")
    if leads:
        out.print("cut-offs: " + ", ".join(f"{k} {v:,}" for k, v in sorted(leads.items())))
    if summary.get("out"):
        out.print(
            f"saved to {escape(summary['out'])} (leadflow model score --model FILE --csv ...)"
        )
    elif summary["trained_on"].get("source") == "csv":
        out.print("not saved: give --out FILE to keep it")
    elif summary.get("active"):
        out.print("stored and active: new events update each lead's p_convert")
    else:
        out.print(f"stored: leadflow model activate {summary['version']}")


@app.command("score")
def score(
    model: Annotated[Path, typer.Option("--model", metavar="FILE", help="A model file (.lfm).")],
    csv: Annotated[Path, typer.Option("--csv", metavar="FILE", help="The rows to score.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the rows with p_convert here."),
    ] = None,
    sep: Annotated[str, typer.Option("--sep", help="The CSV's field separator.")] = ",",
    json: JsonOption = False,
) -> None:
    """Score the rows of a CSV with a model file from `leadflow model train --csv`: every row
    gets a p_convert column (written to `--out`, else printed as CSV)."""
    found = score_csv(model, csv, sep, out)
    frame = found.pop("frame")
    if json:
        print_json(found)
    elif out is None:
        typer.echo(frame.to_csv(sep=sep, index=False), nl=False)
    else:
        stdout().print(
            f"{found['rows']:,} rows scored with model {found['model']} "
            f"({found['rows_per_second'] or 0:,} rows/s), written to {escape(str(out))}"
        )


@app.command("list")
def list_models(ctx: typer.Context, json: JsonOption = False) -> None:
    """The conversion models in the store, oldest first, with their AUC and the active one."""
    with store(ctx) as leadflow:
        found = leadflow.predictive_models()
    if json:
        print_json([_listed(m) for m in found])
        return
    table = Table(title="predictive models", title_justify="left")
    for column in ("version", "outcome", "created", "rows", "AUC (CV)", "logistic", "active"):
        table.add_column(column)
    for item in found:
        metrics = item["metrics"]
        table.add_row(
            item["version"], escape(item["outcome"]), item["created_at"][:16],
            f"{metrics.get('rows', 0):,}", _fmt(metrics["auc_cv"]["lightgbm"]),
            _fmt(metrics["auc_cv"]["logistic"]), "yes" if item["active"] else "",
        )  # fmt: skip
    stdout().print(table if found else "no predictive model yet (leadflow model train)")


def _listed(item: dict[str, Any]) -> dict[str, Any]:
    metrics = item["metrics"]
    return {k: item[k] for k in ("version", "kind", "outcome", "created_at", "active")} | {
        "auc_cv": metrics.get("auc_cv"),
        "rows": metrics.get("rows"),
    }


@app.command("show")
def show(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(metavar="VERSION", help="A model version.")],
    json: JsonOption = False,
) -> None:
    """One stored model: how it was trained, its metrics and its features."""
    with store(ctx) as leadflow:
        found = leadflow.predictive_model(version)
    found["metrics"] = {k: v for k, v in found["metrics"].items() if k != "curve"}
    if json:
        print_json(found)
        return
    _print_trained({**found, "trained_on": {}, "active": found["active"], "out": None})
    names = ", ".join(f["name"] for f in found["features"])
    stdout().print(f"features ({len(found['features'])}): {escape(names)}")


@app.command("activate")
def activate_cmd(
    ctx: typer.Context,
    version: Annotated[
        str, typer.Argument(metavar="VERSION", help="A model version, or `none` to stop.")
    ],
) -> None:
    """Make a stored model the live one: every lead's p_convert is computed again with it
    now, then updated as its events arrive (usable in the MQL policy as `p_convert`)."""
    wanted = None if version.lower() == "none" else version
    with _bar(True) as step, store(ctx) as leadflow:
        leads = leadflow.activate_model(wanted, lambda d, t: step("refreshing leads", d, t))
    what = f"model {wanted} is active" if wanted else "no model is active"
    stdout().print(f"{what}; {leads:,} lead(s) refreshed")


@app.command("refresh")
def refresh(ctx: typer.Context) -> None:
    """Rebuild every lead's behaviour features from its events and its p_convert with the
    active model (after a rebuild of the scores, or to repair a lead's state)."""
    with _bar(True) as step, store(ctx) as leadflow:
        leads = leadflow.refresh_predictions(lambda d, t: step("refreshing leads", d, t))
    stdout().print(f"{leads:,} lead(s) refreshed")


@app.command("report")
def report(
    ctx: typer.Context,
    version: Annotated[
        str | None, typer.Option("--version", help="A stored model (default: the active one).")
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", metavar="FILE", help="A model file instead.")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", min=0.0, max=1.0, help="A p_convert threshold.")
    ] = None,
    capacity: Annotated[
        str | None,
        typer.Option("--capacity", help="What sales can take: 200/week, 40/day, 800/month, 10%."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Precision and recall at a threshold, and the threshold that fits a sales capacity,
    measured on the model's out-of-fold predictions."""
    if model is not None:
        found = load_model_file(model).to_json()
    else:
        with store(ctx) as leadflow:
            found = leadflow.predictive_model_file(version).to_json()
    result = {"version": found["version"], "outcome": found["outcome"]} | threshold_report(
        found["metrics"], found["trained_on"], threshold, capacity
    )
    if json:
        print_json(result)
        return
    out = stdout()
    out.print(f"model [bold]{result['version']}[/] ({escape(result['outcome'])})")
    for key, name in (("at_threshold", "at threshold"), ("at_capacity", "at capacity")):
        row = result.get(key)
        if row is None:
            continue
        volume = f", {row['leads_per_week']:g} leads/week" if "leads_per_week" in row else ""
        out.print(
            f"{name}: p_convert >= {row['threshold']:.4f}: precision {row['precision']:.3f}, "
            f"recall {row['recall']:.3f}, {row['share_flagged']:.1%} of leads{volume}"
        )
