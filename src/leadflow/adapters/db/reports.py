"""The reports in set-based SQL (SQLAlchemy Core, bound parameters), SQLite and PostgreSQL.

Counts are one aggregate query per report. A stage's stints come from the stage history with
a window function: each row into a stage is paired with the lead's next row (``LEAD``), the
time between them is the time spent in the stage. Percentiles are computed by PostgreSQL
(``percentile_cont``); SQLite has no such aggregate, so there the durations are fetched and
interpolated in Python the same way (services/reports.py ``percentile``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Float,
    FromClause,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)

from leadflow.adapters.db.tables import (
    journey_runs,
    leads,
    segment_members,
    sources,
    stage_changes,
)
from leadflow.services.reports import (
    ALL,
    FUNNEL_STAGES,
    NO_GROUP,
    VELOCITY_STAGES,
    SlaTally,
    Velocity,
    percentile,
    velocity_from_durations,
)

AT = stage_changes.c.at.type  # a window function keeps the column's type (aware UTC)


class SqlReportRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"

    # --- the cohort: leads entered in the window, with their group ------------------------
    def _month(self) -> ColumnElement[Any]:
        if self.postgres:
            utc = func.timezone("UTC", leads.c.created_at)  # named in Python (``_name``)
            return func.date_trunc(literal("month"), utc, type_=DateTime())
        return func.strftime(literal("%Y-%m"), leads.c.created_at, type_=String())

    def _cohort(self, group_by: str, since: datetime | None, until: datetime | None) -> Subquery:
        """(id, grp, stage): one row per lead and group it belongs to."""
        source: FromClause = leads
        if group_by == "segment":
            key: ColumnElement[Any] = segment_members.c.segment
            source = leads.join(segment_members, segment_members.c.lead_id == leads.c.id)
        elif group_by == "journey":
            runs = select(journey_runs.c.journey, journey_runs.c.lead_id).distinct().subquery()
            key = runs.c.journey
            source = leads.join(runs, runs.c.lead_id == leads.c.id)
        elif group_by == "source":
            key = func.coalesce(sources.c.name, NO_GROUP)
            source = leads.outerjoin(sources, sources.c.id == leads.c.first_source_id)
        else:
            key = self._key(group_by)
        query = select(leads.c.id, key.label("grp"), leads.c.stage).select_from(source)
        query = query.where(leads.c.merged_into.is_(None))
        if since is not None:
            query = query.where(leads.c.created_at >= since)
        if until is not None:
            query = query.where(leads.c.created_at < until)
        return query.subquery("cohort")

    def _key(self, group_by: str) -> ColumnElement[Any]:
        if group_by == "cohort_month":
            return self._month()
        if group_by == "utm_campaign":
            name = leads.c.first_touch[("campaign", "name")].as_string()
            return func.coalesce(name, NO_GROUP)
        return cast(literal(ALL), String())

    # --- funnel -------------------------------------------------------------------------
    def funnel_counts(
        self, group_by: str, since: datetime | None, until: datetime | None
    ) -> list[tuple[str, int, dict[str, int]]]:
        """Per group: leads entered and how many reached each stage."""
        cohort = self._cohort(group_by, since, until)
        later = FUNNEL_STAGES[1:]
        flags = select(
            stage_changes.c.lead_id,
            *[func.max(case((stage_changes.c.to_stage == s, 1), else_=0)).label(s) for s in later],
        )
        flags = flags.where(stage_changes.c.to_stage.in_(later)).group_by(stage_changes.c.lead_id)
        reached = flags.subquery("reached")
        # reached(s) = leads now in s + leads that changed into s and are now elsewhere: the
        # first term reads the leads alone, the second only the leads with a stage history.
        now_in = select(cohort.c.grp, cohort.c.stage, func.count().label("n")).group_by(
            cohort.c.grp, cohort.c.stage
        )
        moved_on = [
            func.sum(case((and_(reached.c[s] == 1, cohort.c.stage != s), 1), else_=0)).label(s)
            for s in later
        ]
        earlier = (
            select(cohort.c.grp, *moved_on)
            .select_from(cohort.join(reached, reached.c.lead_id == cohort.c.id))
            .group_by(cohort.c.grp)
        )
        totals: dict[str, dict[str, int]] = {}
        for row in self.conn.execute(now_in):
            counts = totals.setdefault(_name(row.grp), dict.fromkeys(FUNNEL_STAGES, 0))
            counts["lead"] += int(row.n)
            if row.stage in counts and row.stage != "lead":
                counts[row.stage] += int(row.n)
        for row in self.conn.execute(earlier):
            counts = totals[_name(row.grp)]
            for s in later:
                counts[s] += int(row._mapping[s] or 0)
        return [(name, counts["lead"], counts) for name, counts in totals.items()]

    def stage_counts(
        self, group_by: str, since: datetime | None, until: datetime | None, stages: list[str]
    ) -> dict[str, dict[str, int]]:
        """Per group: the leads entered (``lead``) and how many reached each of ``stages``,
        as ``funnel_counts`` counts them, in one pass over the cohort (the ROI report)."""
        cohort = self._cohort(group_by, since, until)
        flags = select(
            stage_changes.c.lead_id,
            *[func.max(case((stage_changes.c.to_stage == s, 1), else_=0)).label(s) for s in stages],
        )
        flags = flags.where(stage_changes.c.to_stage.in_(stages)).group_by(stage_changes.c.lead_id)
        reached = flags.subquery("reached")
        counts = [
            func.sum(case((or_(cohort.c.stage == s, reached.c[s] == 1), 1), else_=0)).label(s)
            for s in stages
        ]
        query = (
            select(cohort.c.grp, func.count().label("lead"), *counts)
            .select_from(cohort.outerjoin(reached, reached.c.lead_id == cohort.c.id))
            .group_by(cohort.c.grp)
        )
        return {
            _name(row.grp): {"lead": int(row.lead), **{s: int(row._mapping[s]) for s in stages}}
            for row in self.conn.execute(query)
        }

    def _stints(self, cohort: Subquery) -> Subquery:
        """Every stay of a cohort lead in a velocity stage that ended: (grp, stage, seconds)."""
        ordered = select(
            stage_changes.c.lead_id,
            stage_changes.c.to_stage.label("stage"),
            stage_changes.c.at.label("entered_at"),
            func.lead(stage_changes.c.at, type_=AT)
            .over(
                partition_by=stage_changes.c.lead_id,
                order_by=(stage_changes.c.at, stage_changes.c.id),
            )
            .label("left_at"),
        ).subquery("ordered")
        seconds = self._seconds(ordered.c.entered_at, ordered.c.left_at)
        return (
            select(cohort.c.grp, ordered.c.stage, seconds.label("seconds"))
            .join(ordered, ordered.c.lead_id == cohort.c.id)
            .where(and_(ordered.c.stage.in_(VELOCITY_STAGES), ordered.c.left_at.is_not(None)))
            .subquery("stints")
        )

    def velocity(
        self, group_by: str, since: datetime | None, until: datetime | None
    ) -> dict[tuple[str, str], Velocity]:
        """Median and p90 of the time spent in each velocity stage, per group."""
        stints = self._stints(self._cohort(group_by, since, until))
        if not self.postgres:
            rows = self.conn.execute(select(stints.c.grp, stints.c.stage, stints.c.seconds))
            return velocity_from_durations((_name(g), str(s), float(x)) for g, s, x in rows)
        query = select(
            stints.c.grp,
            stints.c.stage,
            func.count().label("n"),
            func.percentile_cont(0.5).within_group(stints.c.seconds).label("p50"),
            func.percentile_cont(0.9).within_group(stints.c.seconds).label("p90"),
        ).group_by(stints.c.grp, stints.c.stage)
        return {
            (_name(r.grp), str(r.stage)): Velocity(int(r.n), float(r.p50), float(r.p90))
            for r in self.conn.execute(query)
        }

    # --- SLA ----------------------------------------------------------------------------
    def _mqls(self, since: datetime | None, until: datetime | None) -> Subquery:
        """Every entry into MQL in the window, classified by the lead's next stage change."""
        by_lead = stage_changes.c.lead_id
        order = (stage_changes.c.at, stage_changes.c.id)
        ordered = select(
            stage_changes.c.lead_id,
            stage_changes.c.to_stage,
            stage_changes.c.at,
            func.lead(stage_changes.c.to_stage).over(partition_by=by_lead, order_by=order)
            .label("next_stage"),
            func.lead(stage_changes.c.at, type_=AT).over(partition_by=by_lead, order_by=order)
            .label("next_at"),
            func.lead(stage_changes.c.actor).over(partition_by=by_lead, order_by=order)
            .label("next_actor"),
            func.lead(stage_changes.c.reason).over(partition_by=by_lead, order_by=order)
            .label("next_reason"),
        ).subquery("ordered")  # fmt: skip
        merged = select(leads.c.id).where(leads.c.merged_into.is_not(None))
        next_stage = ordered.c.next_stage
        decision = case(
            (next_stage == "sal", "accepted"),
            (
                and_(
                    next_stage == "recycled",
                    func.coalesce(ordered.c.next_actor, "").not_in(("policy", "sla")),
                ),
                "rejected",
            ),
            (next_stage.is_(None), "open"),
            else_="closed",
        )
        query = select(
            ordered.c.at,
            decision.label("decision"),
            self._seconds(ordered.c.at, ordered.c.next_at).label("seconds"),
            ordered.c.next_reason.label("reason"),
        ).where(ordered.c.to_stage == "mql", ordered.c.lead_id.not_in(merged))
        if since is not None:
            query = query.where(ordered.c.at >= since)
        if until is not None:
            query = query.where(ordered.c.at < until)
        return query.subquery("mqls")

    def _seconds(self, start: Any, end: Any) -> ColumnElement[Any]:
        """Seconds between two times, to the millisecond on both backends."""
        if self.postgres:
            return func.extract("epoch", end - start)
        days = func.julianday(end) - func.julianday(start)
        return func.round(cast(days * 86400.0, Float()), 3)

    def sla_tallies(
        self,
        since: datetime | None,
        until: datetime | None,
        sla: timedelta | None,
        now: datetime,
    ) -> list[SlaTally]:
        """Entries into MQL counted by decision, lateness, overdue-ness and reject reason."""
        mqls = self._mqls(since, until)
        decided = mqls.c.decision.in_(("accepted", "rejected"))
        if sla is None:
            late: ColumnElement[Any] = literal(False)
            overdue: ColumnElement[Any] = literal(False)
        else:
            late = and_(decided, mqls.c.seconds > sla.total_seconds())
            overdue = and_(mqls.c.decision == "open", mqls.c.at < now - sla)
        reason = case((mqls.c.decision == "rejected", mqls.c.reason), else_=None)
        flags = select(
            mqls.c.decision, late.label("late"), overdue.label("overdue"), reason.label("r")
        ).subquery("flags")
        query = select(flags, func.count().label("n")).group_by(*flags.c)
        return [
            SlaTally(str(row.decision), int(row.n), bool(row.late), bool(row.overdue), row.r)
            for row in self.conn.execute(query)
        ]

    def decision_time(self, since: datetime | None, until: datetime | None) -> Velocity:
        """Median and p90 time from entering MQL to the sales decision."""
        mqls = self._mqls(since, until)
        decided = mqls.c.decision.in_(("accepted", "rejected"))
        if not self.postgres:
            rows = self.conn.execute(select(mqls.c.seconds).where(decided))
            values = [float(x) for (x,) in rows]
            return Velocity(len(values), percentile(values, 0.5), percentile(values, 0.9))
        query = select(
            func.count().label("n"),
            func.percentile_cont(0.5).within_group(mqls.c.seconds).label("p50"),
            func.percentile_cont(0.9).within_group(mqls.c.seconds).label("p90"),
        ).where(decided)
        row = self.conn.execute(query).one()
        if not row.n:
            return Velocity()
        return Velocity(int(row.n), float(row.p50), float(row.p90))


def _name(group: Any) -> str:
    """A group's name: a cohort month comes back from PostgreSQL as its first instant."""
    return group.strftime("%Y-%m") if isinstance(group, datetime) else str(group)
