"""``leadflow suppressions``: the addresses and numbers that get no messages at all."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli.common import group as make_group
from leadflow.cli.common import print_json, stdout, store, when

app = make_group(
    "The suppression list: addresses and numbers never sent to (unsubscribes, bounces, "
    "complaints, STOP replies, manual entries)."
)

ChannelArgument = Annotated[str, typer.Argument(help="email or sms.")]
AddressArgument = Annotated[str, typer.Argument(help="The email address or phone number.")]


@app.command("list")
def list_suppressions(
    ctx: typer.Context,
    channel: Annotated[
        str | None, typer.Option("--channel", help="Only this channel: email or sms.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List suppressed addresses with the reason and when."""
    with store(ctx) as leadflow:
        found = leadflow.suppressions(channel, limit)
    if as_json:
        print_json([s.to_json() for s in found])
        return
    if not found:
        stdout().print("the suppression list is empty")
        return
    table = Table("channel", "address", "reason", "lead", "since", "detail")
    for s in found:
        table.add_row(
            s.channel,
            escape(s.address),
            escape(s.reason),
            str(s.lead_id or "-"),
            when(s.created_at),
            escape(s.detail),
        )
    stdout().print(table)


@app.command("add")
def add(
    ctx: typer.Context,
    channel: ChannelArgument,
    address: AddressArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the entry).")] = "manual",
) -> None:
    """Suppress an address or number: nothing is sent to it any more."""
    address = _normal(channel, address)
    with store(ctx) as leadflow:
        added = not leadflow.is_suppressed(channel, address) and leadflow.suppress(
            channel, address, reason
        )
    state = "suppressed" if added else "already suppressed"
    stdout().print(f"{escape(address)}: {state} ({channel})")


@app.command("remove")
def remove(ctx: typer.Context, channel: ChannelArgument, address: AddressArgument) -> None:
    """Take an address or number off the suppression list (consent is unchanged)."""
    address = _normal(channel, address)
    with store(ctx) as leadflow:
        removed = leadflow.unsuppress(channel, address)
    state = "removed from the suppression list" if removed else "was not suppressed"
    stdout().print(f"{escape(address)}: {state} ({channel})")


def _normal(channel: str, address: str) -> str:
    """Email addresses are kept in lower case, as leads' addresses are."""
    found = address.strip()
    return found.lower() if channel.strip().lower() == "email" else found
