"""The leadflow command line on a real store (SQLite and PostgreSQL), as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from leadflow import LeadFilter, Leadflow, Settings, open_leadflow
from leadflow.cli.main import app

runner = CliRunner()


def cli(*args: str | Path, db: str | None = None) -> Result:
    argv = [str(a) for a in args]
    if db is not None:
        argv = ["--db", db, *argv]
    result = runner.invoke(app, argv, env={"LEADFLOW_DATABASE_URL": None})
    # whatever happens, a user never sees a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result


def error_line(result: Result) -> str:
    """The one red line a failing command prints on stderr."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def read_errors(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder for the command (init writes its config there)."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


# init and config -------------------------------------------------------------------------
def test_init_writes_config_creates_database_and_source_then_leaves_them(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    first = cli("init", db=database_url)
    assert first.exit_code == 0, first.output
    config = workdir / "leadflow.yaml"
    text = config.read_text()
    assert f"database_url: {json.dumps(database_url)}" in text
    assert "public_url:" in text and "default_phone_region: US" in text
    [website] = leadflow.sources()
    assert website.name == "website"
    assert f"write key: {website.write_key}" in first.stdout
    assert "http://127.0.0.1:8000/v1/batch" in first.stdout

    config.write_text(text + "# my own note\n")
    second = cli("init", db=database_url)
    assert second.exit_code == 0, second.output
    assert "exists: left unchanged" in second.stdout
    assert config.read_text().endswith("# my own note\n")
    assert [s.write_key for s in leadflow.sources()] == [website.write_key]
    assert f"write key: {website.write_key}" in second.stdout


def test_init_without_options_uses_a_sqlite_file_in_the_folder(workdir: Path) -> None:
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert (workdir / "leadflow.db").is_file()
    assert 'database_url: ""' in (workdir / "leadflow.yaml").read_text()
    with open_leadflow(Settings(home=workdir)) as store:
        assert [s.name for s in store.sources()] == ["website"]
    # later commands in the folder find the same store through leadflow.yaml
    listed = cli("sources", "list", "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["website"]


def test_config_file_is_read_and_its_errors_name_file_line_and_key(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    leadflow.create_source("from-config")
    config = workdir / "leadflow.yaml"
    config.write_text(f"# comment\ndatabase_url: {json.dumps(database_url)}\n")
    listed = cli("sources", "list", "--json")
    assert [s["name"] for s in json.loads(listed.stdout)] == ["from-config"]

    config.write_text(f"database_url: {json.dumps(database_url)}\ndatabse_url: x\n")
    wrong = cli("sources", "list")
    assert wrong.exit_code == 1
    assert f"{config}:2: unknown key 'databse_url'" in error_line(wrong)

    config.write_text("db_pool_size: many\n")
    typed = cli("sources", "list")
    assert typed.exit_code == 1
    assert f"{config}:1: key 'db_pool_size'" in error_line(typed)


# sources ---------------------------------------------------------------------------------
def test_sources_create_and_list(database_url: str, leadflow: Leadflow) -> None:
    created = cli("sources", "create", "webinars", db=database_url)
    assert created.exit_code == 0, created.output
    [stored] = leadflow.sources()
    assert stored.name == "webinars"
    assert f"write key: {stored.write_key}" in created.stdout

    as_json = cli("sources", "create", "mobile app", "--json", db=database_url)
    body = json.loads(as_json.stdout)
    assert body["name"] == "mobile app"
    assert body["write_key"] == leadflow.sources()[1].write_key

    table = cli("sources", "list", db=database_url)
    assert "webinars" in table.stdout and stored.write_key in table.stdout
    listed = json.loads(cli("sources", "list", "--json", db=database_url).stdout)
    assert [(s["name"], s["write_key"]) for s in listed] == [
        (s.name, s.write_key) for s in leadflow.sources()
    ]

    duplicate = cli("sources", "create", "webinars", db=database_url)
    assert duplicate.exit_code == 1
    assert error_line(duplicate) == "error: a source named 'webinars' already exists"
    assert len(leadflow.sources()) == 2


# import leads ----------------------------------------------------------------------------
LEADS_CSV = (
    "email,first_name,last_name,company,company_size,created_at,plan\n"
    "ada@example.com,Ada,Lovelace,Analytical,12,2024-01-05T10:00:00Z,pro\n"
    "not-an-email,Bob,Broken,X,,,\n"
    "grace@example.com,Grace,Hopper,Navy,500,,\n"
    ",Nobody,Here,Y,,,\n"
    "alan@example.com,Alan,Turing,Bletchley,,,free,extra\n"
    "Linus@Example.com,Linus,T,,,,\n"
)


def test_import_leads_keeps_good_rows_and_reports_bad_ones_by_line(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    (workdir / "leads.csv").write_text(LEADS_CSV)
    result = cli("import", "leads", "leads.csv", "--json", db=database_url)
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["rows"] == 6
    assert summary["imported"] == 3
    assert summary["invalid"] == 3
    assert summary["leads_created"] == 3
    assert summary["errors_file"] == "leads.errors.csv"
    assert "3 invalid row(s)" in result.stderr and "leads.errors.csv" in result.stderr

    page = leadflow.leads(limit=10)
    assert sorted(lead.email or "" for lead in page.items) == [
        "ada@example.com",
        "grace@example.com",
        "linus@example.com",
    ]
    [ada] = leadflow.leads(LeadFilter(email="ada@example.com")).items
    assert ada.traits["first_name"] == "Ada" and ada.traits["plan"] == "pro"
    assert ada.traits["company_size"] == 12
    assert ada.first_seen_at is not None
    assert ada.first_seen_at.isoformat().startswith("2024-01-05T10:00:00")
    assert {s.name for s in leadflow.sources()} == {"import"}

    errors = read_errors(workdir / "leads.errors.csv")
    assert [(e["line"], e["field"]) for e in errors] == [
        ("3", "email"),
        ("5", "email"),
        ("6", "row"),
    ]
    assert errors[0]["reason"] == "not an email address: 'not-an-email'"
    assert errors[1]["reason"] == "is required"
    assert errors[2]["reason"] == "has 8 values; the header has 7 columns"
    assert errors[2]["raw"] == "alan@example.com,Alan,Turing,Bletchley,,,free,extra"

    again = cli("import", "leads", "leads.csv", "--json", db=database_url)
    repeat = json.loads(again.stdout)
    assert (repeat["imported"], repeat["duplicates"], repeat["leads_created"]) == (0, 3, 0)
    assert len(leadflow.leads(limit=10).items) == 3


def test_import_leads_text_summary_and_exit_zero_when_all_rows_are_good(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    (workdir / "clean.csv").write_text("email,user_id\nkim@example.com,crm-7\n")
    result = cli("import", "leads", "clean.csv", "--source", "crm", db=database_url)
    assert result.exit_code == 0, result.output
    assert "rows read      1" in result.stdout
    assert "leads created  1" in result.stdout
    assert not (workdir / "clean.errors.csv").exists()
    [kim] = leadflow.leads().items
    assert kim.identities == {"userId": ["crm-7"], "email": ["kim@example.com"]}
    assert [s.name for s in leadflow.sources()] == ["crm"]


def test_import_file_problems_are_one_line_errors(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    missing = cli("import", "leads", "nope.csv", db=database_url)
    assert missing.exit_code == 1
    assert error_line(missing) == "error: nope.csv: no such file"

    (workdir / "names.csv").write_text("first_name,last_name\nAda,Lovelace\n")
    wrong = cli("import", "leads", "names.csv", db=database_url)
    assert wrong.exit_code == 1
    assert "names.csv: line 1: the header has no 'email' column" in error_line(wrong)

    (workdir / "ok.csv").write_text("email\nok@example.com\n")
    nowhere = cli("import", "leads", "ok.csv", "--errors", "no/such/dir/e.csv", db=database_url)
    assert nowhere.exit_code == 1
    assert "its folder does not exist" in error_line(nowhere)

    (workdir / "events.txt").write_text("{}\n")
    usage = cli("import", "events", "events.txt", db=database_url)
    assert usage.exit_code == 2
    assert "--format" in usage.stderr
    assert leadflow.leads().items == []


# import events ---------------------------------------------------------------------------
EVENTS_JSONL = (
    '{"type":"identify","userId":"u1","traits":{"email":"ada@example.com","plan":"pro"}}\n'
    '{"type":"track","event":"Webinar Attended","userId":"u1","properties":{"minutes":42}}\n'
    "{this is not json\n"
    '{"type":"track","userId":"u1","properties":{"x":1}}\n'
    "\n"
    '{"type":"page","anonymousId":"anon-9","name":"Pricing",'
    '"context":{"page":{"url":"https://example.com/pricing"}}}\n'
)


def test_import_events_jsonl_reports_broken_lines_and_stores_the_rest(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    (workdir / "events.jsonl").write_text(EVENTS_JSONL)
    errors_at = workdir / "problems.csv"
    result = cli(
        "import", "events", "events.jsonl", "--errors", errors_at, "--json", db=database_url
    )
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["imported"], summary["invalid"]) == (5, 3, 2)
    assert summary["leads_created"] == 2
    errors = read_errors(errors_at)
    assert [(e["line"], e["field"]) for e in errors] == [("3", "line"), ("4", "event")]
    assert errors[0]["reason"].startswith("not valid JSON")
    assert errors[1]["reason"] == "is required for track"
    assert errors[1]["raw"] == '{"type":"track","userId":"u1","properties":{"x":1}}'

    [ada] = leadflow.leads(LeadFilter(email="ada@example.com")).items
    events = leadflow.lead_events(ada.id)
    assert sorted((e.type, e.name) for e in events) == [
        ("identify", None),
        ("track", "Webinar Attended"),
    ]
    webinar = next(e for e in events if e.type == "track")
    assert webinar.properties == {"minutes": 42}

    again = json.loads(cli("import", "events", "events.jsonl", "--json", db=database_url).stdout)
    assert (again["imported"], again["duplicates"]) == (0, 3)


def test_import_events_csv_builds_nested_objects_from_dotted_columns(
    workdir: Path, database_url: str, leadflow: Leadflow
) -> None:
    (workdir / "events.csv").write_text(
        "type,event,userId,timestamp,properties.plan,properties.seats,properties.code,"
        "traits.email,context.campaign.name,context.campaign.source\n"
        "track,Trial Started,u9,2024-03-01T00:00:00Z,pro,12,007,zed@example.com,spring,google\n"
        "identify,,,,,,,only@example.com,,\n"
    )
    result = cli("import", "events", "events.csv", db=database_url)
    assert result.exit_code == 0, result.output
    [zed] = leadflow.leads(LeadFilter(email="zed@example.com")).items
    assert zed.identities == {"userId": ["u9"], "email": ["zed@example.com"]}
    assert zed.first_touch == {"campaign": {"name": "spring", "source": "google"}}
    [trial] = leadflow.lead_events(zed.id)
    assert trial.name == "Trial Started"
    assert trial.properties == {"plan": "pro", "seats": 12, "code": "007"}
    assert trial.timestamp.isoformat().startswith("2024-03-01T00:00:00")
    # an email-only identify is a lead of its own, known by email alone
    [only] = leadflow.leads(LeadFilter(email="only@example.com")).items
    assert only.identities == {"email": ["only@example.com"]}


# leads and identity ----------------------------------------------------------------------
def seed(leadflow: Leadflow) -> int:
    source = leadflow.create_source("web")
    leadflow.ingest(
        source,
        [
            {"type": "page", "anonymousId": "a-1", "name": "Home"},
            {
                "type": "identify",
                "userId": "u-1",
                "anonymousId": "a-1",
                "traits": {"email": "ada@example.com", "first_name": "Ada", "company": "Acme"},
            },
            {"type": "track", "event": "Demo Requested", "userId": "u-1"},
            {"type": "identify", "userId": "u-2", "traits": {"email": "bob@example.com"}},
        ],
        route_type=None,
    )
    [ada] = leadflow.leads(LeadFilter(email="ada@example.com")).items
    return ada.id


def test_leads_list_json_carries_id_identities_traits_stage_and_scores(
    database_url: str, leadflow: Leadflow
) -> None:
    ada_id = seed(leadflow)
    result = cli("leads", "list", "--json", db=database_url)
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [lead["email"] for lead in listed] == ["bob@example.com", "ada@example.com"]
    ada = listed[1]
    assert ada["id"] == ada_id
    assert ada["identities"] == {
        "userId": ["u-1"],
        "email": ["ada@example.com"],
        "anonymousId": ["a-1"],
    }
    assert ada["traits"] == {"first_name": "Ada", "company": "Acme"}
    assert ada["stage"] == "lead"
    assert set(ada["scores"]) == {
        "fit",
        "fit_grade",
        "engagement",
        "p_convert",
        "model_version",
        "scored_at",
    }

    filtered = json.loads(
        cli("leads", "list", "--email", "ADA@example.com", "--json", db=database_url).stdout
    )
    assert [lead["id"] for lead in filtered] == [ada_id]
    paged = cli("leads", "list", "--limit", "1", db=database_url)
    assert "bob@example.com" in paged.stdout and "ada@example.com" not in paged.stdout
    assert "next page: --after" in paged.stdout
    table = cli("leads", "list", "--search", "ada", db=database_url)
    assert "Ada" in table.stdout and "Acme" in table.stdout and "bob@" not in table.stdout

    bad_stage = cli("leads", "list", "--stage", "hot", db=database_url)
    assert bad_stage.exit_code == 2
    assert "unknown stage 'hot'" in bad_stage.stderr


def test_leads_show_json_with_events_and_panels(database_url: str, leadflow: Leadflow) -> None:
    ada_id = seed(leadflow)
    shown = json.loads(cli("leads", "show", str(ada_id), "--json", db=database_url).stdout)
    assert shown["id"] == ada_id
    assert shown["identities"]["email"] == ["ada@example.com"]
    assert shown["traits"]["first_name"] == "Ada"
    assert shown["stage"] == "lead"
    assert "engagement" in shown["scores"]
    assert "events" not in shown

    with_events = json.loads(
        cli("leads", "show", str(ada_id), "--json", "--events", "2", db=database_url).stdout
    )
    recent = leadflow.lead_events(ada_id, 2)
    assert [e["message_id"] for e in with_events["events"]] == [e.message_id for e in recent]
    assert len(recent) == 2

    panels = cli("leads", "show", str(ada_id), db=database_url)
    assert panels.exit_code == 0, panels.output
    for title in ("identities", "traits", "account", "scores", "first touch", "recent events"):
        assert title in panels.stdout
    assert "Demo Requested" in panels.stdout and "u-1" in panels.stdout


def test_leads_show_of_an_unknown_id_names_it(database_url: str, leadflow: Leadflow) -> None:
    result = cli("leads", "show", "424242", db=database_url)
    assert result.exit_code == 1
    assert error_line(result) == "error: no lead with id 424242"
    assert result.stdout == ""


def test_identity_merges_and_conflicts(database_url: str, leadflow: Leadflow) -> None:
    ada_id = seed(leadflow)
    source = leadflow.sources()[0]
    # a known visitor, then another one that claims Ada's email with another user id
    leadflow.ingest(source, [{"type": "page", "anonymousId": "a-2", "name": "Blog"}])
    leadflow.ingest(
        source,
        [
            {"type": "identify", "userId": "u-1", "anonymousId": "a-2"},
            {"type": "identify", "userId": "u-3", "traits": {"email": "ada@example.com"}},
        ],
    )
    [merge] = json.loads(cli("identity", "merges", "--json", db=database_url).stdout)
    assert merge["survivor_id"] == ada_id and merge["merged_id"] != ada_id
    assert merge["cause"] == "identify via anonymous_id:a-2"
    [bob] = leadflow.leads(LeadFilter(email="bob@example.com")).items
    of_ada = cli("identity", "merges", "--lead", str(ada_id), "--json", db=database_url)
    assert [m["merged_id"] for m in json.loads(of_ada.stdout)] == [merge["merged_id"]]
    of_bob = cli("identity", "merges", "--lead", str(bob.id), "--json", db=database_url)
    assert json.loads(of_bob.stdout) == []
    assert "no merges" in cli("identity", "merges", "--lead", str(bob.id), db=database_url).stdout

    [conflict] = json.loads(cli("identity", "conflicts", "--json", db=database_url).stdout)
    assert conflict["lead_id"] == ada_id
    assert conflict["key"] == "user_id:u-3"
    assert conflict["reason"] == "second user id u-3"
    table = cli("identity", "conflicts", db=database_url)
    assert "second user id u-3" in table.stdout


# errors and version ----------------------------------------------------------------------
def test_an_unreachable_postgresql_is_one_clear_line() -> None:
    url = "postgresql://leadflow:secret@127.0.0.1:1/leadflow"
    result = cli("leads", "list", db=url)
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("error: database postgresql://leadflow:***@127.0.0.1:1/leadflow: ")
    assert "cannot reach the database" in line
    assert "secret" not in result.output


def test_version() -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == "leadflow 0.1.0"


# serve -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_serve_serves_the_api(tmp_path: Path) -> None:
    port = free_port()
    db = f"sqlite:///{tmp_path / 'served.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    command = [sys.executable, "-m", "leadflow.cli", "--db", db, "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        body: dict[str, Any] | None = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                body = response.json()
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert body is not None, "the server never answered /healthz"
        assert body["status"] == "ok"
        assert httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5).status_code == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=15)
    text = output.decode()
    assert f"leadflow on http://127.0.0.1:{port}" in text
    assert f"API docs: http://127.0.0.1:{port}/docs" in text
    assert f"tracking endpoint: http://127.0.0.1:{port}/v1/batch" in text
    assert (tmp_path / "served.db").is_file()
