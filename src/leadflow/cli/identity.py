"""``leadflow identity``: the merges identity resolution made and the conflicts it refused."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli.common import group, print_json, stdout, store, when

app = group("Identity resolution: merges of leads and conflicts never merged.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LeadOption = Annotated[
    int | None, typer.Option("--lead", metavar="ID", help="Only those of this lead.")
]


@app.command("conflicts")
def conflicts(ctx: typer.Context, lead: LeadOption = None, as_json: JsonOption = False) -> None:
    """Leads whose strong identities (email, userId) disagree: reported, never merged."""
    with store(ctx) as leadflow:
        found = leadflow.conflicts(lead)
    if as_json:
        print_json([c.to_json() for c in found])
        return
    if not found:
        stdout().print("no identity conflicts")
        return
    table = Table("id", "lead", "other lead", "key", "reason", "when")
    for c in found:
        table.add_row(
            str(c.id),
            str(c.lead_id),
            str(c.other_lead_id),
            escape(c.key),
            escape(c.reason),
            when(c.created_at),
        )
    stdout().print(table)


@app.command("merges")
def merges(ctx: typer.Context, lead: LeadOption = None, as_json: JsonOption = False) -> None:
    """Every merge of two leads into one, with its cause."""
    with store(ctx) as leadflow:
        found = leadflow.merges(lead)
    if as_json:
        print_json([m.to_json() for m in found])
        return
    if not found:
        stdout().print("no merges")
        return
    table = Table("survivor", "merged", "cause", "message id", "when")
    for m in found:
        table.add_row(
            str(m.survivor_id),
            str(m.merged_id),
            escape(m.cause),
            escape(m.message_id or "-"),
            when(m.created_at),
        )
    stdout().print(table)
