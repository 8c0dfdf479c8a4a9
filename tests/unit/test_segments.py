"""Segment trees: parsing from plain data with errors that name the bad node, the round trip
to plain data, and the in-memory interpreter's semantics (types, missing values, windows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow import ConfigError
from leadflow.domain.segments import (
    All,
    Condition,
    Did,
    EventFact,
    LeadFacts,
    Not,
    SegmentError,
    matches,
    parse_segment,
    parse_tree,
    to_data,
)
from leadflow.services.segments import from_config, parse_definition

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def lead(**given: Any) -> LeadFacts:
    values: dict[str, Any] = {
        "lead_id": 1, "traits": {}, "account": None, "fit": 0.0, "engagement": 0.0,
        "p_convert": None, "grade": None, "stage": "lead",
    }  # fmt: skip
    values.update(given)
    return LeadFacts(**values)


def chosen(data: dict[str, Any], facts: LeadFacts) -> bool:
    return matches(parse_tree(data), facts, NOW)


# --- parsing ----------------------------------------------------------------------------


def test_the_documented_example_parses_to_a_typed_tree() -> None:
    tree = parse_tree(
        {
            "all": [
                {"field": "trait.industry", "op": "in", "value": ["SaaS", "Fintech"]},
                {"event": "Pricing Viewed", "min_count": 3, "within_days": 14},
            ]
        }
    )
    assert tree == All(
        (
            Condition("trait", "industry", "in", ("SaaS", "Fintech")),
            Did("Pricing Viewed", 3, 14),
        )
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {
                "all": [
                    {"field": "trait.x", "op": "eq", "value": 1},
                    {"field": "trait.industry", "op": "equals", "value": "x"},
                ]
            },
            "segments.hot.all[1].op: unknown operator 'equals'; known: eq, ne, in, not_in",
        ),
        ({"any": {"field": "stage"}}, "segments.hot.any: expected a list of conditions"),
        ({"field": "colour", "op": "eq", "value": 1}, "segments.hot.field: unknown field 'colour'"),
        (
            {"field": "stage", "op": "eq", "value": "hot"},
            "segments.hot.value: unknown stage 'hot'; known: lead, mql",
        ),
        (
            {"field": "stage", "op": "gt", "value": "mql"},
            "segments.hot.op: unknown operator 'gt'; known: eq, ne, in, not_in",
        ),
        (
            {"field": "fit", "op": "gte", "value": "high"},
            "segments.hot.value: score 'fit' compares with a number, got 'high'",
        ),
        (
            {"field": "trait.x", "op": "in", "value": []},
            "segments.hot.value: operator 'in' needs a non-empty list",
        ),
        (
            {"field": "trait.x", "op": "in", "value": ["a", {"b": 1}]},
            "segments.hot.value[1]: expected a string, number or true/false",
        ),
        (
            {"field": "trait.x", "op": "gt", "value": "soon"},
            "segments.hot.value: operator 'gt' needs a number or an ISO date",
        ),
        (
            {"field": "trait.x", "op": "exists", "value": 3},
            "segments.hot.value: operator 'exists' takes no value",
        ),
        ({"field": "trait.x", "op": "eq"}, "segments.hot.value: operator 'eq' needs a value"),
        (
            {"field": "trait.x", "op": "contains", "value": ""},
            "segments.hot.value: operator 'contains' needs a non-empty string",
        ),
        ({"field": 'trait.a"b', "op": "exists"}, "segments.hot.field: 'a\"b' is not a trait name"),
        (
            {"field": "consent.fax", "op": "eq", "value": "granted"},
            "segments.hot.field: unknown field 'consent.fax'",
        ),
        (
            {"field": "consent.sms", "op": "eq", "value": "yes"},
            "segments.hot.value: unknown consent 'yes'; known: granted, revoked, pending, none",
        ),
        (
            {"event": "Pricing Viewed", "min_count": 0},
            "segments.hot.min_count: expected a whole number >= 1, got 0",
        ),
        (
            {"event": "Pricing Viewed", "within_days": "2w"},
            "segments.hot.within_days: expected a whole number of days",
        ),
        ({"event": "", "min_count": 1}, "segments.hot.event: expected an event name"),
        (
            {"event": "X", "when": 1},
            "segments.hot.when: unknown key; known here: event, min_count, where, within_days",
        ),
        ({"not": {"all": []}, "any": []}, "segments.hot.not: unknown key; known here: any"),
        ({"colour": "red"}, "segments.hot: expected one of the keys all, any, not, field, event"),
        ({"all": ["stage"]}, "segments.hot.all[0]: expected a mapping"),
    ],
)
def test_errors_name_the_path_of_the_bad_node_and_the_value(
    data: dict[str, Any], message: str
) -> None:
    with pytest.raises(SegmentError) as found:
        parse_segment("hot", data)
    assert found.value.message.startswith(message), found.value.message


def test_a_segment_name_must_be_plain() -> None:
    with pytest.raises(SegmentError, match="'hot stuff' is not a segment name"):
        parse_definition("hot stuff", {"field": "stage", "op": "eq", "value": "mql"})


def test_to_data_reads_back_to_the_same_tree_and_normalises_choices() -> None:
    data = {
        "any": [
            {"not": {"field": "grade", "op": "in", "value": ["a", "B"]}},
            {"field": "stage", "op": "eq", "value": "MQL"},
            {"field": "trait.plan", "op": "exists"},
            {"event": "Webinar Attended", "where": {"plan": "pro", "seats": 5}},
        ]
    }
    tree = parse_tree(data)
    assert to_data(tree) == {
        "any": [
            {"not": {"field": "grade", "op": "in", "value": ["A", "B"]}},
            {"field": "stage", "op": "eq", "value": "mql"},
            {"field": "trait.plan", "op": "exists"},
            {"event": "Webinar Attended", "min_count": 1, "where": {"plan": "pro", "seats": 5}},
        ]
    }
    assert parse_tree(to_data(tree)) == tree


def test_the_config_names_the_segment_and_path_without_a_file() -> None:
    with pytest.raises(ConfigError, match=r"segments: segments\.hot\.op: unknown operator"):
        from_config({"hot": {"field": "stage", "op": "is", "value": "mql"}})
    assert from_config(None) == []


# --- the in-memory interpreter ------------------------------------------------------------


def test_equality_is_typed() -> None:
    five = lead(traits={"n": 5})
    assert chosen({"field": "trait.n", "op": "eq", "value": 5}, five)
    assert chosen({"field": "trait.n", "op": "eq", "value": 5.0}, five)
    assert not chosen({"field": "trait.n", "op": "eq", "value": "5"}, five)
    assert not chosen({"field": "trait.n", "op": "eq", "value": True}, lead(traits={"n": 1}))
    assert chosen({"field": "trait.n", "op": "eq", "value": True}, lead(traits={"n": True}))
    assert not chosen({"field": "trait.n", "op": "eq", "value": "saas"}, lead(traits={"n": "SaaS"}))


def test_missing_values_match_only_missing_and_the_negative_operators() -> None:
    for nothing in (lead(), lead(traits={"x": None})):
        assert chosen({"field": "trait.x", "op": "missing"}, nothing)
        assert chosen({"field": "trait.x", "op": "ne", "value": "a"}, nothing)
        assert chosen({"field": "trait.x", "op": "not_in", "value": ["a"]}, nothing)
        for op, value in [("eq", "a"), ("gt", 0), ("lt", 0), ("contains", "a"), ("in", ["a"])]:
            assert not chosen({"field": "trait.x", "op": op, "value": value}, nothing)
        assert not chosen({"field": "trait.x", "op": "exists"}, nothing)
    assert not chosen({"field": "account.size", "op": "lt", "value": 10}, lead())
    assert chosen({"field": "account.size", "op": "missing"}, lead(account={}))
    assert chosen({"field": "p_convert", "op": "missing"}, lead())
    assert chosen({"field": "grade", "op": "ne", "value": "A"}, lead())


def test_order_compares_numbers_with_numbers_and_iso_dates_as_text() -> None:
    assert chosen({"field": "account.size", "op": "gte", "value": 100}, lead(account={"size": 100}))
    assert not chosen({"field": "trait.size", "op": "gt", "value": 9}, lead(traits={"size": "10"}))
    signed = lead(traits={"since": "2024-06-01T08:00:00Z"})
    assert chosen({"field": "trait.since", "op": "gte", "value": "2024-06-01"}, signed)
    assert chosen({"field": "trait.since", "op": "lt", "value": "2024-06-02"}, signed)
    assert not chosen({"field": "trait.since", "op": "lt", "value": "2024-06-01"}, signed)
    assert not chosen(
        {"field": "trait.s", "op": "gt", "value": "2000-01-01"}, lead(traits={"s": "zzz"})
    )


def test_text_operators_are_case_sensitive_and_only_for_strings() -> None:
    saas = lead(traits={"industry": "SaaS tools"})
    assert chosen({"field": "trait.industry", "op": "contains", "value": "tools"}, saas)
    assert chosen({"field": "trait.industry", "op": "starts_with", "value": "SaaS"}, saas)
    assert not chosen({"field": "trait.industry", "op": "starts_with", "value": "saas"}, saas)
    assert not chosen({"field": "trait.n", "op": "contains", "value": "1"}, lead(traits={"n": 12}))


def test_scores_grade_stage_and_consent() -> None:
    facts = lead(
        fit=62.5, engagement=10, p_convert=0.4, grade="A", stage="mql", consent={"email": "granted"}
    )
    assert chosen({"field": "fit", "op": "gte", "value": 62.5}, facts)
    assert chosen({"field": "p_convert", "op": "gt", "value": 0.3}, facts)
    assert chosen({"field": "grade", "op": "in", "value": ["A", "B"]}, facts)
    assert chosen({"field": "stage", "op": "eq", "value": "mql"}, facts)
    assert chosen({"field": "consent.email", "op": "eq", "value": "granted"}, facts)
    assert chosen({"field": "consent.sms", "op": "eq", "value": "none"}, facts)
    assert not chosen({"field": "consent.sms", "op": "in", "value": ["granted", "pending"]}, facts)


def test_behaviour_counts_matching_events_inside_the_window() -> None:
    def views(*hours_ago: float, plan: str = "pro") -> LeadFacts:
        return lead(
            events=[
                EventFact("Pricing Viewed", NOW - timedelta(hours=h), {"plan": plan})
                for h in hours_ago
            ]
        )

    twice = {"event": "Pricing Viewed", "min_count": 2, "within_days": 1}
    assert chosen(twice, views(1, 24))  # the window's edge is inside it
    assert not chosen(twice, views(1, 25))
    assert not chosen(twice, views(1, -1))  # events after now do not count
    assert chosen({"event": "Pricing Viewed", "min_count": 2}, views(1, 2000))
    assert chosen({"event": "Pricing Viewed", "where": {"plan": "pro"}}, views(1))
    assert not chosen({"event": "Pricing Viewed", "where": {"plan": "free"}}, views(1))
    assert not chosen({"event": "pricing viewed"}, views(1))


def test_groups_combine_and_an_empty_all_selects_everyone() -> None:
    facts = lead(stage="mql")
    assert matches(All(()), facts, NOW)
    assert not chosen({"any": []}, facts)
    assert matches(Not(parse_tree({"field": "stage", "op": "eq", "value": "lead"})), facts, NOW)
    assert chosen({"any": [{"field": "stage", "op": "eq", "value": "lead"}, {"all": []}]}, facts)
