"""``leadflow email`` and ``leadflow suppressions`` as a user runs them, on both backends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from leadflow import Leadflow
from leadflow.adapters.email.capture_server import CaptureServer
from leadflow.cli.main import app
from tests.integration.email_support import add_lead, deliver

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.chdir(tmp_path)  # the home folder of the `leadflow` fixture too

    def invoke(*args: str) -> Result:
        result = CliRunner().invoke(
            app, ["--db", database_url, *args], env={"LEADFLOW_DATABASE_URL": None}
        )
        assert "Traceback" not in result.output
        return result

    yield invoke


def test_email_test_reports_the_server_answer(leadflow: Leadflow, run: Run, tmp_path: Path) -> None:
    with CaptureServer() as server:
        (tmp_path / "leadflow.yaml").write_text(
            f"email:\n  host: 127.0.0.1\n  port: {server.port}\n"
            "  from_address: news@acme.test\n  from_name: Acme News\n",
            encoding="utf-8",
        )
        result = run("email", "test", "--to", "ann@example.com")
        assert result.exit_code == 0, result.output
        assert "server answer: 250" in result.stdout
        [received] = server.received
        assert received.message["To"] == "ann@example.com"
        assert received.message["From"] == "Acme News <news@acme.test>"
        server.refuse_recipient("nobody@example.com", "550 5.1.1 no such user")
        refused = run("email", "test", "--to", "nobody@example.com")
        assert refused.exit_code == 1
        assert "550 5.1.1 no such user" in refused.stderr


def test_email_settings_errors_name_the_line(leadflow: Leadflow, run: Run, tmp_path: Path) -> None:
    (tmp_path / "leadflow.yaml").write_text("email:\n  host: x\n  securty: ssl\n", encoding="utf-8")
    result = run("email", "test", "--to", "ann@example.com")
    assert result.exit_code == 1
    assert "leadflow.yaml:3: key 'email.securty'" in result.stderr


def test_email_render_previews_for_a_lead(leadflow: Leadflow, run: Run) -> None:
    lead_id = add_lead(leadflow)
    deliver(leadflow, lead_id)  # writes templates/news.email.yaml
    result = run("email", "render", "news", "--lead", str(lead_id), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["subject"] == "News for Ann"
    assert shown["to"] == "ann@example.com"
    assert shown["links"] == ["https://acme.test/pricing", "https://acme.test/blog"]
    assert "List-Unsubscribe" in shown["headers"]
    text = run("email", "render", "news", "--lead", str(lead_id))
    assert "Subject: News for Ann" in text.stdout
    missing = run("email", "render", "nope", "--lead", str(lead_id))
    assert missing.exit_code == 1 and "nope.email.yaml: no such template file" in missing.stderr


def test_suppressions_add_list_remove(leadflow: Leadflow, run: Run) -> None:
    added = run("suppressions", "add", "email", "Bob@example.com", "--reason", "asked")
    assert added.exit_code == 0 and "suppressed" in added.stdout
    again = run("suppressions", "add", "email", "Bob@example.com")
    assert "already suppressed" in again.stdout
    listed = run("suppressions", "list", "--channel", "email", "--json")
    [entry] = json.loads(listed.stdout)
    assert (entry["address"], entry["reason"]) == ("bob@example.com", "asked")
    removed = run("suppressions", "remove", "email", "Bob@example.com")
    assert "removed" in removed.stdout
    assert leadflow.suppressions() == []
    bad = run("suppressions", "add", "fax", "123")
    assert bad.exit_code == 1 and "unknown channel 'fax'" in bad.stderr
