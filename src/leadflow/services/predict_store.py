"""Training from the store: leads with a known outcome, their features as of cut-offs.

Each lead is snapshotted at each cut-off (first seen + each window: 14 days by default; a
list of windows snapshots it at several ages), a row each; a lead's rows stay in one fold. A
row's features are the lead's traits, its account's traits and its behaviour replayed from
the event log up to the cut-off, with the same code the live path runs on each event
(:mod:`leadflow.domain.features`), and the scoring model's fit and engagement at the
cut-off, so nothing from after the cut-off leaks in. A cut-off after the last behaviour
event of the store (only outcomes recorded after it) is skipped: the lead would look silent
only because the log stops.

The label: 1 when the lead reached the outcome stage (or a later one; the CRM events
``Opportunity Created`` and ``Deal Won`` count as reaching opportunity and customer), before
or after the cut-off: p_convert ranks the leads that have converted or will, the question a
store that does not hear of every outcome asks (``exclude_converted`` leaves out the rows of
leads that converted before the cut-off: p_convert then answers "will it convert from now
on"). 0 when it was closed lost (disqualified, or ``Deal Lost``) or aged out (no outcome
``age_out`` days after it was first seen). Leads whose outcome is not known yet are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from leadflow.domain.errors import ValidationError
from leadflow.domain.features import FeatureState, event_key, lead_row, observe_event
from leadflow.domain.scoring import (
    EngagementState,
    ScoredEvent,
    apply_event,
    engagement_at,
    fit_of,
    fit_source,
)
from leadflow.services.models import ScoringModel
from leadflow.services.predict_csv import EvaluateOptions, prepare
from leadflow.services.predict_model import BEHAVIOUR_COUNTS, ModelFile, as_text
from leadflow.services.predict_train import Progress, TrainOptions, time_split, train_table

FUNNEL = ("mql", "sal", "sql", "opportunity", "customer")
OUTCOME_EVENTS = {"opportunity created": "opportunity", "deal won": "customer"}
LOST_EVENT = "deal lost"
LOST_STAGE = "disqualified"
LABEL = "__outcome__"
CHUNK = 500
WINDOWS = (14.0,)  # a list snapshots each lead at several ages (see docs/predict.md)
CONVERTED = "converted before the cut-off"
AFTER_LOG = "cut-off after the last behaviour event"


@dataclass(frozen=True)
class StoreTrainOptions:
    outcome: str
    windows: tuple[float, ...] = WINDOWS  # cut-offs, in days after the lead was first seen
    age_out_days: float = 90.0
    folds: int = 5
    seed: int = 0
    keep_leaks: bool = False
    exclude_converted: bool = False  # leave out a lead's rows after it reached the outcome


@dataclass(frozen=True, slots=True)
class TrainingLead:
    id: int
    traits: Mapping[str, Any]
    account: Mapping[str, Any]
    email: str | None


class TrainingRepository(Protocol):
    def data_end(self) -> datetime | None: ...
    def lead_ids_after(self, after: int, limit: int) -> list[int]: ...
    def count_leads(self) -> int: ...
    def training_leads(self, lead_ids: Sequence[int]) -> dict[int, TrainingLead]: ...
    def stage_reached(
        self, lead_ids: Sequence[int], stages: Sequence[str]
    ) -> dict[int, datetime]: ...
    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]: ...


Reader = Callable[[], AbstractContextManager[TrainingRepository]]


@dataclass
class TrainingSet:
    rows: list[dict[str, Any]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    cutoffs: list[float] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # when each row's lead was first seen
    groups: list[int] = field(default_factory=list)  # each row's lead
    reasons: list[str] = field(default_factory=list)  # why each row has its label
    engagement: list[float] = field(default_factory=list)
    fit: list[float] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    leads: int = 0  # leads with events, known outcome or not
    earliest: float | None = None  # the first event of any lead
    behaviour_end: float | None = None  # the last event that is not an outcome

    def count(self, what: str, by: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + by

    def keep(self, wanted: list[bool]) -> None:
        """Keep only the rows wanted (every per-row list filtered alike)."""
        for name in ("rows", "labels", "cutoffs", "arrivals", "groups", "reasons",
                     "engagement", "fit"):  # fmt: skip
            values = getattr(self, name)
            setattr(self, name, [v for v, w in zip(values, wanted, strict=True) if w])

    def drop_after_log(self) -> None:
        """Drop the rows whose cut-off lies after the last behaviour event of the store
        (a store whose outcomes run past its behaviour log: its leads would look silent)."""
        end = self.behaviour_end
        if end is None:
            return
        wanted = [cutoff <= end for cutoff in self.cutoffs]
        for reason, kept in zip(self.reasons, wanted, strict=True):
            if not kept:
                self.count(reason, -1)
                self.count(AFTER_LOG)
        self.counts = {k: v for k, v in self.counts.items() if v}
        self.keep(wanted)


def outcome_stages(outcome: str) -> tuple[str, ...]:
    if outcome not in FUNNEL:
        raise ValidationError(f"--outcome: {outcome!r} is not one of {', '.join(FUNNEL)}")
    return FUNNEL[FUNNEL.index(outcome) :]


def _label(
    reached: datetime | None, lost: datetime | None, first: datetime, end: datetime,
    window_days: float, age_out_days: float, exclude_converted: bool = False,
) -> tuple[int | None, str]:  # fmt: skip
    cutoff = first + timedelta(days=window_days)
    if cutoff > end:
        return None, "window not over yet"
    if reached is not None:
        if reached <= cutoff:
            return (None, "converted inside the window") if exclude_converted else (1, CONVERTED)
        return 1, "reached the outcome"
    if lost is not None:
        return 0, "closed lost"
    if end - first >= timedelta(days=age_out_days):
        return 0, "aged out"
    return None, "outcome not known yet"


def _earliest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return min(known) if known else None


class _Replay:
    """One lead's events in time order through the live path's feature code and the scoring
    model (for the comparison with the hand-written rules), a snapshot taken at each cut-off."""

    def __init__(self, model: ScoringModel, options: StoreTrainOptions, end: datetime) -> None:
        self.model = model
        self.options = options
        self.end = end
        self.wins = {k for k, v in OUTCOME_EVENTS.items() if v in outcome_stages(options.outcome)}

    def lead(
        self, lead: TrainingLead, events: list[ScoredEvent], reached: datetime | None,
        lost: datetime | None, out: TrainingSet,
    ) -> None:  # fmt: skip
        if not events:
            out.count("no events")
            return
        events = sorted(events, key=lambda e: e.timestamp)
        first = events[0].timestamp
        out.leads += 1
        out.earliest = min(out.earliest or first.timestamp(), first.timestamp())
        for event in events:
            name = (event.name or "").lower()
            if event.type == "track" and name in self.wins:
                reached = _earliest(reached, event.timestamp)
            elif event.type == "track" and name == LOST_EVENT:
                lost = _earliest(lost, event.timestamp)
            elif event_key(event.type, event.name, event.path) is not None:
                at = event.timestamp.timestamp()
                out.behaviour_end = max(out.behaviour_end or at, at)
        wanted = []
        options = self.options
        for days in options.windows:
            label, why = _label(reached, lost, first, self.end, days, options.age_out_days,
                                options.exclude_converted)  # fmt: skip
            out.count(why)
            if label is not None:
                wanted.append((first + timedelta(days=days), label, why))
        if wanted:
            self._snapshots(lead, events, wanted, first, out)

    def _snapshots(
        self, lead: TrainingLead, events: list[ScoredEvent],
        wanted: list[tuple[datetime, int, str]], first: datetime, out: TrainingSet,
    ) -> None:  # fmt: skip
        state, engagement = FeatureState(), EngagementState()
        rules = self.model.rules
        fit = fit_of(rules, fit_source(lead.traits, lead.account, lead.email, rules)).score
        position = 0
        for cutoff, label, why in wanted:
            while position < len(events) and events[position].timestamp < cutoff:
                observe_event(state, events[position])
                apply_event(rules, engagement, events[position], self.model.watched_events)
                position += 1
            scores = {"fit": fit, "engagement": engagement_at(rules, engagement, cutoff).total}
            out.rows.append(lead_row(state, lead.traits, lead.account, cutoff, lead.email, scores))
            out.labels.append(label)
            out.cutoffs.append(cutoff.timestamp())
            out.arrivals.append(first.timestamp())
            out.groups.append(lead.id)
            out.reasons.append(why)
            out.engagement.append(scores["engagement"])
            out.fit.append(fit)


def build_training_set(
    reader: Reader, model: ScoringModel, options: StoreTrainOptions,
    progress: Progress | None = None,
) -> tuple[TrainingSet, datetime]:  # fmt: skip
    stages = outcome_stages(options.outcome)
    out = TrainingSet()
    with reader() as repo:
        end = repo.data_end()
        total = repo.count_leads()
    if end is None:
        raise ValidationError("the store holds no events: nothing to train on")
    replay = _Replay(model, options, end)
    after, done = 0, 0
    while True:
        with reader() as repo:
            ids = repo.lead_ids_after(after, CHUNK)
            if not ids:
                break
            leads = repo.training_leads(ids)
            reached = repo.stage_reached(ids, stages)
            lost = repo.stage_reached(ids, (LOST_STAGE,))
            for lead_id, rows in groupby(repo.events_of(ids), key=itemgetter(0)):
                events = [event for _, _, event in rows]
                replay.lead(leads[lead_id], events, reached.get(lead_id), lost.get(lead_id), out)
        after, done = ids[-1], done + len(ids)
        if progress is not None:
            progress(f"replaying leads up to their cut-offs ({done:,}/{total:,})", done, total)
    out.drop_after_log()
    return out, end


def _frame(training: TrainingSet) -> pd.DataFrame:
    """The training set as text, as a CSV would hold it: behaviour counts a lead never had
    are 0, other missing values empty."""
    names: dict[str, None] = {}
    for row in training.rows:
        names.update(dict.fromkeys(row))
    columns: dict[str, list[str]] = {}
    for name in names:
        fill = "0" if name.startswith(BEHAVIOUR_COUNTS) else ""
        columns[name] = [as_text(row[name]) if name in row else fill for row in training.rows]
    columns[LABEL] = [str(v) for v in training.labels]
    return pd.DataFrame(columns)


def _rules_aucs(training: TrainingSet, order: np.ndarray[Any, Any]) -> dict[str, Any]:
    """How the hand-written scoring model ranks the same leads, at the same cut-offs."""
    y = np.asarray(training.labels)
    _, test = time_split(order)
    found: dict[str, Any] = {}
    engagement, fit = np.asarray(training.engagement), np.asarray(training.fit)
    for name, scores in (
        ("engagement", engagement),
        ("fit", fit),
        ("engagement+fit", engagement + fit),
    ):
        found[f"{name}_auc"] = round(float(roc_auc_score(y, scores)), 4)
        if len(set(y[test])) == 2:
            found[f"{name}_auc_time_split"] = round(float(roc_auc_score(y[test], scores[test])), 4)
    return found


def _per_week(training: TrainingSet, end: datetime) -> float | None:
    """New leads per week over the stored history (for a capacity in leads per week)."""
    if training.earliest is None:
        return None
    weeks = (end.timestamp() - training.earliest) / (7 * 86_400)
    return round(training.leads / weeks, 2) if weeks > 0 else None


def train_from_store(
    reader: Reader, model: ScoringModel, options: StoreTrainOptions,
    progress: Progress | None = None,
) -> ModelFile:  # fmt: skip
    """``leadflow model train --outcome STAGE``: the model, with the training set's counts
    and the hand-written model's AUC on the same leads in its metrics."""
    training, end = build_training_set(reader, model, options, progress)
    if not training.rows:
        raise ValidationError(
            f"no lead has a known outcome for {options.outcome!r} yet "
            f"({', '.join(f'{k}: {v}' for k, v in sorted(training.counts.items())) or 'no leads'})"
        )
    if len(set(training.labels)) < 2:
        which = "reached" if training.labels[0] else "did not reach"
        raise ValidationError(
            f"every one of the {len(training.labels)} lead(s) with a known outcome {which} "
            f"{options.outcome!r}: a model needs both kinds"
        )
    frame = _frame(training)
    evaluate = EvaluateOptions(label=LABEL, folds=options.folds, seed=options.seed)
    table = prepare(frame, evaluate)
    table.order = np.lexsort((np.asarray(training.cutoffs), np.asarray(training.arrivals)))
    table.positive_label = "1"
    trained_on = {
        "source": "store", "outcome": options.outcome, "windows_days": list(options.windows),
        "age_out_days": options.age_out_days, "exclude_converted": options.exclude_converted,
        "leads": training.counts, "distinct_leads": len(set(training.groups)),
        "leads_per_week": _per_week(training, end),
    }  # fmt: skip
    found = train_table(
        table, TrainOptions(options.folds, options.seed, options.keep_leaks),
        f"reached {options.outcome}", trained_on, progress, np.asarray(training.groups),
    )  # fmt: skip
    found.metrics["rules_model"] = _rules_aucs(training, table.order)
    return found
