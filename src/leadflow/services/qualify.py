"""Qualification: score a lead's new events, refresh fit and engagement, apply the policy.

Everything here works on one locked :class:`LeadRecord` in memory; the caller loads and saves.
Each event costs O(rules) whatever the lead's history; a stage change produces a history row
and an outbox row, saved by the caller in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from leadflow.domain.features import STATE_KEY
from leadflow.domain.lifecycle import QUALIFYING, StageChange
from leadflow.domain.policy import Facts, Verdict
from leadflow.domain.scoring import (
    EngagementScore,
    EngagementState,
    ScoredEvent,
    apply_event,
    engagement_at,
    engagement_bounds,
    epoch,
    fit_of,
    fit_source,
    merge_states,
    utc,
)
from leadflow.ports import LeadRecord, LedgerRow, OutboxRow
from leadflow.services.models import ScoringModel
from leadflow.services.predict_live import LivePredictor, merge_feature_states, observe_all

STAGE_TOPIC = "lead.stage_changed"
SLA_TOPIC = "lead.sla_breached"


@dataclass
class Outcome:
    ledger: list[LedgerRow] = field(default_factory=list)
    changes: list[StageChange] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.ledger.extend(other.ledger)
        self.changes.extend(other.changes)
        self.outbox.extend(other.outbox)


def stage_outbox(change: StageChange) -> OutboxRow:
    return OutboxRow(
        STAGE_TOPIC,
        change.lead_id,
        {
            "lead_id": change.lead_id,
            "from": change.from_stage,
            "to": change.to_stage,
            "at": change.at.isoformat(),
            "actor": change.actor,
            "reason": change.reason,
            "model_version": change.model_version,
        },
        change.at,
    )


class Qualifier:
    """Applies one scoring model to leads."""

    def __init__(self, model: ScoringModel, predictor: LivePredictor | None = None) -> None:
        self.model = model
        self.predictor = predictor  # the active conversion model, if any: sets p_convert
        self.watched = model.watched_events
        # Scores only fall with time when no decaying rule takes points away.
        self.monotone = all(
            r.points >= 0 and r.points_from is None for r in model.rules.engagement if r.half_life
        )

    def merge_scores(self, survivor: dict[str, Any], loser: dict[str, Any]) -> dict[str, Any]:
        """The engagement state of two leads that become one."""
        merged = merge_states(
            EngagementState.from_json(survivor), EngagementState.from_json(loser), self.model.rules
        )
        features = merge_feature_states(survivor.get(STATE_KEY), loser.get(STATE_KEY))
        return merged.to_json() | ({STATE_KEY: features} if features else {})

    def score_events(
        self, lead: LeadRecord, events: Sequence[tuple[int, ScoredEvent]]
    ) -> list[LedgerRow]:
        """Add each event's points to the lead's engagement state (O(1) per event)."""
        state = EngagementState.from_json(lead.score_state)
        if lead.model_version not in (None, self.model.version) and lead.score_state:
            # scored by another model: a rebuild fills it in; a recycle reset stays
            state = EngagementState(reset_at=state.reset_at)
        rows: list[LedgerRow] = []
        for event_id, event in events:
            for c in apply_event(self.model.rules, state, event, self.watched):
                rows.append(
                    LedgerRow(
                        lead.id,
                        event_id,
                        self.model.version,
                        c.rule_id,
                        c.points,
                        c.counted,
                        c.reason,
                        event.timestamp,
                    )
                )
        features = observe_all(lead.score_state.get(STATE_KEY), (e for _, e in events))
        lead.score_state = state.to_json() | {STATE_KEY: features}
        lead.model_version = self.model.version
        return rows

    def facts(self, lead: LeadRecord, now: datetime) -> tuple[Facts, EngagementScore]:
        state = EngagementState.from_json(lead.score_state)
        engagement = engagement_at(self.model.rules, state, now)
        recent = {
            name: [utc(t) for t in state.recent.get(name.lower(), [])] for name in self.watched
        }
        facts = Facts(
            fit_grade=lead.fit_grade,
            fit_score=lead.fit_score,
            engagement=engagement.total,
            groups=engagement.groups,
            p_convert=lead.p_convert,
            stage=lead.stage,
            traits=lead.profile.traits,
            account=lead.account_traits,
            now=now,
            recent=recent,
        )
        return facts, engagement

    def refresh(self, lead: LeadRecord, now: datetime, refit: bool = True) -> Outcome:
        """Fit, engagement and the policy as of ``now``; a stage change if the policy says so.
        ``refit=False`` keeps the stored fit (the lead's traits and account did not change)."""
        if refit or lead.fit_grade is None:
            profile = lead.profile
            rules = self.model.rules
            source = fit_source(profile.traits, lead.account_traits, profile.email, rules)
            fit = fit_of(rules, source)
            lead.fit_score, lead.fit_grade = fit.score, fit.grade
        if self.predictor is not None:
            p = self.predictor.predict(lead, now)
            lead.p_convert = lead.p_convert if p is None else round(p, 6)
        facts, engagement = self.facts(lead, now)
        lead.engagement_score = round(engagement.total, 6)
        lead.scored_at = now
        verdict = self.model.policy.evaluate(facts)
        outcome = Outcome()
        change = self._transition(lead, verdict, now)
        if change is not None:
            outcome.changes.append(change)
            outcome.outbox.append(stage_outbox(change))
            facts, _ = self.facts(lead, now)
        lead.next_review_at = self._next_review(lead, facts)
        return outcome

    def _transition(self, lead: LeadRecord, verdict: Verdict, now: datetime) -> StageChange | None:
        if lead.stage in QUALIFYING and verdict.result:
            reason = "policy: " + " | ".join(verdict.fired)
            change = self._move(lead, "mql", now, reason)
            lead.mql_at = now
            lead.sla_due_at = self.model.sales.due(now)
            return change
        if lead.stage == "mql" and not verdict.result and self.model.sales.recycle_when_cold:
            lead.sla_due_at = None
            return self._move(lead, "recycled", now, "went_cold")
        return None

    def _move(self, lead: LeadRecord, to: str, now: datetime, reason: str) -> StageChange:
        change = StageChange(lead.id, lead.stage, to, now, "policy", reason, "", self.model.version)
        lead.stage = to
        lead.version += 1
        return change

    def _next_review(self, lead: LeadRecord, facts: Facts) -> datetime | None:
        """When time alone may change the policy's answer (decay, expiring windows)."""
        if lead.stage not in QUALIFYING and lead.stage != "mql":
            return None
        state = EngagementState.from_json(lead.score_state)
        rules = self.model.rules

        def decay(variable: str, at: datetime) -> float:
            return _value_of(engagement_at(rules, state, at), variable)

        limits = cache(lambda: engagement_bounds(rules, state, facts.now))

        def bounds(variable: str) -> tuple[float, float]:
            low, high = limits()
            return _value_of(low, variable), _value_of(high, variable)

        found = self.model.policy.next_change(facts, decay, self.monotone, bounds)
        return found if found is None or epoch(found) > epoch(facts.now) else None


def _value_of(score: EngagementScore, variable: str) -> float:
    """``engagement`` or ``groups.<name>`` of a score (a group without points: 0)."""
    if variable == "engagement":
        return score.total
    return score.groups.get(variable.removeprefix("groups."), 0.0)
