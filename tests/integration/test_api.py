"""The HTTP API on both backends: tracking routes, auth forms, bodies, CORS, lead listing."""

from __future__ import annotations

import base64
import gzip
import warnings
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select
from starlette.exceptions import StarletteDeprecationWarning

from leadflow import Leadflow, Settings, SourceRecord
from leadflow.adapters.db.tables import Event, cast_table
from leadflow.api.app import create_app

with warnings.catch_warnings():
    # starlette >= 1.x nudges towards httpx2; the httpx-based client still works
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ORIGIN = "https://www.example.com"


@pytest.fixture
def source(leadflow: Leadflow) -> SourceRecord:
    return leadflow.create_source("website")


@pytest.fixture
def client(leadflow: Leadflow) -> Iterator[TestClient]:
    with TestClient(create_app(leadflow=leadflow)) as test_client:
        yield test_client


def stored(app: Leadflow) -> list[tuple[str, str | None, str]]:
    """(type, name, message id) of every stored event, in insertion order."""
    events = cast_table(Event)
    with app.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.type, events.c.name, events.c.message_id).order_by(events.c.id)
        ).all()
    return [(t, n, m) for t, n, m in rows]


def event_count(app: Leadflow) -> int:
    with app.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(cast_table(Event))) or 0)


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def assert_ok(response: Any) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}


SINGLE = {
    "identify": ({"userId": "u1", "traits": {"email": "a@x.io"}}, "identify", None),
    "track": ({"userId": "u1", "event": "Signed Up"}, "track", "Signed Up"),
    "page": ({"anonymousId": "a1", "name": "Pricing"}, "page", "Pricing"),
    "screen": ({"userId": "u1", "name": "Home"}, "screen", "Home"),
    "group": ({"userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}}, "group", None),
    "alias": ({"userId": "u1", "previousId": "a1"}, "alias", None),
}
SHORT = {"i": "identify", "t": "track", "p": "page", "s": "screen", "g": "group", "a": "alias"}


# routes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("route", [*SINGLE, *SHORT])
def test_every_single_event_route_stores_its_type(
    client: TestClient, leadflow: Leadflow, source: SourceRecord, route: str
) -> None:
    message, kind, name = SINGLE[SHORT.get(route, route)]
    response = client.post(
        f"/v1/{route}", json={**message, "messageId": f"m-{route}"}, headers=basic(source.write_key)
    )
    assert_ok(response)
    assert stored(leadflow) == [(kind, name, f"m-{route}")]


@pytest.mark.parametrize("route", ["batch", "import", "b"])
def test_batch_routes_store_every_item(
    client: TestClient, leadflow: Leadflow, source: SourceRecord, route: str
) -> None:
    batch = [
        {**message, "type": kind, "messageId": kind} for kind, (message, _, _) in SINGLE.items()
    ]
    response = client.post(f"/v1/{route}", json={"batch": batch}, headers=basic(source.write_key))
    assert_ok(response)
    assert [t for t, _, _ in stored(leadflow)] == list(SINGLE)
    [lead] = leadflow.leads().items
    assert leadflow.lead(lead.id).event_count == 6
    assert leadflow.lead(lead.id).account is not None


def test_unknown_tracking_route_is_404_with_a_body(
    client: TestClient, source: SourceRecord
) -> None:
    response = client.post("/v1/nope", json={"userId": "u"}, headers=basic(source.write_key))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "/v1/nope" in response.json()["message"]


# auth -------------------------------------------------------------------------------------
def test_basic_auth_with_the_write_key_as_user(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    response = client.post(
        "/v1/track", json={"userId": "u", "event": "e"}, auth=(source.write_key, "")
    )
    assert_ok(response)
    assert event_count(leadflow) == 1


def test_write_key_in_the_body(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    body = {"writeKey": source.write_key, "batch": [{"type": "track", "userId": "u", "event": "e"}]}
    assert_ok(client.post("/v1/batch", json=body))
    assert event_count(leadflow) == 1


def test_bearer_token_with_the_write_key_in_the_body(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    response = client.post(
        "/v1/t",
        json={"writeKey": source.write_key, "userId": "u", "event": "e"},
        headers={"Authorization": "Bearer some-oauth-token"},
    )
    assert_ok(response)
    assert event_count(leadflow) == 1


def test_write_key_in_the_query(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    response = client.post(
        f"/v1/p?writeKey={source.write_key}", json={"anonymousId": "a", "name": "Home"}
    )
    assert_ok(response)
    assert stored(leadflow)[0][:2] == ("page", "Home")


@pytest.mark.parametrize(
    "how",
    [
        {"headers": basic("no-such-key")},
        {"params": {"writeKey": "no-such-key"}},
        {"body": {"writeKey": "no-such-key"}},
        {"headers": {"Authorization": "Bearer no-such-key"}},
        {},
    ],
)
def test_unknown_or_missing_write_key_is_401(
    client: TestClient, leadflow: Leadflow, source: SourceRecord, how: dict[str, Any]
) -> None:
    body = {"userId": "u", "event": "e", **how.get("body", {})}
    response = client.post(
        "/v1/track", json=body, headers=how.get("headers"), params=how.get("params")
    )
    assert response.status_code == 401
    payload = response.json()
    assert payload["code"] == "unauthorized"
    assert "write key" in payload["message"]
    assert event_count(leadflow) == 0


# bodies ----------------------------------------------------------------------------------
def test_text_plain_bodies_are_parsed_as_json(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    body = orjson.dumps(
        {"writeKey": source.write_key, "anonymousId": "a1", "event": "Clicked", "type": "track"}
    )
    response = client.post(
        "/v1/t", content=body, headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    assert_ok(response)
    assert stored(leadflow)[0][:2] == ("track", "Clicked")


def test_gzip_bodies_are_inflated(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    body = gzip.compress(
        orjson.dumps({"batch": [{"type": "track", "userId": "u", "event": "Zipped"}]})
    )
    response = client.post(
        "/v1/batch",
        content=body,
        headers={
            **basic(source.write_key),
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )
    assert_ok(response)
    assert stored(leadflow)[0][:2] == ("track", "Zipped")


def test_not_really_gzip_is_400(client: TestClient, source: SourceRecord) -> None:
    response = client.post(
        "/v1/batch",
        content=b'{"batch": []}',
        headers={**basic(source.write_key), "Content-Encoding": "gzip"},
    )
    assert response.status_code == 400
    assert "gzip" in response.json()["message"]


def gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, packer.flush()])


def test_gzip_bomb_is_413_and_the_server_still_answers(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    bomb = gzip_bomb(50 << 20)
    assert len(bomb) < 100_000
    response = client.post(
        "/v1/batch", content=bomb, headers={**basic(source.write_key), "Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "inflates" in response.json()["message"]
    after = client.post(
        "/v1/t", json={"userId": "u", "event": "e"}, headers=basic(source.write_key)
    )
    assert_ok(after)
    assert event_count(leadflow) == 1


def test_oversize_body_is_413(client: TestClient, leadflow: Leadflow, source: SourceRecord) -> None:
    limit = leadflow.settings.max_batch_bytes
    body = b'{"batch": [' + b" " * limit + b"]}"
    response = client.post("/v1/batch", content=body, headers=basic(source.write_key))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert str(limit) in response.json()["message"]


def test_a_batch_just_under_the_limit_is_accepted(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    # Rudder clients send up to 4 MiB and drop a batch for good on 413
    pad = "x" * 30_000
    batch = [
        {"type": "track", "userId": "u", "event": "Big", "properties": {"pad": pad}, "messageId": n}
        for n in range(4 * 1024 * 1024 // 30_100)
    ]
    body = orjson.dumps({"batch": batch})
    assert 3.9 * 1024 * 1024 < len(body) <= 4 * 1024 * 1024
    response = client.post("/v1/batch", content=body, headers=basic(source.write_key))
    assert_ok(response)
    assert event_count(leadflow) == len(batch)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"batch": [', "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"batch": {"type": "track"}}', "batch"),
    ],
)
def test_malformed_bodies_are_400_with_a_message(
    client: TestClient, leadflow: Leadflow, source: SourceRecord, body: bytes, needle: str
) -> None:
    response = client.post("/v1/batch", content=body, headers=basic(source.write_key))
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert needle in payload["message"]
    assert event_count(leadflow) == 0


def test_single_event_over_32_kb_is_413(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    body = {"userId": "u", "event": "e", "properties": {"pad": "x" * (33 * 1024)}}
    response = client.post("/v1/track", json=body, headers=basic(source.write_key))
    assert response.status_code == 413
    assert "32 KB" in response.json()["message"]
    assert event_count(leadflow) == 0


def test_a_bad_item_in_a_batch_is_reported_by_index_and_the_rest_is_kept(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "A", "messageId": "a"},
        {"type": "track", "userId": "u", "messageId": "b"},
        {"type": "wave", "userId": "u", "messageId": "c"},
        {"type": "page", "userId": "u", "messageId": "d"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(source.write_key))
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert payload["accepted"] == 2
    assert [(e["index"], e["field"]) for e in payload["errors"]] == [(1, "event"), (2, "type")]
    assert "2 invalid item(s)" in payload["message"]
    assert [m for _, _, m in stored(leadflow)] == ["a", "d"]


def test_out_of_range_timestamp_is_a_400_not_a_500(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    batch = [
        {"type": "track", "userId": "u", "event": "A", "messageId": "a"},
        {"type": "track", "userId": "u", "event": "B", "timestamp": 1e20, "messageId": "b"},
    ]
    response = client.post("/v1/batch", json={"batch": batch}, headers=basic(source.write_key))
    assert response.status_code == 400
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "timestamp")]
    assert [m for _, _, m in stored(leadflow)] == ["a"]


def test_the_same_batch_twice_is_200_both_times_and_stored_once(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "e", "messageId": "m1"}]}
    assert_ok(client.post("/v1/batch", json=body, headers=basic(source.write_key)))
    assert_ok(client.post("/v1/batch", json=body, headers=basic(source.write_key)))
    assert event_count(leadflow) == 1


def test_back_pressure_is_429_with_retry_after(
    leadflow: Leadflow, settings: Settings, source: SourceRecord
) -> None:
    busy = Leadflow(settings.model_copy(update={"max_inflight_requests": 0}))
    try:
        with TestClient(create_app(leadflow=busy)) as busy_client:
            response = busy_client.post(
                "/v1/t", json={"userId": "u", "event": "e"}, headers=basic(source.write_key)
            )
    finally:
        busy.close()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "rate_limited"
    assert event_count(leadflow) == 0


# CORS ------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["t", "p", "batch"])
def test_preflight_is_204_with_cors_headers_and_no_body(client: TestClient, route: str) -> None:
    response = client.options(
        f"/v1/{route}",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"].lower()


def test_post_answers_carry_allow_origin(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    ok = client.post(
        f"/v1/t?writeKey={source.write_key}",
        json={"anonymousId": "a", "event": "e"},
        headers={"Origin": ORIGIN},
    )
    assert_ok(ok)
    assert ok.headers["access-control-allow-origin"] == ORIGIN
    denied = client.post(
        "/v1/t", json={"anonymousId": "a", "event": "e"}, headers={"Origin": ORIGIN}
    )
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == ORIGIN
    no_origin = client.post(f"/v1/t?writeKey={source.write_key}", json={"anonymousId": "a"})
    assert no_origin.status_code == 400
    assert no_origin.headers["access-control-allow-origin"] == "*"


def test_settings_document_for_analytics_js(client: TestClient, source: SourceRecord) -> None:
    response = client.get(f"/v1/projects/{source.write_key}/settings")
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert segment["apiKey"] == source.write_key
    assert segment["apiHost"] == "testserver/v1"
    assert segment["protocol"] == "http"
    unknown = client.get("/v1/projects/nope/settings")
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "unauthorized"


# /api/leads ------------------------------------------------------------------------------
@pytest.fixture
def five_leads(leadflow: Leadflow, source: SourceRecord) -> list[int]:
    leadflow.ingest(
        source,
        [
            {
                "type": "identify",
                "userId": f"u{n}",
                "traits": {"email": f"user{n}@corp{n % 2}.io", "phone": f"650-253-000{n}"},
            }
            for n in range(5)
        ]
        + [{"type": "track", "userId": "u0", "event": "Viewed"}],
    )
    return sorted((lead.id for lead in leadflow.leads().items), reverse=True)


def test_lead_listing_pages_with_next_after(client: TestClient, five_leads: list[int]) -> None:
    first = client.get("/api/leads", params={"limit": 2, "count": "true"}).json()
    assert first["total"] == 5
    assert [item["id"] for item in first["items"]] == five_leads[:2]
    second = client.get("/api/leads", params={"limit": 2, "after": first["next_after"]}).json()
    assert [item["id"] for item in second["items"]] == five_leads[2:4]
    third = client.get("/api/leads", params={"limit": 2, "after": second["next_after"]}).json()
    assert [item["id"] for item in third["items"]] == five_leads[4:]
    assert third["next_after"] is None


def test_lead_listing_filters(client: TestClient, five_leads: list[int]) -> None:
    by_email = client.get("/api/leads", params={"email": " USER3@corp1.io "}).json()["items"]
    assert [item["email"] for item in by_email] == ["user3@corp1.io"]
    by_q = client.get("/api/leads", params={"q": "corp0"}).json()["items"]
    assert sorted(item["email"] for item in by_q) == [
        "user0@corp0.io",
        "user2@corp0.io",
        "user4@corp0.io",
    ]
    by_phone = client.get("/api/leads", params={"q": "6502530004"}).json()["items"]
    assert [item["phone"] for item in by_phone] == ["+16502530004"]
    assert len(client.get("/api/leads", params={"stage": "lead"}).json()["items"]) == 5
    assert client.get("/api/leads", params={"stage": "mql"}).json()["items"] == []


def test_lead_listing_reports_the_same_event_count_as_the_lead(
    client: TestClient, five_leads: list[int]
) -> None:
    listed = {item["id"]: item["event_count"] for item in client.get("/api/leads").json()["items"]}
    for lead_id, listed_count in listed.items():
        assert client.get(f"/api/leads/{lead_id}").json()["event_count"] == listed_count
    assert sorted(listed.values()) == [1, 1, 1, 1, 2]


def test_unknown_stage_is_400_with_a_message(client: TestClient) -> None:
    response = client.get("/api/leads", params={"stage": "hot"})
    assert response.status_code == 400
    assert "unknown stage 'hot'" in response.json()["message"]


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
def test_bad_limit_is_422_with_a_message(client: TestClient, limit: str) -> None:
    response = client.get("/api/leads", params={"limit": limit})
    assert response.status_code == 422
    payload = response.json()
    assert payload["code"] == "invalid_request"
    assert payload["message"].startswith("limit:")


def test_one_lead_and_its_events(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(
        source,
        [
            {"type": "page", "anonymousId": "a1", "name": "Home", "messageId": "p1"},
            {
                "type": "identify",
                "anonymousId": "a1",
                "userId": "u1",
                "traits": {"email": "Ann@X.io", "title": "CTO"},
                "messageId": "i1",
            },
        ],
    )
    [lead] = leadflow.leads().items
    body = client.get(f"/api/leads/{lead.id}").json()
    assert body["id"] == lead.id
    assert body["email"] == "ann@x.io"
    assert body["traits"] == {"title": "CTO"}
    assert body["identities"] == {"anonymousId": ["a1"], "userId": ["u1"], "email": ["ann@x.io"]}
    assert body["stage"] == "lead"
    assert body["event_count"] == 2
    events = client.get(f"/api/leads/{lead.id}/events").json()["items"]
    assert sorted(e["message_id"] for e in events) == ["i1", "p1"]


def test_unknown_lead_is_404(client: TestClient) -> None:
    response = client.get("/api/leads/999999")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "no lead with id 999999"}
    assert client.get("/api/leads/999999/events").status_code == 404


def test_merges_and_conflicts_are_listed(
    client: TestClient, leadflow: Leadflow, source: SourceRecord
) -> None:
    leadflow.ingest(
        source,
        [
            {"type": "page", "anonymousId": "a1"},
            {"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}},
            {"type": "identify", "userId": "u2", "traits": {"email": "b@x.io"}},
        ],
    )
    leadflow.ingest(source, [{"type": "alias", "previousId": "a1", "userId": "u1"}])
    leadflow.ingest(source, [{"type": "alias", "previousId": "u1", "userId": "u2"}])
    merges = client.get("/api/identity/merges").json()["items"]
    assert [m["cause"] for m in merges] == ["alias via anonymous_id:a1"]
    conflicts = client.get("/api/identity/conflicts").json()["items"]
    assert len(conflicts) == 1
    assert "different emails" in conflicts[0]["reason"]


# meta -------------------------------------------------------------------------------------
def test_openapi_docs_and_health(client: TestClient) -> None:
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/leads" in schema.json()["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
