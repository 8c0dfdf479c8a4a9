"""Lifecycle stages, the table of allowed transitions, and the sales step's rules.

lead -> mql (the policy) -> sal (sales accepts) -> sql -> opportunity -> customer, with
recycled (sales rejects, or the lead went cold before sales acted) and disqualified.
A stage change is a compare-and-set on (stage, version); see the lead repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from leadflow.domain.errors import Conflict, ValidationError

STAGES = ("lead", "mql", "sal", "sql", "opportunity", "customer", "recycled", "disqualified")

# (from, to) -> what may cause it
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    ("lead", "mql"): frozenset({"policy", "user"}),
    ("recycled", "mql"): frozenset({"policy", "user"}),
    ("mql", "sal"): frozenset({"user"}),
    ("mql", "recycled"): frozenset({"user", "policy"}),
    ("sal", "sql"): frozenset({"user"}),
    ("sal", "recycled"): frozenset({"user"}),
    ("sql", "opportunity"): frozenset({"user", "crm"}),
    ("opportunity", "customer"): frozenset({"user", "crm"}),
    ("opportunity", "recycled"): frozenset({"user", "crm"}),
    **{(stage, "disqualified"): frozenset({"user"}) for stage in STAGES if stage != "disqualified"},
    ("disqualified", "lead"): frozenset({"user"}),
}
QUALIFYING = frozenset({"lead", "recycled"})  # stages from which the policy may make an MQL


@dataclass(frozen=True, slots=True)
class StageChange:
    """One transition, as recorded in the stage history and the outbox."""

    lead_id: int
    from_stage: str
    to_stage: str
    at: datetime
    actor: str  # "policy", "user:<name>", "crm", "sla"
    reason: str  # a reason code or the policy clause that fired
    note: str = ""
    model_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lead_id": self.lead_id,
            "from": self.from_stage,
            "to": self.to_stage,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "reason": self.reason,
            "note": self.note,
            "model_version": self.model_version,
        }


def check_transition(from_stage: str, to_stage: str, cause: str) -> None:
    """Raise Conflict when ``from_stage -> to_stage`` is not allowed for that cause."""
    if to_stage not in STAGES:
        raise ValidationError(f"stage: unknown stage {to_stage!r}; one of {', '.join(STAGES)}")
    allowed = TRANSITIONS.get((from_stage, to_stage))
    if allowed is None or cause not in allowed:
        raise Conflict(f"a lead in stage {from_stage!r} cannot move to {to_stage!r} ({cause})")


@dataclass(frozen=True, slots=True)
class SalesRules:
    accept_reasons: tuple[str, ...]
    reject_reasons: tuple[str, ...]
    sla: timedelta | None  # time sales has to accept or reject an MQL
    recycle_when_cold: bool = True

    def check_reason(self, decision: str, reason: str) -> None:
        known = self.accept_reasons if decision == "accept" else self.reject_reasons
        if reason not in known:
            raise ValidationError(
                f"reason: {reason!r} is not {'an' if decision == 'accept' else 'a'} "
                f"{decision} reason; one of {', '.join(known)}"
            )

    def due(self, mql_at: datetime) -> datetime | None:
        return mql_at + self.sla if self.sla is not None else None
