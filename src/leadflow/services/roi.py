"""Return on what was spent: per source, campaign or journey, the cost in a window against the
leads it brought (the funnel's groups) and the revenue attributed to it (docs/reports.md, "ROI").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from leadflow.services.attribution import AttributionReport
from leadflow.services.costs import Cost

FUNNEL_GROUPING = {"source": "source", "campaign": "utm_campaign", "journey": "journey"}
OVERALL = "overall"
COUNTED = ("lead", "mql", "sql", "customer")


@dataclass(frozen=True, slots=True)
class RoiRow:
    """One name (or the overall row): cost, funnel counts, attributed revenue."""

    name: str
    cost: Decimal
    leads: int
    mqls: int
    sqls: int
    customers: int
    revenue: float

    def _per(self, count: int) -> float | None:
        if not self.cost or not count:
            return None
        return round(float(self.cost) / count, 2)

    @property
    def cost_per_lead(self) -> float | None:
        return self._per(self.leads)

    @property
    def cost_per_mql(self) -> float | None:
        return self._per(self.mqls)

    @property
    def cost_per_sql(self) -> float | None:
        return self._per(self.sqls)

    @property
    def cost_per_customer(self) -> float | None:
        return self._per(self.customers)

    @property
    def roi(self) -> float | None:
        """(revenue - cost) / cost; None without cost."""
        if not self.cost:
            return None
        cost = float(self.cost)
        return round((self.revenue - cost) / cost, 4)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cost": round(float(self.cost), 2),
            "leads": self.leads,
            "mqls": self.mqls,
            "sqls": self.sqls,
            "customers": self.customers,
            "cost_per_lead": self.cost_per_lead,
            "cost_per_mql": self.cost_per_mql,
            "cost_per_sql": self.cost_per_sql,
            "cost_per_customer": self.cost_per_customer,
            "revenue": round(self.revenue, 2),
            "return": self.roi,
        }


@dataclass(frozen=True, slots=True)
class RoiReport:
    by: str
    model: str
    since: datetime | None
    until: datetime | None
    currency: str | None
    rows: list[RoiRow]
    overall: RoiRow

    def row(self, name: str) -> RoiRow | None:
        return next((r for r in self.rows if r.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "model": self.model,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "currency": self.currency,
            "rows": [r.to_json() for r in self.rows],
            "overall": self.overall.to_json(),
        }


def costs_by_name(
    costs: Iterable[Cost], since: datetime | None, until: datetime | None
) -> dict[str, Decimal]:
    """Each name's cost in the window, pro rata (``Cost.in_window``)."""
    totals: dict[str, Decimal] = {}
    for cost in costs:
        share = cost.in_window(since, until)
        if share:
            totals[cost.name] = totals.get(cost.name, Decimal(0)) + share
    return totals


def roi_report(
    by: str,
    costs: Mapping[str, Decimal],
    funnel: Mapping[str, Mapping[str, int]],
    overall_funnel: Mapping[str, int],
    attribution: AttributionReport,
    currency: str | None,
) -> RoiReport:
    """Rows for every name that has a cost, leads or attributed revenue, by name."""
    revenue = {g.name: g.revenue for g in attribution.groups}
    names = sorted(set(costs) | set(funnel) | {n for n, r in revenue.items() if r})
    empty: dict[str, int] = {}
    rows = [
        _row(name, costs.get(name, Decimal(0)), funnel.get(name, empty), revenue.get(name, 0.0))
        for name in names
    ]
    total_cost = sum(costs.values(), Decimal(0))
    overall = _row(OVERALL, total_cost, overall_funnel, attribution.revenue)
    return RoiReport(
        by, attribution.model, attribution.since, attribution.until, currency, rows, overall
    )


def _row(name: str, cost: Decimal, reached: Mapping[str, int], revenue: float) -> RoiRow:
    leads, mqls, sqls, customers = (int(reached.get(stage, 0)) for stage in COUNTED)
    return RoiRow(name, cost, leads, mqls, sqls, customers, revenue)
