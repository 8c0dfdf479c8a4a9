"""``leadflow demo``: a simulated B2B company sent through the real HTTP ingestion path."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from leadflow.adapters.tracking_client import SendReport, send_over_http
from leadflow.bootstrap import Leadflow
from leadflow.cli.common import fail, masked, stdout, store
from leadflow.cli.demo_nurture import run_demo_nurture
from leadflow.cli.demo_sales import run_demo_sales
from leadflow.cli.serve import base_url, port_free
from leadflow.domain.errors import LeadflowError
from leadflow.ports import LeadFilter
from leadflow.simulator import SimulationConfig, simulate
from leadflow.web import create_site

SOURCE = "demo-website"


@contextlib.contextmanager
def background_server(leadflow: Leadflow, host: str, port: int) -> Iterator[uvicorn.Server]:
    """The app under uvicorn in a thread; stopped when the block ends."""
    config = uvicorn.Config(
        create_site(leadflow=leadflow), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="leadflow-demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            fail(f"the demo server could not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class ReplayClock:
    """The demo's clock. While the simulated history is sent, it stands at the end of the
    slice of time being sent, so that stage changes, SLA timers and sales decisions are dated
    as if the events had arrived live; otherwise, and never beyond it, real time."""

    def __init__(self) -> None:
        self.at: datetime | None = None

    def now(self) -> datetime:
        real = datetime.now(UTC)
        return min(self.at, real) if self.at is not None else real


SLICE = timedelta(hours=6)  # the history is sent six simulated hours at a time


def _slices(
    messages: list[dict[str, Any]], start: datetime
) -> Iterator[tuple[datetime, list[dict[str, Any]]]]:
    """The messages (in time order) by slice of time: (end of the slice, its messages)."""
    current: list[dict[str, Any]] = []
    end = start + SLICE
    for message in messages:
        at = datetime.fromisoformat(message["timestamp"])
        if at >= end and current:
            yield end, current
            current = []
        while at >= end:
            end += SLICE
        current.append(message)
    if current:
        yield end, current


def _send(
    address: str, write_key: str, messages: list[dict[str, Any]], clock: ReplayClock,
    window_start: datetime,
) -> tuple[SendReport, float]:  # fmt: skip
    columns = (
        TextColumn("sending events"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    start = time.perf_counter()
    with Progress(*columns, console=stdout(wide=False), transient=False) as progress:
        task = progress.add_task("send", total=len(messages), rate="")

        def advance(count: int) -> None:
            done = progress.tasks[0].completed + count
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress.update(task, advance=count, rate=f"{rate:,.0f} events/s")

        report = SendReport(errors=[])
        for end, chunk in _slices(messages, window_start):
            clock.at = end
            sent = send_over_http(address, write_key, chunk, on_batch=advance)
            report.requests += sent.requests
            report.messages += sent.messages
            report.rejected += sent.rejected
            assert report.errors is not None
            report.errors.extend(sent.errors or [])
        clock.at = None
    return report, time.perf_counter() - start


def _summary(
    leadflow: Leadflow, report: SendReport, seconds: float, truth: dict[str, Any]
) -> Table:
    page = leadflow.leads(LeadFilter(), limit=1, count=True)
    known = leadflow.leads(LeadFilter(search="@"), limit=1, count=True)
    table = Table(title="leadflow demo", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("messages sent over HTTP", f"{report.messages:,}")
    table.add_row("rejected messages", f"{report.rejected:,}")
    table.add_row("ingestion rate", f"{report.messages / max(seconds, 1e-9):,.0f} events/s")
    table.add_row("leads in the store", f"{page.total or 0:,}")
    table.add_row("leads with an email", f"{known.total or 0:,}")
    table.add_row("identity merges", f"{len(leadflow.merges()):,}")
    table.add_row("identity conflicts", f"{len(leadflow.conflicts()):,}")
    for stage in ("mql", "recycled", "sal", "sql"):
        found = leadflow.leads(LeadFilter(stage=stage), limit=1, count=True).total or 0
        table.add_row(f"leads in stage {stage}", f"{found:,}")
    table.add_row("simulated opportunities (ground truth)", f"{truth['opportunities']:,}")
    table.add_row("simulated customers (ground truth)", f"{truth['customers']:,}")
    table.add_row("simulated revenue (ground truth)", f"{truth['revenue']:,.0f}")
    return table


def _top_mqls(leadflow: Leadflow, shown: int = 8) -> Table | str:
    """The hottest MQLs, with the clause of the policy that made each one an MQL."""
    page = leadflow.leads(LeadFilter(stage="mql"), limit=1000).items
    if not page:
        return "no MQLs yet"
    best = sorted(page, key=lambda lead: lead.engagement_score, reverse=True)[:shown]
    table = Table(title="top MQLs (leadflow explain ID tells why)", title_justify="left")
    table.add_column("id", no_wrap=True, min_width=5)
    table.add_column("email", no_wrap=True, overflow="ellipsis", max_width=26)
    table.add_column("fit", no_wrap=True, min_width=3)
    table.add_column("engagement", no_wrap=True, min_width=10, justify="right")
    table.add_column("why (the clause that holds)", no_wrap=True, overflow="ellipsis", max_width=40)
    for lead in best:
        why = leadflow.explain(lead.id)["policy"]["fired"]
        table.add_row(
            str(lead.id), lead.email or "-", lead.fit_grade or "-",
            f"{lead.engagement_score:.0f}", " | ".join(" ".join(w.split()) for w in why) or "-",
        )  # fmt: skip
    return table


def _screenshots(address: str, user: tuple[str, str, str], folder: Path, out: Console) -> None:
    """The main pages as PNGs, signed in as the demo admin; a missing browser is a warning."""
    from leadflow.web.screenshots import take_screenshots

    email, _role, password = user
    try:
        with Progress(
            TextColumn("screenshots"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=out, transient=True,
        ) as progress:  # fmt: skip
            task = progress.add_task("shots", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            saved = take_screenshots(address, email, password, folder, progress=advance)
    except LeadflowError as exc:
        out.print(f"[yellow]no screenshots: {exc.message}[/]")
        return
    out.print(f"{len(saved)} screenshots of the dashboard in {folder}/")


def demo(
    ctx: typer.Context,
    leads: Annotated[int, typer.Option(min=10, help="Leads in the simulated company.")] = 3000,
    days: Annotated[int, typer.Option(min=7, help="Days of activity to simulate.")] = 90,
    seed: Annotated[int, typer.Option(help="Seed: the same seed makes the same company.")] = 7,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Keep serving the app afterwards.")
    ] = True,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    screenshots: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Save screenshots of the dashboard's main pages there (needs Chromium).",
        ),
    ] = None,
) -> None:
    """Simulate a B2B company's leads and send their events through the HTTP ingestion
    path into the database of this folder, print a summary, then serve the app.

    Running it again sends the same messages: they are de-duplicated, nothing doubles."""
    if not port_free(host, port):
        fail(f"cannot listen on {host}:{port}: the address is in use (try --port)")
    out = stdout(wide=False)
    with store(ctx) as leadflow:
        today = leadflow.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=days)  # the simulated window ends today
        # The CRM's "Opportunity Created", "Deal Won" and "Deal Lost" events come in as tracks,
        # as a CRM integration sends them: attribution and ROI credit their revenue.
        config = SimulationConfig(
            seed=seed, leads=leads, days=days, start=start, emit_outcomes=True
        )
        company = simulate(config)
        out.print(f"database: {masked(leadflow.settings.resolved_database_url())}")
        source = leadflow.ensure_source(SOURCE)
        out.print(f"simulating {leads:,} leads over {days} days (seed {seed})...")
        messages = list(company.messages())
        address = base_url(host, port)
        clock = ReplayClock()
        leadflow.clock = clock  # the server below shares this Leadflow, and so its clock
        with background_server(leadflow, host, port) as server:
            report, seconds = _send(address, source.write_key, messages, clock, start)
            out.print(_summary(leadflow, report, seconds, company.summary()))
            out.print(_top_mqls(leadflow))
            run_demo_nurture(leadflow, out, address)
            users = run_demo_sales(leadflow, out, list(company.leads()), days, clock)
            if screenshots is not None:
                _screenshots(address, users[0], screenshots, out)
            for problem in (report.errors or [])[:5]:
                out.print(f"[yellow]rejected batch: {problem}[/]")
            if not serve:
                return
            out.print(f"\nleadflow is serving on [bold]{address}[/] (API docs: {address}/docs)")
            out.print(f"dashboard: {address}/ (sign in with a user above)")
            out.print(f"leads: {address}/api/leads   tracking: {address}/v1/batch")
            out.print("Press Ctrl-C to stop.")
            with contextlib.suppress(KeyboardInterrupt):
                while not server.should_exit:
                    time.sleep(0.5)
