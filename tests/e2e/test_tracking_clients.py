"""Real tracking clients (segment-analytics-python, rudder-sdk-python) against a real server."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from leadflow import Leadflow
from tests.e2e.conftest import Server

MakeClient = Callable[..., Any]


def _segment(key: str, host: str, *, sync: bool, gzip: bool, errors: list[Any]) -> Any:
    return SegmentClient(
        key,
        host=host,
        sync_mode=sync,
        gzip=gzip,
        upload_interval=0.05,
        max_retries=1,
        on_error=lambda exc, batch: errors.append((exc, batch)),
    )


def _rudder(key: str, host: str, *, sync: bool, gzip: bool, errors: list[Any]) -> Any:
    return RudderClient(
        key,
        host=host,
        sync_mode=sync,
        gzip=gzip,
        upload_interval=0.05,
        max_retries=1,
        on_error=lambda exc, batch: errors.append((exc, batch)),
    )


CLIENTS = {"segment": _segment, "rudder": _rudder}


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def send_journey(client: Any, tag: str, first_at: datetime) -> None:
    """A visitor browses, signs up, joins an account, and later a second device is aliased."""
    client.page(
        anonymous_id=f"anon-{tag}",
        name="Pricing",
        properties={"path": "/pricing"},
        context={"page": {"path": "/pricing", "url": "https://ex.io/pricing"}},
        timestamp=first_at,
        message_id=f"{tag}-page",
    )
    client.identify(
        user_id=f"user-{tag}",
        anonymous_id=f"anon-{tag}",
        traits={"email": f" Ann.{tag}@Example.COM ", "plan": "pro"},
        message_id=f"{tag}-identify",
    )
    client.track(
        user_id=f"user-{tag}",
        event="Demo Requested",
        properties={"seats": 5},
        message_id=f"{tag}-track",
    )
    client.group(
        user_id=f"user-{tag}",
        group_id=f"acme-{tag}",
        traits={"name": "Acme", "employees": 50},
        message_id=f"{tag}-group",
    )
    client.page(anonymous_id=f"phone-{tag}", name="Docs", message_id=f"{tag}-page-2")
    client.alias(previous_id=f"phone-{tag}", user_id=f"user-{tag}", message_id=f"{tag}-alias")
    client.flush()


def check_journey(leadflow: Leadflow, tag: str, first_at: datetime, *, batched: bool) -> None:
    [listed] = leadflow.leads().items
    lead = leadflow.lead(listed.id)
    assert lead.email == f"ann.{tag}@example.com"
    assert lead.traits == {"plan": "pro"}
    assert lead.identities == {
        "anonymousId": [f"anon-{tag}", f"phone-{tag}"],
        "userId": [f"user-{tag}"],
        "email": [f"ann.{tag}@example.com"],
    }
    assert lead.account is not None
    assert lead.account["group_id"] == f"acme-{tag}"
    assert lead.account["traits"] == {"name": "Acme", "employees": 50}
    assert lead.first_touch == {"path": "/pricing", "url": "https://ex.io/pricing"}
    events = {e.message_id: e for e in leadflow.lead_events(lead.id)}
    assert {m: (e.type, e.name) for m, e in events.items()} == {
        f"{tag}-page": ("page", "Pricing"),
        f"{tag}-identify": ("identify", None),
        f"{tag}-track": ("track", "Demo Requested"),
        f"{tag}-group": ("group", None),
        f"{tag}-page-2": ("page", "Docs"),
        f"{tag}-alias": ("alias", None),
    }
    assert lead.event_count == 6
    assert events[f"{tag}-track"].properties == {"seats": 5}
    # the client's timestamp comes back, corrected against sentAt (same clock: ~unchanged)
    assert abs(events[f"{tag}-page"].timestamp - first_at) < timedelta(seconds=3)
    assert lead.first_seen_at is not None
    assert abs(lead.first_seen_at - first_at) < timedelta(seconds=3)
    merges = [(m.survivor_id, m.cause, m.message_id) for m in leadflow.merges()]
    if batched:
        # the second device's lead was created and joined inside one batch: never stored
        assert merges == []
    else:
        assert merges == [(lead.id, f"alias via anonymous_id:phone-{tag}", f"{tag}-alias")]
    assert leadflow.conflicts() == []


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("mode", ["sync", "threaded"])
@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_client_journey_is_stored(
    server: Server, leadflow: Leadflow, kind: str, mode: str, gzip: bool
) -> None:
    errors: list[Any] = []
    client = CLIENTS[kind](
        server.source.write_key, server.url, sync=mode == "sync", gzip=gzip, errors=errors
    )
    first_at = _ms(datetime.now(UTC) - timedelta(hours=1))
    tag = f"{kind}-{mode}-{'gz' if gzip else 'plain'}"
    try:
        send_journey(client, tag, first_at)
    finally:
        if mode == "threaded":
            client.join()
    assert errors == []
    check_journey(leadflow, tag, first_at, batched=mode == "threaded")


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_resending_with_fixed_message_ids_stores_once(
    server: Server, leadflow: Leadflow, kind: str
) -> None:
    errors: list[Any] = []
    client = CLIENTS[kind](server.source.write_key, server.url, sync=True, gzip=True, errors=errors)
    for _ in range(2):
        client.identify(user_id="u1", traits={"email": "a@x.io"}, message_id="fixed-1")
        client.track(user_id="u1", event="Signed Up", message_id="fixed-2")
    [listed] = leadflow.leads().items
    assert leadflow.lead(listed.id).event_count == 2
    assert sorted(e.message_id for e in leadflow.lead_events(listed.id)) == ["fixed-1", "fixed-2"]


def captured(kind: str, **track: Any) -> dict[str, Any]:
    """A message exactly as the real client would queue it, not sent."""
    make = SegmentClient if kind == "segment" else RudderClient
    client = make("unused", host="http://127.0.0.1:9", send=False, sync_mode=True)
    ok, message = client.track(**track)
    assert ok
    return dict(message)


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_client_clock_skew_is_corrected_and_a_replayed_payload_is_stored_once(
    server: Server, leadflow: Leadflow, kind: str
) -> None:
    # the client's clock runs 2 hours fast: it stamps the event and the send with that clock
    skew = timedelta(hours=2)
    fast_now = datetime.now(UTC) + skew
    message = captured(
        kind, user_id="u1", event="Clicked", timestamp=fast_now - timedelta(seconds=90)
    )
    body = {"batch": [message], "sentAt": fast_now.isoformat(), "writeKey": "ignored"}
    auth = (server.source.write_key, "")
    before = datetime.now(UTC)
    with httpx.Client(base_url=server.url, auth=auth, timeout=10) as http:
        first = http.post("/v1/batch", json=body)
        again = http.post("/v1/batch", json=body)
    after = datetime.now(UTC)
    assert (first.status_code, first.json()) == (200, {"success": True})
    assert (again.status_code, again.json()) == (200, {"success": True})
    [listed] = leadflow.leads().items
    [event] = leadflow.lead_events(listed.id)
    assert event.message_id == message["messageId"]
    assert before - timedelta(seconds=91) <= event.timestamp <= after - timedelta(seconds=89)
    assert before <= event.received_at <= after


def test_settings_document_points_analytics_js_at_this_server(server: Server) -> None:
    response = httpx.get(f"{server.url}/v1/projects/{server.source.write_key}/settings")
    assert response.status_code == 200
    segment = response.json()["integrations"]["Segment.io"]
    assert segment == {
        **segment,
        "apiKey": server.source.write_key,
        "apiHost": f"127.0.0.1:{server.port}/v1",
        "protocol": "http",
    }


def test_browser_style_beacon_with_preflight(server: Server, leadflow: Leadflow) -> None:
    origin = "https://www.example.com"
    with httpx.Client(base_url=server.url, timeout=10) as http:
        preflight = http.options(
            "/v1/t",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        sent = http.post(
            "/v1/t",
            content=(
                b'{"type":"track","event":"Viewed Pricing","anonymousId":"b-1",'
                b'"writeKey":"' + server.source.write_key.encode() + b'",'
                b'"context":{"page":{"path":"/pricing"},"userAgent":"Chromium",'
                b'"locale":"en-US","timezone":"Europe/Paris"}}'
            ),
            headers={"Content-Type": "text/plain", "Origin": origin},
        )
    assert preflight.status_code == 204
    assert preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == origin
    assert (sent.status_code, sent.json()) == (200, {"success": True})
    assert sent.headers["access-control-allow-origin"] == origin
    [listed] = leadflow.leads().items
    assert [e.name for e in leadflow.lead_events(listed.id)] == ["Viewed Pricing"]


def test_gzip_bomb_is_refused_and_the_server_keeps_serving(
    server: Server, leadflow: Leadflow
) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = b"".join([*(packer.compress(b"\0" * (1 << 20)) for _ in range(50)), packer.flush()])
    auth = (server.source.write_key, "")
    with httpx.Client(base_url=server.url, auth=auth, timeout=10) as http:
        refused = http.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
        assert refused.status_code == 413
        assert refused.json()["code"] == "payload_too_large"
        ok = http.post("/v1/track", json={"userId": "u", "event": "Still Here"})
    assert (ok.status_code, ok.json()) == (200, {"success": True})
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    [listed] = leadflow.leads().items
    assert leadflow.lead(listed.id).event_count == 1


def test_oversize_body_is_refused_and_the_server_keeps_serving(
    server: Server, leadflow: Leadflow
) -> None:
    limit = leadflow.settings.max_batch_bytes
    body = b'{"batch": [' + b" " * (limit + 1024) + b"]}"
    auth = (server.source.write_key, "")
    with httpx.Client(base_url=server.url, auth=auth, timeout=10) as http:
        refused = http.post("/v1/batch", content=body)
        assert refused.status_code == 413
        assert refused.json()["code"] == "payload_too_large"
        ok = http.post("/v1/track", json={"userId": "u", "event": "Still Here"})
    assert (ok.status_code, ok.json()) == (200, {"success": True})
