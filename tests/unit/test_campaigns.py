"""Journey definitions and the step state machine, as pure functions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from leadflow.domain.campaigns import (
    JourneyError,
    RunFacts,
    advance,
    choose_variant,
    may_enter,
    parse_journey,
    pick_winner,
)

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PARIS = ZoneInfo("Europe/Paris")


def facts(**changes: object) -> RunFacts:
    base: dict[str, object] = {
        "stage": "mql", "traits": {}, "segments": frozenset(), "engagement": {},
    }  # fmt: skip
    base.update(changes)
    return RunFacts(**base)  # type: ignore[arg-type]


JOURNEY = parse_journey(
    "n",
    {
        "trigger": {"stage": "mql"},
        "goals": [{"stage": "sql"}, {"unsubscribed": "email"}],
        "steps": [
            {"id": "hello", "email": "hello"},
            {"id": "pause", "wait": "2d"},
            {"id": "check", "if": {"clicked": "hello"}, "then": "tag"},
            {"id": "text", "sms": "nudge"},
            {"id": "tag", "set_trait": {"nurtured": True}},
            {"id": "morning", "wait_until": "09:00-10:00"},
            "exit",
        ],
    },
)


def test_a_run_blocks_on_each_send_and_wait() -> None:
    first = advance(JOURNEY, None, False, facts(), 1, NOW, PARIS)
    assert (first.step, first.awaiting_send, [e.kind for e in first.effects]) == (
        "hello",
        True,
        ["send"],
    )
    waiting = advance(JOURNEY, "hello", True, facts(), 1, NOW, PARIS)
    assert (waiting.step, waiting.due_at) == ("pause", NOW + timedelta(days=2))
    no_click = advance(JOURNEY, "pause", True, facts(), 1, NOW, PARIS)
    assert no_click.step == "text" and no_click.effects[0].template == "nudge"
    clicked = advance(
        JOURNEY, "pause", True, facts(engagement={"hello": frozenset({"clicked"})}), 1, NOW, PARIS
    )
    assert [e.kind for e in clicked.effects] == ["set_trait"]
    # 16:00 in Paris: the 09:00-10:00 window opens tomorrow at 09:00 Paris time
    assert clicked.step == "morning" and clicked.due_at == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    done = advance(JOURNEY, "morning", True, facts(), 1, NOW, PARIS)
    assert done.finished == "exit step"


def test_goals_end_a_run_before_any_step() -> None:
    reached = advance(JOURNEY, "pause", True, facts(stage="sql"), 1, NOW, PARIS)
    assert reached.finished == "goal: stage sql" and reached.effects == []
    gone = advance(JOURNEY, "pause", True, facts(revoked=frozenset({"email"})), 1, NOW, PARIS)
    assert gone.finished == "goal: unsubscribed email"


def test_reentry_rules() -> None:
    later = parse_journey(
        "r", {"trigger": {"stage": "mql"}, "steps": ["exit"], "reentry": {"after": "30d"}}
    )
    assert may_enter(JOURNEY, None, False, False, NOW)
    assert not may_enter(JOURNEY, NOW - timedelta(days=400), False, True, NOW)  # never again
    assert not may_enter(later, NOW, True, True, NOW)  # never two at once
    assert not may_enter(later, NOW - timedelta(days=29), False, True, NOW)
    assert may_enter(later, NOW - timedelta(days=31), False, True, NOW)


AB = parse_journey(
    "ab",
    {"trigger": {"stage": "mql"},
     "steps": [{"id": "pitch", "ab": {"variants": {"a": "x", "b": {"template": "y", "weight": 3}},
                                      "metric": "clicked", "decide_after": 50}}]},
)  # fmt: skip


def test_variants_are_drawn_by_weight_and_stable_per_run() -> None:
    step = AB.steps[0]
    drawn = Counter(choose_variant(step, run).name for run in range(4000))
    assert 0.22 < drawn["a"] / 4000 < 0.28  # weight 1 of 4
    assert all(
        choose_variant(step, run).name == choose_variant(step, run).name for run in range(50)
    )
    assert choose_variant(step, 7, winner="a").name == "a"


def test_a_winner_needs_enough_sends_and_significance() -> None:
    step = AB.steps[0]
    assert pick_winner(step, {"a": (49, 30), "b": (200, 10)}) is None  # too few sends for a
    assert pick_winner(step, {"a": (100, 12), "b": (100, 10)}) is None  # not significant
    assert pick_winner(step, {"a": (100, 30), "b": (100, 10)}) == "a"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"trigger": {"stage": "mqll"}, "steps": ["exit"]},
            "j.trigger.stage: unknown stage 'mqll'",
        ),
        (
            {"trigger": {"stage": "mql"}, "steps": [{"emial": "x"}]},
            "j.steps[0]: unknown step 'emial'",
        ),
        (
            {"trigger": {"stage": "mql"}, "steps": [{"wait": "soon"}]},
            "j.steps[0].wait: 'soon' is not a duration",
        ),
        (
            {
                "trigger": {"stage": "mql"},
                "steps": [{"id": "a", "wait": "1d"}, {"id": "a", "wait": "1d"}],
            },
            "j.steps[1].id: step id 'a' is used twice",
        ),
        (
            {"trigger": {"stage": "mql"}, "steps": [{"if": {"opened": "nope"}}]},
            "j.steps[0].if: 'nope' is not a send step of this journey",
        ),
        (
            {"trigger": {"stage": "mql"}, "steps": [{"email": "x", "offer": "gift"}]},
            "j.steps[0].offer: no offer named 'gift'",
        ),
        (
            {"trigger": {"stage": "mql"}, "steps": ["exit"], "reentry": "sometimes"},
            "j.reentry: must be",
        ),
        ({"trigger": {"stage": "mql"}, "steps": []}, "j.steps: must be a non-empty list"),
        (
            {"trigger": {"stage": "mql"}, "steps": ["exit"], "colour": "red"},
            "j.colour: unknown key",
        ),
    ],
)
def test_bad_definitions_name_the_path(spec: dict[str, object], message: str) -> None:
    with pytest.raises(JourneyError) as caught:
        parse_journey("j", spec, "j")
    assert message in caught.value.message
