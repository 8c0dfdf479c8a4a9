"""The webhook ledger: one row per (endpoint, event), claimed when due, updated per attempt.

Due rows are claimed in a short transaction (SKIP LOCKED on PostgreSQL, so several workers
share them) by pushing their ``next_attempt_at`` past the send's timeout: the POST happens
outside any transaction, and a worker that dies mid-send leaves a row that comes due again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from leadflow.adapters.db.engine import insert_ignore
from leadflow.adapters.db.tables import webhook_deliveries as hooks
from leadflow.services.webhooks import NewWebhook, Outcome, WebhookView


def _view(row: Any) -> WebhookView:
    return WebhookView(
        id=row.id,
        endpoint=row.endpoint,
        event_id=row.event_id,
        event_type=row.event_type,
        lead_id=row.lead_id,
        payload=dict(row.payload),
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
    )


class SqlWebhookRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def add(self, items: Sequence[NewWebhook], now: datetime) -> int:
        """Queue deliveries, due now; an (endpoint, event id) already queued is left alone."""
        if not items:
            return 0
        rows = [
            {
                "endpoint": item.endpoint,
                "event_id": item.event_id,
                "event_type": item.event_type,
                "lead_id": item.lead_id,
                "payload": item.payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
                "created_at": now,
            }
            for item in items
        ]
        result = self.conn.execute(insert_ignore(self.conn, hooks, ["endpoint", "event_id"]), rows)
        return int(result.rowcount or 0)

    def claim_due(
        self, endpoints: Sequence[str], now: datetime, until: datetime, limit: int
    ) -> list[WebhookView]:
        """Due pending rows of these endpoints, oldest first, held until ``until``."""
        if not endpoints:
            return []
        query = (
            select(hooks)
            .where(
                hooks.c.status == "pending",
                hooks.c.next_attempt_at <= now,
                hooks.c.endpoint.in_(list(endpoints)),
            )
            .order_by(hooks.c.next_attempt_at, hooks.c.id)
            .limit(limit)
        )
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        found = [_view(row) for row in self.conn.execute(query)]
        if found:
            ids = [view.id for view in found]
            self.conn.execute(
                update(hooks).where(hooks.c.id.in_(ids)).values(next_attempt_at=until)
            )
        return found

    def record(self, delivery_id: int, outcome: Outcome) -> None:
        """Store what an attempt came to (unless the row was replayed meanwhile)."""
        self.conn.execute(
            update(hooks)
            .where(hooks.c.id == delivery_id, hooks.c.status == "pending")
            .values(
                status=outcome.status,
                attempts=outcome.attempts,
                next_attempt_at=outcome.next_attempt_at,
                last_status=outcome.last_status,
                last_error=outcome.last_error,
                delivered_at=outcome.delivered_at,
            )
        )

    def get(self, delivery_id: int) -> WebhookView | None:
        row = self.conn.execute(select(hooks).where(hooks.c.id == delivery_id)).first()
        return _view(row) if row is not None else None

    def page(
        self,
        status: str | None,
        endpoint: str | None,
        lead_id: int | None,
        limit: int,
        after: int | None,
    ) -> list[WebhookView]:
        """Newest first; ``after`` is the last id of the previous page."""
        query = select(hooks).order_by(hooks.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(hooks.c.status == status)
        if endpoint is not None:
            query = query.where(hooks.c.endpoint == endpoint)
        if lead_id is not None:
            query = query.where(hooks.c.lead_id == lead_id)
        if after is not None:
            query = query.where(hooks.c.id < after)
        return [_view(row) for row in self.conn.execute(query)]

    def replay(self, ids: Sequence[int], now: datetime) -> list[int]:
        """Due again now with a fresh set of attempts, the same webhook-id; the ids found."""
        if not ids:
            return []
        found = [
            int(i) for i in self.conn.scalars(select(hooks.c.id).where(hooks.c.id.in_(list(ids))))
        ]
        if found:
            self.conn.execute(
                update(hooks)
                .where(hooks.c.id.in_(found))
                .values(status="pending", attempts=0, next_attempt_at=now, delivered_at=None)
            )
        return sorted(found)

    def dead_ids(self) -> list[int]:
        query = select(hooks.c.id).where(hooks.c.status == "dead").order_by(hooks.c.id)
        return [int(i) for i in self.conn.scalars(query)]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per endpoint, how many deliveries are in each status."""
        query = select(hooks.c.endpoint, hooks.c.status, func.count()).group_by(
            hooks.c.endpoint, hooks.c.status
        )
        found: dict[str, dict[str, int]] = {}
        for endpoint, status, n in self.conn.execute(query):
            found.setdefault(endpoint, {})[status] = int(n)
        return found
