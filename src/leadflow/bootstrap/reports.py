"""Reports: the funnel waterfall, the sales SLA, score quality, attribution, costs and ROI
(docs/reports.md)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from leadflow.adapters.db.attribution import SqlAttributionRepository
from leadflow.adapters.db.costs import SqlCostRepository
from leadflow.adapters.db.reports import SqlReportRepository
from leadflow.adapters.db.score_quality import SqlScoreQualityRepository
from leadflow.bootstrap.handoff import Handoff
from leadflow.domain.errors import NotFound, ValidationError
from leadflow.services import attribution as attribution_service
from leadflow.services import costs as cost_service
from leadflow.services import reports as report_service
from leadflow.services import roi as roi_service
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

    # --- attribution and ROI -------------------------------------------------------------
    def attribution_report(
        self,
        model: str = "w_shaped",
        by: str = "source",
        since: datetime | date | None = None,
        until: datetime | date | None = None,
    ) -> attribution_service.AttributionReport:
        """The opportunities created in the window and their revenue, credited to the
        sources, campaigns or journeys (``by``) of the touches before each, weighed by the
        ``model``: first_touch, last_touch, linear or w_shaped (docs/reports.md)."""
        chosen = attribution_service.check_model(model)
        dimension = attribution_service.check_dimension(by)
        start, end = report_service.check_window(since, until)
        with self.engine.connect() as conn:
            repo = SqlAttributionRepository(conn)
            found, shares, currencies = repo.credits(chosen, dimension, start, end)
        currency = attribution_service.revenue_currency(currencies)
        groups = attribution_service.aggregate(found, shares)
        return attribution_service.report(found, groups, chosen, dimension, (start, end), currency)

    def roi_report(
        self,
        by: str = "source",
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        model: str = "w_shaped",
    ) -> roi_service.RoiReport:
        """Per source, campaign or journey: the cost in the window (pro rata), the leads
        created in it and how many became MQLs, SQLs and customers, the cost of each, the
        revenue attributed by ``model`` and the return, (revenue - cost) / cost."""
        dimension = attribution_service.check_dimension(by)
        chosen = attribution_service.check_model(model)
        start, end = report_service.check_window(since, until)
        grouping = roi_service.FUNNEL_GROUPING[dimension]
        parts: list[Callable[[], Any]] = [
            lambda: self.attribution_report(chosen, dimension, start, end),
            lambda: self._stage_counts(grouping, start, end),
        ]
        if dimension == "journey":  # a lead is in any number of journeys, or in none
            parts.append(lambda: self._stage_counts("none", start, end))
        attributed, groups, *everyone = self._side_by_side(parts)
        totals = everyone[0].values() if everyone else groups.values()
        overall = {stage: sum(r[stage] for r in totals) for stage in roi_service.COUNTED}
        with self.engine.connect() as conn:
            spent = SqlCostRepository(conn).overlapping(dimension, _day(start), _day(end))
        window_costs = [cost for cost in spent if cost.in_window(start, end)]
        currency = cost_service.one_currency(window_costs, attributed.currency)
        by_name = roi_service.costs_by_name(window_costs, start, end)
        return roi_service.roi_report(dimension, by_name, groups, overall, attributed, currency)

    def _stage_counts(
        self, grouping: str, start: datetime | None, end: datetime | None
    ) -> dict[str, dict[str, int]]:
        with self.engine.connect() as conn:
            stages = list(roi_service.COUNTED[1:])  # besides the leads entered
            return SqlReportRepository(conn).stage_counts(grouping, start, end, stages)

    def _side_by_side(self, parts: list[Callable[[], Any]]) -> list[Any]:
        """Run read-only parts of a report: on PostgreSQL side by side, each on a connection
        of its own (the database works on them at once); elsewhere one after the other."""
        if self.engine.dialect.name != "postgresql":
            return [part() for part in parts]
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            running = [pool.submit(part) for part in parts]
            return [found.result() for found in running]

    # --- costs ---------------------------------------------------------------------------
    def add_cost(
        self,
        dimension: str,
        name: str,
        period_start: date | str,
        period_end: date | str | None,
        amount: Decimal | int | float | str,
        currency: str = cost_service.DEFAULT_CURRENCY,
        note: str = "",
    ) -> cost_service.Cost:
        """Record what was spent on a source, a UTM campaign or a journey over a period
        (start inclusive, end exclusive; a month ``2025-03`` as the start with no end is
        that month). A bad field raises ValidationError naming it."""
        new = cost_service.check_cost(
            dimension, name, period_start, period_end, amount, currency, note
        )
        with self.transaction() as conn:
            [cost] = SqlCostRepository(conn).add([new], self.clock.now())
        return cost

    def list_costs(self, dimension: str | None = None) -> list[cost_service.Cost]:
        """Every cost, or those of one dimension, by dimension, name and period."""
        chosen = cost_service.check_dimension(dimension) if dimension is not None else None
        with self.engine.connect() as conn:
            return SqlCostRepository(conn).all(chosen)

    def delete_cost(self, cost_id: int) -> None:
        """Delete a cost; NotFound when there is no cost with this id."""
        with self.transaction() as conn:
            if not SqlCostRepository(conn).delete(cost_id):
                raise NotFound(f"no cost with id {cost_id}")

    def import_costs(self, path: str | Path) -> cost_service.CostImport:
        """Costs from a CSV file (columns dimension, name, period_start, period_end, amount,
        currency, note): the valid rows are kept, every bad row is reported with its line,
        field and value; a row equal to a stored cost (the note aside) is a duplicate."""
        file = Path(path)
        try:
            text = file.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise ValidationError(f"{file}: no such file") from None
        except UnicodeDecodeError:
            raise ValidationError(f"{file}: not UTF-8 text") from None
        try:
            rows = cost_service.read_costs_csv(text)
        except ValidationError as exc:
            raise ValidationError(f"{file}: {exc.message}") from None
        result = cost_service.CostImport(rows=rows.rows, errors=rows.errors)
        with self.transaction() as conn:
            repo = SqlCostRepository(conn)
            known: list[cost_service.NewCost | cost_service.Cost] = list(repo.all())
            fresh = []
            for _line, cost in rows.costs:
                if any(cost.same_as(other) for other in known):
                    result.duplicates += 1
                    continue
                known.append(cost)
                fresh.append(cost)
            result.costs = repo.add(fresh, self.clock.now())
        result.imported = len(result.costs)
        return result


def _day(moment: datetime | None) -> date | None:
    return moment.date() if moment is not None else None
