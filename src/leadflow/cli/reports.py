"""``leadflow report``: the funnel waterfall, the sales SLA, score quality, attribution and
ROI, as tables, JSON or CSV."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime
from itertools import pairwise
from typing import Annotated, Any

import typer
from rich.table import Table

from leadflow.cli.common import group, print_json, stdout, store
from leadflow.services.attribution import AttributionReport
from leadflow.services.reports import (
    FUNNEL_STAGES,
    VELOCITY_STAGES,
    FunnelReport,
    SlaReport,
)
from leadflow.services.roi import RoiReport

app = group("Reports over the stage history: the funnel by cohort, source, campaign, segment "
            "or journey, the sales SLA, score quality, attribution and ROI "
            "(docs/reports.md).")  # fmt: skip

SinceOption = Annotated[
    str | None,
    typer.Option(metavar="DATE", help="Start of the window, inclusive (UTC date or time)."),
]
UntilOption = Annotated[
    str | None,
    typer.Option(metavar="DATE", help="End of the window, exclusive (UTC date or time)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]
CsvOption = Annotated[bool, typer.Option("--csv", help="Write the report as CSV to stdout.")]


def moment_of(value: str | None, option: str) -> datetime | None:
    """A date (``2025-03-01``) or a date and time, in UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date like 2025-03-01", param_hint=option
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _format(as_json: bool, as_csv: bool) -> str:
    if as_json and as_csv:
        raise typer.BadParameter("choose one of --json and --csv", param_hint="--csv")
    return "json" if as_json else "csv" if as_csv else "table"


def hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 2)


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# --- funnel ---------------------------------------------------------------------------------
def funnel_rows(report: FunnelReport) -> list[dict[str, Any]]:
    """One flat row per group: counts, conversions, and velocity in hours."""
    rows = []
    for found in report.groups:
        row: dict[str, Any] = {"group": found.group, "entered": found.entered}
        row |= dict(found.reached) | found.conversion
        for stage in VELOCITY_STAGES:
            speed = found.velocity.get(stage)
            row[f"{stage}_median_hours"] = hours(speed.median_seconds) if speed else None
            row[f"{stage}_p90_hours"] = hours(speed.p90_seconds) if speed else None
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], columns: list[str]) -> None:
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})


def funnel_tables(report: FunnelReport) -> list[Table]:
    counts = Table(title=f"Funnel by {report.group_by} (reached, and share of the stage before)")
    counts.add_column(report.group_by if report.group_by != "none" else "group")
    for stage in FUNNEL_STAGES:
        counts.add_column(stage, justify="right")
    speeds = Table(title="Time in stage (median / p90)")
    speeds.add_column(report.group_by if report.group_by != "none" else "group")
    for stage in VELOCITY_STAGES:
        speeds.add_column(stage, justify="right")
    for found in report.groups:
        rates = [None, *found.conversion.values()]
        cells = [
            f"{found.reached[s]}" + (f" ({share(r)})" if i else "")
            for i, (s, r) in enumerate(zip(FUNNEL_STAGES, rates, strict=True))
        ]
        counts.add_row(found.group, *cells)
        speed = [found.velocity.get(s) for s in VELOCITY_STAGES]
        speeds.add_row(
            found.group,
            *[f"{duration(v.median_seconds)} / {duration(v.p90_seconds)}" if v else "-"
              for v in speed],
        )  # fmt: skip
    return [counts, speeds]


@app.command("funnel")
def funnel(
    ctx: typer.Context,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            metavar="GROUPING",
            help="none, cohort_month, source, utm_campaign, segment or journey.",
        ),
    ] = "none",
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """The funnel waterfall of the leads created in the window: per group, how many reached
    each stage, the conversion from each stage to the next, and the median and p90 time spent
    in MQL, SAL, SQL and opportunity."""
    output = _format(as_json, as_csv)
    start, end = moment_of(since, "--since"), moment_of(until, "--until")
    with store(ctx) as leadflow:
        report = leadflow.funnel_report(by, start, end)
    if output == "json":
        print_json(report.to_json())
    elif output == "csv":
        rows = funnel_rows(report)
        columns = ["group", "entered", *FUNNEL_STAGES]
        columns += [f"{a}_to_{b}" for a, b in pairwise(FUNNEL_STAGES)]
        columns += [f"{s}_{p}_hours" for s in VELOCITY_STAGES for p in ("median", "p90")]
        write_csv(rows, columns)
    else:
        console = stdout()
        if not report.groups:
            console.print("no leads in the window")
        for table in funnel_tables(report):
            console.print(table)


# --- SLA ------------------------------------------------------------------------------------
SLA_COLUMNS = [
    "mqls", "decided", "on_time", "late", "overdue", "pending", "closed", "accepted",
    "rejected", "acceptance_rate", "on_time_rate", "median_decision_hours",
    "p90_decision_hours", "sla_hours",
]  # fmt: skip


def sla_row(report: SlaReport) -> dict[str, Any]:
    data = report.to_json()
    data["median_decision_hours"] = hours(report.median_decision_seconds)
    data["p90_decision_hours"] = hours(report.p90_decision_seconds)
    data["sla_hours"] = hours(report.sla_seconds)
    return data


def sla_table(report: SlaReport) -> Table:
    sla = duration(report.sla_seconds) if report.sla_seconds is not None else "none"
    table = Table(title=f"Sales SLA ({sla}) of the MQLs that entered in the window")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("MQLs", str(report.mqls)),
        ("decided on time", str(report.on_time)),
        ("decided late", str(report.late)),
        ("undecided, past the SLA", str(report.overdue)),
        ("undecided, within the SLA", str(report.pending)),
        ("left MQL without a decision", str(report.closed)),
        ("accepted / rejected", f"{report.accepted} / {report.rejected}"),
        ("acceptance rate", share(report.acceptance_rate)),
        ("on-time rate", share(report.on_time_rate)),
        ("time to decision, median", duration(report.median_decision_seconds)),
        ("time to decision, p90", duration(report.p90_decision_seconds)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    for reason, count in report.rejection_reasons.items():
        table.add_row(f"rejected: {reason}", str(count))
    return table


@app.command("sla")
def sla(
    ctx: typer.Context,
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """The sales SLA of the MQLs that entered in the window: decided on time, late, still
    undecided past the SLA, the acceptance rate, the time to decision and the rejection
    reasons (the CSV has one row; reasons are in the table and the JSON)."""
    output = _format(as_json, as_csv)
    start, end = moment_of(since, "--since"), moment_of(until, "--until")
    with store(ctx) as leadflow:
        report = leadflow.sla_report(start, end)
    if output == "json":
        print_json(report.to_json())
    elif output == "csv":
        write_csv([sla_row(report)], SLA_COLUMNS)
    else:
        stdout().print(sla_table(report))


# --- score quality ----------------------------------------------------------------------------
@app.command("score-quality")
def score_quality(
    ctx: typer.Context,
    outcome: Annotated[
        str, typer.Option("--outcome", help="The stage that counts as converted (or later).")
    ] = "sql",
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Do higher scores convert more? Conversion by engagement decile, the A1-D4 matrix (fit
    grade x engagement band, 1 = top quarter) and the calibration of the predicted
    probability (the CSV holds the matrix)."""
    output = _format(as_json, as_csv)
    start, end = moment_of(since, "--since"), moment_of(until, "--until")
    with store(ctx) as leadflow:
        report = leadflow.score_quality_report(outcome, start, end)
    data = report.to_json()
    if output == "json":
        print_json(data)
        return
    if output == "csv":
        write_csv(data["matrix"], ["cell", "grade", "band", "leads", "converted", "conversion"])
        return
    console = stdout()
    console.print(
        f"{data['leads']} leads, {data['converted']} reached {outcome} or later "
        f"({share(data['conversion'])})"
    )
    deciles = Table("decile", "leads", "converted", "conversion", "engagement", title="By decile")
    for row in data["deciles"]:
        deciles.add_row(
            str(row["decile"]), str(row["leads"]), str(row["converted"]),
            share(row["conversion"]), f"{row['min_engagement']:g}-{row['max_engagement']:g}",
        )  # fmt: skip
    console.print(deciles)
    matrix = Table("grade", *(f"band {b}" for b in (1, 2, 3, 4)), title="A1-D4: conversion")
    cells = {row["cell"]: row for row in data["matrix"]}
    for grade in ("A", "B", "C", "D"):
        matrix.add_row(grade, *(_cell(cells[f"{grade}{b}"]) for b in (1, 2, 3, 4)))
    console.print(matrix)
    calibration = data["calibration"]
    if calibration["leads_with_prediction"]:
        bins = Table("predicted", "leads", "mean predicted", "observed", title="Calibration")
        for row in calibration["bins"]:
            low, high = row["range"]
            bins.add_row(f"{low:.0%}-{high:.0%}", str(row["leads"]),
                         share(row["mean_predicted"]), share(row["observed"]))  # fmt: skip
        console.print(bins)
        console.print(f"Brier score: {calibration['brier']}")
    else:
        console.print("no predicted probabilities yet (leadflow model train --activate)")


def _cell(row: dict[str, Any]) -> str:
    return "-" if not row["leads"] else f"{share(row['conversion'])} of {row['leads']}"


# --- attribution and ROI --------------------------------------------------------------------
ModelOption = Annotated[
    str,
    typer.Option("--model", help="first_touch, last_touch, linear or w_shaped."),
]
ByOption = Annotated[
    str,
    typer.Option("--by", metavar="DIMENSION", help="source, campaign (UTM) or journey."),
]
ATTRIBUTION_COLUMNS = ["name", "opportunities", "customers", "revenue"]
ROI_COLUMNS = [
    "name", "cost", "leads", "mqls", "sqls", "customers", "cost_per_lead", "cost_per_mql",
    "cost_per_sql", "cost_per_customer", "revenue", "return",
]  # fmt: skip


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def attribution_table(report: AttributionReport) -> Table:
    currency = f" ({report.currency})" if report.currency else ""
    table = Table(
        title=f"Attribution by {report.by}, {report.model}: {report.opportunities} "
        f"opportunities, {report.customers} customers, revenue {money(report.revenue)}"
        f"{currency}"
    )
    table.add_column(report.by)
    for column in ("opportunities", "customers", "revenue", "share of revenue"):
        table.add_column(column, justify="right")
    for found in report.groups:
        part = found.revenue / report.revenue if report.revenue else None
        table.add_row(
            found.name, f"{found.opportunities:.2f}", f"{found.customers:.2f}",
            money(found.revenue), share(part),
        )  # fmt: skip
    return table


@app.command("attribution")
def attribution(
    ctx: typer.Context,
    model: ModelOption = "w_shaped",
    by: ByOption = "source",
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """The opportunities created in the window and their revenue, credited to the sources,
    UTM campaigns or journeys of the touches before each: first touch, last touch, linear,
    or W-shaped (30% first touch, 30% lead creation, 30% opportunity creation, 10% the
    others). Credits are fractions; they add up to the totals."""
    output = _format(as_json, as_csv)
    start, end = moment_of(since, "--since"), moment_of(until, "--until")
    with store(ctx) as leadflow:
        report = leadflow.attribution_report(model, by, start, end)
    if output == "json":
        print_json(report.to_json())
    elif output == "csv":
        write_csv([g.to_json() for g in report.groups], ATTRIBUTION_COLUMNS)
    else:
        console = stdout()
        if not report.groups:
            console.print("no opportunities in the window")
            return
        console.print(attribution_table(report))


def roi_table(report: RoiReport) -> Table:
    currency = f" ({report.currency})" if report.currency else ""
    table = Table(title=f"ROI by {report.by}{currency}, revenue by {report.model}")
    table.add_column(report.by)
    for column in ROI_COLUMNS[1:]:
        table.add_column(column.replace("_", " "), justify="right")
    for row in [*report.rows, report.overall]:
        data = row.to_json()
        table.add_row(
            data["name"], money(data["cost"]), str(data["leads"]), str(data["mqls"]),
            str(data["sqls"]), str(data["customers"]), money(data["cost_per_lead"]),
            money(data["cost_per_mql"]), money(data["cost_per_sql"]),
            money(data["cost_per_customer"]), money(data["revenue"]), share(data["return"]),
        )  # fmt: skip
    return table


@app.command("roi")
def roi(
    ctx: typer.Context,
    by: ByOption = "source",
    model: ModelOption = "w_shaped",
    since: SinceOption = None,
    until: UntilOption = None,
    as_json: JsonOption = False,
    as_csv: CsvOption = False,
) -> None:
    """Return on what was spent, per source, UTM campaign or journey: the cost in the window
    (pro rata), the leads created in it and their MQLs, SQLs and customers, the cost of each,
    the revenue attributed by the model and the return, (revenue - cost) / cost. The last
    row, overall, covers every lead of the window."""
    output = _format(as_json, as_csv)
    start, end = moment_of(since, "--since"), moment_of(until, "--until")
    with store(ctx) as leadflow:
        report = leadflow.roi_report(by, start, end, model)
    if output == "json":
        print_json(report.to_json())
    elif output == "csv":
        write_csv([r.to_json() for r in [*report.rows, report.overall]], ROI_COLUMNS)
    else:
        stdout().print(roi_table(report))
