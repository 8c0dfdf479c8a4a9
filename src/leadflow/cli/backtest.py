"""``leadflow backtest``: a candidate scoring model against the live one, on the stored history."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.cli.common import print_json, stdout, store
from leadflow.services.backtest import DEFAULT_CAPACITY, DEFAULT_OUTCOME_EVENTS
from leadflow.services.models import load_model_text

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        metavar="FILE",
        help="A YAML file with the candidate's `scoring` and `lifecycle` sections "
        "(a copy of leadflow.yaml with your changes).",
        show_default=False,
    ),
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(
        "--since",
        metavar="DATE",
        formats=["%Y-%m-%d"],
        help="Only leads whose first touch is on or after this day (YYYY-MM-DD, UTC).",
        show_default=False,
    ),
]
CapacityOption = Annotated[
    int, typer.Option("--capacity", min=1, help="MQLs a week sales can take.")
]
OutcomeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--outcome-event",
        metavar="NAME",
        help="A track event that marks a conversion (repeat the option for several). "
        f"Default: {', '.join(DEFAULT_OUTCOME_EVENTS)}.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def backtest(
    ctx: typer.Context,
    config: ConfigOption,
    since: SinceOption = None,
    capacity: CapacityOption = DEFAULT_CAPACITY,
    outcome_event: OutcomeOption = None,
    json: JsonOption = False,
) -> None:
    """Replay the stored history with a candidate model and compare it with the live one:
    MQLs per week, precision and recall against conversions, days to MQL, weeks over the
    sales capacity and a suggested engagement threshold. Reads only: nothing is changed."""
    candidate = load_model_text(config.read_text(encoding="utf-8"), str(config))
    outcomes = tuple(outcome_event or DEFAULT_OUTCOME_EVENTS)
    columns = (
        TextColumn("replaying leads"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
    )  # fmt: skip
    console = stdout(wide=False)
    quiet = json or not console.is_terminal  # piped output is the report alone
    with (
        store(ctx) as leadflow,
        Progress(*columns, console=console, disable=quiet, transient=True) as progress,
    ):
        task = progress.add_task("backtest", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = leadflow.backtest(
            candidate, since.date() if since else None, capacity, outcomes, progress=advance
        )
    if json:
        print_json(report)
        return
    _print_report(report)


def _percent(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


def _number(value: float | None) -> str:
    return f"{value:g}" if value is not None else "-"


def _rows(figures: dict[str, Any], capacity: int, weeks: int) -> list[tuple[str, str]]:
    counts = [w["mqls"] for w in figures["mqls_per_week"]]
    return [
        ("model version", figures["version"]),
        ("MQLs", str(figures["mqls"])),
        ("MQLs a week: mean / most", f"{_number(figures['mean_mqls_per_week'])} / "
         f"{max(counts, default=0)}"),
        (f"weeks over capacity ({capacity})", f"{figures['weeks_over_capacity']} of {weeks}"),
        ("hits: MQL before converting", str(figures["hits"])),
        ("precision", _percent(figures["precision"])),
        ("recall", _percent(figures["recall"])),
        ("F1", _number(figures["f1"])),
        ("median days, first touch to MQL", _number(figures["median_days_to_mql"])),
        ("engagement threshold", _number(figures["engagement_threshold"])),
        ("suggested threshold", _number(figures["suggested_threshold"])),
        ("MQLs at the suggested threshold", _number(figures["mqls_at_suggested_threshold"])),
        ("hits at the suggested threshold", _number(figures["hits_at_suggested_threshold"])),
        ("precision at the suggested threshold",
         _percent(figures["precision_at_suggested_threshold"])),
        ("recall at the suggested threshold", _percent(figures["recall_at_suggested_threshold"])),
    ]  # fmt: skip


def _print_report(report: dict[str, Any]) -> None:
    out = stdout()
    live, candidate = report["live"], report["candidate"]
    span = f"{(report['first_touch'] or '-')[:10]} to {(report['window_end'] or '-')[:10]}"
    out.print(
        f"{report['leads']:,} leads, {report['events_replayed']:,} events, {span}; "
        f"{report['converted']:,} converted ({', '.join(report['outcome_events'])} or stage "
        "sql/opportunity/customer). Fit uses each lead's current traits."
    )
    out.print(f"live policy:      {escape(live['policy'])}")
    out.print(f"candidate policy: {escape(candidate['policy'])}")
    table = Table(title="backtest", title_justify="left")
    for column in ("metric", "live", "candidate"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    capacity, weeks = report["capacity"], report["weeks"]
    for (label, a), (_, b) in zip(
        _rows(live, capacity, weeks), _rows(candidate, capacity, weeks), strict=True
    ):
        table.add_row(label, a, b)
    out.print(table)
    out.print(_weeks_table(live, candidate, capacity))


def _weeks_table(live: dict[str, Any], candidate: dict[str, Any], capacity: int) -> Table:
    table = Table(title=f"MQLs per ISO week (capacity {capacity})", title_justify="left")
    for column in ("week", "live", "candidate"):
        table.add_column(column, justify="left" if column == "week" else "right")
    for a, b in zip(live["mqls_per_week"], candidate["mqls_per_week"], strict=True):
        cells = [f"[red]{n}[/]" if n > capacity else str(n) for n in (a["mqls"], b["mqls"])]
        table.add_row(a["week"], *cells)
    return table
