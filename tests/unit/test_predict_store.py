"""The training set from the store: snapshots at several cut-offs, their labels, the rows a
store's log cannot support, and parity of the training rows with the live path's rows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from leadflow.domain.features import STATE_KEY, FeatureState, observe_event
from leadflow.domain.profiles import Profile
from leadflow.domain.scoring import EngagementState, ScoredEvent, apply_event
from leadflow.ports import LeadRecord
from leadflow.services.models import default_model_text, load_model_text
from leadflow.services.predict_live import features_of
from leadflow.services.predict_store import (
    AFTER_LOG,
    CONVERTED,
    StoreTrainOptions,
    TrainingLead,
    TrainingSet,
    build_training_set,
)
from leadflow.services.predict_train import positives_of

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
MODEL = load_model_text(default_model_text(), "the default model")


def _page(path: str, day: float) -> ScoredEvent:
    return ScoredEvent("page", None, T0 + timedelta(days=day), {}, {"page": {"path": path}})


def _track(name: str, day: float) -> ScoredEvent:
    return ScoredEvent("track", name, T0 + timedelta(days=day), {}, {})


@dataclass
class FakeStore:
    """The reads training makes, over leads kept in memory."""

    events: dict[int, list[ScoredEvent]] = field(default_factory=dict)
    traits: dict[int, dict[str, Any]] = field(default_factory=dict)

    def data_end(self) -> datetime | None:
        found = [e.timestamp for events in self.events.values() for e in events]
        return max(found) if found else None

    def lead_ids_after(self, after: int, limit: int) -> list[int]:
        return sorted(i for i in self.events if i > after)[:limit]

    def count_leads(self) -> int:
        return len(self.events)

    def training_leads(self, lead_ids: Sequence[int]) -> dict[int, TrainingLead]:
        return {i: TrainingLead(i, self.traits.get(i, {}), {}, f"p{i}@acme.test") for i in lead_ids}

    def stage_reached(self, lead_ids: Sequence[int], stages: Sequence[str]) -> dict[int, datetime]:
        return {}  # the outcomes come as CRM events here

    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]:
        for i in lead_ids:
            for n, event in enumerate(self.events.get(i, [])):
                yield i, n, event


def _build(store: FakeStore, **options: Any) -> TrainingSet:
    @contextmanager
    def reader() -> Iterator[FakeStore]:
        yield store

    found, _ = build_training_set(reader, MODEL, StoreTrainOptions("opportunity", **options))
    return found


def _store() -> FakeStore:
    """Lead 1 converts on day 20, lead 2 on day 3, lead 3 never; lead 4's pages run to day
    100, so the behaviour log covers every cut-off below."""
    return FakeStore(
        events={
            1: [_page("/pricing", 0), _page("/pricing", 10), _track("Opportunity Created", 20)],
            2: [_page("/demo", 0), _track("Opportunity Created", 3)],
            3: [_page("/blog/a", 0)],
            4: [_page("/careers", 0), _page("/blog/b", 100)],
        }
    )


def test_each_lead_gives_a_row_per_cut_off_labelled_converted_or_not() -> None:
    found = _build(_store(), windows=(7.0, 14.0, 28.0), age_out_days=60)
    assert found.groups == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    # lead 1 reaches the outcome after its 7- and 14-day cut-offs, before its 28-day one
    assert found.labels[:3] == [1, 1, 1]
    assert found.reasons[:3] == ["reached the outcome", "reached the outcome", CONVERTED]
    assert found.labels[3:6] == [1, 1, 1] and set(found.reasons[3:6]) == {CONVERTED}
    assert found.labels[6:] == [0] * 6  # aged out
    ages = [(c - a) / 86_400 for c, a in zip(found.cutoffs, found.arrivals, strict=True)]
    assert ages == [7, 14, 28] * 4
    # each row sees the behaviour up to its own cut-off only
    assert [row["count page:/pricing"] for row in found.rows[:3]] == [1, 2, 2]
    assert found.rows[0]["days since first seen"] == 7 and found.rows[2]["events"] == 2
    assert "count event:opportunity created" not in found.rows[2]
    assert found.counts == {"reached the outcome": 2, CONVERTED: 4, "aged out": 6}


def test_excluding_the_converted_leaves_out_rows_after_the_outcome() -> None:
    found = _build(_store(), windows=(7.0, 14.0, 28.0), age_out_days=60, exclude_converted=True)
    assert found.groups == [1, 1, 3, 3, 3, 4, 4, 4]
    assert found.labels == [1, 1, 0, 0, 0, 0, 0, 0]
    assert found.counts["converted inside the window"] == 4


def test_cut_offs_after_the_last_behaviour_event_are_skipped_and_counted() -> None:
    """Outcomes recorded after the behaviour log stops: a lead would look silent at such a
    cut-off only because the log stops, so the row is left out."""
    store = _store()
    store.events[4] = [_page("/careers", 0), _page("/blog/b", 30)]  # the log ends on day 30
    store.events[5] = [_page("/pricing", 25), _track("Opportunity Created", 90)]
    found = _build(store, windows=(7.0, 14.0), age_out_days=60)
    assert 5 not in found.groups  # day 32 and 39 lie after the log
    assert found.counts[AFTER_LOG] == 2
    assert max(found.cutoffs) <= (T0 + timedelta(days=30)).timestamp()
    assert len(found.rows) == len(found.labels) == len(found.engagement) == len(found.reasons)


def test_a_training_row_is_the_row_the_live_path_computes_at_the_same_instant() -> None:
    store = _store()
    store.traits[1] = {"industry": "software", "title": "VP Marketing"}
    found = _build(store, windows=(14.0,), age_out_days=60)
    training_row = found.rows[found.groups.index(1)]
    cutoff = T0 + timedelta(days=14)
    state, engagement = FeatureState(), EngagementState()
    for event in store.events[1]:
        if event.timestamp < cutoff:  # what the live path had seen by then
            observe_event(state, event)
            apply_event(MODEL.rules, engagement, event, MODEL.watched_events)
    record = LeadRecord(
        id=1, stage="lead", version=1,
        profile=Profile(store.traits[1], "p1@acme.test", None, None, T0, None, {}, None),
        account_traits={},
        score_state={**engagement.to_json(), STATE_KEY: state.to_json()},
        fit_score=found.fit[0], fit_grade=None, engagement_score=0.0, p_convert=None,
        scored_at=None, model_version=None, mql_at=None, sla_due_at=None, next_review_at=None,
    )  # fmt: skip
    live_row = features_of(record, cutoff, MODEL.rules)
    assert live_row == training_row
    assert live_row["score engagement"] == pytest.approx(found.engagement[0]) and (
        live_row["score engagement"] > 0
    )


def test_the_positives_of_grouped_rows_are_counted_once_a_lead() -> None:
    y = np.array([1, 1, 1, 0, 1, 0])
    groups = np.array([7, 7, 7, 8, 9, 9])
    assert positives_of(y) == 4
    assert positives_of(y, groups) == 2
