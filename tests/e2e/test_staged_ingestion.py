"""Staged ingestion: the tracking route answers once the request body is stored in the inbox,
and a drainer turns it into events, identities and scores. Real clients, a real server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from leadflow import Leadflow, Settings, SourceRecord, open_leadflow
from leadflow.adapters.db.tables import Event, InboxRow, cast_table
from leadflow.api.app import create_app
from leadflow.domain.events import split_request
from leadflow.services import ingest as ingest_service
from leadflow.services.ingest import IngestResult
from tests.conftest import _truncate
from tests.e2e.conftest import Server, serving
from tests.e2e.test_tracking_clients import _ms, _segment, check_journey, send_journey


def staged_copy(leadflow: Leadflow) -> Leadflow:
    """The same store, opened with staged ingestion."""
    return Leadflow(leadflow.settings.model_copy(update={"ingest_mode": "staged"}), leadflow.clock)


@pytest.fixture
def staged(leadflow: Leadflow) -> Iterator[Server]:
    """A real server in staged mode, its drainer running (the app's lifespan)."""
    source = leadflow.create_source("staged")
    app = staged_copy(leadflow)
    try:
        with serving(create_app(leadflow=app), lifespan="on") as (url, port):
            yield Server(url, port, source)
    finally:
        app.close()


def stage(app: Leadflow, source: SourceRecord, batch: dict[str, Any]) -> IngestResult:
    """What the tracking route does with a /v1/batch body in staged mode."""
    body = orjson.dumps(batch)
    return app.enqueue(source, "batch", body, split_request("batch", batch))


def rows(leadflow: Leadflow, model: Any) -> int:
    with leadflow.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(cast_table(model))) or 0)


def drained(leadflow: Leadflow, events: int, within: float = 15.0) -> float:
    """Wait until the inbox is empty and ``events`` events are stored; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if rows(leadflow, InboxRow) == 0 and rows(leadflow, Event) == events:
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(
        f"inbox {rows(leadflow, InboxRow)} rows, {rows(leadflow, Event)} of {events} events"
    )


def test_a_real_client_journey_lands_through_the_inbox(staged: Server, leadflow: Leadflow) -> None:
    errors: list[Any] = []
    client = _segment(staged.source.write_key, staged.url, sync=False, gzip=True, errors=errors)
    first_at = _ms(datetime.now(UTC) - timedelta(hours=1))
    try:
        send_journey(client, "staged", first_at)
    finally:
        client.join()
    assert errors == []
    drained(leadflow, 6)
    check_journey(leadflow, "staged", first_at, batched=True)


def test_bad_items_are_reported_by_index_and_a_resent_batch_is_stored_once(
    staged: Server, leadflow: Leadflow
) -> None:
    good = {"type": "track", "userId": "u1", "event": "Signed Up", "messageId": "m-1"}
    bad = {"type": "track", "userId": "u1", "messageId": "m-2"}  # no event name
    other = {"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}, "messageId": "m-3"}
    auth = (staged.source.write_key, "")
    with httpx.Client(base_url=staged.url, auth=auth, timeout=10) as http:
        answer = http.post("/v1/batch", json={"batch": [good, bad, other]})
        assert answer.status_code == 400
        body = answer.json()
        assert body["code"] == "invalid_request"
        message = "1 invalid item(s), 2 accepted: item 1: event: is required for track"
        assert body["message"] == message
        drained(leadflow, 2)
        again = http.post("/v1/batch", json={"batch": [good, other]})
        assert again.status_code == 200
        broken = http.post("/v1/batch", content=b'{"batch": [', headers={"Content-Type": "x"})
        assert broken.status_code == 400 and "JSON" in broken.json()["message"]
        unknown = http.post("/v1/batch", json={"batch": [good]}, auth=("nope", ""))
        assert unknown.status_code == 401
    drained(leadflow, 2)  # the resent messages were duplicates: still two events
    [listed] = leadflow.leads().items
    assert sorted(e.message_id for e in leadflow.lead_events(listed.id)) == ["m-1", "m-3"]


def test_the_event_that_makes_an_mql_shows_within_a_second(
    staged: Server, leadflow: Leadflow
) -> None:
    auth = (staged.source.write_key, "")
    traits = {"email": "vp@acme.io", "title": "VP Marketing", "industry": "software",
              "company_size": 300, "country": "US"}  # fmt: skip
    with httpx.Client(base_url=staged.url, auth=auth, timeout=10) as http:
        assert http.post("/v1/identify", json={"userId": "vp", "traits": traits}).status_code == 200
        drained(leadflow, 1)
        sent = time.monotonic()
        demo = {"userId": "vp", "event": "Demo Requested", "messageId": "demo-1"}
        assert http.post("/v1/track", json=demo).status_code == 200
        while True:
            [lead] = http.get("/api/leads", params={"stage": "mql"}).json()["items"] or [None]
            if lead is not None:
                break
            assert time.monotonic() - sent < 1.0, "not an MQL within a second"
            time.sleep(0.005)
    assert lead["stage"] == "mql"


# --- the drainer, without a server -----------------------------------------------------------
def test_a_failed_drain_keeps_every_request_and_a_later_one_processes_them(
    leadflow: Leadflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = staged_copy(leadflow)
    source = leadflow.create_source("s")
    for n in range(3):
        batch = {"batch": [{"type": "track", "userId": f"u{n}", "event": "Visited",
                            "messageId": f"m{n}"}]}  # fmt: skip
        result = stage(app, source, batch)
        assert (result.accepted, result.errors) == (1, [])
    assert app.inbox_status()["requests"] == 3 and app.inbox_status()["messages"] == 3
    assert rows(leadflow, Event) == 0  # answered, not yet processed

    real = ingest_service.Ingestor.ingest
    calls = 0

    def failing(self: Any, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return real(self, *args)

    monkeypatch.setattr(ingest_service.Ingestor, "ingest", failing)
    with pytest.raises(RuntimeError):
        app.drain_inbox()
    assert app.inbox_status()["requests"] == 3 and rows(leadflow, Event) == 0
    report = app.drain_inbox()
    assert (report.requests, report.result.accepted) == (3, 3)
    assert app.inbox_status()["requests"] == 0 and rows(leadflow, Event) == 3
    assert app.drain_inbox().requests == 0
    app.close()


def test_two_drainers_on_postgresql_process_each_request_once(pg_url: str, tmp_path: Path) -> None:
    """Rows are shared with SKIP LOCKED (SQLite has one writer at a time anyway)."""
    leadflow = open_leadflow(Settings(database_url=pg_url, home=tmp_path))
    _truncate(leadflow)
    app = staged_copy(leadflow)
    source = leadflow.create_source("s")
    for n in range(200):
        batch = {"batch": [{"type": "track", "userId": f"u{n % 40}", "event": "Visited",
                            "messageId": f"m{n}-{k}"} for k in range(5)]}  # fmt: skip
        stage(app, source, batch)
    totals: list[tuple[int, int]] = []

    def drain() -> None:
        accepted = duplicates = 0
        while (report := app.drain_inbox(10)).requests:
            accepted += report.result.accepted
            duplicates += report.result.duplicates
        totals.append((accepted, duplicates))

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(a for a, _ in totals) == 1000 and sum(d for _, d in totals) == 0
    assert all(a > 0 for a, _ in totals)  # both took a share
    assert rows(leadflow, Event) == 1000 and app.inbox_status()["requests"] == 0
    assert len(leadflow.leads(limit=100).items) == 40
    app.close()
    _truncate(leadflow)
    leadflow.close()


def test_the_inbox_commands_show_and_drain_the_waiting_requests(
    leadflow: Leadflow, database_url: str
) -> None:
    from typer.testing import CliRunner

    from leadflow.cli.main import app as cli_app

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(
            cli_app, ["--db", database_url, *args], env={"LEADFLOW_DATABASE_URL": None}
        )
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        return result

    empty = cli("inbox", "status")
    assert "ingestion mode: direct" in empty.stdout and "the inbox is empty" in empty.stdout
    app = staged_copy(leadflow)
    source = leadflow.create_source("s")
    for n in range(4):
        batch = {"batch": [{"type": "page", "anonymousId": f"a{n}", "messageId": f"p{n}-{k}",
                            "properties": {"path": "/pricing"}} for k in range(3)]}  # fmt: skip
        stage(app, source, batch)
    app.close()
    status = json.loads(cli("inbox", "status", "--json").stdout)
    assert (status["requests"], status["messages"], status["mode"]) == (4, 12, "direct")
    assert status["oldest"] is not None
    assert "4 requests (12 messages) waiting" in cli("inbox", "status").stdout
    drained_now = cli("inbox", "drain", "--batch", "3")
    assert "processed 4 requests: 12 events stored, 0 duplicates skipped" in drained_now.stdout
    assert rows(leadflow, Event) == 12 and len(leadflow.leads().items) == 4
    assert json.loads(cli("inbox", "status", "--json").stdout)["requests"] == 0
