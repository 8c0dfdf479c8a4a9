"""``leadflow email``: try the SMTP settings, preview a template, feed bounce reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from leadflow.cli.common import fail, group, print_json, stderr, stdout, store
from leadflow.domain.errors import ValidationError
from leadflow.services.bounces import BounceOutcome

app = group("The email channel: test the SMTP settings, preview templates, read bounces.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("test")
def test(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", metavar="ADDRESS", help="Who gets the message.")],
    as_json: JsonOption = False,
) -> None:
    """Send a test message through the configured email transport and print the server's
    answer. A refusal or an unreachable server is one line on stderr and exit code 1."""
    with store(ctx) as leadflow:
        config = leadflow.email_settings
        receipt = leadflow.send_test_email(to)
    where = (
        str(config.capture_folder)
        if config.transport == "capture"
        else f"{config.host}:{config.smtp_port} ({config.security})"
    )
    if as_json:
        print_json({"to": to, "via": where, "message_id": receipt.provider_id,
                    "answer": receipt.detail})  # fmt: skip
        return
    out = stdout()
    out.print(f"sent to {escape(to)} via {escape(where)}")
    out.print(f"message id: {escape(receipt.provider_id or '-')}")
    out.print(f"server answer: {escape(receipt.detail)}")


@app.command("render")
def render(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="Template name (templates/NAME.email.yaml).")],
    lead: Annotated[int, typer.Option("--lead", metavar="ID", help="Render for this lead.")],
    as_json: JsonOption = False,
) -> None:
    """Preview a template for one lead: subject, text and HTML exactly as the worker would
    send them (links rewritten to tracked links, unsubscribe headers)."""
    with store(ctx) as leadflow:
        message, content = leadflow.preview_email(template, lead)
    if as_json:
        print_json({"to": message.to, "from": message.from_addr, "subject": message.subject,
                    "headers": message.headers, "text": message.text, "html": message.html,
                    "links": content["links"]})  # fmt: skip
        return
    out = stdout()
    out.print(f"[bold]From:[/] {escape(message.from_addr)}")
    out.print(f"[bold]To:[/] {escape(message.to)}")
    out.print(f"[bold]Subject:[/] {escape(message.subject)}")
    for name, value in message.headers.items():
        out.print(f"[bold]{escape(name)}:[/] {escape(value)}")
    out.print("\n[bold]--- text ---[/]")
    out.print(escape(message.text), markup=True)
    if message.html is not None:
        out.print("[bold]--- html ---[/]")
        out.print(escape(message.html))
    if content["links"]:
        out.print("[bold]--- tracked links ---[/]")
        for index, url in enumerate(content["links"]):
            out.print(f"{index}: {escape(url)}")


@app.command("bounces")
def bounces(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="Bounce (DSN) or complaint (ARF) messages, .eml files.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Read bounce and complaint reports: hard bounces and complaints suppress the address,
    soft bounces are only recorded. Files that are not reports are named on stderr."""
    results: list[BounceOutcome] = []
    problems: list[str] = []
    console = stderr()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    with store(ctx) as leadflow, bar:
        task = bar.add_task("reading reports", total=len(files))
        for file in files:
            try:
                results.extend(leadflow.process_bounce(file.read_bytes(), str(file)))
            except ValidationError as exc:
                problems.append(exc.message)
            except OSError as exc:
                problems.append(f"{file}: {exc.strerror or exc}")
            bar.advance(task)
    if as_json:
        print_json({"items": [r.to_json() for r in results], "errors": problems})
    else:
        _bounce_table(results)
    for problem in problems:
        console.print(f"[yellow]{escape(problem)}[/]")
    if problems:
        fail(f"{len(problems)} of {len(files)} file(s) could not be read as reports")


def _bounce_table(results: list[BounceOutcome]) -> None:
    out = stdout()
    if not results:
        out.print("no bounces or complaints found")
        return
    table = Table("address", "kind", "status", "delivery", "lead", "suppressed")
    for item in results:
        row = item.to_json()
        table.add_row(
            escape(row["address"]),
            row["kind"],
            row["status"] or "-",
            str(row["delivery_id"] or "-"),
            str(row["lead_id"] or "-"),
            "yes" if row["suppressed"] else "no",
        )
    out.print(table)
