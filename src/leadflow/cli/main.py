"""The leadflow command line (Typer + rich)."""

from __future__ import annotations

import typer

app = typer.Typer(name="leadflow", help="leadflow: lead capture, scoring and qualification.")


def run() -> None:
    app()
