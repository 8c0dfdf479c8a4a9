"""``leadflow webhooks``: the sales handoff endpoints, their deliveries, replay and tests."""

from __future__ import annotations

from typing import Annotated

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli.common import fail, group, print_json, stdout, store, when
from leadflow.domain.errors import ValidationError
from leadflow.jobs.webhooks import send_due_webhooks, send_test
from leadflow.services.webhooks import STATUSES, WebhookView, new_secret

app = group(
    "Sales handoff webhooks (Standard Webhooks): endpoints, deliveries, the dead-letter list, "
    "replay and test sends."
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@app.command("secret")
def secret() -> None:
    """Print a new signing secret (``whsec_`` and 32 random bytes in base64) for an
    endpoint's ``secret`` in leadflow.yaml; give the receiver the same one."""
    typer.echo(new_secret())


@app.command("list")
def list_endpoints(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """The configured endpoints: URL, stages, timeout, and their deliveries by status."""
    with store(ctx) as leadflow:
        hooks = leadflow.handoff_config.webhooks
        counts = leadflow.webhook_counts()
    items = [
        {**endpoint.to_json(), "deliveries": counts.get(endpoint.name, {})}
        for endpoint in hooks.endpoints
    ]
    if as_json:
        print_json({"allow_private_targets": hooks.allow_private_targets, "endpoints": items})
        return
    out = stdout()
    if not items:
        out.print("no webhook endpoints configured (webhooks.endpoints in leadflow.yaml)")
        return
    table = Table("name", "url", "stages", "enabled", "timeout", *STATUSES)
    for item in items:
        table.add_row(
            escape(item["name"]), escape(item["url"]), ", ".join(item["stages"]),
            "yes" if item["enabled"] else "no", f"{item['timeout']:g}s",
            *(str(item["deliveries"].get(s, 0)) for s in STATUSES),
        )  # fmt: skip
    out.print(table)


def _status(value: str | None) -> str | None:
    if value is not None and value not in STATUSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(STATUSES)}")
    return value


def deliveries_table(found: list[WebhookView]) -> Table:
    table = Table("id", "endpoint", "event", "lead", "status", "tries", "next try", "last")
    for item in found:
        last = f"{item.last_status or '-'} {item.last_error}".strip()
        table.add_row(
            str(item.id), escape(item.endpoint), item.event_id, str(item.lead_id or "-"),
            item.status, str(item.attempts), when(item.next_attempt_at), escape(last[:80]),
        )  # fmt: skip
    return table


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(callback=_status, help="Only this status: pending, delivered or dead."),
    ] = None,
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint.")] = None,
    lead: Annotated[int | None, typer.Option(help="Only this lead's deliveries.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The webhook deliveries, newest first; ``--status dead`` is the dead-letter list."""
    with store(ctx) as leadflow:
        found = leadflow.webhook_deliveries(status, endpoint, lead, limit)
    if as_json:
        print_json([item.to_json() for item in found])
        return
    if not found:
        stdout().print("no deliveries match")
        return
    stdout().print(deliveries_table(found))


@app.command("replay")
def replay(
    ctx: typer.Context,
    ids: Annotated[
        list[int] | None, typer.Argument(metavar="ID...", help="Delivery ids to send again.")
    ] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="Send every dead delivery again.")
    ] = False,
) -> None:
    """Send deliveries again with the same webhook-id (receivers can deduplicate) and a
    fresh set of attempts; the worker (or ``leadflow webhooks send``) sends them."""
    if bool(ids) == all_dead:
        raise ValidationError("give delivery ids or --all-dead (one of the two)")
    with store(ctx) as leadflow:
        done = leadflow.replay_webhooks(None if all_dead else ids)
    stdout().print(f"{len(done)} deliver{'y' if len(done) == 1 else 'ies'} queued again")


@app.command("send")
def send(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="At most this many deliveries.")] = 1000,
) -> None:
    """Send the deliveries that are due now, as the worker does, and say what became of
    them."""
    with store(ctx) as leadflow, httpx.Client() as client:
        sent = send_due_webhooks(leadflow, client, limit)
        counts = leadflow.webhook_counts()
    totals = {s: sum(c.get(s, 0) for c in counts.values()) for s in STATUSES}
    stdout().print(
        f"{sent} attempted; " + ", ".join(f"{n} {status}" for status, n in totals.items())
    )


@app.command("test")
def test(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ENDPOINT", help="An endpoint's name.")],
    as_json: JsonOption = False,
) -> None:
    """POST a signed ``webhook.test`` event to an endpoint now and show its answer."""
    with store(ctx) as leadflow, httpx.Client() as client:
        event_id, answer = send_test(leadflow, client, endpoint)
    ok = answer.status is not None and 200 <= answer.status < 300
    if as_json:
        print_json({"event_id": event_id, "status": answer.status, "error": answer.error, "ok": ok})
    elif ok:
        stdout().print(f"{endpoint} answered {answer.status} to {event_id}")
    if not ok:
        fail(f"{endpoint}: {answer.error or answer.status}")
