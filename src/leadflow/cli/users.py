"""``leadflow users``: who may sign in to the dashboard, with which role."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from leadflow.cli.common import fail, group, print_json, stdout, store, when

app = group("Dashboard users: add, list, reset a password, disable (docs/dashboard.md).")

Email = Annotated[str, typer.Argument(metavar="EMAIL", help="The user's email address.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of stdin instead of prompting.",
    ),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            fail("password: stdin was empty")
        return line
    if not sys.stdin.isatty():
        fail("password: no terminal to ask on; pass --password-stdin and pipe it in")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@app.command("add")
def add(
    ctx: typer.Context,
    email: Email,
    role: Annotated[str, typer.Option(help="admin, marketer or sales.")] = "marketer",
    name: Annotated[str, typer.Option(help="The name shown in the dashboard.")] = "",
    rep: Annotated[
        str | None,
        typer.Option(
            help="For a sales user: the sales rep (sales.reps in leadflow.yaml) whose "
            "queue they work."
        ),
    ] = None,
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Add a user who can sign in to the dashboard."""
    password = _password(password_stdin)
    with store(ctx) as leadflow:
        user = leadflow.add_user(email, password, role, name, rep)
    if as_json:
        print_json(user.to_json())
        return
    stdout().print(f"added {user.email} as {user.role.value}")


@app.command("list")
def list_users(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the users, their roles and their last sign-in."""
    with store(ctx) as leadflow:
        found = leadflow.users()
        reps = {u.email: leadflow.user_rep(u) for u in found}
    if as_json:
        print_json([{**u.to_json(), "rep": reps[u.email]} for u in found])
        return
    if not found:
        stdout().print("no users yet: add one with 'leadflow users add EMAIL --role admin'")
        return
    table = Table("email", "name", "role", "rep", "active", "last sign-in")
    for user in found:
        table.add_row(
            user.email, user.name, user.role.value, reps[user.email] or "",
            "yes" if user.active else "no", when(user.last_login_at),
        )  # fmt: skip
    stdout().print(table)


@app.command("passwd")
def passwd(ctx: typer.Context, email: Email, password_stdin: PasswordStdin = False) -> None:
    """Set a new password; the user is signed out everywhere."""
    password = _password(password_stdin)
    with store(ctx) as leadflow:
        user = leadflow.set_user_password(email, password)
    stdout().print(f"password of {user.email} changed; their sessions have ended")


@app.command("disable")
def disable(ctx: typer.Context, email: Email) -> None:
    """Stop a user from signing in; their sessions end."""
    with store(ctx) as leadflow:
        user = leadflow.set_user_active(email, False)
    stdout().print(f"{user.email} disabled")


@app.command("enable")
def enable(ctx: typer.Context, email: Email) -> None:
    """Let a disabled user sign in again."""
    with store(ctx) as leadflow:
        user = leadflow.set_user_active(email, True)
    stdout().print(f"{user.email} enabled")
