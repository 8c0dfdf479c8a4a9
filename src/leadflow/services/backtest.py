"""Backtests: replay the stored history with a candidate model, side by side with the live one.

Nothing is written. Leads are read in id order, in chunks, each chunk in its own read-only
transaction; a lead's events arrive in (timestamp, id) order and only that lead's events are
held while it is replayed. For each model, each event goes through the same
:func:`leadflow.domain.scoring.apply_event` as the live path, into a fresh engagement state,
and the MQL policy is evaluated after each event (``now`` = the event's time) and once at the
end of the history. The first time it holds is the lead's MQL time.

A lead *converted* when it first reached SQL, opportunity or customer in the stage history,
or sent an outcome event (``Opportunity Created``, ``Deal Won`` by default). Outcome events
(and ``Deal Lost``) never score. An MQL is a hit when it came before the conversion; one that
came after counts as an MQL, not as a hit: the model saw the lead too late.
See docs/backtest.md.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any, Protocol

from leadflow.domain.errors import ValidationError
from leadflow.domain.policy import Facts, Policy, PolicyError, parse_policy
from leadflow.domain.policy_parse import BoolOp, Compare, Literal, Node, Var, parse
from leadflow.domain.scoring import (
    EngagementState,
    FitScore,
    ScoredEvent,
    apply_event,
    engagement_at,
    fit_of,
    fit_source,
    utc,
)
from leadflow.services.models import ScoringModel

DEFAULT_OUTCOME_EVENTS = ("Opportunity Created", "Deal Won")  # they mark a conversion
OTHER_OUTCOMES = ("Deal Lost",)  # CRM outcomes that do not: never scored either
CONVERTED_STAGES = ("sql", "opportunity", "customer")
DEFAULT_CAPACITY = 50
CHUNK = 500  # leads per read transaction
DAY = 86_400.0
ALWAYS = math.inf  # the policy holds whatever the engagement threshold
NEVER = -math.inf  # the policy never holds, whatever the threshold


@dataclass(frozen=True, slots=True)
class BacktestLead:
    """A lead as a backtest sees it: its traits and its account's, as stored now."""

    id: int
    traits: Mapping[str, Any]
    account: Mapping[str, Any]
    email: str | None
    p_convert: float | None


class BacktestRepository(Protocol):
    def window_end(self, outcome_events: Collection[str]) -> datetime | None: ...
    def count_leads(self, since: datetime | None) -> int: ...
    def lead_ids_after(self, after: int, limit: int, since: datetime | None) -> list[int]: ...
    def leads(self, lead_ids: Sequence[int]) -> dict[int, BacktestLead]: ...
    def stage_reached(
        self, lead_ids: Sequence[int], stages: Collection[str]
    ) -> dict[int, datetime]: ...
    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, ScoredEvent]]: ...


Reader = Callable[[], AbstractContextManager[BacktestRepository]]
ProgressFn = Callable[[int, int], None]  # (leads replayed, leads in all)


# --- the engagement threshold -------------------------------------------------------------
def _is_floor(node: Compare) -> bool:
    """``engagement >= N``, ``engagement > N``, ``N <= engagement`` or ``N < engagement``."""
    if len(node.ops) != 1:
        return False
    left, right, op = node.operands[0], node.operands[1], node.ops[0].text
    for var, number, ops in ((left, right, (">=", ">")), (right, left, ("<=", "<"))):
        if isinstance(var, Var) and var.path == "engagement" and op in ops:
            value = number.value if isinstance(number, Literal) else None
            return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def engagement_floors(node: Node) -> list[Compare]:
    """The policy's lower bounds on engagement, outside any ``not``."""
    if isinstance(node, Compare):
        if _is_floor(node):
            return [node]
        return [f for operand in node.operands for f in engagement_floors(operand)]
    if isinstance(node, BoolOp):
        return [f for operand in node.operands for f in engagement_floors(operand)]
    return []  # a `not (...)` turns a floor into a ceiling: left as written


@dataclass(frozen=True)
class Probe:
    """The policy with its engagement floors replaced by True (``loose``) and by False
    (``strict``). With a floor of T, the policy holds at an instant exactly when ``strict``
    holds, or ``loose`` holds and engagement >= T."""

    loose: Policy
    strict: Policy
    current: float

    def reach(self, facts: Facts) -> float:
        """The highest floor that would let the policy hold now."""
        if self.strict.evaluate(facts).result:
            return ALWAYS
        return facts.engagement if self.loose.evaluate(facts).result else NEVER


def probe_of(model: ScoringModel) -> Probe | None:
    source = model.policy.source
    floors = engagement_floors(parse(source))
    if not floors:
        return None

    def variant(word: str) -> Policy:
        text = source
        for node in sorted(floors, key=lambda n: n.start, reverse=True):
            text = text[: node.start] + word + text[node.end :]
        return parse_policy(text, groups=list(model.rules.groups))

    first = floors[0].operands
    number = next(o.value for o in first if isinstance(o, Literal))
    assert isinstance(number, int | float)
    try:
        return Probe(variant("True"), variant("False"), float(number))
    except PolicyError:  # e.g. `(engagement >= 50) == x`: no suggestion rather than a guess
        return None


# --- one lead, one model ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class History:
    """One lead's events that score, in time order, and when it converted."""

    events: list[ScoredEvent]
    first_touch: datetime | None
    converted_at: datetime | None

    @classmethod
    def of(
        cls,
        events: Sequence[ScoredEvent],
        outcomes: frozenset[str],
        ignored: frozenset[str],
        staged: datetime | None,
    ) -> History:
        """``outcomes``: event names that mark a conversion; ``ignored``: names that never
        score (the outcomes among them)."""
        scoring: list[ScoredEvent] = []
        converted = staged
        for event in events:
            name = (event.name or "").lower() if event.type == "track" else ""
            if name in outcomes:
                converted = min(converted or event.timestamp, event.timestamp)
            if name not in ignored:
                scoring.append(event)
        return cls(scoring, scoring[0].timestamp if scoring else None, converted)

    def hit(self, mql_at: datetime) -> bool:
        return self.converted_at is not None and mql_at < self.converted_at


@dataclass(slots=True)
class LeadResult:
    mql_at: datetime | None = None
    reach: float = NEVER
    hit_reach: float = NEVER  # the reach over the instants before the conversion


class Replayer:
    """Replays leads under one model."""

    def __init__(self, model: ScoringModel) -> None:
        self.model = model
        self.watched = model.watched_events
        self.probe = probe_of(model)

    def facts(
        self, lead: BacktestLead, fit: FitScore, state: EngagementState, now: datetime
    ) -> Facts:
        """As :meth:`leadflow.services.qualify.Qualifier.facts`, for a lead still in 'lead'."""
        engagement = engagement_at(self.model.rules, state, now)
        recent = {
            name: [utc(t) for t in state.recent.get(name.lower(), [])] for name in self.watched
        }
        return Facts(
            fit.grade, fit.score, engagement.total, engagement.groups, lead.p_convert, "lead",
            lead.traits, lead.account, now, recent,
        )  # fmt: skip

    def replay(self, lead: BacktestLead, history: History, end: datetime | None) -> LeadResult:
        rules = self.model.rules
        fit = fit_of(rules, fit_source(lead.traits, lead.account, lead.email, rules))
        state = EngagementState()
        result = LeadResult()
        for event in history.events:
            apply_event(rules, state, event, self.watched)
            if self._look(result, self.facts(lead, fit, state, event.timestamp), history):
                return result
        last = history.events[-1].timestamp if history.events else None
        if end is not None and (last is None or end > last):
            self._look(result, self.facts(lead, fit, state, end), history)
        return result

    def _look(self, result: LeadResult, facts: Facts, history: History) -> bool:
        """Evaluate at one instant; True when nothing later can change the result."""
        if result.mql_at is None and self.model.policy.evaluate(facts).result:
            result.mql_at = facts.now
        if self.probe is None:
            return result.mql_at is not None
        reach = self.probe.reach(facts)
        result.reach = max(result.reach, reach)
        if history.hit(facts.now):
            result.hit_reach = max(result.hit_reach, reach)
        return result.mql_at is not None and result.reach == ALWAYS


# --- the figures --------------------------------------------------------------------------
def iso_week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(first: datetime | None, last: datetime | None) -> list[str]:
    """Every ISO week from the one of ``first`` to the one of ``last``."""
    if first is None or last is None:
        return []
    monday = first.date() - timedelta(days=first.weekday())
    found: list[str] = []
    while monday <= last.date():
        found.append(iso_week(datetime.combine(monday, time(), UTC)))
        monday += timedelta(days=7)
    return found


@dataclass
class Tally:
    """One model's results, summed over leads (per lead: a week, a delay, a reach)."""

    mqls: int = 0
    hits: int = 0
    weeks: Counter[str] = field(default_factory=Counter)
    days_to_mql: list[float] = field(default_factory=list)
    reaches: list[float] = field(default_factory=list)  # finite ones
    always: int = 0
    hit_reaches: list[float] = field(default_factory=list)  # finite ones
    always_hits: int = 0

    def add(self, result: LeadResult, history: History) -> None:
        if result.mql_at is not None:
            self.mqls += 1
            self.weeks[iso_week(result.mql_at)] += 1
            if history.first_touch is not None:
                delay = (result.mql_at - history.first_touch).total_seconds() / DAY
                self.days_to_mql.append(delay)
            self.hits += history.hit(result.mql_at)
        if result.reach == ALWAYS:
            self.always += 1
        elif result.reach > NEVER:
            self.reaches.append(result.reach)
        if result.hit_reach == ALWAYS:
            self.always_hits += 1
        elif result.hit_reach > NEVER:
            self.hit_reaches.append(result.hit_reach)

    def suggest(self, budget: int) -> tuple[float | None, int | None]:
        """The lowest engagement threshold (to 0.01) with at most ``budget`` MQLs, and the
        MQLs it would give; (None, None) when the other clauses alone exceed the budget."""
        if self.always > budget:
            return None, None
        room = budget - self.always
        reaches = sorted(self.reaches, reverse=True)
        if not reaches:
            return None, self.always
        if len(reaches) <= room:  # capacity is not binding: any lower floor gives the same
            return math.floor(reaches[-1] * 100) / 100, self.always + len(reaches)
        above = reaches[room]  # the first lead that has to be left out
        threshold = round(math.floor(above * 100) / 100 + 0.01, 2)
        if threshold <= above:
            threshold = round(threshold + 0.01, 2)
        return threshold, self.always + sum(1 for r in reaches if r >= threshold)

    def hits_at(self, threshold: float) -> int:
        """The hits with every engagement floor of the policy at ``threshold``: the leads
        for which the policy would have held at some instant before their conversion."""
        return self.always_hits + sum(1 for r in self.hit_reaches if r >= threshold)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(
    replayer: Replayer, tally: Tally, weeks: list[str], capacity: int, converted: int
) -> dict[str, Any]:
    counts = [tally.weeks.get(week, 0) for week in weeks]
    precision, recall = _ratio(tally.hits, tally.mqls), _ratio(tally.hits, converted)
    f1 = None
    if precision is not None and recall is not None:
        f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    median = statistics.median(tally.days_to_mql) if tally.days_to_mql else None
    probe = replayer.probe
    suggested, projected = tally.suggest(capacity * len(weeks)) if probe else (None, None)
    hits_at = tally.hits_at(suggested) if suggested is not None else None
    precision_at = _ratio(hits_at, projected) if hits_at is not None and projected else None
    recall_at = _ratio(hits_at, converted) if hits_at is not None else None
    return {
        "version": replayer.model.version,
        "policy": replayer.model.policy.source,
        "mqls": tally.mqls,
        "mqls_per_week": [{"week": w, "mqls": n} for w, n in zip(weeks, counts, strict=True)],
        "mean_mqls_per_week": round(tally.mqls / len(weeks), 2) if weeks else None,
        "hits": tally.hits,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "median_days_to_mql": round(median, 2) if median is not None else None,
        "weeks_over_capacity": sum(1 for n in counts if n > capacity),
        "engagement_threshold": probe.current if probe else None,
        "suggested_threshold": suggested,
        "mqls_at_suggested_threshold": projected,
        "hits_at_suggested_threshold": hits_at,
        "precision_at_suggested_threshold": precision_at,
        "recall_at_suggested_threshold": recall_at,
    }


# --- the run ------------------------------------------------------------------------------
class Backtest:
    """Two models over the same history, read once."""

    def __init__(
        self,
        live: ScoringModel,
        candidate: ScoringModel,
        outcome_events: Sequence[str],
        since: date | None,
    ) -> None:
        self.models = {"live": Replayer(live), "candidate": Replayer(candidate)}
        self.tallies = {name: Tally() for name in self.models}
        names = [e.strip() for e in outcome_events if e.strip()] or list(DEFAULT_OUTCOME_EVENTS)
        self.outcome_events = tuple(dict.fromkeys(names))
        self.outcomes = frozenset(e.lower() for e in self.outcome_events)
        self.ignored = frozenset(e.lower() for e in (*self.outcome_events, *OTHER_OUTCOMES))
        self.since = since
        self.since_at = datetime.combine(since, time(), UTC) if since is not None else None
        self.end: datetime | None = None
        self.first_touch: datetime | None = None
        self.leads = self.events = self.converted = 0

    def replay_chunk(self, repo: BacktestRepository, lead_ids: Sequence[int]) -> None:
        leads = repo.leads(lead_ids)
        staged = repo.stage_reached(lead_ids, CONVERTED_STAGES)
        pending = set(leads)
        for lead_id, rows in groupby(repo.events_of(lead_ids), key=itemgetter(0)):
            pending.discard(lead_id)
            self.replay_lead(leads[lead_id], [e for _, e in rows], staged.get(lead_id))
        for lead_id in sorted(pending):
            self.replay_lead(leads[lead_id], [], staged.get(lead_id))

    def replay_lead(
        self, lead: BacktestLead, events: Sequence[ScoredEvent], staged: datetime | None
    ) -> None:
        history = History.of(events, self.outcomes, self.ignored, staged)
        self.leads += 1
        self.events += len(history.events)
        self.converted += history.converted_at is not None
        if history.first_touch is not None:
            self.first_touch = min(self.first_touch or history.first_touch, history.first_touch)
        for name, replayer in self.models.items():
            self.tallies[name].add(replayer.replay(lead, history, self.end), history)

    def report(self, capacity: int) -> dict[str, Any]:
        weeks = weeks_between(self.first_touch, self.end)
        return {
            "since": self.since.isoformat() if self.since else None,
            "capacity": capacity,
            "outcome_events": list(self.outcome_events),
            "first_touch": self.first_touch.isoformat() if self.first_touch else None,
            "window_end": self.end.isoformat() if self.end else None,
            "weeks": len(weeks),
            "leads": self.leads,
            "events_replayed": self.events,
            "converted": self.converted,
            **{
                name: figures(replayer, self.tallies[name], weeks, capacity, self.converted)
                for name, replayer in self.models.items()
            },
        }


def run_backtest(
    reader: Reader,
    live: ScoringModel,
    candidate: ScoringModel,
    *,
    since: date | None = None,
    capacity: int = DEFAULT_CAPACITY,
    outcome_events: Sequence[str] = DEFAULT_OUTCOME_EVENTS,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Replay every lead (whose first touch is on or after ``since``) under both models."""
    if capacity < 1:
        raise ValidationError(f"capacity: must be at least 1 lead a week, got {capacity}")
    run = Backtest(live, candidate, outcome_events, since)
    with reader() as repo:
        run.end = repo.window_end(run.ignored)
        total = repo.count_leads(run.since_at)
    after = done = 0
    while True:
        with reader() as repo:
            ids = repo.lead_ids_after(after, CHUNK, run.since_at)
            if not ids:
                break
            run.replay_chunk(repo, ids)
        after, done = ids[-1], done + len(ids)
        if progress is not None:
            progress(done, max(total, done))
    return run.report(capacity)
