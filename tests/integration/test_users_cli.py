"""``leadflow users`` on a real store (SQLite and PostgreSQL), as an admin runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner, Result

from leadflow import Leadflow
from leadflow.cli.main import app
from leadflow.services.users import verify_password

runner = CliRunner()


def cli(db: str, *args: str, stdin: str | None = None) -> Result:
    result = runner.invoke(
        app, ["--db", db, *args], input=stdin, env={"LEADFLOW_DATABASE_URL": None}
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def password_hash(leadflow: Leadflow, email: str) -> str:
    from leadflow.adapters.db.users import SqlUserRepository

    with leadflow.engine.connect() as conn:
        found = SqlUserRepository(conn).by_email(email)
    assert found is not None
    return found[1]


def test_add_list_reset_and_disable(leadflow: Leadflow, database_url: str) -> None:
    added = cli(database_url, "users", "add", "Ada@Acme.test", "--role", "admin", "--name",
                "Ada", "--password-stdin", stdin="a long passphrase\n")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added ada@acme.test as admin" in added.output
    stored = password_hash(leadflow, "ada@acme.test")
    assert stored.startswith("scrypt$") and "a long passphrase" not in stored
    assert verify_password("a long passphrase", stored)
    listed = json.loads(cli(database_url, "users", "list", "--json").output)
    assert [(u["email"], u["role"], u["active"]) for u in listed] == [
        ("ada@acme.test", "admin", True)
    ]
    session = leadflow.sign_in("ada@acme.test", "a long passphrase")
    reset = cli(database_url, "users", "passwd", "ada@acme.test", "--password-stdin",
                stdin="another passphrase\n")  # fmt: skip
    assert reset.exit_code == 0 and "sessions have ended" in reset.output
    assert leadflow.web_session(session.token) is None
    assert verify_password("another passphrase", password_hash(leadflow, "ada@acme.test"))
    off = cli(database_url, "users", "disable", "ada@acme.test")
    assert off.exit_code == 0 and not leadflow.user("ada@acme.test").active
    on = cli(database_url, "users", "enable", "ada@acme.test")
    assert on.exit_code == 0 and leadflow.user("ada@acme.test").active


def test_bad_input_is_one_clear_line(leadflow: Leadflow, database_url: str) -> None:
    short = cli(database_url, "users", "add", "kim@acme.test", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1
    assert "password: at least 10 characters are needed" in short.output
    role = cli(database_url, "users", "add", "kim@acme.test", "--role", "boss",
               "--password-stdin", stdin="long enough pass\n")  # fmt: skip
    assert (
        role.exit_code == 1 and "role: 'boss' is not one of admin, marketer, sales" in role.output
    )
    email = cli(database_url, "users", "add", "not-an-email", "--password-stdin",
                stdin="long enough pass\n")  # fmt: skip
    assert email.exit_code == 1 and "email: 'not-an-email' is not an email address" in email.output
    rep = cli(database_url, "users", "add", "kim@acme.test", "--role", "sales", "--rep", "Nobody",
              "--password-stdin", stdin="long enough pass\n")  # fmt: skip
    assert rep.exit_code == 1 and "rep: no sales rep named 'Nobody'" in rep.output
    assert cli(database_url, "users", "add", "kim@acme.test", "--password-stdin",
               stdin="long enough pass\n").exit_code == 0  # fmt: skip
    twice = cli(database_url, "users", "add", "KIM@acme.test", "--password-stdin",
                stdin="long enough pass\n")  # fmt: skip
    assert twice.exit_code == 1 and "a user 'kim@acme.test' exists already" in twice.output
    unknown = cli(database_url, "users", "disable", "nobody@acme.test")
    assert unknown.exit_code == 1 and "no user 'nobody@acme.test'" in unknown.output
    empty = cli(database_url, "users", "passwd", "kim@acme.test", "--password-stdin", stdin="")
    assert empty.exit_code == 1 and "stdin was empty" in empty.output
    assert [u.email for u in leadflow.users()] == ["kim@acme.test"]
