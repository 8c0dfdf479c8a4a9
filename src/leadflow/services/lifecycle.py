"""The sales step and manual stage changes, as compare-and-set updates.

Accept (MQL -> SAL) and reject (MQL -> recycled) need a reason code from the model's lists.
A stage change updates ``WHERE stage = :from AND version = :v``: when another worker changed
the lead in between, nothing is overwritten; the change is retried on the fresh state, and
refused with a Conflict when the stage no longer allows it (an already-accepted lead).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from leadflow.domain.errors import Conflict, NotFound
from leadflow.domain.features import STATE_KEY
from leadflow.domain.lifecycle import StageChange, check_transition
from leadflow.domain.scoring import EngagementState
from leadflow.ports import LeadRecord, OutboxRow
from leadflow.services.models import ScoringModel
from leadflow.services.qualify import stage_outbox

ATTEMPTS = 5


class LifecycleRepository(Protocol):
    def current(self, lead_id: int) -> LeadRecord | None: ...
    def compare_and_set(
        self, record: LeadRecord, expected_stage: str, expected_version: int
    ) -> bool: ...
    def record_changes(self, changes: list[StageChange], outbox: list[OutboxRow]) -> None: ...


def decide(
    repo: LifecycleRepository,
    model: ScoringModel,
    lead_id: int,
    decision: str,
    reason: str,
    actor: str,
    note: str,
    now: datetime,
) -> StageChange:
    """Sales accepts (MQL -> SAL) or rejects (MQL -> recycled) an MQL, with a reason code."""
    model.sales.check_reason(decision, reason)
    target = "sal" if decision == "accept" else "recycled"
    reset = decision == "reject"
    return move(repo, model, lead_id, target, reason, actor, note, now, reset, only_from="mql")


def move(
    repo: LifecycleRepository,
    model: ScoringModel,
    lead_id: int,
    target: str,
    reason: str,
    actor: str,
    note: str,
    now: datetime,
    reset: bool = False,
    only_from: str | None = None,
) -> StageChange:
    """Move a lead to ``target`` on a person's (or the CRM's) say, compare-and-set."""
    cause = "crm" if actor == "crm" else "user"
    for _attempt in range(ATTEMPTS):
        record = repo.current(lead_id)
        if record is None:
            raise NotFound(f"no lead with id {lead_id}")
        if record.stage == target:
            raise Conflict(f"lead {lead_id} is already in stage {target!r}")
        if only_from is not None and record.stage != only_from:
            raise Conflict(f"lead {lead_id} is in stage {record.stage!r}, not {only_from!r}")
        check_transition(record.stage, target, cause)
        stage, version = record.stage, record.version
        change = StageChange(lead_id, stage, target, now, actor, reason, note, model.version)
        record.stage, record.version = target, version + 1
        record.sla_due_at = None
        if target == "mql":
            record.mql_at = now
            record.sla_due_at = model.sales.due(now)
        if reset:  # a rejected lead must earn its engagement again before it requalifies
            features = record.score_state.get(STATE_KEY)  # behaviour stays: it is history
            record.score_state = EngagementState.reset(now).to_json() | (
                {STATE_KEY: features} if features else {}
            )
            record.engagement_score = 0.0
        if repo.compare_and_set(record, stage, version):
            repo.record_changes([change], [stage_outbox(change)])
            return change
    raise Conflict(f"lead {lead_id} kept changing; try again")
