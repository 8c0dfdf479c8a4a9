"""The worker: due reviews and SLA escalations, the outbox (journey triggers, sales
webhooks), journey steps, messages and webhooks, in small transactions, until stopped.

Several workers may run against PostgreSQL (due rows are taken with SKIP LOCKED); on SQLite
run one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.bootstrap import Leadflow
from leadflow.jobs.messaging import messaging_for
from leadflow.jobs.nurture import Messaging, enroll_dates, journey_consumer, run_steps, send_due
from leadflow.jobs.outbox import Consumer, dispatch
from leadflow.jobs.webhooks import handoff_consumers, send_due_webhooks
from leadflow.services.deliveries import SendReport
from leadflow.services.journeys import StepReport
from leadflow.services.reviews import ReviewReport, escalate_sla, review_due


def run_once(leadflow: Leadflow) -> ReviewReport:
    """Work until nothing is due; each batch commits on its own."""
    total = ReviewReport()
    while True:
        now = leadflow.clock.now()
        with leadflow.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            tracker = leadflow.segment_tracker(conn)
            batch = review_due(repo, leadflow.qualifier, now, tracker.leads_changed)
            batch += escalate_sla(repo, leadflow.qualifier, now)
        total += batch
        if batch.reviewed == 0 and batch.escalated == 0:
            return total


@dataclass
class WorkReport:
    """One pass of the worker: reviews and escalations, outbox rows handed to consumers,
    journey steps, messages and sales webhooks."""

    inbox: int = 0  # staged tracking messages processed
    reviews: ReviewReport = field(default_factory=ReviewReport)
    outbox: int = 0
    steps: StepReport = field(default_factory=StepReport)
    sends: SendReport = field(default_factory=SendReport)
    webhooks: int = 0

    @property
    def busy(self) -> bool:
        r = self.reviews
        return bool(
            self.inbox or r.reviewed or r.escalated or self.outbox or self.steps.runs
            or self.webhooks or self.sends.sent or self.sends.skipped or self.sends.failed
            or self.sends.retried
        )  # fmt: skip

    def summary(self) -> str:
        s = self.sends
        return (
            f"reviewed {self.reviews.reviewed}, "
            f"stage changes {self.reviews.changes}, "
            f"escalated {self.reviews.escalated}, outbox {self.outbox}, "
            f"journey steps {self.steps.steps} ({self.steps.finished} runs done), "
            f"sent {s.sent}, skipped {s.skipped}, deferred {s.deferred}, retried {s.retried}, "
            f"failed {s.failed}, webhooks {self.webhooks}, inbox {self.inbox}"
        )


def drain(leadflow: Leadflow, requests: int = 50) -> int:
    """Process the inbox of staged ingestion until it is empty; the messages processed."""
    total = 0
    while True:
        drained = leadflow.drain_inbox(requests)
        if drained.requests == 0:
            return total
        total += drained.result.accepted + drained.result.duplicates


def consumers(leadflow: Leadflow) -> list[Consumer]:
    """Everything that reacts to outbox rows: journeys, then the sales handoff."""
    return [journey_consumer(leadflow), *handoff_consumers(leadflow)]


def work_once(leadflow: Leadflow, messaging: Messaging, client: httpx.Client) -> WorkReport:
    """Everything that is due now, in order: reviews (which may change stages), the outbox
    (which starts journeys and queues webhooks), journey steps, messages, webhooks, and the
    journey steps that the messages let go on. Staged tracking requests come first: the
    events they hold may change stages."""
    inbox = drain(leadflow)
    found = WorkReport(reviews=run_once(leadflow), inbox=inbox)
    found.outbox = dispatch(leadflow, consumers(leadflow))
    found.steps.enrolled = enroll_dates(leadflow)
    found.steps += run_steps(leadflow)
    found.sends = send_due(leadflow, messaging)
    found.steps += run_steps(leadflow)
    found.outbox += dispatch(leadflow, consumers(leadflow))
    found.webhooks = send_due_webhooks(leadflow, client)
    return found


def run_forever(
    leadflow: Leadflow,
    interval: float,
    stop: threading.Event,
    report: Callable[[WorkReport], None] = lambda _r: None,
    timeout: float = 10.0,
) -> None:
    """Work every ``interval`` seconds until ``stop`` is set."""
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        messaging = messaging_for(leadflow, client)
        while not stop.is_set():
            started = time.monotonic()
            found = work_once(leadflow, messaging, client)
            if found.busy:
                report(found)
            stop.wait(max(0.0, interval - (time.monotonic() - started)))
