"""The funnel and SLA reports: definitions, parameter checks, percentiles and summaries.

The database adapter (adapters/db/reports.py) counts in SQL; this module turns its rows into
the reports and holds every rule that needs no database: what a valid window and grouping
are, how a percentile is interpolated, and when a sales decision is on time (docs/reports.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from leadflow.domain.errors import ValidationError

FUNNEL_STAGES = ("lead", "mql", "sal", "sql", "opportunity", "customer")
VELOCITY_STAGES = ("mql", "sal", "sql", "opportunity")
GROUPINGS = ("none", "cohort_month", "source", "utm_campaign", "segment", "journey")
NO_GROUP = "(none)"  # the group of a lead without a source or a campaign
ALL = "all"  # the single group of group_by=none


def check_group_by(value: str) -> str:
    cleaned = value.strip().lower()
    if cleaned not in GROUPINGS:
        raise ValidationError(f"group_by: {value!r} is not one of {', '.join(GROUPINGS)}")
    return cleaned


def moment(value: datetime | date | None) -> datetime | None:
    """A window bound as an aware UTC datetime (a date means its midnight, UTC)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_window(
    since: datetime | date | None, until: datetime | date | None
) -> tuple[datetime | None, datetime | None]:
    """``since`` inclusive, ``until`` exclusive; ``since`` must come before ``until``."""
    start, end = moment(since), moment(until)
    if start is not None and end is not None and start >= end:
        raise ValidationError(f"until: {end.isoformat()} is not after since ({start.isoformat()})")
    return start, end


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's ``percentile_cont``."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True, slots=True)
class Velocity:
    """Time spent in a stage, over the stints that ended (seconds)."""

    stints: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "stints": self.stints,
            "median_seconds": self.median_seconds,
            "p90_seconds": self.p90_seconds,
        }


@dataclass(frozen=True, slots=True)
class FunnelGroup:
    group: str
    entered: int
    reached: dict[str, int]
    velocity: dict[str, Velocity] = field(default_factory=dict)

    @property
    def conversion(self) -> dict[str, float | None]:
        """Of the leads that reached a stage, the share that reached the next one."""
        pairs = pairwise(FUNNEL_STAGES)
        return {f"{a}_to_{b}": rate(self.reached[b], self.reached[a]) for a, b in pairs}

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "entered": self.entered,
            "reached": dict(self.reached),
            "conversion": self.conversion,
            "velocity": {s: self.velocity.get(s, Velocity()).to_json() for s in VELOCITY_STAGES},
        }


@dataclass(frozen=True, slots=True)
class FunnelReport:
    group_by: str
    since: datetime | None
    until: datetime | None
    groups: list[FunnelGroup]

    def to_json(self) -> dict[str, Any]:
        return {
            "group_by": self.group_by,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "stages": list(FUNNEL_STAGES),
            "groups": [g.to_json() for g in self.groups],
        }


def velocity_from_durations(
    durations: Iterable[tuple[str, str, float]],
) -> dict[tuple[str, str], Velocity]:
    """(group, stage, seconds) rows -> median and p90 per group and stage."""
    collected: dict[tuple[str, str], list[float]] = {}
    for group, stage, seconds in durations:
        collected.setdefault((group, stage), []).append(float(seconds))
    return {
        key: Velocity(len(values), percentile(values, 0.5), percentile(values, 0.9))
        for key, values in collected.items()
    }


def funnel_groups(
    counts: Iterable[tuple[str, int, dict[str, int]]],
    velocity: dict[tuple[str, str], Velocity],
) -> list[FunnelGroup]:
    """Assemble groups from (group, entered, reached) rows, ordered by group name."""
    groups = []
    for name, entered, reached in counts:
        speeds = {s: velocity[(name, s)] for s in VELOCITY_STAGES if (name, s) in velocity}
        groups.append(FunnelGroup(name, entered, reached, speeds))
    return sorted(groups, key=lambda g: g.group)


# --- SLA ------------------------------------------------------------------------------------
DECISIONS = ("accepted", "rejected", "closed", "open")


@dataclass(frozen=True, slots=True)
class SlaTally:
    """How many entries into MQL had one outcome (adapters/db/reports.py classifies them).

    ``decision``: ``accepted`` (next stage SAL), ``rejected`` (recycled by a person, with a
    reason), ``closed`` (left MQL another way: disqualified, recycled by the policy) or
    ``open`` (still an MQL). ``late``: a decision after the SLA. ``overdue``: still open and
    past the SLA now.
    """

    decision: str
    count: int
    late: bool = False
    overdue: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SlaReport:
    since: datetime | None
    until: datetime | None
    sla_seconds: float | None
    mqls: int
    on_time: int
    late: int
    overdue: int  # undecided and past the SLA now
    pending: int  # undecided and still within the SLA
    closed: int  # left MQL without a sales decision (disqualified, recycled by the policy)
    accepted: int
    rejected: int
    median_decision_seconds: float | None
    p90_decision_seconds: float | None
    rejection_reasons: dict[str, int]

    @property
    def acceptance_rate(self) -> float | None:
        return rate(self.accepted, self.accepted + self.rejected)

    @property
    def on_time_rate(self) -> float | None:
        return rate(self.on_time, self.on_time + self.late + self.overdue)

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "sla_seconds": self.sla_seconds,
            "mqls": self.mqls,
            "decided": self.accepted + self.rejected,
            "on_time": self.on_time,
            "late": self.late,
            "overdue": self.overdue,
            "pending": self.pending,
            "closed": self.closed,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "acceptance_rate": self.acceptance_rate,
            "on_time_rate": self.on_time_rate,
            "median_decision_seconds": self.median_decision_seconds,
            "p90_decision_seconds": self.p90_decision_seconds,
            "rejection_reasons": dict(self.rejection_reasons),
        }


def sla_report(
    tallies: Iterable[SlaTally],
    sla: timedelta | None,
    decision_time: Velocity,
    since: datetime | None,
    until: datetime | None,
) -> SlaReport:
    """Sum the tallies into the report (docs/reports.md, "The sales SLA")."""
    counts = dict.fromkeys(("on_time", "late", "overdue", "pending", *DECISIONS), 0)
    reasons: dict[str, int] = {}
    for tally in tallies:
        counts[tally.decision] += tally.count
        if tally.decision in ("accepted", "rejected"):
            counts["late" if tally.late else "on_time"] += tally.count
        elif tally.decision == "open":
            counts["overdue" if tally.overdue else "pending"] += tally.count
        if tally.decision == "rejected":
            key = tally.reason or ""
            reasons[key] = reasons.get(key, 0) + tally.count
    return SlaReport(
        since, until, sla.total_seconds() if sla is not None else None,
        sum(counts[d] for d in DECISIONS), counts["on_time"], counts["late"],
        counts["overdue"], counts["pending"], counts["closed"], counts["accepted"],
        counts["rejected"], decision_time.median_seconds, decision_time.p90_seconds,
        dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
    )  # fmt: skip
