"""``leadflow handoff``: the payload sales receives for a lead, and a CSV file a CRM imports."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.cli.common import group, print_json, stderr, stdout, store
from leadflow.services.handoff import CSV_COLUMNS

app = group("The sales handoff: the payload a CRM receives, and CSV exports for CRM imports.")


def since_of(value: str | None) -> datetime | None:
    """A date (``2025-03-01``) or a date and time, in UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2025-03-01") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command("export")
def export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", metavar="FILE.csv", help="The file to write.")],
    stage: Annotated[str, typer.Option(help="Leads now in this stage.")] = "sql",
    since: Annotated[
        str | None,
        typer.Option(metavar="DATE", help="Only leads that reached the stage on or after DATE."),
    ] = None,
) -> None:
    """Write the leads in a stage as a CRM import file: one row per lead, the handoff payload
    flattened (contact, account, scores and why, stage date, last touch, rep)."""
    start = since_of(since)
    with store(ctx) as leadflow:
        total, rows = leadflow.handoff_export(stage.strip().lower(), start)
        columns = (
            TextColumn("exporting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        )  # fmt: skip
        written = 0
        with (
            out.open("w", newline="", encoding="utf-8") as file,
            Progress(*columns, console=stderr()) as progress,
        ):
            task = progress.add_task("export", total=total)
            writer = csv.DictWriter(file, fieldnames=list(CSV_COLUMNS))
            writer.writeheader()
            for row in rows:
                writer.writerow(row)
                written += 1
                progress.advance(task)
    stderr().print(f"{written} lead(s) in stage {stage} written to {out}")


@app.command("payload")
def payload(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="A lead id.")],
) -> None:
    """Print the JSON payload a handoff of this lead would carry now (docs/handoff.md)."""
    with store(ctx) as leadflow:
        print_json(leadflow.handoff_payload(lead_id))


def queue(
    ctx: typer.Context,
    rep: Annotated[str | None, typer.Option("--rep", help="Only this rep's MQLs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many to show.")] = 20,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The sales queue: MQLs best first (predicted probability, engagement, fit), with
    their rep, SLA and why; accept or reject with `leadflow leads accept|reject ID`."""
    with store(ctx) as leadflow:
        found = leadflow.sales_queue(rep, limit)
    if json:
        print_json(found)
        return
    table = Table("#", "lead", "who", "grade", "engagement", "p_convert", "rep", "SLA", "why")
    for item in found:
        why = item["why"]
        reasons = "; ".join(f"{r['rule']} {r['points']:g}" for r in why["top_rules"][:3])
        fired = why["fired"][0] if why["fired"] else ""
        sla = "overdue" if item["overdue"] else (item["sla_due_at"] or "-")[:16]
        p = item["p_convert"]
        table.add_row(
            str(item["rank"]), str(item["lead_id"]), item["email"] or item["name"] or "-",
            item["fit_grade"] or "-", f"{item['engagement']:g}",
            "-" if p is None else f"{p:.0%}", item["rep"] or "-", sla,
            " | ".join(x for x in (fired, reasons) if x),
        )  # fmt: skip
    stdout().print(table if found else "no MQLs waiting for sales")
