"""``leadflow sms``: counting parts, one-off sends and inbound texts, with the capture
transport (a JSON-lines file) on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from leadflow import Leadflow
from leadflow.cli.main import app

runner = CliRunner()
CONFIG = """\
sms:
  provider: capture
  sender: "12345"
  program: Acme Deals
  contact: help@acme.test
  capture:
    file: outbox.jsonl
"""


def cli(*args: str, db: str | None = None) -> Result:
    argv = ["--db", db, *args] if db else list(args)
    result = runner.invoke(app, argv, env={"LEADFLOW_DATABASE_URL": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "leadflow.yaml").write_text(CONFIG)
    monkeypatch.chdir(folder)
    return folder


def captured(folder: Path) -> list[dict[str, object]]:
    path = folder / "outbox.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_count_shows_encoding_parts_and_what_is_left() -> None:
    result = cli("sms", "count", "--json", "Hello 😀")
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert (found["encoding"], found["parts"], found["remaining_in_part"]) == ("UCS-2", 1, 62)
    table = cli("sms", "count", "a" * 200)
    assert "GSM-7" in table.stdout and "153" in table.stdout and "part 2:" in table.stdout


def test_send_then_stop_then_send_again(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    phone = "+12025550170"
    sent = cli(
        "sms", "send", "--to", "(202) 555-0170", "--text", "Your code is 1234", db=database_url
    )
    assert sent.exit_code == 0, sent.output
    assert f"{phone}: sent" in sent.stdout
    assert [(m["to"], m["text"], m["from"]) for m in captured(workdir)] == [
        (phone, "Your code is 1234", "12345")
    ]

    stop = cli("sms", "inbound", "--from", phone, "--text", " stop ", "--json", db=database_url)
    assert stop.exit_code == 0, stop.output
    outcome = json.loads(stop.stdout)
    assert (outcome["keyword"], outcome["action"]) == ("opt_out", "opted_out")
    assert captured(workdir)[-1]["text"] == (
        "You are unsubscribed from Acme Deals. No more messages. Reply START to resubscribe."
    )

    again = cli("sms", "send", "--to", phone, "--text", "Flash sale", db=database_url)
    assert again.exit_code == 1
    assert "skipped (suppressed)" in again.stdout
    assert len(captured(workdir)) == 2

    help_ = cli("sms", "inbound", "--from", phone, "--text", "HELP", db=database_url)
    assert "help" in help_.stdout
    assert "Reply STOP to opt out" in str(captured(workdir)[-1]["text"])


def test_bad_input_and_bad_settings_name_the_problem(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    bad_number = cli("sms", "send", "--to", "12", "--text", "Hi", db=database_url)
    assert bad_number.exit_code == 1
    assert "to: '12' is not a valid phone number" in bad_number.stderr

    (workdir / "leadflow.yaml").write_text("sms:\n  provider: kannel\n  sender: '1'\n")
    result = cli("sms", "send", "--to", "+12025550170", "--text", "Hi", db=database_url)
    assert result.exit_code == 1
    assert "leadflow.yaml:2: sms: provider kannel needs a 'kannel:' section" in result.stderr
