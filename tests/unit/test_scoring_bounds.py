"""The range a decaying score can take with no new event, and the shortcut it gives the
search for a lead's next review: skipping the search never changes its answer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.domain.policy import Facts
from leadflow.domain.scoring import (
    EngagementState,
    RuleState,
    engagement_at,
    engagement_bounds,
    epoch,
)
from leadflow.services.models import load_model_text

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
MODEL = load_model_text(
    """\
scoring:
  engagement:
    groups: {web: {ceiling: 30}, email: {}}
    rules:
      - {id: pricing, match: {type: page}, points: 12, half_life: 14d, cap: 25, group: web}
      - {id: blog, match: {type: page}, points: 1, half_life: 7d, group: web}
      - {id: clicks, match: {event: Clicked}, points: 4, half_life: 3d, group: email}
      - {id: demo, match: {event: Demo}, points: 50, half_life: 30d}
      - {id: adjust, match: {event: Adjusted}, points: 50, points_from: properties.points,
         half_life: 10d}
      - {id: careers, match: {type: page}, points: -15, half_life: none}
  fit:
    grades: {A: 60, B: 40, C: 20}
lifecycle:
  mql_policy: >-
    fit.grade in ('A', 'B') and engagement >= 45 or groups.web >= 20
    or 5 <= groups.email < 9 and engagement > -10
  sales: {accept_reasons: [ok], reject_reasons: [not_a_fit]}
""",
    "bounds test",
)
RULES = MODEL.rules
IDS = [rule.id for rule in RULES.engagement]

values = st.floats(-80, 120, allow_nan=False).map(lambda v: round(v, 3))
ages = st.floats(0, 60 * 86_400, allow_nan=False)
states = st.dictionaries(st.sampled_from(IDS), st.tuples(values, ages), max_size=len(IDS))


def state_of(found: dict[str, tuple[float, float]]) -> EngagementState:
    return EngagementState(
        {rule: RuleState(value, epoch(NOW) - age) for rule, (value, age) in found.items()}
    )


@settings(max_examples=300, deadline=None)
@given(states)
def test_the_score_stays_within_its_bounds_from_now_on(
    found: dict[str, tuple[float, float]],
) -> None:
    state = state_of(found)
    low, high = engagement_bounds(RULES, state, NOW)
    for days in (0, 0.01, 0.5, 1, 3, 7, 20, 60, 365, 3650):
        score = engagement_at(RULES, state, NOW + timedelta(days=days))
        assert low.total - 1e-9 <= score.total <= high.total + 1e-9
        for name in RULES.groups:
            assert low.groups[name] - 1e-9 <= score.groups[name] <= high.groups[name] + 1e-9


@settings(max_examples=300, deadline=None)
@given(states, st.sampled_from(["A", "B", "C"]))
def test_the_shortcut_gives_the_same_next_review(
    found: dict[str, tuple[float, float]], grade: str
) -> None:
    state = state_of(found)
    score = engagement_at(RULES, state, NOW)
    facts = Facts(grade, 0.0, score.total, score.groups, None, "lead", {}, {}, NOW, {})

    def decay(variable: str, at: datetime) -> float:
        moved = engagement_at(RULES, state, at)
        if variable == "engagement":
            return moved.total
        return moved.groups.get(variable.removeprefix("groups."), 0.0)

    low, high = engagement_bounds(RULES, state, NOW)

    def bounds(variable: str) -> tuple[float, float]:
        if variable == "engagement":
            return low.total, high.total
        name = variable.removeprefix("groups.")
        return low.groups[name], high.groups[name]

    searched = MODEL.policy.next_change(facts, decay)
    assert MODEL.policy.next_change(facts, decay, bounds=bounds) == searched


def test_a_score_below_every_number_with_nothing_to_recover_is_never_searched() -> None:
    state = state_of({"demo": (30.0, 0.0)})  # 30, decaying towards 0: never 45, never -10
    facts = Facts("A", 0.0, 30.0, {"web": 0.0, "email": 0.0}, None, "lead", {}, {}, NOW, {})
    looked: list[datetime] = []

    def decay(variable: str, at: datetime) -> float:
        looked.append(at)
        moved = engagement_at(RULES, state, at)
        if variable == "engagement":
            return moved.total
        return moved.groups.get(variable.removeprefix("groups."), 0.0)

    low, high = engagement_bounds(RULES, state, NOW)
    assert (low.total, high.total) == (0.0, 30.0)
    ranges = {"engagement": (0.0, 30.0), "groups.web": (0.0, 0.0), "groups.email": (0.0, 0.0)}
    assert MODEL.policy.next_change(facts, decay, bounds=ranges.__getitem__) is None
    assert looked == []
    # with careers (-15, for good) the score falls from 15 to -15 and crosses -10: searched
    state = state_of({"demo": (30.0, 0.0), "careers": (-15.0, 0.0)})
    facts = replace(facts, engagement=15.0)
    low, high = engagement_bounds(RULES, state, NOW)
    assert (low.total, high.total) == (-15.0, 15.0)
    ranges["engagement"] = (-15.0, 15.0)
    crossing = MODEL.policy.next_change(facts, decay, bounds=ranges.__getitem__)
    assert crossing is not None and looked
    assert (
        engagement_at(RULES, state, crossing).total
        <= -10
        < engagement_at(RULES, state, crossing - timedelta(seconds=2)).total
    )
    # a decaying negative adjustment recovers towards 0: the score may rise
    recovering = state_of({"demo": (80.0, 0.0), "adjust": (-40.0, 0.0)})
    low, high = engagement_bounds(RULES, recovering, NOW)
    assert (low.total, high.total) == (-40.0, 80.0)
