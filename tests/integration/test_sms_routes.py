"""The SMS callback routes on a real store: the token, delivery reports that fail a text,
keywords from numbers no lead has, and redelivered inbound texts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow import Leadflow, Settings, open_leadflow
from leadflow.api.app import create_app
from tests.integration.kannel_support import free_port

TOKEN = "route-token"
PHONE, STRANGER = "+12025550180", "+12025550181"


def _open(database_url: str, home: Path, **sms: Any) -> Leadflow:
    config = {"program": "Acme Deals", "sender": "12345", "capture": {"file": "out.jsonl"}}
    return open_leadflow(Settings(database_url=database_url, home=home, sms={**config, **sms}))


@pytest.fixture
def routes(
    leadflow: Leadflow, database_url: str, tmp_path: Path
) -> Iterator[tuple[Leadflow, TestClient]]:
    app = _open(database_url, tmp_path, webhook_token=TOKEN)
    app.ingest(
        app.ensure_source("web"),
        [{"type": "identify", "userId": "u1", "traits": {"phone": PHONE}}],
    )
    try:
        yield app, TestClient(create_app(leadflow=app))
    finally:
        app.close()


def _captured(app: Leadflow) -> list[dict[str, Any]]:
    path = app.settings.home / "out.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _inbound(client: TestClient, sender: str, text: str, id: str, token: str = TOKEN) -> Any:
    params = {
        "token": token,
        "from": sender,
        "to": "12345",
        "text": text,
        "id": id,
        "time": "1795689679",
    }
    return client.get("/sms/kannel/inbound", params=params)


def test_the_routes_need_the_token(
    routes: tuple[Leadflow, TestClient], database_url: str, tmp_path: Path
) -> None:
    app, client = routes
    assert _inbound(client, PHONE, "STOP", "m1", token="wrong").status_code == 401
    assert client.get("/sms/kannel/dlr", params={"key": "x", "status": 1}).status_code == 401
    assert app.suppressions("sms") == []
    closed = _open(database_url, tmp_path / "other")
    try:
        answer = TestClient(create_app(leadflow=closed)).get(
            "/sms/kannel/inbound", params={"token": "", "from": PHONE, "text": "STOP"}
        )
    finally:
        closed.close()
    assert answer.status_code == 401
    assert "sms.webhook_token is not set" in answer.json()["message"]


def test_reports_fail_a_text_with_the_answer_and_never_undo_delivered(
    routes: tuple[Leadflow, TestClient],
) -> None:
    app, client = routes
    lead = app.leads().items[0].id
    app.send_sms(PHONE, "First", key="t:first")
    app.send_sms(PHONE, "Second", key="t:second")

    def report(key: str, status: int, answer: str = "") -> None:
        params = {"token": TOKEN, "key": key, "status": status, "answer": answer}
        reply = client.get("/sms/kannel/dlr", params=params)
        assert (reply.status_code, reply.text) == (200, "")

    report("t:first", 8, "ACK/")
    report("t:first", 16, "NACK/0x0000000b/Invalid Destination Address")
    report("t:second", 1)
    report("t:second", 2, "late failure")
    report("unknown-key", 1)
    rows = {d.key: d for d in app.deliveries(lead)}
    assert rows["t:first"].status == "failed"
    assert "Invalid Destination Address" in rows["t:first"].reason
    assert rows["t:second"].status == "delivered"


def test_keywords_from_unknown_numbers_and_redelivered_texts(
    routes: tuple[Leadflow, TestClient],
) -> None:
    app, client = routes
    answer = _inbound(client, STRANGER, "Unsubscribe", "m1")
    assert (answer.status_code, answer.text) == (200, "")
    assert [s.address for s in app.suppressions("sms")] == [STRANGER]
    assert [m["to"] for m in _captured(app)] == [STRANGER]  # confirmed, without a lead
    _inbound(client, STRANGER, "Unsubscribe", "m1")  # the gateway retries
    assert len(_captured(app)) == 1
    _inbound(client, STRANGER, "start", "m2")
    assert app.suppressions("sms") == []
    assert _captured(app)[-1]["text"].startswith("You are resubscribed to Acme Deals.")

    _inbound(client, PHONE, "HELP", "m3")
    _inbound(client, PHONE, "HELP", "m3")  # redelivered: one answer only
    helps = [m for m in _captured(app) if m["to"] == PHONE]
    assert len(helps) == 1 and "Reply STOP to opt out" in helps[0]["text"]

    _inbound(client, "not a number", "STOP", "m4")  # ignored: nothing to suppress
    _inbound(client, STRANGER, "who is this?", "m5")  # a reply from nobody we know
    assert app.suppressions("sms") == []
    assert len(_captured(app)) == 3


def test_a_confirmation_that_could_not_go_out_goes_with_the_redelivered_text(
    routes: tuple[Leadflow, TestClient], database_url: str, tmp_path: Path
) -> None:
    app, _client = routes
    lead = app.leads().items[0].id
    down = _open(
        database_url,
        tmp_path,
        provider="kannel",
        kannel={"url": f"http://127.0.0.1:{free_port()}", "username": "u"},
    )
    try:
        first = down.sms_inbound(PHONE, "STOP", message_id="gw-1", provider="kannel")
    finally:
        down.close()
    assert first.reply is not None and first.reply.status == "queued"
    assert "cannot reach" in first.reply.detail
    assert app.deliveries(lead)[0].status == "queued"  # the worker, or a redelivery, sends it

    again = app.sms_inbound(PHONE, "STOP", message_id="gw-1", provider="kannel")
    assert again.action == "already_opted_out"
    assert again.reply is not None and again.reply.status == "sent"
    assert [m["text"][:16] for m in _captured(app)] == ["You are unsubscr"]
    assert app.deliveries(lead)[0].status == "sent"
    app.sms_inbound(PHONE, "STOP", message_id="gw-1", provider="kannel")
    assert len(_captured(app)) == 1
