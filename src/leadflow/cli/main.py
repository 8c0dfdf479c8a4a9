"""The leadflow command line (Typer + rich): the root app, global options and wiring.

Each command group lives in its own module; this one only wires them together.
"""

from __future__ import annotations

from typing import Annotated

import typer

from leadflow import __version__
from leadflow.cli import (
    backtest,
    demo,
    identity,
    imports,
    inbox,
    init,
    leads,
    model,
    scoring,
    serve,
    sources,
)
from leadflow.cli import costs as costs_cli
from leadflow.cli import email as email_cli
from leadflow.cli import handoff as handoff_cli
from leadflow.cli import journeys as journeys_cli
from leadflow.cli import reports as reports_cli
from leadflow.cli import segments as segments_cli
from leadflow.cli import sms as sms_cli
from leadflow.cli import suppressions as suppressions_cli
from leadflow.cli import users as users_cli
from leadflow.cli import webhooks as webhooks_cli
from leadflow.cli.common import MARKUP, LeadflowGroup, state

app = typer.Typer(
    name="leadflow",
    help="leadflow: lead capture, scoring and qualification.",
    cls=LeadflowGroup,
    rich_markup_mode=MARKUP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"leadflow {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="LEADFLOW_DATABASE_URL",
            metavar="URL",
            help="Database URL (sqlite:///path or postgresql://user@host/name). "
            "Default: database_url of leadflow.yaml, else the SQLite file leadflow.db here.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of unexpected errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """leadflow: lead capture, scoring and qualification."""
    current = state(ctx)
    current.db = db
    current.debug = debug


app.command("init")(init.init)
app.command("serve")(serve.serve)
app.add_typer(sources.app, name="sources")
app.add_typer(imports.app, name="import")
app.add_typer(inbox.app, name="inbox")
app.add_typer(leads.app, name="leads")
app.add_typer(identity.app, name="identity")

app.command("demo")(demo.demo)
app.command("explain")(scoring.explain)
app.command("worker")(scoring.worker)
app.add_typer(scoring.score_app, name="score")
app.command("backtest")(backtest.backtest)
app.add_typer(model.app, name="model")
app.add_typer(segments_cli.app, name="segments")
app.add_typer(email_cli.app, name="email")
app.add_typer(suppressions_cli.app, name="suppressions")
app.add_typer(sms_cli.app, name="sms")
app.add_typer(webhooks_cli.app, name="webhooks")
app.add_typer(handoff_cli.app, name="handoff")
app.add_typer(reports_cli.app, name="report")
app.add_typer(costs_cli.app, name="costs")
app.command("queue")(handoff_cli.queue)
app.add_typer(journeys_cli.app, name="journeys")
app.add_typer(users_cli.app, name="users")
app.add_typer(journeys_cli.offers_app, name="offers")
app.add_typer(journeys_cli.consent_app, name="consent")
leads.app.command("accept")(scoring.accept)
leads.app.command("reject")(scoring.reject)
leads.app.command("move")(scoring.move)


def run() -> None:
    """The console entry point (``leadflow``)."""
    app()
