"""The behaviour feature state: O(1) updates, decay, outcomes ignored, merges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow.domain.features import (
    HALF_LIFE,
    MAX_KEYS,
    FeatureState,
    behaviour_row,
    lead_row,
    observe,
)
from leadflow.domain.scoring import ScoredEvent
from leadflow.services.predict_live import merge_feature_states, observe_all

T0 = datetime(2025, 3, 3, tzinfo=UTC)


def _page(path: str, at: datetime) -> ScoredEvent:
    return ScoredEvent("page", None, at, {}, {"page": {"path": path}})


def test_counts_and_decayed_counts_per_event_key() -> None:
    state = FeatureState()
    for days in (0, 7):
        observe(state, "page", None, (T0 + timedelta(days=days)).timestamp(), "/pricing/x", {})
    observe(state, "track", "Demo Requested", T0.timestamp(), None, {})
    row = behaviour_row(state, T0 + timedelta(days=14))
    assert row["count page:/pricing"] == 2
    assert row["decayed page:/pricing"] == pytest.approx(0.5 + 0.25)  # half-life 7 days
    assert row["count event:demo requested"] == 1
    assert row["days since first seen"] == pytest.approx(14)
    assert row["days since last seen"] == pytest.approx(7)
    assert row["active days"] == 2


def test_a_late_event_gives_the_same_state_as_in_order() -> None:
    times = [T0 + timedelta(days=d) for d in (0, 3, 1)]
    late = observe_all(None, [_page("/pricing", t) for t in times])
    ordered = observe_all(None, [_page("/pricing", t) for t in sorted(times)])
    assert late["decayed"]["page:/pricing"] == pytest.approx(ordered["decayed"]["page:/pricing"])
    assert late["counts"] == ordered["counts"]


def test_outcome_events_never_become_features() -> None:
    state = FeatureState()
    for name in ("Deal Won", "Opportunity Created", "Deal Lost"):
        observe(state, "track", name, T0.timestamp(), None, {})
    assert state.counts == {} and state.events == 0


def test_the_state_is_bounded_whatever_the_history() -> None:
    state = FeatureState()
    for i in range(MAX_KEYS + 20):
        observe(state, "track", f"event {i}", T0.timestamp() + i, None,
                {"campaign": {"source": f"s{i}", "name": f"c{i}"}})  # fmt: skip
    assert len(state.counts) == MAX_KEYS + 1  # "other" takes the rest
    assert state.counts["other"] == 20
    assert len(state.sources) == 10 and state.first_touch == {"source": "s0", "name": "c0"}
    assert FeatureState.from_json(state.to_json()) == state


def test_merging_two_leads_adds_their_behaviour() -> None:
    a = observe_all(None, [_page("/pricing", T0)])
    b = observe_all(None, [_page("/pricing", T0 + timedelta(seconds=HALF_LIFE))])
    merged = FeatureState.from_json(merge_feature_states(a, b))
    assert merged.counts == {"page:/pricing": 2}
    assert merged.decayed["page:/pricing"][0] == pytest.approx(1.5)
    assert merge_feature_states(None, a) == a


def test_a_lead_row_holds_traits_account_behaviour_and_scores() -> None:
    row = lead_row(FeatureState(), {"industry": "software", "email": "x@y.z", "tags": [1]},
                   {"employees": 250}, T0, " Jo@GMail.com", {"fit": 40.0})  # fmt: skip
    assert row["trait industry"] == "software" and row["account employees"] == 250
    assert row["email domain"] == "gmail.com" and row["score fit"] == 40.0
    assert "trait email" not in row and "trait tags" not in row
    assert row["events"] == 0 and row["days since first seen"] is None
