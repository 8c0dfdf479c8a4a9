"""A worker killed with SIGKILL in the middle of a large send, then started again: every
recipient gets exactly one message (one Message-ID), through a real SMTP server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from leadflow import Leadflow, Settings
from leadflow.adapters.db.tables import deliveries, journey_runs, leads
from leadflow.adapters.email.capture_server import CaptureServer
from leadflow.jobs.nurture import run_steps
from tests.conftest import _truncate as truncate

RECIPIENTS = 300


@pytest.fixture
def smtp() -> Iterator[CaptureServer]:
    server = CaptureServer()
    server.start()
    yield server
    server.stop()


def _home(folder: Path, smtp: CaptureServer) -> None:
    (folder / "leadflow.yaml").write_text(
        f"email:\n  host: 127.0.0.1\n  port: {smtp.port}\n  security: none\n"
        "  from_address: news@leadflow.test\n"
        "nurture:\n  frequency_cap: 0\n  send_lease: 3m\n",
        encoding="utf-8",
    )
    (folder / "templates").mkdir(exist_ok=True)
    (folder / "templates" / "blast.email.yaml").write_text(
        "subject: Hello {{ lead.first_name }}\ntext: Our spring update.\n", encoding="utf-8"
    )


def _queue(app: Leadflow) -> None:
    now = datetime.now(UTC)
    version = app.save_journey(
        "blast", {"trigger": {"stage": "mql"}, "steps": [{"id": "news", "email": "blast"}]}
    ).version
    with app.transaction() as conn:
        rows = [
            {"email": f"r{i}@example.com", "traits": {"first_name": f"R{i}"}, "stage": "mql",
             "version": 1, "fit_score": 0.0, "engagement_score": 0.0, "first_touch": {},
             "score_state": {}, "created_at": now, "updated_at": now}
            for i in range(RECIPIENTS)
        ]  # fmt: skip
        conn.execute(insert(leads), rows)
        ids = list(conn.scalars(select(leads.c.id)))
        conn.execute(
            insert(journey_runs),
            [
                {"journey": "blast", "lead_id": lead, "entry": 1, "status": "active",
                 "step": None, "due_at": now, "state": {}, "version": version,
                 "entered_at": now, "updated_at": now, "exit_reason": ""}
                for lead in ids
            ],
        )  # fmt: skip
    assert run_steps(app).sends == RECIPIENTS


def _worker(url: str, home: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "leadflow.cli", "--db", url, "worker", "--interval", "0.05"]
    env = {**os.environ, "LEADFLOW_HOME": str(home)}
    return subprocess.Popen(
        command, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _sent(app: Leadflow) -> int:
    with app.engine.connect() as conn:
        query = select(func.count()).select_from(deliveries).where(deliveries.c.status == "sent")
        return int(conn.scalar(query) or 0)


def _wait(condition: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_killed_worker_loses_nothing_and_sends_nothing_twice(
    leadflow: Leadflow, settings: Settings, smtp: CaptureServer
) -> None:
    _home(settings.home, smtp)
    app = Leadflow(Settings(database_url=settings.database_url, home=settings.home))
    try:
        _queue(app)
        first = _worker(settings.database_url, settings.home)
        _wait(lambda: len(smtp.received) >= RECIPIENTS // 4, 120, "the first quarter")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        received_at_kill = len(smtp.received)
        assert received_at_kill < RECIPIENTS, "the worker finished before it could be killed"
        # The killed worker's lease would hold its batch for 3 minutes: let it lapse now.
        with app.transaction() as conn:
            conn.execute(
                deliveries.update()
                .where(deliveries.c.status == "queued")
                .values(next_attempt_at=datetime.now(UTC))
            )
        second = _worker(settings.database_url, settings.home)
        try:
            _wait(lambda: _sent(app) == RECIPIENTS, 180, "every delivery to be sent")
        finally:
            second.terminate()
            second.wait(10)
    finally:
        app.close()
    by_recipient: dict[str, set[str]] = defaultdict(set)
    for item in smtp.received:
        for rcpt in item.rcpt_tos:
            by_recipient[rcpt].add(str(item.message["Message-ID"]))
    assert len(by_recipient) == RECIPIENTS
    assert all(len(ids) == 1 for ids in by_recipient.values()), "a recipient got two messages"
    # At most the one message in flight when the worker died went out twice, with the same id.
    assert len(smtp.received) - RECIPIENTS <= 1


def test_two_workers_share_a_send_on_postgresql(
    pg_url: str, tmp_path: Path, smtp: CaptureServer
) -> None:
    """On PostgreSQL several workers take due work with SKIP LOCKED and leases."""
    _home(tmp_path, smtp)
    app = Leadflow(Settings(database_url=pg_url, home=tmp_path))
    app.migrate()
    truncate(app)
    try:
        _queue(app)
        workers = [_worker(pg_url, tmp_path) for _ in range(2)]
        try:
            _wait(lambda: _sent(app) == RECIPIENTS, 180, "every delivery to be sent")
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(10)
        recipients = [rcpt for item in smtp.received for rcpt in item.rcpt_tos]
        assert len(recipients) == RECIPIENTS and len(set(recipients)) == RECIPIENTS
    finally:
        truncate(app)
        app.close()
