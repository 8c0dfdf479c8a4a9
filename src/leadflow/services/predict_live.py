"""The live conversion probability: a lead's feature state follows its events (O(1) each,
inside its ``score_state``), and the active model turns the state into ``p_convert`` when the
lead is qualified, without retraining and without reading its history again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from leadflow.domain.features import (
    HALF_LIFE,
    MAX_SEEN,
    STATE_KEY,
    FeatureState,
    lead_row,
    observe_event,
)
from leadflow.domain.scoring import EngagementState, ScoredEvent, ScoringRules, engagement_at
from leadflow.ports import LeadRecord
from leadflow.services.predict_model import ModelFile, Predictor


def observe_all(data: Mapping[str, Any] | None, events: Iterable[ScoredEvent]) -> dict[str, Any]:
    """The feature state (JSON) after these events."""
    state = FeatureState.from_json(data)
    for event in events:
        observe_event(state, event)
    return state.to_json()


def merge_feature_states(
    survivor: Mapping[str, Any] | None, loser: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """One state for two leads that become one: counts add, decayed counts add at the newer
    instant, first and last seen widen, sources and campaigns join."""
    if not survivor or not loser:
        found = survivor or loser
        return dict(found) if found else None
    a, b = FeatureState.from_json(survivor), FeatureState.from_json(loser)
    for key, count in b.counts.items():
        a.counts[key] = a.counts.get(key, 0) + count
        value, as_of = b.decayed[key]
        mine = a.decayed.get(key)
        if mine is None:
            a.decayed[key] = [value, as_of]
            continue
        newest = max(mine[1], as_of)
        mine[0] = _at(mine, newest) + _at([value, as_of], newest)
        mine[1] = newest
    a.events += b.events
    a.days += b.days
    firsts = [x for x in (a.first, b.first) if x is not None]
    lasts = [x for x in (a.last, b.last) if x is not None]
    a.first, a.last = (min(firsts) if firsts else None), (max(lasts) if lasts else None)
    a.sources = list(dict.fromkeys(a.sources + b.sources))[:MAX_SEEN]
    a.campaigns = list(dict.fromkeys(a.campaigns + b.campaigns))[:MAX_SEEN]
    a.first_touch = a.first_touch or b.first_touch
    return a.to_json()


def _at(slot: list[float], when: float) -> float:
    return slot[0] * 2 ** (-(when - slot[1]) / HALF_LIFE)


def features_of(
    lead: LeadRecord, now: datetime, rules: ScoringRules | None = None
) -> dict[str, Any] | None:
    """The lead's feature row as of ``now``, or None when it has no feature state. With the
    scoring rules, the lead's fit score and engagement now are features too."""
    data = lead.score_state.get(STATE_KEY)
    if not isinstance(data, Mapping):
        return None
    scores = None
    if rules is not None:
        engagement = engagement_at(rules, EngagementState.from_json(lead.score_state), now)
        scores = {"fit": lead.fit_score, "engagement": engagement.total}
    return lead_row(
        FeatureState.from_json(data), lead.profile.traits, lead.account_traits, now,
        lead.profile.email, scores,
    )  # fmt: skip


class LivePredictor:
    """The active model, loaded once, scoring one lead at a time."""

    def __init__(self, model: ModelFile, rules: ScoringRules | None = None) -> None:
        self.model = model
        self.predictor = Predictor(model)
        self.version = model.version
        names = {f.name for f in model.features}
        # the scoring model's scores, only for a model trained with them
        self.rules = rules if names & {"score fit", "score engagement"} else None

    def predict(self, lead: LeadRecord, now: datetime) -> float | None:
        row = features_of(lead, now, self.rules)
        return None if row is None else self.predictor.predict(row)

    def explain(self, lead: LeadRecord, now: datetime) -> dict[str, Any] | None:
        row = features_of(lead, now, self.rules)
        if row is None:
            return None
        found = self.predictor.factors(row)
        return {"model_version": self.version, "outcome": self.model.outcome, **found}


class RefreshRepository(Protocol):
    def load_for_update(self, lead_ids: Iterable[int]) -> dict[int, LeadRecord]: ...
    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]: ...
    def save_predictions(
        self, rows: Sequence[tuple[int, dict[str, Any], float | None]]
    ) -> None: ...


def refresh_chunk(
    repo: RefreshRepository, predictor: LivePredictor | None, lead_ids: Sequence[int],
    now: datetime,
) -> int:  # fmt: skip
    """Rebuild these leads' feature states from their events (the same code as the live
    path) and their p_convert with the active model (none: cleared). Returns the events read."""
    records = repo.load_for_update(lead_ids)
    states = {lead_id: FeatureState() for lead_id in records}
    seen = 0
    for lead_id, _, event in repo.events_of(sorted(records)):
        observe_event(states[lead_id], event)
        seen += 1
    rows: list[tuple[int, dict[str, Any], float | None]] = []
    for lead_id in sorted(records):
        record = records[lead_id]
        record.score_state = {**record.score_state, STATE_KEY: states[lead_id].to_json()}
        p = predictor.predict(record, now) if predictor is not None else None
        rows.append((lead_id, record.score_state, None if p is None else round(p, 6)))
    repo.save_predictions(rows)
    return seen
