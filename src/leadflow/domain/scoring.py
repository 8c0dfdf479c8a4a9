"""Scoring: engagement rules with decay and caps, fit rules and grades, as pure functions.

Engagement is kept per lead and rule as a linear accumulator, so each event updates it in
O(1) and an event arriving late is scored as of its own time:

    value(t) = value(t0) * 2^(-(t - t0) / half_life) + points

The accumulator itself is never capped: a rule's cap and a group's ceiling apply when the
score is read, which keeps the result independent of arrival order for the same events.
Replaying events in arrival order through :func:`apply_event` lands on exactly the state the
live path reached.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DAY = 86_400.0
LIMIT_DAYS_KEPT = 31  # days of per-rule daily counts kept, relative to the newest event
RECENT_KEPT = 20  # timestamps kept per event name the policy asks about
CANDIDATE_KEYS_KEPT = 10_000  # (type, event name) pairs whose candidate rules are cached
BEFORE_RESET = "before the lead was recycled"
OPS = frozenset(
    {"eq", "ne", "in", "not_in", "contains", "contains_any", "glob", "gt", "gte", "lt", "lte",
     "between", "exists", "missing"}
)  # fmt: skip


# --- matching ----------------------------------------------------------------------------


def lookup(source: Mapping[str, Any], path: Sequence[str]) -> Any:
    value: Any = source
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    return value.lower() if isinstance(value, str) else str(value).lower()


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``; a field is a dotted path (``properties.plan``, ``account.employees``)."""

    field: tuple[str, ...]
    op: str
    value: Any = None

    def test(self, source: Mapping[str, Any]) -> bool:
        found = lookup(source, self.field)
        op = self.op
        if op == "exists":
            return found is not None
        if op == "missing":
            return found is None
        if found is None:
            return op in ("ne", "not_in")
        if op in ("eq", "ne"):
            same = (
                _text(found) == _text(self.value) if isinstance(found, str) else found == self.value
            )
            return same if op == "eq" else not same
        if op in ("in", "not_in"):
            inside = _text(found) in {_text(v) for v in self.value}
            return inside if op == "in" else not inside
        if op == "contains":
            return _text(self.value) in _text(found)
        if op == "contains_any":
            return any(_text(v) in _text(found) for v in self.value)
        if op == "glob":
            return any(fnmatch.fnmatchcase(_text(found), _text(g)) for g in self.value)
        return self._compare(_number(found))

    def _compare(self, number: float | None) -> bool:
        if number is None:
            return False
        if self.op == "between":
            low, high = self.value
            return bool(low <= number <= high)
        limit = float(self.value)
        return {
            "gt": number > limit,
            "gte": number >= limit,
            "lt": number < limit,
            "lte": number <= limit,
        }[self.op]

    def describe(self) -> str:
        """The condition in words, as explanations show it: ``traits.industry is one of
        software, fintech``, ``account.employees between 50 and 5000``."""
        name = ".".join(self.field)
        op, value = self.op, self.value
        if op in _WORDS_ALONE:
            return f"{name} {_WORDS_ALONE[op]}"
        if op == "between":
            low, high = value
            return f"{name} between {_shown(low)} and {_shown(high)}"
        if op in _WORDS_LIST:
            return f"{name} {_WORDS_LIST[op]} {', '.join(_shown(v) for v in value)}"
        return f"{name} {_WORDS[op]} {_shown(value)}"


_WORDS_ALONE = {"exists": "is set", "missing": "is missing"}
_WORDS_LIST = {
    "in": "is one of",
    "not_in": "is none of",
    "contains_any": "contains any of",
    "glob": "matches",
}
_WORDS = {"eq": "is", "ne": "is not", "contains": "contains", "gt": ">", "gte": ">=",
          "lt": "<", "lte": "<="}  # fmt: skip


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class ScoredEvent:
    """What engagement rules look at: one event of the log."""

    type: str
    name: str | None
    timestamp: datetime
    properties: Mapping[str, Any]
    context: Mapping[str, Any]

    def as_source(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "event": self.name,
            "properties": self.properties,
            "context": self.context,
        }

    @property
    def path(self) -> str | None:
        page = self.context.get("page")
        found = page.get("path") if isinstance(page, Mapping) else None
        found = found or self.properties.get("path")
        return found if isinstance(found, str) else None


class _Unread:
    """The default of :meth:`Matcher.matches`'s ``path``: not read by the caller."""


UNREAD = _Unread()


@dataclass(frozen=True, slots=True)
class Matcher:
    types: frozenset[str] = frozenset()
    events: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    # the path globs as one compiled pattern (fnmatchcase semantics), built once
    _paths: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.paths:
            pattern = "|".join(f"(?:{fnmatch.translate(p)})" for p in self.paths)
            object.__setattr__(self, "_paths", re.compile(pattern))

    def matches(self, event: ScoredEvent, path: str | _Unread | None = UNREAD) -> bool:
        """Whether the event matches; ``path``: the event's page path (or None) when the
        caller has already read it, once for every rule; else it is read here."""
        if self.types and event.type not in self.types:
            return False
        if self.events and (event.name or "").lower() not in self.events:
            return False
        if self._paths is not None:
            found = event.path if isinstance(path, _Unread) else path
            if found is None or self._paths.match(found) is None:
                return False
        if self.where:
            source = event.as_source()
            return all(c.test(source) for c in self.where)
        return True


# --- the model ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngagementRule:
    id: str
    matcher: Matcher
    points: float
    half_life: float | None  # seconds; None: no decay
    cap: float | None = None
    daily_limit: int | None = None
    group: str | None = None
    description: str = ""
    points_from: tuple[str, ...] | None = None  # the event's number, within +/- points

    def points_of(self, event: ScoredEvent) -> float | None:
        """The rule's points for the event: fixed, or the event's own number (clamped to
        +/- ``points``); None when the event carries no number there."""
        if self.points_from is None:
            return self.points
        found = lookup(event.as_source(), self.points_from)
        if (
            isinstance(found, bool)
            or not isinstance(found, int | float)
            or not math.isfinite(found)
        ):
            return None
        bound = abs(self.points)
        return max(-bound, min(bound, float(found)))

    def decay(self, seconds: float) -> float:
        if self.half_life is None or seconds <= 0:
            return 1.0
        return math.pow(2.0, -seconds / self.half_life)


@dataclass(frozen=True, slots=True)
class FitRule:
    id: str
    when: tuple[Condition, ...]
    points: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class ScoringRules:
    engagement: tuple[EngagementRule, ...]
    groups: Mapping[str, float | None]  # group -> ceiling
    fit: tuple[FitRule, ...]
    grades: tuple[tuple[str, float], ...]  # ("A", 60), ("B", 40), ("C", 20): at least; else D
    free_mail_domains: frozenset[str] = frozenset()
    competitor_domains: frozenset[str] = frozenset()
    # (type, lower-cased event name) -> the engagement rules whose type and event lists let
    # such an event through, in model order; filled as events come
    _candidates: dict[tuple[str, str], tuple[EngagementRule, ...]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def rule(self, rule_id: str) -> EngagementRule | None:
        return next((r for r in self.engagement if r.id == rule_id), None)

    def candidates(self, kind: str, name: str) -> tuple[EngagementRule, ...]:
        """The engagement rules an event of this type and (lower-cased) name may match, in
        model order: the others are ruled out by their type or event list alone. Most models
        name the event of most rules, so an event is tested against a few rules, not all."""
        key = (kind, name)
        found = self._candidates.get(key)
        if found is None:
            found = tuple(
                rule
                for rule in self.engagement
                if (not rule.matcher.types or kind in rule.matcher.types)
                and (not rule.matcher.events or name in rule.matcher.events)
            )
            if len(self._candidates) < CANDIDATE_KEYS_KEPT:  # names come from clients
                self._candidates[key] = found
        return found


# --- engagement state --------------------------------------------------------------------


@dataclass(slots=True)
class RuleState:
    value: float = 0.0  # accumulator at as_of (uncapped)
    as_of: float = 0.0  # epoch seconds of the newest counted event
    days: dict[int, int] = field(default_factory=dict)  # day number -> events counted

    def at(self, rule: EngagementRule, when: float) -> float:
        return self.value * rule.decay(when - self.as_of)


@dataclass(slots=True)
class EngagementState:
    """Per lead: one accumulator per rule, and recent timestamps of events the policy uses."""

    rules: dict[str, RuleState] = field(default_factory=dict)
    recent: dict[str, list[float]] = field(default_factory=dict)
    reset_at: float | None = None  # events before this instant no longer count (recycled)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": {
                k: [s.value, s.as_of, {str(d): n for d, n in s.days.items()}]
                for k, s in self.rules.items()
            },
            "recent": self.recent,
            "reset_at": self.reset_at,
        }

    @classmethod
    def reset(cls, at: datetime) -> EngagementState:
        return cls(reset_at=epoch(at))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> EngagementState:
        if not data:
            return cls()
        rules = {
            k: RuleState(float(v[0]), float(v[1]), {int(d): int(n) for d, n in v[2].items()})
            for k, v in (data.get("rules") or {}).items()
        }
        recent = {k: [float(t) for t in v] for k, v in (data.get("recent") or {}).items()}
        reset_at = data.get("reset_at")
        return cls(rules, recent, float(reset_at) if reset_at is not None else None)


@dataclass(frozen=True, slots=True)
class Contribution:
    """One event's effect on one rule, as written to the score ledger."""

    rule_id: str
    points: float
    counted: bool
    reason: str  # why not counted, e.g. "daily limit 3 reached"


def epoch(moment: datetime) -> float:
    return moment.timestamp()


def apply_event(
    rules: ScoringRules, state: EngagementState, event: ScoredEvent, watched: Iterable[str] = ()
) -> list[Contribution]:
    """Score one event into ``state`` (mutated); return what each matching rule did."""
    when = epoch(event.timestamp)
    out: list[Contribution] = []
    stale = state.reset_at is not None and when < state.reset_at
    name = (event.name or "").lower()
    candidates = rules.candidates(event.type, name)
    path = event.path if candidates else None
    for rule in candidates:
        if not rule.matcher.matches(event, path):
            continue
        points = rule.points_of(event)
        if points is None:
            where = ".".join(rule.points_from or ())
            out.append(Contribution(rule.id, 0.0, False, f"no number in {where}"))
            continue
        if stale:
            out.append(Contribution(rule.id, points, False, BEFORE_RESET))
            continue
        current = state.rules.setdefault(rule.id, RuleState(as_of=when))
        if not _within_daily_limit(rule, current, when):
            out.append(Contribution(rule.id, points, False, f"daily limit {rule.daily_limit}"))
            continue
        if when >= current.as_of:
            current.value = current.value * rule.decay(when - current.as_of) + points
            current.as_of = when
        else:  # late: its points, decayed from its own time to the newest one
            current.value += points * rule.decay(current.as_of - when)
        out.append(Contribution(rule.id, points, True, ""))
    if name and not stale and name in {w.lower() for w in watched}:
        times = state.recent.setdefault(name, [])
        times.append(when)
        times.sort()
        del times[:-RECENT_KEPT]
    return out


def _within_daily_limit(rule: EngagementRule, state: RuleState, when: float) -> bool:
    if rule.daily_limit is None:
        return True
    day = int(when // DAY)
    if state.days.get(day, 0) >= rule.daily_limit:
        return False
    state.days[day] = state.days.get(day, 0) + 1
    newest = max(state.days)
    for old in [d for d in state.days if d < newest - LIMIT_DAYS_KEPT]:
        del state.days[old]
    return True


@dataclass(frozen=True, slots=True)
class EngagementScore:
    total: float
    groups: Mapping[str, float]  # capped group scores
    rules: Mapping[str, float]  # capped rule scores
    raw: Mapping[str, float]  # decayed, uncapped rule values


def engagement_at(rules: ScoringRules, state: EngagementState, moment: datetime) -> EngagementScore:
    """The engagement score at ``moment``: rules decayed and capped, groups capped, summed."""
    when = epoch(moment)
    raw: dict[str, float] = {}
    for rule in rules.engagement:
        found = state.rules.get(rule.id)
        if found is not None:
            raw[rule.id] = found.at(rule, when)
    return _combine(rules, raw)


def engagement_bounds(
    rules: ScoringRules, state: EngagementState, moment: datetime
) -> tuple[EngagementScore, EngagementScore]:
    """The lowest and the highest the score (and each group) can be at any instant from
    ``moment`` on, with no new event. Each rule's accumulator is one exponential: it keeps
    its sign and decays towards 0 (or stays, without decay), so it lies between its value
    now and 0; caps, group ceilings and sums only keep the order."""
    when = epoch(moment)
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    for rule in rules.engagement:
        found = state.rules.get(rule.id)
        if found is None:
            continue
        value = found.at(rule, when)
        decays = rule.half_life is not None
        low[rule.id] = min(value, 0.0) if decays else value
        high[rule.id] = max(value, 0.0) if decays else value
    return _combine(rules, low), _combine(rules, high)


def _combine(rules: ScoringRules, raw: Mapping[str, float]) -> EngagementScore:
    """Rules capped, groups capped, summed: the score of these decayed rule values. One pass
    over the rules; the sums are taken in the same order as rule by rule, then group by
    group, so the result does not depend on how it is computed."""
    capped: dict[str, float] = {}
    sums: dict[str, float] = dict.fromkeys(rules.groups, 0)  # 0 as sum() starts
    total = 0.0
    for rule in rules.engagement:
        value = raw.get(rule.id)
        if value is None:
            continue
        cap = rule.cap
        if cap is not None and cap < value:
            value = cap
        capped[rule.id] = value
        if rule.group is None:
            total += value
        elif rule.group in sums:
            sums[rule.group] += value
    groups: dict[str, float] = {}
    for name, ceiling in rules.groups.items():
        summed = sums[name]
        groups[name] = min(summed, ceiling) if ceiling is not None else summed
        total += groups[name]
    return EngagementScore(total, groups, capped, dict(raw))


def merge_states(a: EngagementState, b: EngagementState, rules: ScoringRules) -> EngagementState:
    """Two leads become one: each rule's accumulators brought to the later time and added."""
    resets = [r for r in (a.reset_at, b.reset_at) if r is not None]
    merged = EngagementState(reset_at=max(resets) if resets else None)
    for rule in rules.engagement:
        x, y = a.rules.get(rule.id), b.rules.get(rule.id)
        if x is None or y is None:
            chosen = x or y
            if chosen is not None:
                merged.rules[rule.id] = RuleState(chosen.value, chosen.as_of, dict(chosen.days))
            continue
        as_of = max(x.as_of, y.as_of)
        days = dict(x.days)
        for day, count in y.days.items():
            days[day] = days.get(day, 0) + count
        merged.rules[rule.id] = RuleState(x.at(rule, as_of) + y.at(rule, as_of), as_of, days)
    for name in set(a.recent) | set(b.recent):
        merged.recent[name] = sorted(a.recent.get(name, []) + b.recent.get(name, []))[-RECENT_KEPT:]
    return merged


# --- fit ---------------------------------------------------------------------------------

_DOMAIN = re.compile(r"@([^@\s]+)$")


def email_domain_type(email: str | None, rules: ScoringRules) -> str | None:
    """``business``, ``free`` (gmail.com...) or ``competitor``; None without an email."""
    if not email:
        return None
    found = _DOMAIN.search(email)
    if not found:
        return None
    domain = found.group(1).lower()
    if domain in rules.competitor_domains:
        return "competitor"
    if domain in rules.free_mail_domains:
        return "free"
    return "business"


def fit_source(
    traits: Mapping[str, Any], account: Mapping[str, Any], email: str | None, rules: ScoringRules
) -> dict[str, Any]:
    return {
        "traits": traits,
        "account": account,
        "email": email,
        "email_domain_type": email_domain_type(email, rules),
    }


@dataclass(frozen=True, slots=True)
class FitScore:
    score: float
    grade: str
    matched: tuple[FitRule, ...]


def fit_of(rules: ScoringRules, source: Mapping[str, Any]) -> FitScore:
    matched = tuple(r for r in rules.fit if all(c.test(source) for c in r.when))
    score = sum(r.points for r in matched)
    return FitScore(score, grade_of(rules, score), matched)


def grade_of(rules: ScoringRules, score: float) -> str:
    for grade, minimum in rules.grades:
        if score >= minimum:
            return grade
    return "D"


def utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)
