"""``leadflow sources``: the sources events come from, and their write keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from leadflow.cli.common import group, print_json, stdout, store, tracking_base, when
from leadflow.ports import SourceRecord

app = group("Create and list sources (each has the write key its clients send).")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def source_json(source: SourceRecord) -> dict[str, Any]:
    return {
        "id": source.id,
        "name": source.name,
        "write_key": source.write_key,
        "created_at": source.created_at.isoformat(),
    }


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name, like 'website' or 'webinars'.")],
    as_json: JsonOption = False,
) -> None:
    """Create a source and print its write key."""
    with store(ctx) as leadflow:
        source = leadflow.create_source(name)
        base = tracking_base(leadflow.settings)
    if as_json:
        print_json(source_json(source))
        return
    out = stdout()
    out.print(f"created source '{source.name}' (id {source.id})")
    out.print(f"write key: {source.write_key}")
    out.print(f"tracking endpoint: {base}/v1/batch")


@app.command("list")
def list_sources(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the sources with their write keys."""
    with store(ctx) as leadflow:
        found = leadflow.sources()
    if as_json:
        print_json([source_json(source) for source in found])
        return
    if not found:
        stdout().print("no sources yet: create one with 'leadflow sources create NAME'")
        return
    table = Table("id", "name", "write key", "created")
    for source in found:
        table.add_row(str(source.id), source.name, source.write_key, when(source.created_at))
    stdout().print(table)
