"""Batch rescoring: replay the event log under a model version, as the live path would have.

Events are replayed per lead in arrival order (event id), through the same
:func:`leadflow.domain.scoring.apply_event` the live path uses, so the rebuilt state is the
state incremental scoring would have reached with that model. A recycle reset is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from leadflow.domain.features import STATE_KEY
from leadflow.domain.lifecycle import StageChange
from leadflow.domain.scoring import EngagementState, ScoredEvent, apply_event
from leadflow.ports import LeadRecord, LedgerRow, OutboxRow
from leadflow.services.qualify import Outcome, Qualifier

CHUNK = 2000  # leads per transaction


class ReplayRepository(Protocol):
    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]: ...
    def load_for_update(self, lead_ids: list[int]) -> dict[int, LeadRecord]: ...
    def save_leads(self, records: list[LeadRecord], at: datetime) -> None: ...
    def record_scores(self, rows: list[LedgerRow]) -> None: ...
    def forget_scores(self, lead_ids: Sequence[int], version: str) -> None: ...
    def record_changes(self, changes: list[StageChange], outbox: list[OutboxRow]) -> None: ...


class RescoreRepository(ReplayRepository, Protocol):
    def lead_ids_after(self, after: int, limit: int) -> list[int]: ...
    def count_leads(self) -> int: ...


@dataclass
class RescoreReport:
    leads: int = 0
    events: int = 0
    changes: int = 0

    def add(self, other: RescoreReport) -> None:
        """Count ``other``'s leads, events and stage changes in this report."""
        self.leads += other.leads
        self.events += other.events
        self.changes += other.changes


def rescore_chunk(
    repo: ReplayRepository, qualifier: Qualifier, lead_ids: list[int], now: datetime
) -> RescoreReport:
    """Rebuild the scores of these leads from their events, then apply the policy."""
    records = repo.load_for_update(lead_ids)
    version = qualifier.model.version
    states = {
        i: EngagementState(reset_at=EngagementState.from_json(r.score_state).reset_at)
        for i, r in records.items()
    }
    ledger: list[LedgerRow] = []
    events = 0
    for lead_id, event_id, event in repo.events_of(sorted(records)):
        events += 1
        for c in apply_event(qualifier.model.rules, states[lead_id], event, qualifier.watched):
            ledger.append(
                LedgerRow(
                    lead_id,
                    event_id,
                    version,
                    c.rule_id,
                    c.points,
                    c.counted,
                    c.reason,
                    event.timestamp,
                )
            )
    outcome = Outcome()
    for lead_id in sorted(records):
        record = records[lead_id]
        features = record.score_state.get(STATE_KEY)  # behaviour, for the predictive model
        record.score_state = states[lead_id].to_json() | ({STATE_KEY: features} if features else {})
        record.model_version = version
        outcome.extend(qualifier.refresh(record, now))
    repo.forget_scores(sorted(records), version)
    repo.record_scores(ledger)
    repo.save_leads([records[i] for i in sorted(records)], now)
    repo.record_changes(outcome.changes, outcome.outbox)
    return RescoreReport(len(records), events, len(outcome.changes))


def chunks_of_leads(repo: RescoreRepository, size: int = CHUNK) -> Iterator[list[int]]:
    after = 0
    while ids := repo.lead_ids_after(after, size):
        yield ids
        after = ids[-1]


ProgressFn = Callable[[RescoreReport], None]
