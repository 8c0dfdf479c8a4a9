"""Score quality in set-based SQL: window functions rank the leads (``ntile``), aggregates count
conversions; SQLite and PostgreSQL alike, bound parameters only."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, Integer, Subquery, case, cast, func, or_, select

from leadflow.adapters.db.tables import leads, stage_changes
from leadflow.services.score_quality import (
    CALIBRATION_BINS,
    GRADES,
    Bin,
    Cell,
    Decile,
    ScoreQuality,
)


class SqlScoreQualityRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _cohort(
        self, stages: Sequence[str], since: datetime | None, until: datetime | None
    ) -> Subquery:
        reached = (
            select(stage_changes.c.id)
            .where(stage_changes.c.lead_id == leads.c.id, stage_changes.c.to_stage.in_(stages))
            .exists()
        )
        converted = case((or_(leads.c.stage.in_(stages), reached), 1), else_=0)
        query = select(
            leads.c.id,
            leads.c.engagement_score.label("engagement"),
            leads.c.fit_grade.label("grade"),
            leads.c.p_convert.label("p"),
            converted.label("converted"),
            func.ntile(10)
            .over(order_by=(leads.c.engagement_score.desc(), leads.c.id))
            .label("decile"),
            func.ntile(4)
            .over(order_by=(leads.c.engagement_score.desc(), leads.c.id))
            .label("band"),
        ).where(leads.c.merged_into.is_(None))
        if since is not None:
            query = query.where(leads.c.created_at >= since)
        if until is not None:
            query = query.where(leads.c.created_at < until)
        return query.subquery("scored")

    def report(
        self, outcome: str, stages: Sequence[str], since: datetime | None, until: datetime | None
    ) -> ScoreQuality:
        scored = self._cohort(stages, since, until)
        c = scored.c
        deciles = [
            Decile(int(r.decile), int(r.leads), int(r.converted or 0), float(r.low), float(r.high))
            for r in self.conn.execute(
                select(
                    c.decile,
                    func.count().label("leads"),
                    func.sum(c.converted).label("converted"),
                    func.min(c.engagement).label("low"),
                    func.max(c.engagement).label("high"),
                )
                .group_by(c.decile)
                .order_by(c.decile)
            )
        ]
        matrix = [
            Cell(str(r.grade), int(r.band), int(r.leads), int(r.converted or 0))
            for r in self.conn.execute(
                select(
                    c.grade,
                    c.band,
                    func.count().label("leads"),
                    func.sum(c.converted).label("converted"),
                )
                .where(c.grade.in_(GRADES))
                .group_by(c.grade, c.band)
            )
        ]
        found = ScoreQuality(
            outcome,
            leads=sum(d.leads for d in deciles),
            converted=sum(d.converted for d in deciles),
            deciles=deciles,
            matrix=matrix,
        )
        self._calibrate(scored, found)
        return found

    def _calibrate(self, scored: Subquery, found: ScoreQuality) -> None:
        c = scored.c
        bin_of = func.least if self.conn.dialect.name == "postgresql" else func.min
        index = bin_of(cast(func.floor(c.p * CALIBRATION_BINS), Integer), CALIBRATION_BINS - 1)
        rows: list[Any] = list(
            self.conn.execute(
                select(
                    index.label("bin"),
                    func.count().label("leads"),
                    func.avg(c.p).label("mean"),
                    func.sum(c.converted).label("converted"),
                    func.sum(cast((c.p - c.converted) * (c.p - c.converted), Float)).label("sq"),
                )
                .where(c.p.is_not(None))
                .group_by(index)
                .order_by(index)
            )
        )
        found.calibration = [
            Bin(
                r.bin / CALIBRATION_BINS,
                (r.bin + 1) / CALIBRATION_BINS,
                int(r.leads),
                float(r.mean),
                int(r.converted or 0),
            )
            for r in rows
        ]
        found.predicted = sum(int(r.leads) for r in rows)
        if found.predicted:
            found.brier = sum(float(r.sq or 0.0) for r in rows) / found.predicted
