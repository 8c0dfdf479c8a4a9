"""Reports: the funnel waterfall and the sales SLA (docs/reports.md)."""

from __future__ import annotations

from datetime import date, datetime

from leadflow.adapters.db.reports import SqlReportRepository
from leadflow.adapters.db.score_quality import SqlScoreQualityRepository
from leadflow.bootstrap.handoff import Handoff
from leadflow.services import reports as report_service
from leadflow.services import score_quality


class Reports(Handoff):
    """Reports over the stage history: the funnel and the sales SLA."""

    def funnel_report(
        self,
        group_by: str = "none",
        since: datetime | date | None = None,
        until: datetime | date | None = None,
    ) -> report_service.FunnelReport:
        """Leads entered in the window (by ``created_at``), per group: how many reached each
        stage, the conversion from each stage to the next, and the median and p90 time spent
        in each stage (``group_by``: none, cohort_month, source, utm_campaign, segment,
        journey)."""
        grouping = report_service.check_group_by(group_by)
        start, end = report_service.check_window(since, until)
        with self.engine.connect() as conn:
            repo = SqlReportRepository(conn)
            counts = repo.funnel_counts(grouping, start, end)
            velocity = repo.velocity(grouping, start, end)
        groups = report_service.funnel_groups(counts, velocity)
        return report_service.FunnelReport(grouping, start, end, groups)

    def sla_report(
        self, since: datetime | date | None = None, until: datetime | date | None = None
    ) -> report_service.SlaReport:
        """MQLs that entered in the window: decided on time, late, still undecided past the
        SLA, the acceptance rate, the time to decision and the rejection reasons."""
        start, end = report_service.check_window(since, until)
        sla = self.model.sales.sla
        with self.engine.connect() as conn:
            repo = SqlReportRepository(conn)
            tallies = repo.sla_tallies(start, end, sla, self.clock.now())
            waits = repo.decision_time(start, end)
        return report_service.sla_report(tallies, sla, waits, start, end)

    def score_quality_report(
        self,
        outcome: str = "sql",
        since: datetime | date | None = None,
        until: datetime | date | None = None,
    ) -> score_quality.ScoreQuality:
        """Do higher scores convert more? For leads created in the window: conversion (reached
        ``outcome`` or later) by engagement decile, by fit grade x engagement band (A1-D4), and
        the calibration of the predicted probability (bins and Brier score)."""
        stages = score_quality.outcome_stages(outcome)
        start, end = report_service.check_window(since, until)
        with self.engine.connect() as conn:
            return SqlScoreQualityRepository(conn).report(stages[0], stages, start, end)
