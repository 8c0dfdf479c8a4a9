"""What every command shares: the settings and the store, error mapping and output.

Errors are mapped in one place, :class:`LeadflowGroup`: a ``LeadflowError`` or a file problem
becomes one red line on stderr and exit code 1; usage errors keep Click's exit code 2; any
other exception becomes one line too (``--debug`` shows its traceback).
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn

import orjson
import typer
from pydantic import ValidationError as SettingsError
from rich.console import Console
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from leadflow.bootstrap import Leadflow, open_leadflow
from leadflow.config import Settings
from leadflow.domain.errors import LeadflowError, StoreUnavailable

DEFAULT_SERVE_URL = "http://127.0.0.1:8000"
# Help texts are Markdown: the paragraphs of a docstring reflow to the terminal's width.
MARKUP: Literal["markdown"] = "markdown"


def group(help: str) -> typer.Typer:
    """A command group (``leadflow sources``...), with the help style of every group."""
    return typer.Typer(help=help, rich_markup_mode=MARKUP, no_args_is_help=True)


@dataclass
class State:
    """The global options, and the Settings once built."""

    db: str | None = None
    debug: bool = False
    settings: Settings | None = None


def state(ctx: typer.Context) -> State:
    root = ctx.find_root()
    if not isinstance(root.obj, State):
        root.obj = State()
    return root.obj


def settings(ctx: typer.Context, **overrides: Any) -> Settings:
    """The Settings of this invocation, built once: --db, then environment, file, defaults."""
    current = state(ctx)
    if current.settings is None:
        given = {k: v for k, v in overrides.items() if v is not None}
        if current.db:
            given["database_url"] = current.db
        current.settings = Settings(**given)
    return current.settings


@contextmanager
def store(ctx: typer.Context, **overrides: Any) -> Iterator[Leadflow]:
    """The Leadflow of this invocation, migrated; a failure names the database URL."""
    config = settings(ctx, **overrides)
    url = config.resolved_database_url()
    try:
        app = open_leadflow(config)
    except (StoreUnavailable, SQLAlchemyError) as exc:
        reason = exc.message if isinstance(exc, LeadflowError) else str(exc)
        raise LeadflowError(f"database {masked(url)}: {reason}") from None
    try:
        yield app
    finally:
        app.close()


def masked(url: str) -> str:
    """A database URL fit to print: the password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def one_line(text: str) -> str:
    return " ".join(text.split())


PIPE_WIDTH = 200


def stdout(wide: bool = True) -> Console:
    """Rich output; when piped and ``wide``, wide enough that tables keep whole values."""
    console = Console(soft_wrap=True, highlight=False)
    if wide and not console.is_terminal:
        console.width = max(console.width, PIPE_WIDTH)
    return console


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red line on stderr and exit."""
    stderr().print(f"[bold red]error:[/] {escape(one_line(message))}")
    raise typer.Exit(code)


def warn(message: str) -> None:
    stderr().print(f"[yellow]{escape(one_line(message))}[/]")


def print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def tracking_base(config: Settings, fallback: str = DEFAULT_SERVE_URL) -> str:
    return (config.public_url or fallback).rstrip("/")


def quiet_stdout() -> None:
    """Send what is left of stdout to /dev/null, so the interpreter's last flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


class LeadflowGroup(TyperGroup):
    """The root group: maps every error of every command to a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except BrokenPipeError:
            quiet_stdout()  # the reader went away (| head): stop without a word
            raise typer.Exit(1) from None
        except LeadflowError as exc:
            fail(exc.message)
        except SettingsError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}"
                for e in exc.errors()
            )
            fail(f"configuration: {problems}")
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}")
        except SQLAlchemyError as exc:
            config = ctx.obj.settings if isinstance(ctx.obj, State) else None
            where = f" at {masked(config.resolved_database_url())}" if config else ""
            fail(f"database error{where}: {getattr(exc, 'orig', None) or exc}")
        except Exception as exc:
            if isinstance(ctx.obj, State) and ctx.obj.debug:
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)")
