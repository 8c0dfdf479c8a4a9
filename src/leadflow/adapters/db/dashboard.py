"""What the dashboard's overview reads beyond the reports: the weekly MQL trend."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Date, String, func, literal, select

from leadflow.adapters.db.tables import leads, stage_changes


def week_start(day: date) -> date:
    """The Monday of the ISO week of ``day``."""
    return day - timedelta(days=day.weekday())


def stage_trend(conn: Connection, stage: str, since: datetime) -> dict[date, int]:
    """Stage changes into ``stage`` since ``since``, per ISO week (Monday, UTC)."""
    at = stage_changes.c.at
    bucket: ColumnElement[Any]
    if conn.dialect.name == "postgresql":
        week = func.date_trunc(literal("week"), func.timezone("UTC", at), type_=Date())
        bucket = func.cast(week, Date())
    else:  # SQLite keeps UTC text: the Monday on or before the day
        bucket = func.date(at, literal("weekday 0"), literal("-6 days"), type_=String())
    query = (
        select(bucket.label("week"), func.count().label("n"))
        .where(stage_changes.c.to_stage == stage, at >= since)
        .group_by(bucket)
    )
    found: dict[date, int] = {}
    for row in conn.execute(query):
        day = row.week if isinstance(row.week, date) else date.fromisoformat(str(row.week)[:10])
        found[week_start(day)] = found.get(week_start(day), 0) + int(row.n)
    return found


def stage_counts(conn: Connection) -> dict[str, int]:
    """Live leads per current stage."""
    query = (
        select(leads.c.stage, func.count().label("n"))
        .where(leads.c.merged_into.is_(None))
        .group_by(leads.c.stage)
    )
    return {row.stage: int(row.n) for row in conn.execute(query)}
