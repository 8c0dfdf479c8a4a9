"""``leadflow sms``: count the parts of a text, send one, feed an inbound text by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from leadflow.cli.common import group, print_json, stdout, store
from leadflow.domain.sms import SmsCount, count_segments, split_parts

app = group("The SMS channel: segment counts, one-off sends and inbound texts (docs/sms.md).")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
TextOption = Annotated[str, typer.Option("--text", help="The message text.", show_default=False)]


def count_table(text: str, count: SmsCount) -> Table:
    table = Table("encoding", "parts", "units", "per part", "left in the last part", "chars")
    table.add_row(
        count.encoding.value,
        str(count.parts),
        str(count.units),
        str(count.per_part),
        str(count.remaining_in_part),
        str(count.characters),
    )
    if count.unicode_chars:
        table.caption = "UCS-2 because of: " + " ".join(repr(ch) for ch in count.unicode_chars[:10])
    return table


def _show_parts(text: str) -> None:
    out = stdout()
    count = count_segments(text)
    out.print(count_table(text, count))
    if count.parts > 1:
        for number, piece in enumerate(split_parts(text), start=1):
            out.print(f"[dim]part {number}:[/] {escape(piece)}")


@app.command("count")
def count(
    text: Annotated[str, typer.Argument(help="The message text.", show_default=False)],
    as_json: JsonOption = False,
) -> None:
    """How a text travels: GSM-7 or UCS-2, how many parts, and what is left in the last one.

    One character outside the GSM-7 alphabet (an emoji, a curly quote) makes the whole text
    UCS-2: 70 units in one part, 67 per part beyond. GSM-7 holds 160, or 153 per part.
    """
    found = count_segments(text)
    if as_json:
        print_json(found.to_json())
        return
    _show_parts(text)


@app.command("send")
def send(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="The number (E.164 or national).")],
    text: TextOption,
    as_json: JsonOption = False,
) -> None:
    """Send one transactional text now through the configured transport (sms.provider).

    The parts are shown first. A number on the suppression list (it sent STOP) is skipped.
    """
    if not as_json:
        _show_parts(text)
    with store(ctx) as leadflow:
        out = leadflow.send_sms(to, text)
    if as_json:
        print_json(out.to_json())
    else:
        reason = f" ({escape(out.skipped or out.detail)})" if out.skipped or out.detail else ""
        stdout().print(f"{escape(out.message.to)}: {out.status}{reason}")
    if out.status in ("failed", "skipped"):
        raise typer.Exit(1)


@app.command("inbound")
def inbound(
    ctx: typer.Context,
    sender: Annotated[str, typer.Option("--from", help="The number the text comes from.")],
    text: TextOption,
    to: Annotated[str, typer.Option("--to", help="Our number or short code.")] = "",
    message_id: Annotated[
        str | None, typer.Option("--id", help="The gateway's message id (for idempotency).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Handle an inbound text as if the gateway had delivered it (STOP, START, HELP or a
    reply), for trials and tests. Replies owed (confirmations, help) are sent."""
    with store(ctx) as leadflow:
        outcome = leadflow.sms_inbound(sender, text, receiver=to, message_id=message_id)
    if as_json:
        print_json(outcome.to_json())
        return
    out = stdout()
    leads = ", ".join(str(i) for i in outcome.lead_ids) or "none"
    out.print(f"{outcome.phone}: {outcome.keyword.value} -> {outcome.action} (leads: {leads})")
    if outcome.reply is not None:
        reply = outcome.reply
        out.print(f"reply {reply.status}: {escape(reply.message.text)}")
