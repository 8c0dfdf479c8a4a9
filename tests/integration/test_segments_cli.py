"""``leadflow segments`` on a real store (SQLite and PostgreSQL), as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from leadflow import Leadflow
from leadflow.cli.main import app
from tests.integration.scoring_support import identify, ingest, lead_id

runner = CliRunner()

HOT = """\
description: SaaS and fintech leads
all:
  - field: trait.industry
    op: in
    value: [SaaS, Fintech]
  - field: fit
    op: gte
    value: 0
"""


def cli(db: str, *args: str | Path) -> Result:
    result = runner.invoke(app, ["--db", db, *map(str, args)], env={"LEADFLOW_DATABASE_URL": None})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def leads(leadflow: Leadflow) -> list[int]:
    source = leadflow.create_source("website")
    ingest(
        leadflow, source,
        identify("u1", industry="SaaS"), identify("u2", industry="Fintech"),
        identify("u3", industry="Retail"),
    )  # fmt: skip
    return [lead_id(leadflow, user) for user in ("u1", "u2", "u3")]


def test_create_show_count_members_refresh_and_delete(
    workdir: Path, database_url: str, leads: list[int]
) -> None:
    (workdir / "hot.yaml").write_text(HOT)
    created = cli(database_url, "segments", "create", "hot", "--file", "hot.yaml")
    assert created.exit_code == 0, created.output
    assert "saved segment 'hot': 2 members (2 entered, 0 left)" in created.stdout

    listed = cli(database_url, "segments", "list")
    assert "hot" in listed.stdout and "SaaS and fintech leads" in listed.stdout
    shown = cli(database_url, "segments", "show", "hot", "--json")
    assert json.loads(shown.stdout)["members"] == 2
    assert "op: in" in cli(database_url, "segments", "show", "hot").stdout
    assert cli(database_url, "segments", "count", "hot").stdout.strip() == "2"

    page = cli(database_url, "segments", "members", "hot", "--limit", "1", "--json")
    assert [m["lead_id"] for m in json.loads(page.stdout)] == [leads[0]]
    table = cli(database_url, "segments", "members", "hot", "--limit", "1")
    assert f"more: --after {leads[0]}" in table.stdout

    refreshed = cli(database_url, "segments", "refresh", "--json")
    assert json.loads(refreshed.stdout) == [
        {"segment": "hot", "members": 2, "entered": 0, "left": 0}
    ]
    assert cli(database_url, "segments", "delete", "hot").exit_code == 0
    gone = cli(database_url, "segments", "count", "hot")
    assert gone.exit_code == 1
    assert "no segment named 'hot'" in gone.stderr


def test_a_bad_file_names_its_line_and_the_path_of_the_bad_node(
    workdir: Path, database_url: str, leads: list[int]
) -> None:
    (workdir / "bad.yaml").write_text(HOT.replace("op: gte", "op: above"))
    result = cli(database_url, "segments", "create", "hot", "--file", "bad.yaml")
    assert result.exit_code == 1
    assert "bad.yaml:7: segments.hot.all[1].op: unknown operator 'above'" in result.stderr
    assert "no segments yet" in cli(database_url, "segments", "list").stdout
