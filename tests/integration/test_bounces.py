"""Bounces and complaints on both backends, through the API and the command line: hard
bounces and complaints suppress, soft bounces are only recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow import Leadflow
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli_app
from leadflow.services.activity import EMAIL_BOUNCED, EMAIL_COMPLAINED
from tests.integration.email_support import TestClient, add_lead, deliver, events_named
from tests.unit.test_dsn import ARF, POSTFIX_HARD, SOFT_DELAYED


@pytest.fixture
def client(leadflow: Leadflow) -> Iterator[TestClient]:
    with TestClient(create_app(leadflow=leadflow)) as test_client:
        yield test_client


def test_a_hard_bounce_suppresses_and_marks_the_delivery(
    leadflow: Leadflow, client: TestClient
) -> None:
    lead_id = add_lead(leadflow, "gone@example.com")
    other = deliver(leadflow, lead_id, key="run:4:welcome:1")[0]
    bounced = deliver(leadflow, lead_id, key="run:5:welcome:1")[0]  # the Message-ID's key
    answer = client.post("/api/email/bounces", content=POSTFIX_HARD,
                         headers={"Content-Type": "message/rfc822"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    [item] = answer.json()["items"]
    assert item["delivery_id"] == bounced.id and item["kind"] == "hard" and item["suppressed"]
    [entry] = leadflow.suppressions("email")
    assert (entry.address, entry.reason) == ("gone@example.com", "hard_bounce")
    assert "User unknown" in entry.detail
    statuses = {d.id: d.status for d in leadflow.deliveries(lead_id)}
    assert statuses == {bounced.id: "bounced", other.id: "sent"}
    [event] = events_named(leadflow, lead_id, EMAIL_BOUNCED)
    assert event["kind"] == "hard" and event["status"] == "5.1.1"
    # the same report again changes nothing more
    assert client.post("/api/email/bounces", content=POSTFIX_HARD).status_code == 200
    assert len(events_named(leadflow, lead_id, EMAIL_BOUNCED)) == 1
    assert len(leadflow.suppressions("email")) == 1


def test_a_soft_bounce_is_recorded_and_suppresses_nothing(
    leadflow: Leadflow, client: TestClient
) -> None:
    lead_id = add_lead(leadflow, "full@example.com")
    delivery = deliver(leadflow, lead_id, key="run:6:welcome:1")[0]
    leadflow.set_consent(lead_id, "email", "granted", "form")
    answer = client.post("/api/email/bounces", content=SOFT_DELAYED)
    assert answer.status_code == 200, answer.text
    json_answer = client.post(
        "/api/email/bounces",
        json={"address": "full@example.com", "kind": "soft", "diagnostic": "mailbox full"},
    )
    assert json_answer.status_code == 200
    assert json_answer.json()["items"][0]["delivery_id"] == delivery.id  # by address
    assert leadflow.suppressions("email") == []
    assert leadflow.deliveries(lead_id)[0].status == "sent"
    assert leadflow.consent(lead_id)["current"]["email"] == "granted"
    kinds = [e["kind"] for e in events_named(leadflow, lead_id, EMAIL_BOUNCED)]
    assert kinds == ["soft", "soft"]


def test_json_reports_are_validated(leadflow: Leadflow, client: TestClient) -> None:
    answer = client.post("/api/email/bounces", json=[{"address": "a@b.test", "kind": "hard"},
                                                     {"address": "x", "kind": "hard"}])  # fmt: skip
    assert answer.status_code == 400
    assert answer.json()["message"] == "item 1: address: 'x' is not an email address"
    plain = client.post("/api/email/bounces", content=b"Subject: hi\n\nnot a report\n")
    assert plain.status_code == 400
    assert "not a bounce or complaint report" in plain.json()["message"]
    assert leadflow.suppressions("email") == []


def test_a_complaint_file_through_the_cli(
    leadflow: Leadflow, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead_id = add_lead(leadflow, "angry@example.com")
    delivery = deliver(leadflow, lead_id, key="run:8:welcome:1")[0]
    report = tmp_path / "complaint.eml"
    report.write_bytes(ARF)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli_app, ["--db", database_url, "email", "bounces", str(report), "--json"],
        env={"LEADFLOW_DATABASE_URL": None},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert '"kind": "complaint"' in result.stdout
    [entry] = leadflow.suppressions("email")
    assert (entry.address, entry.reason) == ("angry@example.com", "complaint")
    assert leadflow.deliveries(lead_id)[0].status == "bounced"
    consent = leadflow.consent(lead_id)
    assert consent["current"]["email"] == "revoked"
    assert consent["history"][-1]["proof"] == {"delivery_id": delivery.id, "method": "complaint"}
    assert events_named(leadflow, lead_id, EMAIL_COMPLAINED)[0]["kind"] == "complaint"


def test_the_cli_names_a_file_that_is_no_report(
    leadflow: Leadflow, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = tmp_path / "bounce.eml", tmp_path / "note.eml"
    good.write_bytes(POSTFIX_HARD)
    bad.write_bytes(b"Subject: hello\n\nJust a note\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli_app, ["--db", database_url, "email", "bounces", str(good), str(bad)],
        env={"LEADFLOW_DATABASE_URL": None},
    )  # fmt: skip
    assert result.exit_code == 1
    assert "gone@example.com" in result.stdout  # the good file was applied
    assert f"{bad}: not a bounce or complaint report" in result.stderr
    assert "1 of 2 file(s) could not be read" in result.stderr
    assert [s.address for s in leadflow.suppressions("email")] == ["gone@example.com"]
