"""What the worker does: look again at leads whose answer may have changed with time alone
(scores decayed, a happened() window expired), and escalate MQLs past their SLA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from leadflow.domain.lifecycle import StageChange
from leadflow.ports import LeadRecord, LedgerRow, OutboxRow
from leadflow.services.qualify import SLA_TOPIC, Outcome, Qualifier

BATCH = 500


class ReviewRepository(Protocol):
    def due_reviews(self, now: datetime, limit: int) -> list[int]: ...
    def sla_breaches(self, now: datetime, limit: int) -> list[int]: ...
    def load_for_update(self, lead_ids: list[int]) -> dict[int, LeadRecord]: ...
    def save_leads(self, records: list[LeadRecord], at: datetime) -> None: ...
    def record_scores(self, rows: list[LedgerRow]) -> None: ...
    def record_changes(self, changes: list[StageChange], outbox: list[OutboxRow]) -> None: ...


@dataclass
class ReviewReport:
    reviewed: int = 0
    changes: int = 0
    escalated: int = 0

    def __iadd__(self, other: ReviewReport) -> ReviewReport:
        self.reviewed += other.reviewed
        self.changes += other.changes
        self.escalated += other.escalated
        return self


def review_due(
    repo: ReviewRepository,
    qualifier: Qualifier,
    now: datetime,
    on_change: Callable[[Sequence[int], datetime], None] | None = None,
) -> ReviewReport:
    """Re-evaluate one batch of due leads; a stage change is recorded with its outbox row.
    ``on_change`` is told which leads were rescored (segment membership)."""
    ids = repo.due_reviews(now, BATCH)
    records = repo.load_for_update(ids)
    outcome = Outcome()
    for lead_id in sorted(records):
        outcome.extend(qualifier.refresh(records[lead_id], now))
    repo.save_leads([records[i] for i in sorted(records)], now)
    repo.record_changes(outcome.changes, outcome.outbox)
    if on_change is not None:
        on_change(sorted(records), now)
    return ReviewReport(reviewed=len(records), changes=len(outcome.changes))


def escalate_sla(repo: ReviewRepository, qualifier: Qualifier, now: datetime) -> ReviewReport:
    """MQLs that sales neither accepted nor rejected in time: one escalation each."""
    ids = repo.sla_breaches(now, BATCH)
    records = repo.load_for_update(ids)
    pending: list[OutboxRow] = []
    for lead_id in sorted(records):
        record = records[lead_id]
        due = record.sla_due_at
        pending.append(
            OutboxRow(
                SLA_TOPIC,
                lead_id,
                {
                    "lead_id": lead_id,
                    "stage": record.stage,
                    "mql_at": record.mql_at.isoformat() if record.mql_at else None,
                    "sla_due_at": due.isoformat() if due else None,
                    "escalated_at": now.isoformat(),
                    "model_version": qualifier.model.version,
                },
                now,
            )
        )
        record.sla_due_at = None  # escalated once
    repo.save_leads([records[i] for i in sorted(records)], now)
    repo.record_changes([], pending)
    return ReviewReport(escalated=len(records))
