"""``leadflow segments``: define segments (filter trees over leads), count and list members,
refresh membership in bulk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.cli.common import group, print_json, stdout, store, when
from leadflow.services.segments import MAX_PAGE, RefreshReport, definition_from_file

app = group("Segments: named sets of leads defined by a filter tree (docs/segments.md).")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="The segment's name.")]


@app.command("list")
def list_segments(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the segments with their member counts."""
    with store(ctx) as leadflow:
        found = [(s, leadflow.segment_count(s.name)) for s in leadflow.segments()]
    if as_json:
        print_json([{**s.to_json(), "members": count} for s, count in found])
        return
    if not found:
        stdout().print("no segments yet: create one with 'leadflow segments create NAME --file F'")
        return
    table = Table("name", "members", "origin", "description", "updated")
    for segment, count in found:
        table.add_row(
            segment.name, str(count), segment.origin, segment.description, when(segment.updated_at)
        )
    stdout().print(table)


@app.command("show")
def show(ctx: typer.Context, name: Name, as_json: JsonOption = False) -> None:
    """Show a segment's definition and member count."""
    with store(ctx) as leadflow:
        found = {**leadflow.segment(name).to_json(), "members": leadflow.segment_count(name)}
    if as_json:
        print_json(found)
        return
    out = stdout()
    out.print(f"[bold]{found['name']}[/]  {found['members']} members  ({found['origin']})")
    if found["description"]:
        out.print(found["description"])
    definition = {k: v for k, v in found["definition"].items() if k != "description"}
    out.print(
        yaml.safe_dump(definition, sort_keys=False, allow_unicode=True).rstrip(), markup=False
    )


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            metavar="F.yaml",
            help="The definition, YAML or JSON (docs/segments.md).",
        ),
    ],
    as_json: JsonOption = False,
) -> None:
    """Create or replace a segment from a file and compute its members."""
    definition = definition_from_file(name, file)
    with store(ctx) as leadflow:
        report = leadflow.put_segment(name, definition)
    if as_json:
        print_json(report.to_json())
        return
    stdout().print(
        f"saved segment '{name}': {report.members} members "
        f"({len(report.entered)} entered, {len(report.left)} left)"
    )


@app.command("delete")
def delete(ctx: typer.Context, name: Name) -> None:
    """Delete a segment and its membership."""
    with store(ctx) as leadflow:
        leadflow.delete_segment(name)
    stdout().print(f"deleted segment '{name}'")


@app.command("count")
def count(ctx: typer.Context, name: Name, as_json: JsonOption = False) -> None:
    """Print how many leads are in a segment."""
    with store(ctx) as leadflow:
        found = leadflow.segment_count(name)
    if as_json:
        print_json({"segment": name, "members": found})
        return
    typer.echo(found)


@app.command("members")
def members(
    ctx: typer.Context,
    name: Name,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="How many members to show.")] = 50,
    after: Annotated[
        int | None, typer.Option(help="Start after this lead id (the last one shown).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List a segment's members (lead id and when they entered), by lead id."""
    with store(ctx) as leadflow:
        found = leadflow.segment_members(name, limit, after)
    if as_json:
        print_json([{"lead_id": lead, "entered_at": at.isoformat()} for lead, at in found])
        return
    table = Table("lead", "entered")
    for lead, at in found:
        table.add_row(str(lead), when(at))
    stdout().print(table)
    if len(found) == limit:
        stdout().print(f"more: --after {found[-1][0]}")


@app.command("refresh")
def refresh(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="One segment; all when left out.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Evaluate segments in bulk and write who entered and who left."""
    reports: list[RefreshReport] = []
    with store(ctx) as leadflow:
        names = [name] if name is not None else [s.name for s in leadflow.segments()]
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(
            *columns, TimeElapsedColumn(), console=stdout(wide=False), disable=as_json
        ) as progress:
            task = progress.add_task("segments", total=len(names))
            for each in names:
                reports.extend(leadflow.refresh_segments(each))
                progress.advance(task)
    rows: list[dict[str, Any]] = [r.to_json() for r in reports]
    if as_json:
        print_json(rows)
        return
    table = Table("segment", "members", "entered", "left")
    for row in rows:
        table.add_row(row["segment"], str(row["members"]), str(row["entered"]), str(row["left"]))
    stdout().print(table)
