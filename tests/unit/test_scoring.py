"""Engagement and fit scoring as pure functions: matching, decay, caps, ceilings, daily
limits, late events, fit grades and merged states, with the numbers a user can check."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.domain.scoring import (
    EngagementRule,
    EngagementState,
    Matcher,
    RuleState,
    ScoredEvent,
    ScoringRules,
    apply_event,
    email_domain_type,
    engagement_at,
    epoch,
    fit_of,
    fit_source,
    grade_of,
    merge_states,
)
from leadflow.services.models import ConditionSpec, EngagementRuleSpec, FitRuleSpec, MatchSpec

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # noon UTC
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def event(
    kind: str = "track",
    name: str | None = None,
    at: datetime = T0,
    *,
    page: str | None = None,
    properties: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
) -> ScoredEvent:
    found = dict(context or {})
    if page is not None:
        found["page"] = {"path": page}
    return ScoredEvent(kind, name, at, dict(properties or {}), found)


def rule(
    rule_id: str,
    points: float,
    *,
    half_life: str = "none",
    cap: float | None = None,
    daily_limit: int | None = None,
    group: str | None = None,
    **match: Any,
) -> EngagementRule:
    spec = {
        "id": rule_id,
        "match": match or {"type": "track"},
        "points": points,
        "half_life": half_life,
        "cap": cap,
        "daily_limit": daily_limit,
        "group": group,
    }
    return EngagementRuleSpec.model_validate(spec).compile()


def rules_of(
    *engagement: EngagementRule,
    groups: Mapping[str, float | None] | None = None,
    fit: tuple[Any, ...] = (),
) -> ScoringRules:
    return ScoringRules(
        engagement=engagement,
        groups=dict(groups or {}),
        fit=fit,
        grades=(("A", 60.0), ("B", 40.0), ("C", 20.0)),
        free_mail_domains=frozenset({"gmail.com", "yahoo.com"}),
        competitor_domains=frozenset({"hubspot.com"}),
    )


def score(rules: ScoringRules, events: list[ScoredEvent], at: datetime = T0) -> float:
    state = EngagementState()
    for item in events:
        apply_event(rules, state, item)
    return engagement_at(rules, state, at).total


def matches(match: dict[str, Any], item: ScoredEvent) -> bool:
    return MatchSpec.model_validate(match).compile().matches(item)


# --- matching -----------------------------------------------------------------------------
def test_type_matches_one_or_any_of_a_list_of_types() -> None:
    assert matches({"type": "page"}, event("page"))
    assert not matches({"type": "page"}, event("track", "Page Viewed"))
    assert matches({"type": ["page", "screen"]}, event("screen", "Home"))
    assert matches({"type": "Page"}, event("page"))  # written with a capital


def test_event_names_match_ignoring_case() -> None:
    match = {"event": "Demo Requested"}
    assert matches(match, event(name="Demo Requested"))
    assert matches(match, event(name="demo requested"))
    assert matches(match, event(name="DEMO REQUESTED"))
    assert not matches(match, event(name="Demo Request"))
    assert not matches(match, event(name=None))
    assert matches({"event": ["Webinar Attended", "Demo Requested"]}, event(name="demo requested"))


@pytest.mark.parametrize(
    ("page", "properties", "expected"),
    [
        ("/pricing", {}, True),
        ("/pricing/enterprise", {}, True),
        (None, {"path": "/pricing"}, True),  # properties.path when there is no page context
        ("/blog/pricing", {}, False),
        (None, {}, False),
        ("/blog/post", {"path": "/pricing"}, False),  # context.page.path comes first
        ("/docs/api", {}, True),
        ("/docs", {}, False),
    ],
)
def test_path_globs_look_at_the_page_path_then_properties_path(
    page: str | None, properties: dict[str, Any], expected: bool
) -> None:
    match = {"type": "page", "path": ["/pricing*", "/docs/*"]}
    assert matches(match, event("page", page=page, properties=properties)) is expected


WHERE_CASES = [
    ("eq", "Ebook", "ebook", True),
    ("eq", "Ebook", "book", False),
    ("eq", "Ebook", None, False),
    ("eq", 5, 5.0, True),
    ("ne", "Ebook", "EBOOK", False),
    ("ne", "Ebook", "video", True),
    ("ne", "Ebook", None, True),
    ("in", ["Ebook", "whitepaper"], "EBOOK", True),
    ("in", ["Ebook", "whitepaper"], "video", False),
    ("in", ["Ebook", "whitepaper"], None, False),
    ("not_in", ["Ebook", "whitepaper"], "video", True),
    ("not_in", ["Ebook", "whitepaper"], "WhitePaper", False),
    ("not_in", ["Ebook", "whitepaper"], None, True),
    ("contains", "PRICING", "the pricing page", True),
    ("contains", "PRICING", "plans", False),
    ("contains", "PRICING", None, False),
    ("contains_any", ["vp", "director"], "Director of Sales", True),
    ("contains_any", ["vp", "director"], "Engineer", False),
    ("glob", ["*.pdf", "guide-*"], "Buyers.PDF", True),
    ("glob", ["*.pdf", "guide-*"], "guide-2025.doc", True),
    ("glob", ["*.pdf", "guide-*"], "notes.doc", False),
    ("gt", 10, 11, True),
    ("gt", 10, 10, False),
    ("gt", 10, "11", True),  # numbers sent as text compare as numbers
    ("gt", 10, "many", False),
    ("gt", 0, True, False),  # True is not a number
    ("gt", 10, None, False),
    ("gte", 10, 10, True),
    ("gte", 10, 9.99, False),
    ("lt", 10, 9, True),
    ("lt", 10, 10, False),
    ("lte", 10, 10, True),
    ("lte", 10, 10.5, False),
    ("between", [50, 5000], 50, True),
    ("between", [50, 5000], 5000, True),
    ("between", [50, 5000], 49, False),
    ("between", [50, 5000], 5001, False),
    ("between", [50, 5000], None, False),
    ("exists", None, 0, True),
    ("exists", None, "", True),
    ("exists", None, None, False),
    ("missing", None, None, True),
    ("missing", None, "", False),
]


@pytest.mark.parametrize(("op", "value", "found", "expected"), WHERE_CASES)
def test_where_condition_of_every_op(op: str, value: Any, found: Any, expected: bool) -> None:
    properties = {} if found is None else {"x": found}
    condition = {"field": "properties.x", "op": op, "value": value}
    assert matches({"where": [condition]}, event(properties=properties)) is expected


def test_where_reaches_nested_fields_and_needs_every_condition() -> None:
    match = {
        "event": "Content Downloaded",
        "where": [
            {"field": "properties.asset.type", "op": "in", "value": ["ebook"]},
            {"field": "context.campaign.source", "op": "eq", "value": "linkedin"},
        ],
    }
    both = event(
        name="Content Downloaded",
        properties={"asset": {"type": "Ebook"}},
        context={"campaign": {"source": "LinkedIn"}},
    )
    assert matches(match, both)
    assert not matches(match, event(name="Content Downloaded", properties={"asset": {"type": 1}}))
    one = event(name="Content Downloaded", properties={"asset": {"type": "ebook"}})
    assert not matches(match, one)
    assert not matches(match, event(name="Video Watched", properties=dict(both.properties)))


# --- decay --------------------------------------------------------------------------------
def test_points_halve_every_half_life() -> None:
    rules = rules_of(rule("r", 10, half_life="7d"))
    assert score(rules, [event(at=T0 - 7 * DAY)]) == 5.0
    assert score(rules, [event(at=T0 - 14 * DAY)]) == 2.5
    assert score(rules, [event(at=T0)]) == 10.0
    assert score(rules, [event(at=T0 - 7 * DAY), event(at=T0)]) == 15.0
    assert score(rules, [event(at=T0 - 7 * DAY)], at=T0 + 7 * DAY) == 2.5


def test_half_life_in_hours_and_minutes() -> None:
    assert score(rules_of(rule("r", 10, half_life="12h")), [event(at=T0 - 6 * HOUR)]) == (
        pytest.approx(10 * 2**-0.5, rel=1e-12)
    )
    ninety_minutes_ago = T0 - timedelta(minutes=90)
    assert score(rules_of(rule("r", 8, half_life="30m")), [event(at=ninety_minutes_ago)]) == 1.0


def test_without_a_half_life_points_never_fade() -> None:
    rules = rules_of(rule("r", 10, half_life="none"))
    assert score(rules, [event(at=T0 - 1000 * DAY)]) == 10.0


def test_default_half_life_is_30_days() -> None:
    spec = {"id": "r", "match": {"type": "track"}, "points": 10}
    rules = rules_of(EngagementRuleSpec.model_validate(spec).compile())
    assert score(rules, [event(at=T0 - 30 * DAY)]) == 5.0


# --- caps and ceilings --------------------------------------------------------------------
def test_a_rules_cap_applies_when_read_not_to_the_accumulator() -> None:
    rules = rules_of(rule("pricing", 12, half_life="14d", cap=30))
    state = EngagementState()
    for _ in range(3):
        apply_event(rules, state, event())
    now = engagement_at(rules, state, T0)
    assert (now.raw["pricing"], now.rules["pricing"], now.total) == (36.0, 30.0, 30.0)
    later = engagement_at(rules, state, T0 + 14 * DAY)  # 36 halves to 18, under the cap
    assert (later.raw["pricing"], later.rules["pricing"], later.total) == (18.0, 18.0, 18.0)


def test_a_groups_ceiling_caps_the_sum_of_its_rules() -> None:
    rules = rules_of(
        rule("a", 30, group="web", event="A"),
        rule("b", 20, group="web", event="B"),
        rule("c", 5, event="C"),
        rule("d", 7, group="email", event="D"),
        groups={"web": 35, "email": None, "events": 10},
    )
    state = EngagementState()
    for name in "ABCD":
        apply_event(rules, state, event(name=name))
    found = engagement_at(rules, state, T0)
    assert dict(found.rules) == {"a": 30.0, "b": 20.0, "c": 5.0, "d": 7.0}
    assert dict(found.groups) == {"web": 35.0, "email": 7.0, "events": 0.0}
    assert found.total == 35 + 7 + 5


def test_rule_caps_apply_before_the_group_ceiling() -> None:
    rules = rules_of(
        rule("a", 10, cap=15, group="web", event="A"),
        rule("b", 10, group="web", event="B"),
        groups={"web": 100},
    )
    events = [event(name="A")] * 3 + [event(name="B")] * 2
    assert score(rules, events) == 15 + 20


# --- daily limits -------------------------------------------------------------------------
def test_daily_limit_counts_events_in_arrival_order() -> None:
    rules = rules_of(rule("r", 10, half_life="1d", daily_limit=2))
    state = EngagementState()
    day = T0.replace(hour=0)
    arrivals = [day + 11 * HOUR, day + 9 * HOUR, day + 10 * HOUR]
    done = [apply_event(rules, state, event(at=at)) for at in arrivals]
    assert [c.counted for [c] in done] == [True, True, False]
    assert done[2][0].reason == "daily limit 2"
    expected = 10 + 10 * 2 ** (-2 / 24)  # 11:00 and 09:00 counted, read at 11:00
    assert engagement_at(rules, state, day + 11 * HOUR).total == pytest.approx(expected, rel=1e-12)


def test_daily_limit_resets_at_midnight_utc_and_is_per_rule() -> None:
    rules = rules_of(
        rule("r", 10, daily_limit=1, event="X"),
        rule("s", 1, daily_limit=1, event="X"),
    )
    midnight = datetime(2025, 3, 4, tzinfo=UTC)
    state = EngagementState()
    first = apply_event(rules, state, event(name="X", at=midnight - timedelta(minutes=2)))
    second = apply_event(rules, state, event(name="X", at=midnight - timedelta(minutes=1)))
    third = apply_event(rules, state, event(name="X", at=midnight))
    assert [c.counted for c in first] == [True, True]
    assert [c.counted for c in second] == [False, False]
    assert [c.counted for c in third] == [True, True]
    assert engagement_at(rules, state, midnight).total == 22.0


# --- negative points ----------------------------------------------------------------------
def test_negative_points_lower_the_score() -> None:
    rules = rules_of(
        rule("careers", -15, daily_limit=1, type="page", path="/careers*"),
        rule("demo", 50, event="Demo Requested"),
        rule("blog", 5, group="web", type="page", path="/blog/*"),
        rule("jobs", -8, group="web", type="page", path="/jobs*"),
        groups={"web": 35},
    )
    assert score(rules, [event("page", page="/careers")]) == -15.0
    same_day = [event("page", page="/careers"), event("page", page="/careers/eng")]
    assert score(rules, same_day) == -15.0
    assert score(rules, [event("page", page="/careers"), event(name="Demo Requested")]) == 35.0
    in_group = [event("page", page="/blog/a"), event("page", page="/jobs")]
    assert score(rules, in_group) == -3.0


# --- late events --------------------------------------------------------------------------
def test_a_late_event_is_scored_as_of_its_own_time() -> None:
    rules = rules_of(rule("r", 10, half_life="7d"))
    state = EngagementState()
    apply_event(rules, state, event(at=T0))
    [late] = apply_event(rules, state, event(at=T0 - 7 * DAY))
    assert late.counted
    assert engagement_at(rules, state, T0).total == 15.0
    assert state.rules["r"].as_of == epoch(T0)


MODEL = rules_of(
    rule("fast", 7, half_life="12h", cap=20, event=["A", "B"]),
    rule("slow", 3, half_life="30d", group="web", type="page", path="/p*"),
    rule("fixed", -2, group="web", event="B"),
    rule("demo", 40, half_life="7d", event="Demo Requested"),
    groups={"web": 25},
)
WATCHED = ("Demo Requested", "B")


def scored_events() -> st.SearchStrategy[list[ScoredEvent]]:
    one = st.builds(
        lambda kind, name, seconds: event(
            kind, name, T0 + timedelta(seconds=seconds), page="/pricing" if kind == "page" else None
        ),
        st.sampled_from(["track", "page"]),
        st.sampled_from(["A", "B", "Demo Requested", "Other", None]),
        st.integers(-40 * 86_400, 40 * 86_400),
    )
    return st.lists(one, min_size=1, max_size=30)


def assert_same_state(a: EngagementState, b: EngagementState) -> None:
    assert a.rules.keys() == b.rules.keys()
    for rule_id, x in a.rules.items():
        y = b.rules[rule_id]
        assert math.isclose(x.value, y.value, rel_tol=1e-9, abs_tol=1e-9), rule_id
        assert (x.as_of, x.days) == (y.as_of, y.days)
    assert a.recent == b.recent
    assert a.reset_at == b.reset_at


@settings(max_examples=60, deadline=None)
@given(scored_events(), st.randoms(use_true_random=False))
def test_arrival_order_does_not_change_the_state(events: list[ScoredEvent], rnd: Any) -> None:
    in_order = EngagementState()
    for item in sorted(events, key=lambda e: e.timestamp):
        apply_event(MODEL, in_order, item, WATCHED)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    late = EngagementState()
    for item in shuffled:
        apply_event(MODEL, late, item, WATCHED)
    assert_same_state(in_order, late)
    later = T0 + 41 * DAY
    assert math.isclose(
        engagement_at(MODEL, in_order, later).total,
        engagement_at(MODEL, late, later).total,
        rel_tol=1e-9,
        abs_tol=1e-9,
    )


INDEXED = rules_of(
    rule("any", 1),  # track, any name
    rule("typed", 2, type=["page", "screen"]),
    rule("named", 3, event=["Demo Requested", "b"]),
    rule("everything", 4, type=["track", "page", "identify"]),
    rule("path", 5, type="page", path="/pricing*"),
    rule("where", 6, event="A", where=[{"field": "properties.plan", "op": "eq", "value": "pro"}]),
    rule("named-too", 7, event="demo requested"),
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["track", "page", "screen", "identify", "group"]),
    st.sampled_from(["A", "a", "B", "Demo Requested", "DEMO REQUESTED", "Other", "", None]),
    st.sampled_from([None, "/pricing", "/careers"]),
    st.sampled_from([{}, {"plan": "pro"}, {"plan": "free"}]),
)
def test_the_candidate_rules_of_an_event_hold_every_rule_that_matches_in_model_order(
    kind: str, name: str | None, page: str | None, properties: dict[str, Any]
) -> None:
    item = event(kind, name, page=page, properties=properties)
    candidates = INDEXED.candidates(kind, (name or "").lower())
    matching = [r.id for r in INDEXED.engagement if r.matcher.matches(item)]
    assert [r.id for r in candidates if r.matcher.matches(item)] == matching
    order = [r.id for r in INDEXED.engagement]
    assert [r.id for r in candidates] == sorted((r.id for r in candidates), key=order.index)
    # the same answer from the cache, and the full list would score the same
    assert INDEXED.candidates(kind, (name or "").lower()) is candidates
    everything = EngagementState()
    for engagement_rule in INDEXED.engagement:
        if engagement_rule.matcher.matches(item):
            everything.rules[engagement_rule.id] = RuleState(
                engagement_rule.points, epoch(item.timestamp)
            )
    indexed = EngagementState()
    contributions = apply_event(INDEXED, indexed, item)
    assert [c.rule_id for c in contributions] == matching
    assert_same_state(everything, indexed)


def test_candidate_rules_rule_out_by_type_and_name_only() -> None:
    assert [r.id for r in INDEXED.candidates("track", "demo requested")] == [
        "any", "named", "everything", "named-too"
    ]  # fmt: skip
    assert [r.id for r in INDEXED.candidates("page", "")] == ["typed", "everything", "path"]
    assert [r.id for r in INDEXED.candidates("identify", "")] == ["everything"]
    assert [r.id for r in INDEXED.candidates("track", "a")] == ["any", "everything", "where"]


GLOBS = st.lists(
    st.text(alphabet="/ab*?[]!-.", min_size=1, max_size=8), min_size=1, max_size=3
).map(tuple)


@settings(max_examples=300, deadline=None)
@given(GLOBS, st.text(alphabet="/abAB.-[]\n", max_size=10))
def test_path_globs_compiled_together_match_as_fnmatchcase_does(
    globs: tuple[str, ...], path: str
) -> None:
    matcher = Matcher(paths=globs)
    item = event("page", page=path)
    read = item.path  # an empty path counts as none
    expected = read is not None and any(fnmatch.fnmatchcase(read, g) for g in globs)
    assert matcher.matches(item) is expected
    assert matcher.matches(item, read) is expected  # the path read once by the caller
    assert matcher.matches(item, None) is False  # read, and the event has none


def test_recent_keeps_the_watched_events_sorted_newest_twenty() -> None:
    rules = rules_of(rule("r", 1, event="Demo Requested"))
    state = EngagementState()
    moments = [T0 - n * HOUR for n in range(25)]
    for at in [*reversed(moments[::2]), *moments[1::2]]:
        apply_event(rules, state, event(name="Demo Requested", at=at), ["demo requested"])
    apply_event(rules, state, event(name="Other", at=T0), ["demo requested"])
    assert state.recent == {"demo requested": sorted(epoch(t) for t in moments)[-20:]}


def test_events_before_a_reset_match_but_do_not_count() -> None:
    rules = rules_of(rule("r", 10, event="Demo Requested"))
    state = EngagementState.reset(T0)
    [before] = apply_event(rules, state, event(name="Demo Requested", at=T0 - HOUR), WATCHED)
    assert (before.counted, before.reason) == (False, "before the lead was recycled")
    [after] = apply_event(rules, state, event(name="Demo Requested", at=T0), WATCHED)
    assert after.counted
    assert engagement_at(rules, state, T0).total == 10.0
    assert state.recent == {"demo requested": [epoch(T0)]}


def test_state_survives_a_json_round_trip() -> None:
    state = EngagementState()
    for item in [event(name="A", at=T0 - DAY), event("page", page="/p1"), event(name="B")]:
        apply_event(MODEL, state, item, WATCHED)
    state.reset_at = epoch(T0 - 2 * DAY)
    again = EngagementState.from_json(state.to_json())
    assert_same_state(state, again)
    assert EngagementState.from_json(None).rules == {}


# --- merged leads -------------------------------------------------------------------------
def test_merge_states_brings_both_to_the_later_time_and_adds() -> None:
    rules = rules_of(
        rule("r", 10, half_life="7d", daily_limit=5),
        rule("s", 4, event="S"),
    )
    a, b, both = EngagementState(), EngagementState(), EngagementState()
    for state, at in ((a, T0 - 7 * DAY), (b, T0), (both, T0 - 7 * DAY), (both, T0)):
        apply_event(rules, state, event(at=at), ["x"])
    apply_event(rules, b, event("screen", "S", at=T0 - DAY), ["S"])
    a.reset_at, b.reset_at = epoch(T0 - 30 * DAY), epoch(T0 - 20 * DAY)
    merged = merge_states(a, b, rules)
    assert merged.rules["r"].value == 15.0
    assert merged.rules["r"].as_of == epoch(T0)
    assert engagement_at(rules, merged, T0).total == engagement_at(rules, both, T0).total + 4
    day = int(epoch(T0) // 86_400)
    assert merged.rules["r"].days == {day - 7: 1, day: 1}
    assert merged.reset_at == epoch(T0 - 20 * DAY)
    assert merged.recent == {"s": [epoch(T0 - DAY)]}
    merged.rules["s"].value = 99.0  # the merged state is a copy
    assert b.rules["s"].value == 4.0


def test_merge_states_adds_daily_counts_of_the_same_day_and_keeps_twenty_recent() -> None:
    rules = rules_of(rule("r", 1, daily_limit=3, event="X"))
    a, b = EngagementState(), EngagementState()
    for n in range(12):
        apply_event(rules, a, event(name="X", at=T0 - n * HOUR), ["X"])
        apply_event(rules, b, event(name="X", at=T0 - n * HOUR - HOUR / 2), ["X"])
    merged = merge_states(a, b, rules)
    day = int(epoch(T0) // 86_400)
    assert merged.rules["r"].days == {day: 6}
    assert len(merged.recent["x"]) == 20
    assert merged.recent["x"] == sorted(a.recent["x"] + b.recent["x"])[-20:]


def test_merge_of_empty_states_is_empty() -> None:
    merged = merge_states(EngagementState(), EngagementState(), MODEL)
    assert (merged.rules, merged.recent, merged.reset_at) == ({}, {}, None)


# --- fit ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("ann@gmail.com", "free"),
        ("Ann@GMAIL.COM", "free"),
        ("bob@yahoo.com", "free"),
        ("eve@hubspot.com", "competitor"),
        ("carol@acme.io", "business"),
        ("dan@mail.gmail.com", "business"),  # only the listed domain itself
        (None, None),
        ("", None),
        ("not an email", None),
    ],
)
def test_email_domain_type(email: str | None, expected: str | None) -> None:
    assert email_domain_type(email, rules_of()) == expected


def when(field: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


def fit_rule(rule_id: str, points: float, *conditions: dict[str, Any]) -> Any:
    spec = {"id": rule_id, "when": list(conditions), "points": points}
    return FitRuleSpec.model_validate(spec).compile()


FIT = rules_of(
    fit=(
        fit_rule("industry", 25, when("traits.industry", "in", ["SaaS"])),
        fit_rule("size", 25, when("traits.company_size", "between", [50, 5000])),
        fit_rule(
            "account-size",
            25,
            when("traits.company_size", "missing"),
            when("account.employees", "between", [50, 5000]),
        ),
        fit_rule("title", 20, when("traits.title", "contains_any", ["vp"])),
        fit_rule("free-mail", -20, when("email_domain_type", "eq", "free")),
        fit_rule("competitor", -100, when("email_domain_type", "eq", "competitor")),
        fit_rule("business", 5, when("email_domain_type", "eq", "business")),
    )
)


def fit(
    traits: dict[str, Any], account: dict[str, Any] | None = None, email: str | None = None
) -> tuple[float, str, list[str]]:
    found = fit_of(FIT, fit_source(traits, account or {}, email, FIT))
    return found.score, found.grade, [r.id for r in found.matched]


def test_fit_adds_the_points_of_the_rules_whose_conditions_all_hold() -> None:
    traits = {"industry": "saas", "company_size": 200, "title": "VP Marketing"}
    rules = ["industry", "size", "title"]
    assert fit(traits, email="ann@acme.io") == (75, "A", [*rules, "business"])
    assert fit(traits, email="ann@gmail.com") == (50, "B", [*rules, "free-mail"])
    assert fit(traits, email="eve@hubspot.com")[:2] == (-30, "D")
    assert fit({"industry": "SaaS"}, {"employees": 300}) == (50, "B", ["industry", "account-size"])
    # the account's size counts only when the person's own company size is missing
    assert fit({"company_size": 10}, {"employees": 300}) == (0, "D", [])
    assert fit({}) == (0, "D", [])


@pytest.mark.parametrize(
    ("points", "grade"),
    [(100, "A"), (60, "A"), (59.9, "B"), (40, "B"), (39, "C"), (20, "C"), (19.5, "D"), (-50, "D")],
)
def test_grades_by_thresholds_at_least(points: float, grade: str) -> None:
    assert grade_of(rules_of(), points) == grade


def test_conditions_compile_with_dotted_fields() -> None:
    condition = ConditionSpec.model_validate(
        {"field": "account.employees", "op": "gte", "value": 50}
    ).compile()
    assert condition.field == ("account", "employees")
    assert condition.test({"account": {"employees": 50}})
    assert not condition.test({"account": {"employees": 49}})
    assert condition.describe() == "account.employees >= 50"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"field": "traits.industry", "op": "in", "value": ["software", "fintech"]},
         "traits.industry is one of software, fintech"),
        ({"field": "traits.industry", "op": "not_in", "value": ["education"]},
         "traits.industry is none of education"),
        ({"field": "traits.company_size", "op": "between", "value": [50, 5000]},
         "traits.company_size between 50 and 5000"),
        ({"field": "traits.title", "op": "contains_any", "value": ["vp", "head"]},
         "traits.title contains any of vp, head"),
        ({"field": "email_domain_type", "op": "eq", "value": "free"}, "email_domain_type is free"),
        ({"field": "traits.plan", "op": "ne", "value": "free"}, "traits.plan is not free"),
        ({"field": "traits.title", "op": "contains", "value": "founder"},
         "traits.title contains founder"),
        ({"field": "properties.path", "op": "glob", "value": ["/pricing*"]},
         "properties.path matches /pricing*"),
        ({"field": "properties.seats", "op": "lt", "value": 2.5}, "properties.seats < 2.5"),
        ({"field": "traits.company_size", "op": "missing"}, "traits.company_size is missing"),
        ({"field": "traits.phone", "op": "exists"}, "traits.phone is set"),
    ],
)  # fmt: skip
def test_conditions_are_described_in_words(spec: dict[str, Any], words: str) -> None:
    assert ConditionSpec.model_validate(spec).compile().describe() == words
