"""The worker: due reviews and SLA escalations, in small transactions, until stopped.

Several workers may run against PostgreSQL (due rows are taken with SKIP LOCKED); on SQLite
run one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.bootstrap import Leadflow
from leadflow.services.reviews import ReviewReport, escalate_sla, review_due


def run_once(leadflow: Leadflow) -> ReviewReport:
    """Work until nothing is due; each batch commits on its own."""
    total = ReviewReport()
    while True:
        now = leadflow.clock.now()
        with leadflow.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            batch = review_due(repo, leadflow.qualifier, now)
            batch += escalate_sla(repo, leadflow.qualifier, now)
        total += batch
        if batch.reviewed == 0 and batch.escalated == 0:
            return total


def run_forever(
    leadflow: Leadflow,
    interval: float,
    stop: threading.Event,
    report: Callable[[ReviewReport], None] = lambda _r: None,
) -> None:
    while not stop.is_set():
        started = time.monotonic()
        found = run_once(leadflow)
        if found.reviewed or found.escalated:
            report(found)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
