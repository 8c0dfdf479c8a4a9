"""Why a lead has its scores and its stage, from stored data alone.

Every engagement rule's contribution is rebuilt from the score ledger (each counted event's
points, decayed to now), capped as the model says; groups are capped sums of their rules; the
total is the sum of its parts, so the explanation always adds up. Fit lists the criteria met;
the policy shows the clause that holds now; the stage history shows who moved the lead, why,
and under which model version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from leadflow.domain.scoring import (
    BEFORE_RESET,
    EngagementRule,
    EngagementState,
    epoch,
    fit_of,
    fit_source,
)
from leadflow.ports import LeadRecord
from leadflow.services.models import ScoringModel
from leadflow.services.predict_live import LivePredictor
from leadflow.services.qualify import Qualifier

EVENTS_SHOWN = 25


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    event_id: int
    rule_id: str
    points: float
    counted: bool
    reason: str
    timestamp: datetime
    event_type: str
    event_name: str | None


class ExplainRepository(Protocol):
    def record(self, lead_id: int) -> LeadRecord | None: ...
    def ledger(self, lead_id: int, version: str) -> list[LedgerEntry]: ...
    def history(self, lead_id: int) -> list[dict[str, Any]]: ...


def _half_life(rule: EngagementRule) -> str:
    if rule.half_life is None:
        return "none"
    days = rule.half_life / 86400
    return f"{days:g}d" if days >= 1 else f"{rule.half_life / 3600:g}h"


def _rule_part(rule: EngagementRule, entries: Sequence[LedgerEntry], now: float) -> dict[str, Any]:
    events = []
    raw = 0.0
    for entry in sorted(entries, key=lambda e: (e.timestamp, e.event_id), reverse=True):
        decayed = entry.points * rule.decay(now - epoch(entry.timestamp)) if entry.counted else 0.0
        raw += decayed
        events.append(
            {
                "event_id": entry.event_id,
                "event": entry.event_name or entry.event_type,
                "timestamp": entry.timestamp.isoformat(),
                "points": entry.points,
                "decayed": round(decayed, 4),
                "counted": entry.counted,
                "reason": entry.reason,
            }
        )
    score = min(raw, rule.cap) if rule.cap is not None else raw
    return {
        "rule": rule.id,
        "description": rule.description,
        "group": rule.group,
        "points_per_event": rule.points,
        "half_life": _half_life(rule),
        "cap": rule.cap,
        "daily_limit": rule.daily_limit,
        "events_counted": sum(1 for e in entries if e.counted),
        "events_not_counted": sum(1 for e in entries if not e.counted),
        "raw": raw,
        "score": score,
        "capped": rule.cap is not None and raw > rule.cap,
        "events": events[:EVENTS_SHOWN],
    }


def engagement_part(
    model: ScoringModel, ledger: Sequence[LedgerEntry], now: datetime
) -> dict[str, Any]:
    when = epoch(now)
    by_rule: dict[str, list[LedgerEntry]] = {}
    for entry in ledger:
        by_rule.setdefault(entry.rule_id, []).append(entry)
    rules = [
        _rule_part(rule, by_rule[rule.id], when)
        for rule in model.rules.engagement
        if rule.id in by_rule
    ]
    groups: dict[str, dict[str, Any]] = {}
    for name, ceiling in model.rules.groups.items():
        summed = sum(r["score"] for r in rules if r["group"] == name)
        score = min(summed, ceiling) if ceiling is not None else summed
        groups[name] = {"score": score, "ceiling": ceiling, "sum_of_rules": summed}
    ungrouped = sum(r["score"] for r in rules if r["group"] is None)
    total = ungrouped + sum(g["score"] for g in groups.values())
    # not rounded: the parts add up to the total exactly, and it agrees with the lead's score
    return {"total": total, "ungrouped": ungrouped, "groups": groups, "rules": rules}


def _after_reset(entry: LedgerEntry, reset_at: float | None) -> LedgerEntry:
    if reset_at is None or not entry.counted or epoch(entry.timestamp) >= reset_at:
        return entry
    return replace(entry, counted=False, reason=BEFORE_RESET)


def explain(
    repo: ExplainRepository,
    model: ScoringModel,
    lead_id: int,
    now: datetime,
    predictor: LivePredictor | None = None,
) -> dict[str, Any] | None:
    lead = repo.record(lead_id)
    if lead is None:
        return None
    version = lead.model_version or model.version
    reset_at = EngagementState.from_json(lead.score_state).reset_at
    entries = [_after_reset(e, reset_at) for e in repo.ledger(lead.id, version)]
    engagement = engagement_part(model, entries, now)
    source = fit_source(lead.profile.traits, lead.account_traits, lead.profile.email, model.rules)
    fit = fit_of(model.rules, source)
    facts, _score = Qualifier(model).facts(lead, now)
    verdict = model.policy.evaluate(facts)
    return {
        "lead_id": lead.id,
        "stage": lead.stage,
        "model_version": version,
        "live_model_version": model.version,
        "as_of": now.isoformat(),
        "engagement": engagement,
        "fit": {
            "score": fit.score,
            "grade": fit.grade,
            "thresholds": dict(model.rules.grades),
            "criteria": [
                {
                    "rule": rule.id,
                    "description": rule.description,
                    "points": rule.points,
                    "conditions": [c.describe() for c in rule.when],
                }
                for rule in fit.matched
            ],
        },
        "policy": {
            "expression": model.policy.source,
            "result": verdict.result,
            "fired": list(verdict.fired),
        },
        "history": repo.history(lead.id),
        "prediction": predictor.explain(lead, now) if predictor is not None else None,
    }
