"""Stage changes made by people and the CRM, and the worker's due reviews and SLA checks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from leadflow.adapters.db.records import LeadRecords
from leadflow.adapters.db.tables import leads


class SqlLifecycleRepository(LeadRecords):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def due_reviews(self, now: datetime, limit: int) -> list[int]:
        """Leads whose scores or windows may have changed their policy answer by now."""
        query = (
            select(leads.c.id)
            .where(leads.c.next_review_at <= now, leads.c.merged_into.is_(None))
            .order_by(leads.c.next_review_at)
            .limit(limit)
        )
        if self.pg:  # several workers share the work
            query = query.with_for_update(skip_locked=True)
        return list(self.conn.scalars(query))

    def sla_breaches(self, now: datetime, limit: int) -> list[int]:
        query = (
            select(leads.c.id)
            .where(leads.c.stage == "mql", leads.c.sla_due_at <= now)
            .order_by(leads.c.sla_due_at)
            .limit(limit)
        )
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return list(self.conn.scalars(query))
