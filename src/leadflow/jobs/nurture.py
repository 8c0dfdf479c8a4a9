"""Nurture at work: journey steps that are due, and the deliveries they queued.

``run_steps`` advances due journey runs in batches, one transaction per batch. ``send_due``
sends queued deliveries one by one: it leases a batch (so that other workers leave it
alone), then for each delivery runs the last checks, stores the rendered content, calls the
transport outside any transaction and records the outcome in a short transaction of its
own, resuming the journey run that waited for it. The delivery key doubles as the message's
id at the transport (the email Message-ID), so the one message that may go out twice — when
a worker dies between the transport's acceptance and the commit — is recognisably the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from leadflow.adapters.db.consent import SqlConsentRepository
from leadflow.adapters.db.deliveries import SqlDeliveryRepository
from leadflow.adapters.db.journeys import SqlJourneyRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.bootstrap import Leadflow
from leadflow.domain.consent import Channel, ConsentStatus, SkipReason
from leadflow.domain.errors import LeadflowError
from leadflow.jobs.outbox import Consumer
from leadflow.ports import DeliveryRecord, LeadView, OutboxMessage
from leadflow.services import journeys as journey_service
from leadflow.services import lifecycle as lifecycle_service
from leadflow.services.consent import OPT_IN_KIND
from leadflow.services.deliveries import (
    Composer,
    Handoff,
    SendReport,
    Transport,
    Verdict,
    hand_off,
    judge,
)
from leadflow.services.journeys import StepReport
from leadflow.services.sms import send_window, stored_message

STEP_BATCH = 1000
SEND_BATCH = 100


@dataclass
class Messaging:
    """The composer and the transports the worker sends with."""

    composer: Composer | None = None
    email: Transport | None = None
    sms: Transport | None = None

    def transport(self, channel: str) -> Transport | None:
        return self.email if channel == Channel.EMAIL.value else self.sms


# ------------------------------------------------------------------------------------------
def journey_consumer(leadflow: Leadflow) -> Consumer:
    """The outbox consumer that starts runs on triggers and ends them on goals."""

    def consume(conn: Connection, rows: Sequence[OutboxMessage], now: datetime) -> None:
        adjusted = journey_service.adjustments(rows)
        if adjusted:  # scored in this transaction: the outbox row is done with its event
            leadflow.record_activity_in(conn, adjusted, now)
        book = leadflow.journey_book()
        if not book.journeys:
            return
        repo = SqlJourneyRepository(conn)
        journey_service.exit_on_goals(repo, book, rows, now)
        journey_service.enroll(repo, book, rows, now)

    return consume


DATE_SCAN_EVERY = 3600.0  # seconds between two scans for date triggers in one process


def enroll_dates(leadflow: Leadflow, force: bool = False) -> int:
    """Date-triggered journeys: scan for the leads whose date has come, hourly at most."""
    book = leadflow.journey_book()
    if not any(j.trigger.kind == "date" and j.enabled for j in book.journeys.values()):
        return 0
    now_mono = time.monotonic()
    if not force and now_mono - leadflow.date_scan_at < DATE_SCAN_EVERY:
        return 0
    leadflow.date_scan_at = now_mono
    with leadflow.transaction() as conn:
        return journey_service.enroll_dates(SqlJourneyRepository(conn), book, leadflow.clock.now())


def run_steps(leadflow: Leadflow, batch: int = STEP_BATCH, rounds: int = 1000) -> StepReport:
    """Advance due runs until none is due (or ``rounds`` batches were done)."""
    total = StepReport()
    for _ in range(rounds):
        now = leadflow.clock.now()
        with leadflow.transaction() as conn:
            found = journey_service.run_due(
                SqlJourneyRepository(conn),
                SqlDeliveryRepository(conn),
                SqlConsentRepository(conn),
                leadflow.journey_book(),
                now,
                batch,
                _stage_mover(leadflow, conn, now),
                leadflow.segment_tracker(conn).leads_changed,
            )
        total += found
        if found.runs < batch:
            break
    return total


def _stage_mover(leadflow: Leadflow, conn: Connection, now: datetime) -> journey_service.StageMover:
    def move(lead_id: int, stage: str, reason: str) -> None:
        # Already there, or a move the lifecycle forbids: the journey goes on.
        with suppress(LeadflowError):
            lifecycle_service.move(
                SqlLifecycleRepository(conn), leadflow.model, lead_id, stage, reason,
                "journey", "", now,
            )  # fmt: skip

    return move


# ------------------------------------------------------------------------------------------
def send_due(leadflow: Leadflow, messaging: Messaging, batch: int = SEND_BATCH) -> SendReport:
    """Send every delivery that is due now; the counts of what happened."""
    total = SendReport()
    while True:
        now = leadflow.clock.now()
        with leadflow.transaction() as conn:
            repo = SqlDeliveryRepository(conn)
            due = repo.due(now, batch)
            repo.lease([d.id for d in due], now + leadflow.nurture_rules.lease(), now)
        if not due:
            return total
        facts = _facts(leadflow, due, now)
        for delivery in due:
            send_one(leadflow, messaging, delivery, facts, total)
        if len(due) < batch:
            return total


@dataclass
class _Facts:
    """What the last checks of a batch read, loaded in a few statements."""

    leads: dict[int, LeadView]
    consent: dict[tuple[int, str], ConsentStatus]
    suppressed: set[tuple[str, str]]
    recent: dict[int, list[datetime]]


def _facts(leadflow: Leadflow, due: Sequence[DeliveryRecord], now: datetime) -> _Facts:
    ids = sorted({d.lead_id for d in due})
    with leadflow.engine.connect() as conn:
        views = SqlLeadRepository(conn).views(ids)
        consent_repo = SqlConsentRepository(conn)
        consent: dict[tuple[int, str], ConsentStatus] = {}
        suppressed: set[tuple[str, str]] = set()
        for channel in Channel:
            for lead, status in consent_repo.current(ids, channel).items():
                consent[(lead, channel.value)] = status
            addresses = [_address(views.get(i), channel) or "" for i in ids]
            suppressed |= {(channel.value, a) for a in consent_repo.suppressed(channel, addresses)}
        window = leadflow.nurture_rules.cap_window()
        recent = SqlJourneyRepository(conn).sent_since(ids, now - window)
    return _Facts(views, consent, suppressed, recent)


def _address(lead: LeadView | None, channel: Channel) -> str | None:
    if lead is None:
        return None
    return lead.email if channel is Channel.EMAIL else lead.phone


def send_one(
    leadflow: Leadflow,
    messaging: Messaging,
    delivery: DeliveryRecord,
    facts: _Facts,
    report: SendReport,
) -> None:
    """The last checks, then the hand-off, for one delivery of a leased batch."""
    now = leadflow.clock.now()
    channel = Channel(delivery.channel)
    reply = stored_message(delivery) if delivery.journey is None else None
    if reply is not None:  # a keyword confirmation or a one-off text, retried as it was
        outcome = hand_off(messaging.transport(delivery.channel), reply)
        _record_outcome(leadflow, delivery, outcome, delivery.content, report)
        return
    lead = facts.leads.get(delivery.lead_id)
    address = _address(lead, channel)
    consent = facts.consent.get((delivery.lead_id, channel.value), ConsentStatus.NONE)
    suppressed = (channel.value, address or "") in facts.suppressed
    recent = facts.recent.get(delivery.lead_id, [])
    rules = leadflow.nurture_rules
    local = None
    if channel is Channel.SMS and lead is not None and leadflow.settings.sms is not None:
        local = send_window(leadflow.sms_config, lead.traits, lead.phone, rules.default_timezone)
    transactional = delivery.content.get("kind") == OPT_IN_KIND
    verdict = judge(delivery, lead, consent, suppressed, recent, rules, now, local, transactional)
    if verdict.skip is not None or verdict.wait_until is not None or lead is None:
        _record_verdict(leadflow, delivery, verdict, report, now)
        return
    composer = messaging.composer
    transport = messaging.transport(delivery.channel)
    if composer is None or transport is None:
        _finish(leadflow, delivery, "failed", f"no {delivery.channel} transport configured", now)
        report.failed += 1
        report.count("no_transport")
        return
    try:
        message, content = (
            composer.email(delivery, lead)
            if channel is Channel.EMAIL
            else composer.sms(delivery, lead)
        )
    except LeadflowError as exc:
        _finish(leadflow, delivery, "failed", f"cannot render: {exc.message}", now)
        report.failed += 1
        report.count("render_error")
        return
    outcome = hand_off(transport, message)
    if outcome.receipt is not None:  # counted now: the next delivery of this lead sees it
        facts.recent.setdefault(delivery.lead_id, []).append(now)
    _record_outcome(leadflow, delivery, outcome, {**delivery.content, **content}, report)


def _record_verdict(
    leadflow: Leadflow,
    delivery: DeliveryRecord,
    verdict: Verdict,
    report: SendReport,
    now: datetime,
) -> None:
    if verdict.skip is not None:
        _finish(leadflow, delivery, "skipped", f"{verdict.skip}: {verdict.detail}", now)
        report.skipped += 1
        report.count(verdict.skip)
        return
    assert verdict.wait_until is not None
    with leadflow.transaction() as conn:
        SqlDeliveryRepository(conn).reschedule(delivery.id, verdict.wait_until, verdict.detail, now)
    report.deferred += 1
    capped = verdict.detail.startswith(SkipReason.FREQUENCY_CAP.value)
    report.count(SkipReason.FREQUENCY_CAP.value if capped else "quiet_hours")


def _record_outcome(
    leadflow: Leadflow,
    delivery: DeliveryRecord,
    outcome: Handoff,
    content: dict[str, Any],
    report: SendReport,
) -> None:
    now = leadflow.clock.now()
    rules = leadflow.nurture_rules
    if outcome.receipt is not None:
        receipt = outcome.receipt
        with leadflow.transaction() as conn:
            repo = SqlDeliveryRepository(conn)
            repo.mark_sent(
                delivery.id, receipt.provider_id, receipt.parts, receipt.detail, now, content
            )
            if delivery.run_id is not None:
                SqlJourneyRepository(conn).resume([delivery.run_id], now)
        report.sent += 1
        return
    attempts = delivery.attempts + 1
    if outcome.transient is not None and attempts < rules.max_attempts:
        with leadflow.transaction() as conn:
            SqlDeliveryRepository(conn).mark_retry(
                delivery.id, outcome.transient, now + rules.backoff(attempts), now
            )
        report.retried += 1
        return
    reason = outcome.permanent or f"gave up after {attempts} attempts: {outcome.transient}"
    _finish(leadflow, delivery, "failed", reason, now, attempted=True)
    report.failed += 1
    report.count("permanent" if outcome.permanent else "retries_exhausted")


def _finish(
    leadflow: Leadflow,
    delivery: DeliveryRecord,
    status: str,
    reason: str,
    now: datetime,
    attempted: bool = False,
) -> None:
    """A delivery that will not go out: record why, and let its journey run go on."""
    with leadflow.transaction() as conn:
        repo = SqlDeliveryRepository(conn)
        if status == "skipped":
            repo.mark_skipped(delivery.id, reason, now)
        else:
            repo.mark_failed(delivery.id, reason, now, attempted)
        if delivery.run_id is not None:
            SqlJourneyRepository(conn).resume([delivery.run_id], now)
