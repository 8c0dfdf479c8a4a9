"""The consent ledger, the suppression list, activity events, export and erasure, through the
library, the API and the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow import Leadflow, Settings
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.domain.errors import NotFound, ValidationError
from leadflow.services.activity import EMAIL_OPENED, Activity
from tests.integration.scoring_support import T0, identify, ingest


def _lead(leadflow: Leadflow, user: str, **traits: object) -> int:
    source = leadflow.ensure_source("web")
    ingest(leadflow, source, identify(user, T0, **traits))
    [found] = [lead for lead in leadflow.leads().items if user in lead.identities["userId"]]
    return found.id


def test_the_consent_ledger_keeps_every_change_with_its_proof(leadflow: Leadflow) -> None:
    lead = _lead(leadflow, "c1", email="c1@example.com")
    leadflow.set_consent(lead, "email", "pending", "form", {"form": "newsletter"})
    leadflow.set_consent(lead, "email", "granted", "double_opt_in", {"ip": "203.0.113.9"})
    leadflow.set_consent(lead, "sms", "revoked", "keyword", {"keyword": "STOP"})
    found = leadflow.consent(lead)
    assert found["current"] == {"email": "granted", "sms": "revoked"}
    assert [(h["channel"], h["status"]) for h in found["history"]] == [
        ("email", "pending"), ("email", "granted"), ("sms", "revoked"),
    ]  # fmt: skip
    assert found["history"][1]["proof"] == {"ip": "203.0.113.9"}
    with pytest.raises(ValidationError, match="channel: unknown channel 'fax'"):
        leadflow.set_consent(lead, "fax", "granted", "form")
    with pytest.raises(ValidationError, match="status: unknown consent status 'maybe'"):
        leadflow.set_consent(lead, "email", "maybe", "form")


def test_the_suppression_list_keeps_the_first_reason(leadflow: Leadflow) -> None:
    assert leadflow.suppress("email", "x@example.com", "hard_bounce", "550 5.1.1")
    assert not leadflow.suppress("email", "x@example.com", "unsubscribe")
    [entry] = leadflow.suppressions("email")
    assert (entry.address, entry.reason, entry.detail) == (
        "x@example.com",
        "hard_bounce",
        "550 5.1.1",
    )
    assert leadflow.unsuppress("email", "x@example.com")
    assert leadflow.suppressions() == []


def test_activity_is_filed_under_the_lead_once(leadflow: Leadflow) -> None:
    lead = _lead(leadflow, "a1", email="a1@example.com")
    opened = Activity(lead, EMAIL_OPENED, "delivery:7:open", T0, {"delivery_id": 7})
    first = leadflow.record_activity([opened])
    again = leadflow.record_activity([opened])
    assert (first.accepted, again.duplicates) == (1, 1)
    events = [e for e in leadflow.lead_events(lead) if e.name == EMAIL_OPENED]
    assert len(events) == 1 and events[0].properties == {"delivery_id": 7}
    assert leadflow.lead(lead).event_count == 2  # the identify and the open


def test_export_holds_everything_and_erase_removes_it_but_keeps_the_opt_out(
    leadflow: Leadflow,
) -> None:
    lead = _lead(leadflow, "e1", email="e1@example.com")
    leadflow.set_consent(lead, "email", "revoked", "unsubscribe_link")
    leadflow.suppress("email", "e1@example.com", "unsubscribe")
    leadflow.record_activity([Activity(lead, EMAIL_OPENED, "delivery:9:open", T0)])
    exported = leadflow.export_lead(lead)
    tables = exported["tables"]
    assert tables["leads"][0]["email"] == "e1@example.com"
    assert {"events", "identities", "consents"} <= set(tables)
    assert len(tables["events"]) == 2
    counts = leadflow.erase_lead(lead)
    assert counts["leads"] == 1 and counts["events"] == 2 and counts["consents"] == 1
    with pytest.raises(NotFound):
        leadflow.lead(lead)
    [kept] = leadflow.suppressions("email")
    assert kept.address == "e1@example.com" and kept.lead_id is None


def test_api_for_journeys_consent_and_erasure(leadflow: Leadflow, settings: Settings) -> None:
    lead = _lead(leadflow, "api1", email="api1@example.com")
    with TestClient(create_app(settings, leadflow)) as client:
        bad = client.put(
            "/api/journeys/j", json={"trigger": {"stage": "mql"}, "steps": [{"wait": "x"}]}
        )
        assert bad.status_code == 400
        assert "journeys.j.steps[0].wait" in bad.json()["message"]
        good = client.put(
            "/api/journeys/j", json={"trigger": {"stage": "mql"}, "steps": [{"wait": "2d"}]}
        )
        assert good.status_code == 200 and good.json()["steps"] == 1
        off = client.patch("/api/journeys/j", json={"enabled": False})
        assert off.json()["enabled"] is False
        assert client.get("/api/journeys/nope").status_code == 404
        consent = client.post(
            f"/api/leads/{lead}/consent",
            json={
                "channel": "sms",
                "status": "granted",
                "source": "form",
                "proof": {"form": "demo"},
            },
        )
        assert consent.json()["current"]["sms"] == "granted"
        assert client.post("/api/offers/redeem", json={"code": "NOPE-1"}).status_code == 404
        export = client.get(f"/api/leads/{lead}/export").json()
        assert export["tables"]["consents"][0]["proof"] == {"form": "demo"}
        assert client.delete(f"/api/leads/{lead}").json()["erased"]["leads"] == 1
        assert client.get(f"/api/leads/{lead}").status_code == 404
        assert client.delete("/api/journeys/j").status_code == 204


def test_cli_names_the_file_and_path_of_a_bad_journey(
    leadflow: Leadflow, settings: Settings, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("trigger: {stage: mqll}\nsteps:\n  - wait: 2d\n", encoding="utf-8")
    runner = CliRunner()
    args = ["--db", settings.database_url, "journeys", "save", "welcome", "--file", str(spec)]
    result = runner.invoke(cli, args, env={"LEADFLOW_HOME": str(settings.home)})
    assert result.exit_code == 1
    assert "bad.yaml: journeys.welcome.trigger.stage: unknown stage 'mqll'" in result.output
    assert "Traceback" not in result.output
    lead = _lead(leadflow, "cli1", email="cli1@example.com")
    out = tmp_path / "export.json"
    args = ["--db", settings.database_url, "leads", "export", str(lead), "--out", str(out)]
    result = runner.invoke(cli, args, env={"LEADFLOW_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["tables"]["leads"][0]["id"] == lead
    args = ["--db", settings.database_url, "offers", "redeem", "NOPE"]
    result = runner.invoke(cli, args, env={"LEADFLOW_HOME": str(settings.home)})
    assert result.exit_code != 0 and "no offer code 'NOPE'" in result.output
