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
    """One pass over the cohort: every lead gets its decile, its band and its calibration bin
    (window functions over one ordering), and the leads are counted per combination of the
    four; the three views are sums of those few thousand rows."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _cohort(
        self, stages: Sequence[str], since: datetime | None, until: datetime | None
    ) -> Subquery:
        reached = (
            select(stage_changes.c.lead_id)
            .where(stage_changes.c.to_stage.in_(stages))
            .distinct()
            .subquery("reached")
        )
        converted = case(
            (or_(leads.c.stage.in_(stages), reached.c.lead_id.is_not(None)), 1), else_=0
        )
        order = (leads.c.engagement_score.desc(), leads.c.id)
        bin_of = func.least if self.conn.dialect.name == "postgresql" else func.min
        index = case(
            (leads.c.p_convert.is_(None), None),
            else_=bin_of(
                cast(func.floor(leads.c.p_convert * CALIBRATION_BINS), Integer),
                CALIBRATION_BINS - 1,
            ),
        )
        query = (
            select(
                leads.c.engagement_score.label("engagement"),
                leads.c.fit_grade.label("grade"),
                leads.c.p_convert.label("p"),
                index.label("bin"),
                converted.label("converted"),
                func.ntile(10).over(order_by=order).label("decile"),
                func.ntile(4).over(order_by=order).label("band"),
            )
            .select_from(leads.outerjoin(reached, reached.c.lead_id == leads.c.id))
            .where(leads.c.merged_into.is_(None))
        )
        if since is not None:
            query = query.where(leads.c.created_at >= since)
        if until is not None:
            query = query.where(leads.c.created_at < until)
        return query.subquery("scored")

    def report(
        self, outcome: str, stages: Sequence[str], since: datetime | None, until: datetime | None
    ) -> ScoreQuality:
        c = self._cohort(stages, since, until).c
        error = cast((c.p - c.converted) * (c.p - c.converted), Float)
        rows: list[Any] = list(
            self.conn.execute(
                select(
                    c.decile, c.band, c.grade, c.bin,
                    func.count().label("leads"),
                    func.sum(c.converted).label("converted"),
                    func.min(c.engagement).label("low"),
                    func.max(c.engagement).label("high"),
                    func.sum(c.p).label("p_sum"),
                    func.sum(error).label("sq"),
                ).group_by(c.decile, c.band, c.grade, c.bin)
            )
        )  # fmt: skip
        deciles: dict[int, list[Any]] = {}
        cells: dict[tuple[str, int], list[int]] = {}
        bins: dict[int, list[float]] = {}
        for r in rows:
            leads_n, hits = int(r.leads), int(r.converted or 0)
            d = deciles.setdefault(int(r.decile), [0, 0, float(r.low), float(r.high)])
            d[0], d[1] = d[0] + leads_n, d[1] + hits
            d[2], d[3] = min(d[2], float(r.low)), max(d[3], float(r.high))
            if r.grade in GRADES:
                cell = cells.setdefault((str(r.grade), int(r.band)), [0, 0])
                cell[0], cell[1] = cell[0] + leads_n, cell[1] + hits
            if r.bin is not None:
                b = bins.setdefault(int(r.bin), [0, 0.0, 0, 0.0])
                b[0] += leads_n
                b[1] += float(r.p_sum or 0.0)
                b[2] += hits
                b[3] += float(r.sq or 0.0)
        found = ScoreQuality(
            outcome,
            leads=sum(d[0] for d in deciles.values()),
            converted=sum(d[1] for d in deciles.values()),
            deciles=[Decile(k, *deciles[k]) for k in sorted(deciles)],
            matrix=[Cell(g, band, *cells[g, band]) for g, band in sorted(cells)],
        )
        found.calibration = [
            Bin(k / CALIBRATION_BINS, (k + 1) / CALIBRATION_BINS, int(n), total / n, int(hits))
            for k, (n, total, hits, _sq) in sorted(bins.items())
        ]
        found.predicted = sum(int(b[0]) for b in bins.values())
        if found.predicted:
            found.brier = sum(b[3] for b in bins.values()) / found.predicted
        return found
