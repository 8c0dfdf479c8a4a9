"""Handoff webhooks end to end: a lead moved to SQL reaches a real HTTP receiver on
127.0.0.1 that verifies the signature with the ``standardwebhooks`` package; failures are
retried on the schedule (time driven by a hand-moved clock), 410 is dead at once, replay
sends the same webhook-id again, and private targets need the setting."""

from __future__ import annotations

import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import update
from standardwebhooks import Webhook

from leadflow import ConfigError, Leadflow, Settings
from leadflow.adapters.db.tables import outbox
from leadflow.adapters.webhooks.http import HttpWebhookSender
from leadflow.jobs.nurture import journey_consumer, run_steps
from leadflow.jobs.outbox import dispatch
from leadflow.jobs.webhooks import handoff_consumers, send_due, send_due_webhooks, send_test
from leadflow.services.webhooks import new_secret
from tests.integration.scoring_support import T0, Clock, identify, ingest, lead_id

SECRET = new_secret()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: Any


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that verifies Standard Webhooks signatures and answers
    what it is told to: a status (with headers), or nothing for a while ("hang")."""

    secret: str
    answers: list[tuple[int | str, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def answer(self, *answers: int | str, **headers: str) -> None:
        self.answers.extend((a, dict(headers)) for a in answers)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length", 0))
        body = request.rfile.read(length)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            payload = Webhook(self.secret).verify(body, headers)
        except Exception as exc:
            self.rejected.append(str(exc))
            request.send_response(401)
            request.end_headers()
            return
        self.received.append(Received(headers, body, payload))
        status, extra = self.answers.pop(0) if self.answers else (200, {})
        if status == "hang":
            self.release.wait(5)
            return
        assert isinstance(status, int)
        request.send_response(status)
        for key, value in extra.items():
            request.send_header(key.replace("_", "-"), value)
        request.send_header("content-length", "2")
        request.end_headers()
        request.wfile.write(b"ok")


@contextmanager
def serving(context: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """A Receiver on 127.0.0.1, over TLS when a server ``context`` is given."""
    found = Receiver(SECRET)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            found.handle(self)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    scheme = "https" if context is not None else "http"
    found.url = f"{scheme}://127.0.0.1:{server.server_address[1]}/hooks"
    try:
        yield found
    finally:
        found.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serving() as found:
        yield found


def certificates(name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a certificate it signs for ``name``: the server's context, and a
    client context that trusts only that CA."""
    now = datetime.now(UTC)

    def certificate(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("leadflow test CA", ca_key, "leadflow test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = certificate(name, key, "leadflow test CA", ca_key, ca=False)
    folder = Path(tempfile.mkdtemp())
    (folder / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "leaf.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as found:
        yield found


def hooks_config(url: str, **extra: Any) -> dict[str, Any]:
    endpoint = {"name": "crm", "url": url, "secret": SECRET, "timeout": "1s"}
    endpoint.update(extra.pop("endpoint", {}))
    return {
        "allow_private_targets": True,
        "jitter": 0,
        "endpoints": [endpoint, *extra.pop("more", [])],
        **extra,
    }


@pytest.fixture
def opener(leadflow: Leadflow, settings: Settings, clock: Clock) -> Iterator[Any]:
    opened: list[Leadflow] = []

    def open_with(webhooks: dict[str, Any], sales: dict[str, Any] | None = None) -> Leadflow:
        app = Leadflow(settings.model_copy(update={"webhooks": webhooks, "sales": sales}), clock)
        app.migrate()
        opened.append(app)
        return app

    yield open_with
    for app in opened:
        app.close()


def sql_lead(app: Leadflow, user: str = "u1", **traits: Any) -> int:
    source = app.ensure_source("website")
    ingest(app, source, identify(user, T0, email=f"{user}@acme.com", **traits))
    found = lead_id(app, user)
    for stage in ("mql", "sal", "sql"):
        app.move_stage(found, stage, "meets_criteria", actor="user:ada")
    return found


def run_dispatch(app: Leadflow) -> int:
    return dispatch(app, handoff_consumers(app))


def test_a_lead_moved_to_sql_is_delivered_signed(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    app = opener(hooks_config(receiver.url))
    lead = sql_lead(app, first_name="Ada", last_name="Lovelace")
    run_dispatch(app)
    assert send_due_webhooks(app, client, 10) == 1
    assert receiver.rejected == []
    [got] = receiver.received
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["content-type"] == "application/json"
    assert got.payload["type"] == "lead.handoff"
    assert got.payload["data"]["lead"]["id"] == lead
    assert got.payload["data"]["lead"]["first_name"] == "Ada"
    assert got.payload["data"]["stage_change"]["to"] == "sql"
    [delivery] = app.webhook_deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)
    assert delivery.event_id == got.headers["webhook-id"]
    assert send_due_webhooks(app, client, 10) == 0  # nothing is sent twice


def test_only_the_configured_stages_are_handed_off(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    more = [{"name": "mqls", "url": receiver.url, "secret": SECRET, "stages": ["mql"]}]
    app = opener(hooks_config(receiver.url, more=more))
    sql_lead(app)
    run_dispatch(app)
    found = {d.endpoint: d.payload["data"]["stage_change"]["to"] for d in app.webhook_deliveries()}
    assert found == {"crm": "sql", "mqls": "mql"}


def test_failures_are_retried_on_the_schedule_with_the_same_id(
    opener: Any, receiver: Receiver, client: httpx.Client, clock: Clock
) -> None:
    app = opener(hooks_config(receiver.url))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer(500, 503, 502)
    start = clock.now()
    waits = []
    for _attempt in range(3):
        assert send_due_webhooks(app, client, 10) == 1
        [delivery] = app.webhook_deliveries()
        assert delivery.status == "pending"
        assert delivery.next_attempt_at is not None
        waits.append(delivery.next_attempt_at - clock.now())
        assert send_due_webhooks(app, client, 10) == 0  # not due yet
        clock.at = delivery.next_attempt_at
    assert waits == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30)]
    assert send_due_webhooks(app, client, 10) == 1
    [delivery] = app.webhook_deliveries()
    assert (delivery.status, delivery.attempts) == ("delivered", 4)
    assert clock.now() - start == timedelta(seconds=5 + 300 + 1800)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    assert len(receiver.received) == 4


def test_429_honours_retry_after(
    opener: Any, receiver: Receiver, client: httpx.Client, clock: Clock
) -> None:
    app = opener(hooks_config(receiver.url))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer(429, retry_after="120")
    send_due_webhooks(app, client, 10)
    [delivery] = app.webhook_deliveries()
    assert delivery.last_status == 429
    assert delivery.next_attempt_at == clock.now() + timedelta(seconds=120)


def test_410_is_dead_at_once_and_replay_sends_the_same_id(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    app = opener(hooks_config(receiver.url))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer(410)
    send_due_webhooks(app, client, 10)
    [dead] = app.webhook_deliveries(status="dead")
    assert (dead.attempts, dead.last_status) == (1, 410)
    assert send_due_webhooks(app, client, 10) == 0
    assert app.replay_webhooks(None) == [dead.id]
    assert send_due_webhooks(app, client, 10) == 1
    assert app.webhook_delivery(dead.id).status == "delivered"
    first, again = receiver.received
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == dead.event_id
    assert first.body == again.body
    assert app.webhook_deliveries(status="dead") == []


def test_a_receiver_that_hangs_times_out_and_is_retried(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    app = opener(hooks_config(receiver.url, endpoint={"timeout": "300ms"}))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer("hang")
    started = time.monotonic()
    send_due_webhooks(app, client, 10)
    assert time.monotonic() - started < 3
    [delivery] = app.webhook_deliveries()
    assert (delivery.status, delivery.attempts, delivery.last_status) == ("pending", 1, None)
    assert "no answer within 0.3s" in delivery.last_error


def test_attempts_run_out_into_the_dead_letter_list(
    opener: Any, receiver: Receiver, client: httpx.Client, clock: Clock
) -> None:
    app = opener(hooks_config(receiver.url, max_attempts=2))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer(500, 500)
    send_due_webhooks(app, client, 10)
    clock.advance(seconds=5)
    send_due_webhooks(app, client, 10)
    [dead] = app.webhook_deliveries(status="dead")
    assert dead.attempts == 2
    assert "gave up after 2 attempts" in dead.last_error


def test_the_dispatcher_run_twice_queues_one_delivery_per_endpoint(
    opener: Any, receiver: Receiver
) -> None:
    more = [{"name": "backup", "url": receiver.url, "secret": SECRET}]
    app = opener(hooks_config(receiver.url, more=more))
    sql_lead(app)
    assert run_dispatch(app) == 3  # mql, sal, sql
    with app.transaction() as conn:  # as if the batch were handed out again
        conn.execute(update(outbox).values(processed_at=None))
    assert run_dispatch(app) == 3
    found = sorted(d.endpoint for d in app.webhook_deliveries())
    assert found == ["backup", "crm"]


def test_loopback_targets_are_refused_without_the_setting(opener: Any, receiver: Receiver) -> None:
    app = opener(hooks_config(receiver.url, allow_private_targets=False))
    with pytest.raises(ConfigError, match=r"webhooks.endpoints\[0\].url: .*loopback address"):
        _ = app.handoff_config


def test_a_host_that_comes_to_resolve_to_loopback_is_refused_at_send(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://hooks.example.test:{port}/hooks"  # .test never resolves: accepted at load
    app = opener(hooks_config(url, allow_private_targets=False))
    sql_lead(app)
    run_dispatch(app)
    rebound = HttpWebhookSender(client, False, resolver=lambda _host, _port: ["127.0.0.1"])
    assert send_due(app, rebound) == 1
    [dead] = app.webhook_deliveries(status="dead")
    assert "refused" in dead.last_error
    assert "'hooks.example.test' resolves to 127.0.0.1" in dead.last_error
    assert receiver.received == []


def test_the_send_connects_to_the_address_the_check_resolved_not_a_new_lookup(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    # hooks.example.test never resolves in DNS: only the checked address can be reached
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://hooks.example.test:{port}/hooks"
    app = opener(hooks_config(url))
    sql_lead(app)
    run_dispatch(app)
    pinned = HttpWebhookSender(client, True, resolver=lambda _host, _port: ["127.0.0.1"])
    assert send_due(app, pinned) == 1
    [got] = receiver.received
    assert got.headers["host"] == f"hooks.example.test:{port}"
    [done] = app.webhook_deliveries()
    assert done.status == "delivered"


def test_over_https_the_pinned_address_is_verified_against_the_urls_host_name(
    opener: Any,
) -> None:
    server_tls, client_tls = certificates("hooks.example.test")
    with serving(server_tls) as tls_receiver, httpx.Client(verify=client_tls) as tls_client:
        port = tls_receiver.url.split(":")[2].split("/")[0]
        to_loopback = lambda _host, _port: ["127.0.0.1"]  # noqa: E731
        app = opener(hooks_config(f"https://hooks.example.test:{port}/hooks"))
        sql_lead(app)
        run_dispatch(app)
        assert send_due(app, HttpWebhookSender(tls_client, True, resolver=to_loopback)) == 1
        [got] = tls_receiver.received
        assert got.headers["host"] == f"hooks.example.test:{port}"
        [done] = app.webhook_deliveries()
        assert done.status == "delivered"

        # the same server under another name: its certificate does not match, not sent
        other = opener(hooks_config(f"https://other.example.test:{port}/hooks"))
        sql_lead(other, "u2")
        run_dispatch(other)
        assert send_due(other, HttpWebhookSender(tls_client, True, resolver=to_loopback)) == 1
        failed = [d for d in other.webhook_deliveries() if d.status != "delivered"]
        assert failed, other.webhook_deliveries()
        assert "certificate" in failed[0].last_error.lower()
        assert len(tls_receiver.received) == 1


def test_test_event_is_signed_and_answered(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    app = opener(hooks_config(receiver.url))
    event_id, answer = send_test(app, client, "crm")
    assert answer.status == 200
    [got] = receiver.received
    assert got.headers["webhook-id"] == event_id
    assert got.payload["type"] == "webhook.test"
    assert orjson.loads(got.body)["data"]["endpoint"] == "crm"


def test_two_senders_share_the_work_and_send_each_delivery_once(
    opener: Any, receiver: Receiver
) -> None:
    app = opener(hooks_config(receiver.url))
    for i in range(12):
        sql_lead(app, f"u{i}")
    run_dispatch(app)
    counts: list[int] = []

    def work() -> None:
        with httpx.Client() as own:
            counts.append(send_due_webhooks(app, own, 100))

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert sum(counts) == 12
    assert len(ids) == len(set(ids)) == 12
    assert {d.status for d in app.webhook_deliveries()} == {"delivered"}


def test_redirects_are_not_followed(opener: Any, receiver: Receiver, client: httpx.Client) -> None:
    app = opener(hooks_config(receiver.url))
    sql_lead(app)
    run_dispatch(app)
    receiver.answer(302, location="http://169.254.169.254/latest/meta-data")
    send_due_webhooks(app, client, 10)
    [dead] = app.webhook_deliveries(status="dead")
    assert "redirect to http://169.254.169.254/latest/meta-data not followed" in dead.last_error
    assert len(receiver.received) == 1


def test_a_disabled_endpoint_queues_nothing(opener: Any, receiver: Receiver) -> None:
    app = opener(hooks_config(receiver.url, endpoint={"enabled": False}))
    sql_lead(app)
    run_dispatch(app)
    assert app.webhook_deliveries() == []


def test_a_journey_step_notifies_sales_through_the_webhooks(
    opener: Any, receiver: Receiver, client: httpx.Client
) -> None:
    app = opener(hooks_config(receiver.url))
    app.save_journey(
        "hot",
        {"trigger": {"stage": "mql"}, "steps": [{"notify_sales": "Asked for pricing twice"}]},
    )
    source = app.ensure_source("website")
    ingest(app, source, identify("n1", T0, email="n1@acme.com"))
    lead = lead_id(app, "n1")
    app.move_stage(lead, "mql", "meets_criteria")
    dispatch(app, [journey_consumer(app), *handoff_consumers(app)])
    run_steps(app)
    run_dispatch(app)  # the note the step wrote to the outbox
    assert send_due_webhooks(app, client, 10) == 1
    [got] = receiver.received
    assert got.payload["type"] == "lead.journey_note"
    assert got.payload["data"]["note"]["message"] == "Asked for pricing twice"
    assert got.payload["data"]["note"]["journey"] == "hot"
    assert got.payload["data"]["lead"]["id"] == lead
