"""The costs table: add, list, find and delete the costs entered by the user."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from leadflow.adapters.db.tables import costs
from leadflow.services.costs import Cost, NewCost


class SqlCostRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, new: Sequence[NewCost], at: datetime) -> list[Cost]:
        if not new:
            return []
        rows = [
            {
                "dimension": cost.dimension,
                "name": cost.name,
                "period_start": cost.period_start,
                "period_end": cost.period_end,
                "amount": cost.amount,
                "currency": cost.currency,
                "note": cost.note,
                "created_at": at,
            }
            for cost in new
        ]
        statement = insert(costs).returning(costs.c.id, sort_by_parameter_order=True)
        ids = list(self.conn.scalars(statement, rows))
        return [
            Cost(int(cost_id), new_cost.dimension, new_cost.name, new_cost.period_start,
                 new_cost.period_end, new_cost.amount, new_cost.currency, new_cost.note, at)
            for cost_id, new_cost in zip(ids, new, strict=True)
        ]  # fmt: skip

    def all(self, dimension: str | None = None) -> list[Cost]:
        query = select(costs).order_by(
            costs.c.dimension, costs.c.name, costs.c.period_start, costs.c.id
        )
        if dimension is not None:
            query = query.where(costs.c.dimension == dimension)
        return [_cost(row._mapping) for row in self.conn.execute(query)]

    def overlapping(self, dimension: str, since: date | None, until: date | None) -> list[Cost]:
        """The costs of a dimension whose period meets [since, until) (days, UTC)."""
        query = select(costs).where(costs.c.dimension == dimension).order_by(costs.c.id)
        if since is not None:
            query = query.where(costs.c.period_end > since)
        if until is not None:
            query = query.where(costs.c.period_start <= until)
        return [_cost(row._mapping) for row in self.conn.execute(query)]

    def delete(self, cost_id: int) -> bool:
        done = self.conn.execute(delete(costs).where(costs.c.id == cost_id))
        return bool(done.rowcount)


def _cost(row: Any) -> Cost:
    return Cost(
        id=int(row["id"]),
        dimension=str(row["dimension"]),
        name=str(row["name"]),
        period_start=row["period_start"],
        period_end=row["period_end"],
        amount=plain(Decimal(row["amount"])),
        currency=str(row["currency"]),
        note=str(row["note"] or ""),
        created_at=row["created_at"],
    )


def plain(amount: Decimal) -> Decimal:
    """Without trailing zeros nor an exponent: 1200.0000 -> 1200, 12.5000 -> 12.5."""
    reduced = amount.normalize()
    return reduced.quantize(Decimal(1)) if reduced == reduced.to_integral_value() else reduced
