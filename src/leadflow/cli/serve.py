"""``leadflow serve``: the HTTP API, the tracking endpoints and the docs, under uvicorn."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import orjson
import typer
import uvicorn

from leadflow.cli.common import fail, masked, stdout, store, tracking_base
from leadflow.cli.workers import Workers, spreads_connections
from leadflow.config import Settings

APP_FACTORY = "leadflow.web:create_site"


def export_settings(settings: Settings) -> dict[str, str]:
    """The settings as LEADFLOW_* variables, so every uvicorn worker rebuilds the same ones."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if name == "database_url":
            value = settings.resolved_database_url()
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        env[f"LEADFLOW_{name.upper()}"] = text
    return env


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on (0.0.0.0: all).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    access_log: Annotated[
        bool, typer.Option(help="Log every request (off for high-volume tracking traffic).")
    ] = True,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            metavar="URL",
            help="Address tracking clients reach, if not this one (a proxy, a domain).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the API, the tracking endpoints (/v1/...) and the docs (/docs)."""
    with store(ctx, public_url=public_url) as leadflow:  # migrates, or fails with one line
        settings = leadflow.settings
    if not port_free(host, port):
        fail(f"cannot listen on {host}:{port}: the address is in use or not available")
    os.environ.update(export_settings(settings))
    address = base_url(host, port)
    tracking = tracking_base(settings, address)
    out = stdout()
    out.print(f"leadflow on {address} (database {masked(settings.resolved_database_url())})")
    out.print(f"API docs: {address}/docs")
    out.print(f"tracking endpoint: {tracking}/v1/batch")
    options = {"factory": True, "host": host, "port": port, "access_log": access_log}
    if workers == 1 or not spreads_connections():
        uvicorn.run(APP_FACTORY, workers=workers, **options)  # type: ignore[arg-type]
        return
    out.print(f"{workers} worker processes, each on its own socket (SO_REUSEPORT)")
    config = uvicorn.Config(APP_FACTORY, workers=workers, **options)  # type: ignore[arg-type]
    failure = Workers(config, workers).run()
    if failure:
        fail(f"{failure}; see the log above")
