"""The dead-letter list and replay from the CLI and the API, and the CLI's test send."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow import Leadflow, Settings
from leadflow.api.app import create_app
from leadflow.cli.main import app as cli
from leadflow.jobs.webhooks import send_due_webhooks
from leadflow.services.webhooks import decode_secret
from tests.integration.test_webhook_delivery import (
    Receiver,
    hooks_config,
    run_dispatch,
    sql_lead,
)

# the fixtures of the delivery tests, shared
from tests.integration.test_webhook_delivery import clock as clock
from tests.integration.test_webhook_delivery import opener as opener
from tests.integration.test_webhook_delivery import receiver as receiver


@pytest.fixture
def dead_letter(opener: Any, receiver: Receiver) -> Iterator[tuple[Leadflow, int]]:
    """A store with one delivery the receiver refused with 410."""
    app = opener(hooks_config(receiver.url))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer(410)
    with httpx.Client() as client:
        send_due_webhooks(app, client, 10)
    [dead] = app.webhook_deliveries(status="dead")
    yield app, dead.id


def test_the_api_lists_dead_letters_and_replays_them(dead_letter: tuple[Leadflow, int]) -> None:
    app, dead = dead_letter
    with TestClient(create_app(leadflow=app)) as client:
        listed = client.get("/api/webhooks/deliveries", params={"status": "dead"}).json()
        assert [item["id"] for item in listed["items"]] == [dead]
        assert listed["items"][0]["last_status"] == 410
        one = client.get(f"/api/webhooks/deliveries/{dead}").json()
        assert one["payload"]["type"] == "lead.handoff"
        replayed = client.post(f"/api/webhooks/deliveries/{dead}/replay")
        assert replayed.status_code == 200
        assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)
        assert (
            client.get("/api/webhooks/deliveries", params={"status": "dead"}).json()["items"] == []
        )
        assert client.post("/api/webhooks/deliveries/999999/replay").status_code == 404
        bad = client.get("/api/webhooks/deliveries", params={"status": "lost"})
        assert bad.status_code == 400
        assert "status: 'lost'" in bad.json()["message"]


def _cli_home(settings: Settings, receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "cli"
    home.mkdir()
    config = {"webhooks": hooks_config(receiver.url)}
    (home / "leadflow.yaml").write_text(yaml.safe_dump(config))
    return {"LEADFLOW_HOME": str(home), "LEADFLOW_DATABASE_URL": settings.resolved_database_url()}


def test_the_cli_lists_replays_and_sends(
    dead_letter: tuple[Leadflow, int], settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    app, dead = dead_letter
    env = _cli_home(settings, receiver, tmp_path)
    runner = CliRunner()
    listed = runner.invoke(cli, ["webhooks", "deliveries", "--status", "dead", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [item["id"] for item in orjson.loads(listed.output)] == [dead]
    endpoints = runner.invoke(cli, ["webhooks", "list", "--json"], env=env)
    assert orjson.loads(endpoints.output)["endpoints"][0]["deliveries"] == {"dead": 1}
    neither = runner.invoke(cli, ["webhooks", "replay"], env=env)
    assert neither.exit_code == 1
    assert "give delivery ids or --all-dead" in neither.output
    replayed = runner.invoke(cli, ["webhooks", "replay", "--all-dead"], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert "1 delivery queued again" in replayed.output
    sent = runner.invoke(cli, ["webhooks", "send"], env=env)
    assert sent.exit_code == 0, sent.output
    assert "1 attempted; 0 pending, 1 delivered, 0 dead" in sent.output
    assert app.webhook_delivery(dead).status == "delivered"
    missing = runner.invoke(cli, ["webhooks", "replay", "424242"], env=env)
    assert missing.exit_code == 1
    assert "no webhook delivery with id 424242" in missing.output


def test_the_cli_test_send_shows_the_answer(
    opener: Any, settings: Settings, receiver: Receiver, tmp_path: Path
) -> None:
    opener(hooks_config(receiver.url))
    env = _cli_home(settings, receiver, tmp_path)
    runner = CliRunner()
    ok = runner.invoke(cli, ["webhooks", "test", "crm"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "crm answered 200" in ok.output
    assert receiver.received[0].payload["type"] == "webhook.test"
    receiver.answer(500)
    failed = runner.invoke(cli, ["webhooks", "test", "crm"], env=env)
    assert failed.exit_code == 1
    assert "crm: HTTP 500" in failed.output
    unknown = runner.invoke(cli, ["webhooks", "test", "nope"], env=env)
    assert unknown.exit_code == 1
    assert "no webhook endpoint 'nope'; endpoints: crm" in unknown.output


def test_secret_prints_a_fresh_valid_secret() -> None:
    result = CliRunner().invoke(cli, ["webhooks", "secret"])
    assert result.exit_code == 0
    assert len(decode_secret(result.output.strip())) == 32
