"""``leadflow handoff``: the payload sales receives for a lead, and a CSV file a CRM imports."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadflow.cli.common import group, print_json, stderr, store
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
