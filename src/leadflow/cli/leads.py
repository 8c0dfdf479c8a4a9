"""``leadflow leads``: list leads and show one with its identities, traits and events."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from leadflow.cli.common import fail, group, print_json, stdout, store, when
from leadflow.domain.lifecycle import STAGES
from leadflow.ports import EventView, LeadFilter, LeadView
from leadflow.services.leads import MAX_PAGE

app = group("List leads, show one lead, export or erase everything held on a person.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SHOWN_EVENTS = 10


def display_name(lead: LeadView) -> str:
    traits = lead.traits
    if isinstance(traits.get("name"), str) and traits["name"]:
        return str(traits["name"])
    first = traits.get("first_name") or traits.get("firstName") or ""
    last = traits.get("last_name") or traits.get("lastName") or ""
    return f"{first} {last}".strip()


def company(lead: LeadView) -> str:
    value = lead.traits.get("company")
    if isinstance(value, dict):
        value = value.get("name")
    if not value and lead.account:
        value = lead.account.get("name") or lead.account.get("group_id")
    return str(value or "")


def _stage(value: str | None) -> str | None:
    if value is None:
        return None
    stage = value.strip().lower()
    if stage not in STAGES:
        raise typer.BadParameter(f"unknown stage {value!r}; one of {', '.join(STAGES)}")
    return stage


@app.command("list")
def list_leads(
    ctx: typer.Context,
    stage: Annotated[
        str | None,
        typer.Option(
            callback=_stage, help=f"Only leads in this stage: {', '.join(STAGES)}.", metavar="S"
        ),
    ] = None,
    email: Annotated[str | None, typer.Option(help="The lead with this email.")] = None,
    search: Annotated[str | None, typer.Option(help="Substring of email or phone.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_PAGE, help="Leads per page (newest first).")
    ] = 50,
    after: Annotated[
        int | None, typer.Option(help="Page on: the id printed as 'next page' last time.")
    ] = None,
    grade: Annotated[str | None, typer.Option(help="Only this fit grade: A, B, C or D.")] = None,
    sort: Annotated[
        str, typer.Option(help="newest, or best first by engagement, fit or p_convert.")
    ] = "newest",
    cursor: Annotated[
        str | None,
        typer.Option(help="Page on in a --sort order: the cursor printed as 'next page'."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List leads, newest first or best first: a table, or a JSON list of leads."""
    filters = LeadFilter(stage=stage, email=email, search=search, grade=grade)
    with store(ctx) as leadflow:
        page = leadflow.leads(filters, limit=limit, after=after, sort=sort, cursor=cursor)
    if as_json:
        print_json([lead.to_json() for lead in page.items])
        return
    out = stdout()
    if not page.items:
        out.print("no leads match")
        return
    table = Table("id", "email", "name", "company", "stage", "fit", "engagement", "last seen")
    for lead in page.items:
        table.add_row(
            str(lead.id),
            escape(lead.email or "-"),
            escape(display_name(lead)),
            escape(company(lead)),
            lead.stage,
            lead.fit_grade or "-",
            f"{lead.engagement_score:.1f}",
            when(lead.last_seen_at),
        )
    out.print(table)
    if sort == "newest" and page.next_after is not None:
        out.print(f"next page: --after {page.next_after}")
    elif page.next_cursor is not None:
        out.print(f"next page: --sort {sort} --cursor {page.next_cursor}")


@app.command("show")
def show(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="The lead's id.")],
    events: Annotated[
        int | None,
        typer.Option(
            "--events",
            min=0,
            max=MAX_PAGE,
            help=f"How many recent events to show (text: {SHOWN_EVENTS} by default; "
            "JSON: none unless given).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show one lead: identities, traits, account, scores, first touch and recent events."""
    with store(ctx) as leadflow:
        lead = leadflow.lead(lead_id)
        wanted = events if events is not None or as_json else SHOWN_EVENTS
        recent = leadflow.lead_events(lead.id, wanted) if wanted else []
    if as_json:
        body = lead.to_json()
        if events is not None:
            body["events"] = [event.to_json() for event in recent]
        print_json(body)
        return
    stdout(wide=False).print(lead_panels(lead, recent))


def _pairs(values: dict[str, Any]) -> Table | str:
    if not values:
        return "[dim]none[/]"
    grid = Table.grid(padding=(0, 2))
    for key, value in values.items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        grid.add_row(f"[bold]{escape(str(key))}[/]", escape(text))
    return grid


def lead_panels(lead: LeadView, recent: list[EventView]) -> Group:
    title = f"lead {lead.id}: {lead.email or display_name(lead) or 'anonymous'}"
    summary = {
        "stage": lead.stage,
        "created": when(lead.created_at),
        "first seen": when(lead.first_seen_at),
        "last seen": when(lead.last_seen_at),
        "events": lead.event_count,
    }
    scores = {
        "fit": lead.fit_score,
        "fit grade": lead.fit_grade or "-",
        "engagement": round(lead.engagement_score, 2),
        "p(convert)": "-" if lead.p_convert is None else round(lead.p_convert, 3),
    }
    identities = {kind: ", ".join(values) for kind, values in lead.identities.items()}
    return Group(
        Panel(_pairs(summary), title=escape(title), title_align="left"),
        Panel(_pairs(identities), title="identities", title_align="left"),
        Panel(_pairs(lead.traits), title="traits", title_align="left"),
        Panel(_pairs(lead.account or {}), title="account", title_align="left"),
        Panel(_pairs(scores), title="scores", title_align="left"),
        Panel(_pairs(lead.first_touch), title="first touch", title_align="left"),
        Panel(_events_table(recent), title="recent events", title_align="left"),
    )


def _events_table(recent: list[EventView]) -> Table | str:
    if not recent:
        return "[dim]none[/]"
    table = Table("when", "type", "name", "properties", box=None)
    for event in recent:
        props = orjson.dumps(event.properties).decode() if event.properties else ""
        table.add_row(
            when(event.timestamp), event.type, escape(event.name or ""), escape(props[:80])
        )
    return table


@app.command("assign")
def assign(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="The lead's id.")],
    rep: Annotated[str, typer.Option("--rep", metavar="NAME", help="A rep of sales.reps.")],
    as_json: JsonOption = False,
) -> None:
    """Give a lead to a sales rep by name (rule ``manual``), over any earlier assignment."""
    with store(ctx) as leadflow:
        done = leadflow.assign_lead(lead_id, rep)
    if as_json:
        print_json(done.to_json())
        return
    stdout().print(f"lead {done.lead_id} assigned to {escape(done.rep.name)}")


@app.command("export")
def export(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="A lead id.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the JSON here instead of stdout.")
    ] = None,
) -> None:
    """Everything held on a person — the lead, the leads merged into it, events, scores,
    stage history, consent, messages, journeys, offers — as one JSON document."""
    with store(ctx) as leadflow:
        found = leadflow.export_lead(lead_id)
    if out is None:
        print_json(found)
        return
    out.write_bytes(orjson.dumps(found, option=orjson.OPT_INDENT_2, default=str))
    rows = sum(len(items) for items in found["tables"].values())
    stdout().print(f"wrote {rows} rows from {len(found['tables'])} tables to {out}")


@app.command("erase")
def erase(
    ctx: typer.Context,
    lead_id: Annotated[int, typer.Argument(metavar="ID", help="A lead id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking.")] = False,
) -> None:
    """Erase a person from every table (the right to erasure). Their addresses stay on the
    suppression list, without the link to the lead, so an opt-out is still honoured."""
    if not yes and not typer.confirm(f"Erase lead {lead_id} and everything held on it?"):
        fail("nothing erased")
    with store(ctx) as leadflow:
        counts = leadflow.erase_lead(lead_id)
    detail = ", ".join(f"{table} {count}" for table, count in sorted(counts.items()))
    stdout().print(f"erased lead {lead_id}: {detail}")
