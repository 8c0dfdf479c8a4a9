"""Journeys: their definition (parsed from plain data, with errors that name the path) and
the step state machine, as pure functions of a run, the lead's facts and the time.

A journey is a trigger, a list of steps with ids, goals that end it and a re-entry rule.
Steps run in order unless a branch jumps to another id. A step either finishes at once
(set a trait, branch, change stage, notify sales, exit) or blocks the run: a send blocks it
until the delivery ledger confirms the hand-off (or records why it was skipped), a wait
blocks it until a time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from leadflow.domain.consent import SendWindow
from leadflow.domain.errors import ValidationError
from leadflow.domain.lifecycle import STAGES
from leadflow.domain.policy_parse import parse_duration, suggest

STEP_KINDS = (
    "email",
    "sms",
    "wait",
    "wait_until",
    "branch",
    "ab",
    "set_trait",
    "adjust_score",
    "change_stage",
    "notify_sales",
    "exit",
)
CONDITION_KINDS = ("opened", "clicked", "replied", "segment", "stage", "trait", "unsubscribed")
TRIGGER_KINDS = ("stage", "segment", "event", "score", "date")
SCORES = ("engagement", "fit", "p_convert")
METRICS = ("opened", "clicked", "replied", "converted")


class JourneyError(ValidationError):
    """A journey definition that cannot be accepted; the message names the path."""


def _fail(path: str, problem: str) -> JourneyError:
    return JourneyError(f"{path}: {problem}")


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # stage | segment | event | score
    value: str
    above: float | None = None  # score: the threshold crossed upwards
    offset: timedelta = timedelta(0)  # date: days after (before, when negative) the trait's date

    def date_prefixes(self, today: date, lookback: int = 1) -> list[str]:
        """The trait values (ISO dates) that make the journey due today, or on one of the
        ``lookback`` days before (a worker that was down catches up)."""
        return [(today - self.offset - timedelta(days=k)).isoformat() for k in range(lookback + 1)]


@dataclass(frozen=True, slots=True)
class Condition:
    kind: str  # opened | clicked | replied (a send step id), segment, stage, trait
    value: str
    equals: Any = None


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    weight: int
    template: str


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    kind: str
    template: str | None = None  # email / sms
    offer: str | None = None  # email / sms: issue this offer's coupon with the message
    duration: timedelta | None = None  # wait
    window: SendWindow | None = None  # wait_until
    condition: Condition | None = None  # branch
    then: str | None = None  # branch: step id, or None for "next"
    otherwise: str | None = None
    channel: str | None = None  # ab: the channel of its variants
    variants: tuple[Variant, ...] = ()  # ab
    metric: str | None = None  # ab: what decides the winner
    decide_after: int = 100  # ab: sends per variant before a winner may be declared
    traits: Mapping[str, Any] = field(default_factory=dict)  # set_trait
    stage: str | None = None  # change_stage
    message: str = ""  # notify_sales; adjust_score: the reason
    points: float = 0.0  # adjust_score

    @property
    def sends(self) -> bool:
        return self.kind in ("email", "sms", "ab")


@dataclass(frozen=True, slots=True)
class Offer:
    name: str
    expires_in: timedelta | None
    prefix: str


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    trigger: Trigger
    steps: tuple[Step, ...]
    goals: tuple[Condition, ...]
    reentry: str  # never | always | after
    reentry_after: timedelta | None
    offers: Mapping[str, Offer]
    enabled: bool
    spec: Mapping[str, Any]

    @property
    def version(self) -> str:
        text = json.dumps(self.spec, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def after(self, step_id: str) -> str | None:
        ids = [s.id for s in self.steps]
        at = ids.index(step_id)
        return ids[at + 1] if at + 1 < len(ids) else None

    def templates(self) -> list[tuple[str, str, str]]:
        """(step id, channel, template) of every message the journey can send."""
        found: list[tuple[str, str, str]] = []
        for step in self.steps:
            if step.kind in ("email", "sms") and step.template:
                found.append((step.id, step.kind, step.template))
            for variant in step.variants:
                found.append(
                    (f"{step.id}.{variant.name}", step.channel or "email", variant.template)
                )
        return found

    def segments(self) -> list[tuple[str, str]]:
        """(path, segment name) of every segment the journey refers to."""
        found: list[tuple[str, str]] = []
        if self.trigger.kind == "segment":
            found.append((f"journeys.{self.name}.trigger", self.trigger.value))
        for step in self.steps:
            if step.condition is not None and step.condition.kind == "segment":
                found.append((f"journeys.{self.name}.steps.{step.id}", step.condition.value))
        for goal in self.goals:
            if goal.kind == "segment":
                found.append((f"journeys.{self.name}.goals", goal.value))
        return found


# ------------------------------------------------------------------------------------------
# Parsing


def _mapping(value: object, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be a mapping, got {type(value).__name__}")
    return value


def _text(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, f"must be a non-empty text, got {value!r}")
    return value.strip()


def _duration(value: object, path: str) -> timedelta:
    found = parse_duration(str(value))
    if isinstance(found, str):
        raise _fail(path, found)
    return found


def _single_kind(raw: Mapping[str, Any], kinds: Sequence[str], path: str, what: str) -> str:
    present = [k for k in kinds if k in raw]
    if len(present) != 1:
        unknown = [k for k in raw if k not in kinds]
        if unknown and not present:
            hint = suggest(str(unknown[0]), kinds)
            raise _fail(path, f"unknown {what} {unknown[0]!r}{hint}; known: {', '.join(kinds)}")
        raise _fail(path, f"needs exactly one of {', '.join(kinds)}, got {sorted(raw)}")
    return present[0]


def _stage(value: object, path: str) -> str:
    stage = _text(value, path).lower()
    if stage not in STAGES:
        raise _fail(
            path, f"unknown stage {stage!r}{suggest(stage, STAGES)}; known: {', '.join(STAGES)}"
        )
    return stage


def parse_trigger(raw: object, path: str) -> Trigger:
    data = _mapping(raw, path)
    extra = ("above", "offset")
    kind = _single_kind(
        {k: v for k, v in data.items() if k not in extra}, TRIGGER_KINDS, path, "trigger"
    )
    if kind == "date":
        return _date_trigger(data, path)
    if kind == "score":
        score = _text(data["score"], f"{path}.score")
        if score not in SCORES:
            raise _fail(f"{path}.score", f"unknown score {score!r}; known: {', '.join(SCORES)}")
        above = data.get("above")
        if not isinstance(above, int | float) or isinstance(above, bool):
            raise _fail(f"{path}.above", f"a score trigger needs a number 'above', got {above!r}")
        return Trigger(kind, score, float(above))
    value = (
        _stage(data[kind], f"{path}.{kind}")
        if kind == "stage"
        else _text(data[kind], f"{path}.{kind}")
    )
    return Trigger(kind, value)


def _date_trigger(data: Mapping[str, Any], path: str) -> Trigger:
    field = _text(data["date"], f"{path}.date")
    if not field.startswith("trait.") or len(field) <= len("trait."):
        raise _fail(
            f"{path}.date", f"must name a trait holding a date, like trait.renewal_date: {field!r}"
        )
    raw = str(data.get("offset", "0d")).strip()
    sign = -1 if raw.startswith("-") else 1
    body = raw.lstrip("+-").strip()
    offset = timedelta(0) if body in ("0", "0d") else _duration(body, f"{path}.offset")
    if offset.total_seconds() % 86_400:
        raise _fail(f"{path}.offset", f"must be whole days or weeks, got {raw!r}")
    return Trigger("date", field.removeprefix("trait."), offset=sign * offset)


def parse_condition(raw: object, path: str) -> Condition:
    data = _mapping(raw, path)
    kind = _single_kind(
        {k: v for k, v in data.items() if k != "equals"}, CONDITION_KINDS, path, "condition"
    )
    where = f"{path}.{kind}"
    value = _stage(data[kind], where) if kind == "stage" else _text(data[kind], where)
    if kind == "unsubscribed" and value not in ("email", "sms", "any"):
        raise _fail(where, f"must be email, sms or any, got {value!r}")
    if kind == "trait" and "equals" not in data:
        raise _fail(path, "a trait condition needs 'equals'")
    return Condition(kind, value, data.get("equals"))


def _step_kind(data: Mapping[str, Any], path: str) -> str:
    keys = {k: v for k, v in data.items() if k not in ("id", "offer", "then", "else", "if")}
    if set(data) & {"if", "then", "else"} and "branch" not in data:
        keys["branch"] = True
    return _single_kind(keys, STEP_KINDS, path, "step")


def _variants(raw: object, path: str) -> tuple[str, tuple[Variant, ...], str, int]:
    data = _mapping(raw, path)
    channel = str(data.get("channel", "email"))
    if channel not in ("email", "sms"):
        raise _fail(f"{path}.channel", f"must be email or sms, got {channel!r}")
    variants_raw = _mapping(data.get("variants"), f"{path}.variants")
    if len(variants_raw) < 2:
        raise _fail(f"{path}.variants", "an A/B split needs at least two variants")
    variants = []
    for name, spec in variants_raw.items():
        where = f"{path}.variants.{name}"
        if isinstance(spec, str):
            spec = {"template": spec}
        item = _mapping(spec, where)
        weight = item.get("weight", 1)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
            raise _fail(f"{where}.weight", f"must be a whole number above 0, got {weight!r}")
        variants.append(
            Variant(str(name), weight, _text(item.get("template"), f"{where}.template"))
        )
    metric = str(data.get("metric", "clicked"))
    if metric not in METRICS:
        raise _fail(f"{path}.metric", f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    decide_after = data.get("decide_after", 100)
    if not isinstance(decide_after, int) or isinstance(decide_after, bool) or decide_after < 1:
        raise _fail(f"{path}.decide_after", f"must be a whole number above 0, got {decide_after!r}")
    return channel, tuple(variants), metric, decide_after


def parse_step(raw: object, index: int, path: str) -> Step:
    where = f"{path}[{index}]"
    if isinstance(raw, str) and raw == "exit":
        return Step(id=f"step{index + 1}", kind="exit")
    data = _mapping(raw, where)
    kind = _step_kind(data, where)
    step_id = str(data.get("id") or f"step{index + 1}")
    value = data.get(kind)
    offer = str(data["offer"]) if data.get("offer") else None
    if kind in ("email", "sms"):
        return Step(step_id, kind, template=_text(value, f"{where}.{kind}"), offer=offer)
    if kind == "wait":
        return Step(step_id, kind, duration=_duration(value, f"{where}.wait"))
    if kind == "wait_until":
        return Step(step_id, kind, window=SendWindow.parse(str(value), f"{where}.wait_until"))
    if kind == "branch":
        condition = parse_condition(data.get("if"), f"{where}.if")
        then, otherwise = data.get("then"), data.get("else")
        return Step(
            step_id,
            kind,
            condition=condition,
            then=str(then) if then else None,
            otherwise=str(otherwise) if otherwise else None,
        )
    if kind == "ab":
        channel, variants, metric, decide_after = _variants(value, f"{where}.ab")
        return Step(
            step_id, kind, channel=channel, variants=variants, metric=metric,
            decide_after=decide_after, offer=offer,
        )  # fmt: skip
    if kind == "set_trait":
        return Step(step_id, kind, traits=dict(_mapping(value, f"{where}.set_trait")))
    if kind == "adjust_score":
        return _adjust(step_id, value, f"{where}.adjust_score")
    if kind == "change_stage":
        return Step(step_id, kind, stage=_stage(value, f"{where}.change_stage"))
    if kind == "notify_sales":
        return Step(step_id, kind, message=str(value or ""))
    return Step(step_id, "exit")


def _adjust(step_id: str, value: object, path: str) -> Step:
    data = value if isinstance(value, Mapping) else {"points": value}
    points = data.get("points")
    if not isinstance(points, int | float) or isinstance(points, bool) or not points:
        raise _fail(f"{path}.points", f"must be a number other than 0, got {points!r}")
    return Step(step_id, "adjust_score", points=float(points), message=str(data.get("reason", "")))


def _check_jumps(steps: Sequence[Step], path: str) -> None:
    ids = [s.id for s in steps]
    seen: set[str] = set()
    for index, step in enumerate(steps):
        if step.id in seen:
            raise _fail(f"{path}[{index}].id", f"step id {step.id!r} is used twice")
        seen.add(step.id)
    for index, step in enumerate(steps):
        for label, target in (("then", step.then), ("else", step.otherwise)):
            if target is not None and target not in ids:
                raise _fail(
                    f"{path}[{index}].{label}", f"no step with id {target!r}{suggest(target, ids)}"
                )
        condition = step.condition
        if condition is not None and condition.kind in ("opened", "clicked", "replied"):
            sender = next((s for s in steps if s.id == condition.value), None)
            if sender is None or not sender.sends:
                raise _fail(
                    f"{path}[{index}].if", f"{condition.value!r} is not a send step of this journey"
                )


def _offers(raw: object, path: str) -> dict[str, Offer]:
    if raw is None:
        return {}
    offers: dict[str, Offer] = {}
    for name, spec in _mapping(raw, path).items():
        item = _mapping(spec or {}, f"{path}.{name}")
        expires = item.get("expires_in")
        prefix = str(item.get("prefix", str(name)[:8].upper()))
        if not prefix.isalnum():
            raise _fail(f"{path}.{name}.prefix", f"must be letters and digits, got {prefix!r}")
        offers[str(name)] = Offer(
            str(name), _duration(expires, f"{path}.{name}.expires_in") if expires else None, prefix
        )
    return offers


def _reentry(raw: object, path: str) -> tuple[str, timedelta | None]:
    if raw is None or raw == "never" or raw is False:
        return "never", None
    if raw == "always" or raw is True:
        return "always", None
    if isinstance(raw, Mapping) and "after" in raw:
        return "after", _duration(raw["after"], f"{path}.after")
    raise _fail(path, f"must be 'never', 'always' or {{after: DURATION}}, got {raw!r}")


def parse_journey(name: str, raw: object, path: str | None = None) -> Journey:
    """A journey from plain data (YAML or JSON); JourneyError naming the path otherwise."""
    where = path or f"journeys.{name}"
    data = _mapping(raw, where)
    known = {"trigger", "steps", "goals", "reentry", "offers", "enabled", "description"}
    for key in data:
        if key not in known:
            raise _fail(
                f"{where}.{key}",
                f"unknown key{suggest(str(key), known)}; known: {', '.join(sorted(known))}",
            )
    trigger = parse_trigger(data.get("trigger"), f"{where}.trigger")
    steps_raw = data.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise _fail(f"{where}.steps", "must be a non-empty list of steps")
    steps = tuple(parse_step(s, i, f"{where}.steps") for i, s in enumerate(steps_raw))
    _check_jumps(steps, f"{where}.steps")
    goals_raw = data.get("goals") or []
    if not isinstance(goals_raw, list):
        raise _fail(f"{where}.goals", "must be a list of conditions")
    goals = tuple(parse_condition(g, f"{where}.goals[{i}]") for i, g in enumerate(goals_raw))
    offers = _offers(data.get("offers"), f"{where}.offers")
    for index, step in enumerate(steps):
        if step.offer is not None and step.offer not in offers:
            raise _fail(
                f"{where}.steps[{index}].offer", f"no offer named {step.offer!r} in {where}.offers"
            )
    reentry, after = _reentry(data.get("reentry"), f"{where}.reentry")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise _fail(f"{where}.enabled", f"must be true or false, got {enabled!r}")
    spec = json.loads(json.dumps(dict(data), default=str))
    return Journey(name, trigger, steps, goals, reentry, after, offers, enabled, spec)


# ------------------------------------------------------------------------------------------
# The state machine


@dataclass(slots=True)
class RunFacts:
    """What a run's decisions may look at, loaded in bulk by the caller."""

    stage: str
    traits: Mapping[str, Any]
    segments: frozenset[str]
    # per send step id of this run: which of opened/clicked/replied happened
    engagement: Mapping[str, frozenset[str]]
    revoked: frozenset[str] = frozenset()  # channels whose consent was withdrawn


def condition_holds(condition: Condition, facts: RunFacts) -> bool:
    if condition.kind in ("opened", "clicked", "replied"):
        return condition.kind in facts.engagement.get(condition.value, frozenset())
    if condition.kind == "segment":
        return condition.value in facts.segments
    if condition.kind == "stage":
        return facts.stage == condition.value
    if condition.kind == "unsubscribed":
        return condition.value in facts.revoked or (
            condition.value == "any" and bool(facts.revoked)
        )
    return bool(facts.traits.get(condition.value) == condition.equals)


def goal_reached(journey: Journey, facts: RunFacts) -> Condition | None:
    for goal in journey.goals:
        if condition_holds(goal, facts):
            return goal
    return None


def may_enter(
    journey: Journey,
    last_finished: datetime | None,
    active: bool,
    entered_before: bool,
    now: datetime,
) -> bool:
    """The re-entry rule: never twice at once; again only as the journey allows."""
    if active or not journey.enabled:
        return False
    if not entered_before or journey.reentry == "always":
        return True
    if journey.reentry == "after" and last_finished is not None and journey.reentry_after:
        return now - last_finished >= journey.reentry_after
    return False


def pick_winner(
    step: Step, results: Mapping[str, tuple[int, int]], alpha: float = 0.05
) -> str | None:
    """The variant that beats every other on the step's metric with significance ``alpha``
    (two-proportion z-test), once each has ``decide_after`` sends; None until then.
    ``results``: per variant name, (sends, sends that saw the metric)."""
    names = [v.name for v in step.variants]
    if any(results.get(name, (0, 0))[0] < step.decide_after for name in names):
        return None
    ranked = sorted(names, key=lambda n: results[n][1] / results[n][0], reverse=True)
    leader = ranked[0]
    for other in ranked[1:]:
        p_value = two_proportion_p(*results[leader][::-1], *results[other][::-1])
        if p_value is None or p_value >= alpha:
            return None
    return leader


def two_proportion_p(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float | None:
    """Two-sided p-value of a pooled two-proportion z-test; None when undefined."""
    if min(n_a, n_b) == 0:
        return None
    pooled = (hits_a + hits_b) / (n_a + n_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if spread == 0:
        return None
    z = (hits_a / n_a - hits_b / n_b) / spread
    return round(math.erfc(abs(z) / math.sqrt(2)), 6)


def choose_variant(step: Step, run_id: int, winner: str | None = None) -> Variant:
    """The A/B variant of a run: the winner once one is decided, else a stable weighted draw."""
    if winner is not None:
        for variant in step.variants:
            if variant.name == winner:
                return variant
    total = sum(v.weight for v in step.variants)
    digest = hashlib.sha256(f"{step.id}:{run_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant in step.variants:
        if point < variant.weight:
            return variant
        point -= variant.weight
    return step.variants[-1]


@dataclass(frozen=True, slots=True)
class Effect:
    """Something a step asks the caller to do, in the same transaction as the run's move."""

    kind: str  # send | set_trait | change_stage | notify_sales
    step: str
    channel: str | None = None
    template: str | None = None
    variant: str | None = None
    offer: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)
    stage: str | None = None
    message: str = ""
    points: float = 0.0


@dataclass(slots=True)
class Advance:
    """Where a run goes: its effects, the step it rests on, when it is next due, or done."""

    effects: list[Effect] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (step, outcome, detail)
    step: str | None = None
    due_at: datetime | None = None
    awaiting_send: bool = False
    finished: str | None = None  # the exit reason when the run ends


MAX_STEPS_AT_ONCE = 100  # a loop of branches without a wait cannot spin forever


def advance(
    journey: Journey,
    step_id: str | None,
    resume: bool,
    facts: RunFacts,
    run_id: int,
    now: datetime,
    zone: Any,
    winners: Mapping[str, str] | None = None,
) -> Advance:
    """Run the journey from ``step_id`` until it blocks or ends.

    ``resume`` means the step ``step_id`` already did its part (its wait is over, or its
    message was handed off), so the run continues after it.
    """
    out = Advance()
    goal = goal_reached(journey, facts)
    if goal is not None:
        out.finished = f"goal: {goal.kind} {goal.value}"
        out.log.append((step_id or "-", "goal", out.finished))
        return out
    current = (journey.after(step_id) if resume else step_id) if step_id else journey.steps[0].id
    for _ in range(MAX_STEPS_AT_ONCE):
        if current is None:
            out.finished = "completed"
            return out
        step = journey.step(current)
        nxt = journey.after(current)
        if step.kind == "exit":
            out.log.append((step.id, "exit", ""))
            out.finished = "exit step"
            return out
        if step.kind == "wait":
            assert step.duration is not None
            out.step, out.due_at = step.id, now + step.duration
            out.log.append((step.id, "waiting", f"until {out.due_at.isoformat()}"))
            return out
        if step.kind == "wait_until":
            assert step.window is not None
            opening = step.window.next_open(now, zone)
            if opening > now:
                out.step, out.due_at = step.id, opening
                out.log.append((step.id, "waiting", f"until {opening.isoformat()} ({step.window})"))
                return out
            current = nxt
            continue
        if step.sends:
            variant = None
            channel, template = step.kind, step.template
            if step.kind == "ab":
                chosen = choose_variant(step, run_id, (winners or {}).get(step.id))
                variant, channel, template = chosen.name, step.channel or "email", chosen.template
            out.effects.append(Effect("send", step.id, channel, template, variant, step.offer))
            won = " winner" if variant and (winners or {}).get(step.id) == variant else ""
            label = f" ({variant}{won})" if variant else ""
            out.log.append((step.id, "send", f"{channel} {template}{label}"))
            out.step, out.awaiting_send = step.id, True
            return out
        if step.kind == "branch":
            assert step.condition is not None
            holds = condition_holds(step.condition, facts)
            target = step.then if holds else step.otherwise
            out.log.append(
                (
                    step.id,
                    "branch",
                    f"{step.condition.kind} {step.condition.value}: {'yes' if holds else 'no'}",
                )
            )
            current = target or nxt
            continue
        if step.kind == "set_trait":
            out.effects.append(Effect("set_trait", step.id, traits=step.traits))
        elif step.kind == "change_stage":
            out.effects.append(Effect("change_stage", step.id, stage=step.stage))
        elif step.kind == "notify_sales":
            out.effects.append(Effect("notify_sales", step.id, message=step.message))
        elif step.kind == "adjust_score":
            out.effects.append(
                Effect("adjust_score", step.id, points=step.points, message=step.message)
            )
        out.log.append((step.id, step.kind, ""))
        current = nxt
    out.finished = f"stopped after {MAX_STEPS_AT_ONCE} steps without a wait (a loop?)"
    return out
