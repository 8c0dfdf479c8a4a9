"""The sales handoff in the worker: outbox consumers that queue webhook deliveries and assign
new MQLs to reps, and the sender that POSTs due deliveries.

Wiring (the worker loop)::

    consumers = [*handoff_consumers(leadflow), ...]   # assignment first, then webhooks
    dispatch(leadflow, consumers)                      # jobs/outbox.py
    with httpx.Client() as client:
        send_due_webhooks(leadflow, client, limit=100)

A delivery row is unique on (endpoint, event id), and the event id is derived from the
outbox row: dispatching the same outbox row again never queues a second delivery.
Progress is recorded only after the receiver answered: a killed sender leaves the row
pending, and it comes due again once its claim (the timeouts of its batch plus a minute)
has passed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection

from leadflow.adapters.db.handoff import SqlAssignmentRepository, SqlHandoffRepository
from leadflow.adapters.db.webhooks import SqlWebhookRepository
from leadflow.adapters.webhooks.http import HttpWebhookSender
from leadflow.bootstrap import Leadflow
from leadflow.jobs.outbox import Consumer
from leadflow.ports import OutboxMessage
from leadflow.services.assignment import assign_mql
from leadflow.services.handoff import HandoffFacts, handoff_payload
from leadflow.services.journeys import NOTIFY_TOPIC
from leadflow.services.qualify import STAGE_TOPIC
from leadflow.services.webhooks import (
    HANDOFF_EVENT,
    TEST_EVENT,
    Answer,
    Endpoint,
    NewWebhook,
    WebhookSender,
    after_attempt,
    body_of,
    event_id_for,
    new_event_id,
)

JOURNEY_NOTE_EVENT = "lead.journey_note"
CLAIM_MARGIN = timedelta(seconds=60)
SEND_BATCH = 100
CLAIM = 10  # deliveries claimed per transaction; each result is committed on its own


def _stage_changes(rows: Sequence[OutboxMessage], stage: str | None = None) -> list[OutboxMessage]:
    return [
        row
        for row in rows
        if row.topic == STAGE_TOPIC
        and row.lead_id is not None
        and (stage is None or row.payload.get("to") == stage)
    ]


def consume_stage_changes(leadflow: Leadflow) -> Consumer:
    """The consumer that queues a ``lead.handoff`` delivery per endpoint watching the stage
    a lead moved to, with the payload as it is at dispatch."""

    def consume(conn: Connection, rows: Sequence[OutboxMessage], now: datetime) -> None:
        hooks = leadflow.handoff_config.webhooks
        wanted = [r for r in _stage_changes(rows) if hooks.for_stage(str(r.payload["to"]))]

        def payload(facts: HandoffFacts, row: OutboxMessage) -> dict[str, Any]:
            return handoff_payload(facts, now, dict(row.payload))

        def targets(row: OutboxMessage) -> list[Endpoint]:
            return hooks.for_stage(str(row.payload["to"]))

        _queue(leadflow, conn, now, wanted, HANDOFF_EVENT, payload, targets)

    return consume


def _queue(
    leadflow: Leadflow,
    conn: Connection,
    now: datetime,
    rows: Sequence[OutboxMessage],
    event_type: str,
    payload_of: Callable[[HandoffFacts, OutboxMessage], dict[str, Any]],
    targets: Callable[[OutboxMessage], list[Endpoint]],
) -> None:
    """One delivery per outbox row and endpoint, with the lead's payload as it is now; the
    event id comes from the row, so a row dispatched twice never makes a second one."""
    if not rows:
        return
    hooks = leadflow.handoff_config.webhooks
    reader = SqlHandoffRepository(conn, leadflow.model, now)
    queued: list[NewWebhook] = []
    for row in rows:
        assert row.lead_id is not None
        facts = reader.facts(row.lead_id, hooks.last_touches)
        if facts is None:
            continue
        payload = payload_of(facts, row)
        event_id = event_id_for(row.topic, row.id, row.lead_id, row.payload.get("at"))
        queued += [
            NewWebhook(e.name, event_id, event_type, facts.lead.id, payload) for e in targets(row)
        ]
    SqlWebhookRepository(conn).add(queued, now)


def consume_mql_assignments(leadflow: Leadflow) -> Consumer:
    """The consumer that gives each new MQL a sales rep (territory, then round robin)."""

    def consume(conn: Connection, rows: Sequence[OutboxMessage], now: datetime) -> None:
        reps = leadflow.handoff_config.reps
        wanted = _stage_changes(rows, "mql")
        if not wanted or not reps:
            return
        repo = SqlAssignmentRepository(conn)
        repo.sync_reps(reps)
        for row in wanted:
            assert row.lead_id is not None
            assign_mql(repo, row.lead_id, now)

    return consume


def consume_journey_notes(leadflow: Leadflow) -> Consumer:
    """The consumer that tells sales what a journey's ``notify_sales`` step says: a
    ``lead.journey_note`` delivery per enabled endpoint, with the handoff payload and the note."""

    def consume(conn: Connection, rows: Sequence[OutboxMessage], now: datetime) -> None:
        endpoints = [e for e in leadflow.handoff_config.webhooks.endpoints if e.enabled]
        wanted = [r for r in rows if r.topic == NOTIFY_TOPIC and r.lead_id is not None]
        if not endpoints:
            return

        def payload(facts: HandoffFacts, row: OutboxMessage) -> dict[str, Any]:
            found = handoff_payload(facts, now, None)
            found["type"] = JOURNEY_NOTE_EVENT
            found["data"]["note"] = dict(row.payload)
            return found

        _queue(leadflow, conn, now, wanted, JOURNEY_NOTE_EVENT, payload, lambda _row: endpoints)

    return consume


def handoff_consumers(leadflow: Leadflow) -> list[Consumer]:
    """Assignment first, so that a handoff in the same batch names the rep."""
    return [
        consume_mql_assignments(leadflow),
        consume_stage_changes(leadflow),
        consume_journey_notes(leadflow),
    ]


def send_due(
    leadflow: Leadflow,
    sender: WebhookSender,
    limit: int = SEND_BATCH,
    rng: random.Random | None = None,
) -> int:
    """Send the due deliveries, one batch claimed at a time; how many were attempted."""
    hooks = leadflow.handoff_config.webhooks
    endpoints = {e.name: e for e in hooks.endpoints if e.enabled}
    if not endpoints:
        return 0
    # a claimed batch is sent one by one: held long enough for all of them to time out
    hold = timedelta(seconds=max(e.timeout for e in endpoints.values()) * CLAIM) + CLAIM_MARGIN
    chance = rng or random.Random()
    done = 0
    while done < limit:
        now = leadflow.clock.now()
        with leadflow.transaction() as conn:
            batch = SqlWebhookRepository(conn).claim_due(
                list(endpoints), now, now + hold, min(CLAIM, limit - done)
            )
        if not batch:
            return done
        for delivery in batch:
            endpoint = endpoints[delivery.endpoint]
            answer = sender.send(endpoint, delivery.event_id, body_of(delivery.payload))
            outcome = after_attempt(hooks, delivery.attempts, answer, leadflow.clock.now(), chance)
            with leadflow.transaction() as conn:
                SqlWebhookRepository(conn).record(delivery.id, outcome)
            done += 1
    return done


def send_due_webhooks(leadflow: Leadflow, client: httpx.Client, limit: int = SEND_BATCH) -> int:
    """``send_due`` over HTTP with the given client; how many deliveries were attempted."""
    sender = HttpWebhookSender(client, leadflow.handoff_config.webhooks.allow_private_targets)
    return send_due(leadflow, sender, limit)


def send_test(leadflow: Leadflow, client: httpx.Client, endpoint_name: str) -> tuple[str, Answer]:
    """POST a signed ``webhook.test`` event to an endpoint now (not queued); its id and the
    answer."""
    hooks = leadflow.handoff_config.webhooks
    endpoint = hooks.endpoint(endpoint_name)
    now = leadflow.clock.now()
    event_id = new_event_id()
    payload = {
        "type": TEST_EVENT,
        "timestamp": now.isoformat(),
        "data": {"endpoint": endpoint.name, "message": "a test event from leadflow"},
    }
    sender = HttpWebhookSender(client, hooks.allow_private_targets)
    return event_id, sender.send(endpoint, event_id, body_of(payload))
