"""``leadflow inbox``: the requests staged ingestion has accepted and not yet processed."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadflow.cli.common import group, print_json, stdout, store, when

app = group("Staged ingestion's inbox: accepted tracking requests waiting to be stored and scored.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("status")
def status(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """How many requests and messages wait in the inbox, and since when."""
    with store(ctx) as leadflow:
        found = leadflow.inbox_status()
        mode = leadflow.settings.ingest_mode
    oldest = found["oldest"]
    if as_json:
        print_json({**found, "oldest": oldest.isoformat() if oldest else None, "mode": mode})
        return
    out = stdout()
    out.print(f"ingestion mode: {mode}")
    if not found["requests"]:
        out.print("the inbox is empty")
        return
    out.print(
        f"{found['requests']:,} requests ({found['messages']:,} messages) waiting; "
        f"the oldest arrived at {when(oldest)}"
    )


@app.command("drain")
def drain(
    ctx: typer.Context,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep draining as requests arrive, until Ctrl-C.")
    ] = False,
    batch: Annotated[
        int, typer.Option("--batch", min=1, help="Requests processed per transaction.")
    ] = 50,
    interval: Annotated[
        float, typer.Option(min=0.01, help="With --follow: seconds between looks when idle.")
    ] = 0.05,
) -> None:
    """Store and score what the inbox holds, oldest first, with a progress bar; several
    drainers may run at once on PostgreSQL."""
    columns = (
        TextColumn("draining the inbox"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
    )  # fmt: skip
    out = stdout()
    accepted = duplicates = requests = 0
    started = time.monotonic()
    with store(ctx) as leadflow:
        waiting = leadflow.inbox_status()["messages"]
        quiet = follow or not out.is_terminal
        with Progress(*columns, console=out, disable=quiet, transient=True) as progress:
            task = progress.add_task("inbox", total=waiting)
            try:
                while True:
                    report = leadflow.drain_inbox(batch)
                    if report.requests == 0:
                        if not follow:
                            break
                        time.sleep(interval)
                        continue
                    requests += report.requests
                    accepted += report.result.accepted
                    duplicates += report.result.duplicates
                    done = accepted + duplicates
                    progress.update(task, completed=done, total=max(waiting, done))
            except KeyboardInterrupt:
                pass
    seconds = time.monotonic() - started
    out.print(
        f"processed {requests:,} requests: {accepted:,} events stored, {duplicates:,} "
        f"duplicates skipped, in {seconds:.1f}s"
    )
