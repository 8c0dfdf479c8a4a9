"""The HTTP SMS provider (Twilio-style API) against a local server that behaves like it.

The server answers the Messages API (basic auth, form fields, JSON with a ``sid``, errors with
a code and message), and calls leadflow back like the provider does: signed status callbacks
and inbound texts, to leadflow's API running under uvicorn.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from base64 import b64decode
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from leadflow import Leadflow, Settings, open_leadflow
from leadflow.adapters.sms.http_provider import HttpSmsSender, signature
from leadflow.api.app import create_app
from leadflow.domain.errors import PermanentDeliveryError, TransientDeliveryError
from leadflow.ports import SmsMessage
from tests.integration.kannel_support import free_port, serving

SID, TOKEN, WEBHOOK = "AC0123", "provider-token", "http-webhook-token"
INVALID, BUSY, DOWN, SLOW = "+12025550142", "+12025550143", "+12025550144", "+12025550145"
_sids = itertools.count(1)


class FakeProvider(BaseHTTPRequestHandler):
    """The Messages API; every accepted message is kept in ``server.sent``."""

    server: Any

    def log_message(self, *_args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        auth = self.headers.get("Authorization", "").removeprefix("Basic ")
        if self.path != f"/2010-04-01/Accounts/{SID}/Messages.json":
            return self._answer(404, {"code": 20404, "message": "not found"})
        if b64decode(auth or "Og==").decode() != f"{SID}:{TOKEN}":
            return self._answer(401, {"code": 20003, "message": "Authenticate"})
        to = form.get("To", "")
        if to == INVALID:
            return self._answer(
                400,
                {"code": 21211, "message": f"The 'To' number {to} is not a valid phone number."},
            )
        if to == BUSY:
            return self._answer(429, {"code": 20429, "message": "Too Many Requests"})
        if to == DOWN:
            return self._answer(503, {"code": 20500, "message": "Service unavailable"})
        if to == SLOW:
            time.sleep(1.5)
        sid = f"SM{next(_sids):032d}"
        self.server.sent.append({"sid": sid, **form})
        self._answer(201, {"sid": sid, "status": "queued", "num_segments": "1"})


@pytest.fixture
def provider() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeProvider)
    server.sent = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _base(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _sender(server: ThreadingHTTPServer, client: httpx.Client) -> HttpSmsSender:
    return HttpSmsSender(
        _base(server), SID, TOKEN, "+12025550100", "http://app.test/sms/http/status?token=t", client
    )


def test_the_provider_takes_a_text_with_auth_and_a_status_callback(
    provider: ThreadingHTTPServer,
) -> None:
    with httpx.Client(timeout=5) as client:
        receipt = _sender(provider, client).send(
            SmsMessage("journey:7:step 1", "+12025550150", "Hi")
        )
    sent = provider.sent  # type: ignore[attr-defined]
    assert receipt.provider_id == sent[0]["sid"]
    assert (sent[0]["To"], sent[0]["From"], sent[0]["Body"]) == (
        "+12025550150",
        "+12025550100",
        "Hi",
    )
    # the key travels in the callback URL (base64url when not plain), so reports find it
    assert sent[0]["StatusCallback"].startswith("http://app.test/sms/http/status?token=t&key=b64.")


@pytest.mark.parametrize(
    ("to", "error", "words"),
    [
        (INVALID, PermanentDeliveryError, "error 21211: The 'To' number"),
        (BUSY, TransientDeliveryError, "HTTP 429"),
        (DOWN, TransientDeliveryError, "HTTP 503"),
        (SLOW, TransientDeliveryError, "timed out"),
    ],
)
def test_refusals_are_permanent_or_transient(
    provider: ThreadingHTTPServer, to: str, error: type[Exception], words: str
) -> None:
    with httpx.Client(timeout=0.5) as client, pytest.raises(error, match=words):
        _sender(provider, client).send(SmsMessage("k1", to, "Hello"))


def test_an_unreachable_provider_is_transient() -> None:
    port = free_port()
    with httpx.Client(timeout=1) as client:
        sender = HttpSmsSender(f"http://127.0.0.1:{port}", SID, TOKEN, "+1", None, client)
        with pytest.raises(TransientDeliveryError, match="cannot reach"):
            sender.send(SmsMessage("k1", "+12025550150", "Hello"))


@pytest.fixture
def http_app(
    provider: ThreadingHTTPServer, leadflow: Leadflow, database_url: str, tmp_path: Path
) -> Iterator[tuple[Leadflow, str]]:
    port = free_port()
    settings = Settings(
        database_url=database_url,
        home=tmp_path,
        public_url=f"http://127.0.0.1:{port}",
        sms={
            "provider": "http",
            "sender": "+12025550100",
            "program": "Acme Deals",
            "webhook_token": WEBHOOK,
            "http": {
                "base_url": _base(provider),
                "account_sid": SID,
                "auth_token": TOKEN,
                "verify_signature": True,
            },
        },
    )
    app = open_leadflow(settings)
    try:
        with serving(create_app(leadflow=app), port) as url:
            yield app, url
    finally:
        app.close()


def _callback(url: str, form: dict[str, str], token: str = TOKEN) -> httpx.Response:
    """POST like the provider: the form, signed with X-Twilio-Signature."""
    headers = {"X-Twilio-Signature": signature(token, url, form)}
    return httpx.post(
        url,
        content=urlencode(form),
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )


def test_status_callbacks_and_inbound_texts(
    provider: ThreadingHTTPServer, http_app: tuple[Leadflow, str]
) -> None:
    app, base = http_app
    phone = "+12025550160"
    app.ingest(
        app.ensure_source("web"), [{"type": "identify", "userId": "u1", "traits": {"phone": phone}}]
    )
    lead = app.leads().items[0].id
    out = app.send_sms(phone, "Your demo is booked", key="test:booked")
    assert out.status == "sent"
    sent = provider.sent  # type: ignore[attr-defined]
    callback = sent[0]["StatusCallback"]
    assert callback.startswith(f"{base}/sms/http/status?token={WEBHOOK}&key=test:booked")

    assert (
        _callback(callback, {"MessageSid": sent[0]["sid"], "MessageStatus": "sent"}).status_code
        == 204
    )
    answer = _callback(callback, {"MessageSid": sent[0]["sid"], "MessageStatus": "delivered"})
    assert answer.status_code == 204
    row = app.deliveries(lead)[0]
    assert (row.status, row.provider_id) == ("delivered", sent[0]["sid"])
    forged = _callback(callback, {"MessageSid": sent[0]["sid"], "MessageStatus": "failed"}, "x")
    assert forged.status_code == 401
    assert app.deliveries(lead)[0].status == "delivered"

    inbound = f"{base}/sms/http/inbound?token={WEBHOOK}"
    form = {"From": phone, "To": "+12025550100", "Body": "STOP", "MessageSid": "SMin1"}
    answer = _callback(inbound, form)
    assert answer.status_code == 200
    assert answer.text.endswith("<Response></Response>")  # no automatic reply from the provider
    assert [s.address for s in app.suppressions("sms")] == [phone]
    assert sent[-1]["Body"].startswith("You are unsubscribed from Acme Deals.")
    assert _callback(inbound, form).status_code == 200  # the provider retries the webhook
    assert len(sent) == 2  # ... and no second confirmation goes out

    wrong_token = httpx.post(f"{base}/sms/http/inbound?token=nope", data=form)
    assert wrong_token.status_code == 401
