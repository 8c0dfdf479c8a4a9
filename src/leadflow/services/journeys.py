"""Journeys at work: enrolling leads from outbox triggers and running the steps that are due.

Both run inside the caller's transaction. A step's effects (a delivery queued in the ledger,
a trait set, a stage change, a note to sales) are written together with the run's new
position, so a worker that dies loses no step and repeats none: the delivery key
``run:<id>:<step>:<visit>`` makes a repeated step a no-op.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from leadflow.domain.campaigns import (
    Advance,
    Effect,
    Journey,
    JourneyError,
    RunFacts,
    advance,
    may_enter,
    parse_journey,
    pick_winner,
)
from leadflow.domain.consent import Channel, ConsentStatus, zone_of
from leadflow.ports import NewDelivery, OutboxMessage, OutboxRow
from leadflow.services.activity import Activity

STAGE_TOPIC = "lead.stage_changed"
SEGMENT_TOPIC = "segment.entered"
EVENT_TOPIC = "event.tracked"
SCORE_TOPIC = "score.crossed"
NOTIFY_TOPIC = "journey.notify_sales"
ADJUST_TOPIC = "journey.adjust_score"
SCORE_ADJUSTED = "Score Adjusted"  # the event the default model's journey-adjustment rule scores
PAUSE = timedelta(hours=1)  # a disabled journey's runs are looked at again after this
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud, typed by hand


class JourneyRepository(Protocol):
    def run_history(
        self, journey: str, lead_ids: Iterable[int]
    ) -> dict[int, tuple[bool, datetime | None, int]]: ...
    def start_runs(self, rows: Sequence[dict[str, Any]]) -> int: ...
    def due_runs(self, now: datetime, limit: int) -> list[Any]: ...
    def active_runs_of(self, lead_ids: Iterable[int]) -> list[Any]: ...
    def update_runs(self, rows: Sequence[dict[str, Any]]) -> None: ...
    def log(self, rows: Sequence[dict[str, Any]]) -> None: ...
    def leads(self, lead_ids: Iterable[int]) -> Mapping[int, Any]: ...
    def memberships(self, lead_ids: Iterable[int]) -> dict[int, set[str]]: ...
    def engagement(self, run_ids: Iterable[int]) -> dict[int, dict[str, set[str]]]: ...
    def set_traits(self, changes: Mapping[int, dict[str, Any]], at: datetime) -> None: ...
    def add_outbox(self, rows: Sequence[OutboxRow]) -> None: ...
    def step_report(self, journey: str) -> list[dict[str, Any]]: ...
    def date_candidates(
        self, journey: str, trait: str, prefixes: Sequence[str], since: datetime, limit: int
    ) -> list[int]: ...
    def issue_coupons(
        self, wanted: Sequence[tuple[str, int, str, datetime | None]], at: datetime
    ) -> dict[tuple[str, int], dict[str, Any]]: ...


class DeliveryQueue(Protocol):
    def create_many(self, rows: list[NewDelivery], at: datetime) -> int: ...


class ConsentReader(Protocol):
    def current(self, lead_ids: Iterable[int], channel: Channel) -> dict[int, ConsentStatus]: ...


# Moves a lead to a stage on a journey's behalf: (lead id, stage, reason).
StageMover = Callable[[int, str, str], None]


@dataclass(frozen=True)
class JourneyBook:
    """The journeys in force, by name, with their triggers indexed."""

    journeys: Mapping[str, Journey] = field(default_factory=dict)

    @classmethod
    def from_specs(cls, specs: Iterable[tuple[str, Mapping[str, Any], bool]]) -> JourneyBook:
        found: dict[str, Journey] = {}
        for name, spec, enabled in specs:
            journey = parse_journey(name, {**spec, "enabled": enabled})
            found[name] = journey
        return cls(found)

    @property
    def score_thresholds(self) -> frozenset[tuple[str, float]]:
        """(score, threshold) pairs whose upward crossing starts an enabled journey."""
        return frozenset(
            (j.trigger.value, j.trigger.above)
            for j in self.journeys.values()
            if j.enabled and j.trigger.kind == "score" and j.trigger.above is not None
        )

    @property
    def event_names(self) -> frozenset[str]:
        """The event names that start an enabled journey."""
        return frozenset(
            j.trigger.value
            for j in self.journeys.values()
            if j.enabled and j.trigger.kind == "event"
        )

    def triggered(self, kind: str, value: str, above: float | None = None) -> list[Journey]:
        return [
            j
            for j in self.journeys.values()
            if j.enabled
            and j.trigger.kind == kind
            and j.trigger.value == value
            and j.trigger.above == above
        ]


@dataclass(slots=True)
class StepReport:
    runs: int = 0
    steps: int = 0
    sends: int = 0
    finished: int = 0
    enrolled: int = 0

    def __iadd__(self, other: StepReport) -> StepReport:
        self.runs += other.runs
        self.steps += other.steps
        self.sends += other.sends
        self.finished += other.finished
        self.enrolled += other.enrolled
        return self


def check_references(
    journey: Journey,
    template_check: Callable[[str, str], None] | None,
    segment_names: Iterable[str] | None,
) -> None:
    """Refuse a journey whose templates do not compile or whose segments do not exist."""
    if segment_names is not None:
        known = set(segment_names)
        for path, name in journey.segments():
            if name not in known:
                listed = ", ".join(sorted(known)) or "none defined"
                raise JourneyError(f"{path}: no segment named {name!r} (segments: {listed})")
    if template_check is not None:
        for step_id, channel, template in journey.templates():
            try:
                template_check(template, channel)
            except JourneyError:
                raise
            except Exception as exc:  # the template store's ValidationError, with its detail
                raise JourneyError(
                    f"journeys.{journey.name}.steps.{step_id}: template {template!r}: {exc}"
                ) from None


# ------------------------------------------------------------------------------------------
def enroll(
    repo: JourneyRepository, book: JourneyBook, messages: Sequence[OutboxMessage], now: datetime
) -> int:
    """Start runs for the leads whose stage change or segment entry triggers a journey."""
    wanted: dict[str, set[int]] = {}
    for message in messages:
        if message.lead_id is None:
            continue
        if message.topic == STAGE_TOPIC:
            kind, value = "stage", str(message.payload.get("to"))
        elif message.topic == SEGMENT_TOPIC:
            kind, value = "segment", str(message.payload.get("segment"))
        elif message.topic == EVENT_TOPIC:
            kind, value = "event", str(message.payload.get("name"))
        elif message.topic == SCORE_TOPIC:
            kind, value = "score", str(message.payload.get("score"))
            above = float(message.payload.get("above", 0))
        else:
            continue
        for journey in book.triggered(kind, value, above if kind == "score" else None):
            wanted.setdefault(journey.name, set()).add(message.lead_id)
    started = 0
    for name, lead_ids in sorted(wanted.items()):
        journey = book.journeys[name]
        history = repo.run_history(name, lead_ids)
        rows = []
        for lead in sorted(lead_ids):
            active, finished, entry = history.get(lead, (False, None, 0))
            if may_enter(journey, finished, active, entry > 0, now):
                rows.append(_new_run(journey, lead, entry + 1, now))
        started += repo.start_runs(rows)
    return started


def enroll_dates(
    repo: JourneyRepository, book: JourneyBook, now: datetime, limit: int = 5_000
) -> int:
    """Start runs of date-triggered journeys for the leads whose date trait, moved by the
    offset, is today (or yesterday, for a worker that was down), once a day at most."""
    started = 0
    today = now.astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=1), time(0), tzinfo=UTC)
    for journey in book.journeys.values():
        trigger = journey.trigger
        if not journey.enabled or trigger.kind != "date":
            continue
        prefixes = trigger.date_prefixes(today)
        leads = repo.date_candidates(journey.name, trigger.value, prefixes, since, limit)
        history = repo.run_history(journey.name, leads)
        rows = []
        for lead in leads:
            active, finished, entry = history.get(lead, (False, None, 0))
            if may_enter(journey, finished, active, entry > 0, now):
                rows.append(_new_run(journey, lead, entry + 1, now))
        started += repo.start_runs(rows)
    return started


def _new_run(journey: Journey, lead: int, entry: int, now: datetime) -> dict[str, Any]:
    return {
        "journey": journey.name,
        "lead_id": lead,
        "entry": entry,
        "status": "active",
        "step": None,
        "due_at": now,
        "state": {},
        "version": journey.version,
        "entered_at": now,
        "updated_at": now,
        "finished_at": None,
        "exit_reason": "",
    }


# ------------------------------------------------------------------------------------------
@dataclass
class _Batch:
    """What one batch of due runs writes, gathered for bulk statements."""

    now: datetime
    updates: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    sends: list[NewDelivery] = field(default_factory=list)
    traits: dict[int, dict[str, Any]] = field(default_factory=dict)
    stages: list[tuple[int, str, str]] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)
    coupons: dict[tuple[str, int], tuple[str, datetime | None]] = field(default_factory=dict)
    report: StepReport = field(default_factory=StepReport)
    winners: dict[str, dict[str, str]] = field(default_factory=dict)

    def winners_of(self, repo: JourneyRepository, journey: Journey) -> dict[str, str]:
        """The A/B steps of the journey that have a winner, read once per batch."""
        found = self.winners.get(journey.name)
        if found is None:
            found = {}
            tests = [s for s in journey.steps if s.kind == "ab"]
            if tests:
                rows = repo.step_report(journey.name)
                for step in tests:
                    results = {
                        str(r["variant"]): (
                            int(r["sent"]) + int(r["bounced"]),
                            int(r[step.metric or "clicked"]),
                        )
                        for r in rows
                        if r["step"] == step.id and r["variant"]
                    }
                    winner = pick_winner(step, results)
                    if winner is not None:
                        found[step.id] = winner
            self.winners[journey.name] = found
        return found


def run_due(
    repo: JourneyRepository,
    queue: DeliveryQueue,
    consent: ConsentReader,
    book: JourneyBook,
    now: datetime,
    limit: int,
    move_stage: StageMover | None = None,
    on_change: Callable[[Sequence[int], datetime], None] | None = None,
) -> StepReport:
    """Advance up to ``limit`` due runs until each blocks (a wait, a send) or ends;
    ``on_change`` hears of the leads whose traits or stage the steps changed (segments)."""
    runs = repo.due_runs(now, limit)
    batch = _Batch(now)
    if not runs:
        return batch.report
    lead_ids = {run.lead_id for run in runs}
    leads = repo.leads(lead_ids)
    segments = repo.memberships(lead_ids)
    engagement = repo.engagement(run.id for run in runs)
    revoked = _revoked(consent, lead_ids)
    for run in runs:
        _step_run(repo, run, book, leads, segments, engagement, revoked, batch)
    _issue_coupons(repo, batch)
    repo.update_runs(batch.updates)
    repo.log(batch.logs)
    queue.create_many(batch.sends, now)
    repo.set_traits(batch.traits, now)
    repo.add_outbox(batch.outbox)
    if move_stage is not None:
        for lead_id, stage, reason in batch.stages:
            move_stage(lead_id, stage, reason)
    changed = sorted({*batch.traits, *(lead for lead, _s, _r in batch.stages)})
    if changed and on_change is not None:
        on_change(changed, now)
    return batch.report


def _revoked(consent: ConsentReader, lead_ids: set[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for channel in Channel:
        for lead, status in consent.current(lead_ids, channel).items():
            if status is ConsentStatus.REVOKED:
                found.setdefault(lead, set()).add(channel.value)
    return found


def _step_run(
    repo: JourneyRepository,
    run: Any,
    book: JourneyBook,
    leads: Mapping[int, Any],
    segments: Mapping[int, set[str]],
    engagement: Mapping[int, dict[str, set[str]]],
    revoked: Mapping[int, set[str]],
    batch: _Batch,
) -> None:
    now = batch.now
    batch.report.runs += 1
    journey = book.journeys.get(run.journey)
    lead = leads.get(run.lead_id)
    if journey is None or lead is None or lead.merged_into is not None:
        why = "journey removed" if journey is None else "lead merged or erased"
        _finish(run, why, batch)
        return
    if not journey.enabled:  # paused: look again in an hour
        batch.updates.append(_row(run, "active", run.step, now + PAUSE, run.state, now))
        return
    facts = RunFacts(
        stage=lead.stage,
        traits=lead.traits,
        segments=frozenset(segments.get(lead.id, ())),
        engagement={k: frozenset(v) for k, v in engagement.get(run.id, {}).items()},
        revoked=frozenset(revoked.get(lead.id, ())),
    )
    zone = zone_of(lead.traits.get("timezone") or lead.traits.get("time_zone"))
    winners = batch.winners_of(repo, journey)
    moved = advance(journey, run.step, run.step is not None, facts, run.id, now, zone, winners)
    state = dict(run.state)
    for effect in moved.effects:
        _apply(repo, journey, run, lead, effect, state, batch)
    batch.report.steps += max(1, len(moved.log))
    for step, outcome, detail in moved.log:
        batch.logs.append(
            {
                "run_id": run.id,
                "lead_id": run.lead_id,
                "journey": run.journey,
                "step": step,
                "outcome": outcome,
                "detail": detail,
                "at": now,
            }
        )
    _place(run, moved, state, batch)


def _place(run: Any, moved: Advance, state: dict[str, Any], batch: _Batch) -> None:
    if moved.finished is not None:
        _finish(run, moved.finished, batch, state)
        return
    due = None if moved.awaiting_send else moved.due_at
    batch.updates.append(_row(run, "active", moved.step, due, state, batch.now))


def _finish(run: Any, reason: str, batch: _Batch, state: dict[str, Any] | None = None) -> None:
    batch.report.finished += 1
    kept = state if state is not None else run.state
    batch.updates.append(_row(run, "done", run.step, None, kept, batch.now, reason))


def _row(
    run: Any,
    status: str,
    step: str | None,
    due_at: datetime | None,
    state: dict[str, Any],
    now: datetime,
    exit_reason: str = "",
) -> dict[str, Any]:
    """A run's new values, every column that moves, for one bulk update."""
    return {
        "run_id": run.id,
        "status": status,
        "step": step,
        "due_at": due_at,
        "state": state,
        "finished_at": now if status == "done" else None,
        "exit_reason": exit_reason,
        "updated_at": now,
    }


def _visit(state: dict[str, Any], step: str) -> int:
    """Count one more pass of the run through ``step``; the count keys the step's effect."""
    visits = dict(state.get("visits", {}))
    visits[step] = visit = int(visits.get(step, 0)) + 1
    state["visits"] = visits
    return visit


def _apply(
    repo: JourneyRepository,
    journey: Journey,
    run: Any,
    lead: Any,
    effect: Effect,
    state: dict[str, Any],
    batch: _Batch,
) -> None:
    if effect.kind == "send":
        visit = _visit(state, effect.step)
        content: dict[str, Any] = {}
        if effect.offer is not None:
            offer = journey.offers[effect.offer]
            expires = batch.now + offer.expires_in if offer.expires_in else None
            batch.coupons[(offer.name, lead.id)] = (_code(offer.prefix), expires)
            content["offer"] = {"offer": offer.name, "lead_id": lead.id}  # filled once issued
        address = lead.email if effect.channel == "email" else lead.phone
        batch.sends.append(
            NewDelivery(
                key=f"run:{run.id}:{effect.step}:{visit}",
                lead_id=lead.id,
                channel=effect.channel or "email",
                address=address,
                template=effect.template,
                journey=journey.name,
                run_id=run.id,
                step=effect.step,
                variant=effect.variant,
                content=content,
            )
        )
        batch.report.sends += 1
    elif effect.kind == "set_trait":
        batch.traits.setdefault(lead.id, {}).update(effect.traits)
    elif effect.kind == "change_stage" and effect.stage is not None:
        batch.stages.append((lead.id, effect.stage, f"journey {journey.name}"))
    elif effect.kind == "adjust_score":
        visit = _visit(state, effect.step)
        payload = {
            "lead_id": lead.id,
            "journey": journey.name,
            "step": effect.step,
            "points": effect.points,
            "reason": effect.message,
            "key": f"run:{run.id}:{effect.step}:{visit}",
            "at": batch.now.isoformat(),
        }
        batch.outbox.append(OutboxRow(ADJUST_TOPIC, lead.id, payload, batch.now))
    elif effect.kind == "notify_sales":
        payload = {
            "lead_id": lead.id,
            "journey": journey.name,
            "step": effect.step,
            "message": effect.message,
            "at": batch.now.isoformat(),
        }
        batch.outbox.append(OutboxRow(NOTIFY_TOPIC, lead.id, payload, batch.now))


def _code(prefix: str) -> str:
    """PREFIX- and 8 characters from 32 (40 random bits; 256 is a multiple of 32: unbiased)."""
    return f"{prefix}-" + "".join(CODE_ALPHABET[b % 32] for b in secrets.token_bytes(8))


def _issue_coupons(repo: JourneyRepository, batch: _Batch) -> None:
    """Issue the batch's coupons at once and put each in the content of its message."""
    if not batch.coupons:
        return
    wanted = [(o, lead, code, exp) for (o, lead), (code, exp) in sorted(batch.coupons.items())]
    issued = repo.issue_coupons(wanted, batch.now)
    for send in batch.sends:
        pending = send.content.get("offer")
        if pending is not None:
            send.content["offer"] = issued[(pending["offer"], pending["lead_id"])]


def adjustments(messages: Sequence[OutboxMessage]) -> list[Activity]:
    """The ``Score Adjusted`` events that adjust_score steps asked for, once each."""
    found = []
    for message in messages:
        if message.topic == ADJUST_TOPIC and message.lead_id is not None:
            p = message.payload
            found.append(
                Activity(
                    message.lead_id,
                    SCORE_ADJUSTED,
                    f"{p['key']}:adjust",
                    datetime.fromisoformat(str(p["at"])),
                    {"points": p["points"], "reason": p["reason"], "journey": p["journey"]},
                )
            )
    return found


def exit_on_goals(
    repo: JourneyRepository, book: JourneyBook, messages: Sequence[OutboxMessage], now: datetime
) -> int:
    """End active runs at once when a stage change reaches one of their goals."""
    reached: dict[int, str] = {}
    for message in messages:
        if message.topic == STAGE_TOPIC and message.lead_id is not None:
            reached[message.lead_id] = str(message.payload.get("to"))
    if not reached:
        return 0
    batch = _Batch(now)
    for run in repo.active_runs_of(reached):
        journey = book.journeys.get(run.journey)
        if journey is None:
            continue
        stage = reached[run.lead_id]
        if any(g.kind == "stage" and g.value == stage for g in journey.goals):
            _finish(run, f"goal: stage {stage}", batch)
    repo.update_runs(batch.updates)
    return batch.report.finished
