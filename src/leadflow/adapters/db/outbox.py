"""Reading the outbox: rows not processed yet, taken in id order, and marking them done."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from leadflow.adapters.db.tables import outbox
from leadflow.ports import OutboxMessage


class SqlOutboxRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def pending(self, limit: int) -> list[OutboxMessage]:
        """The oldest unprocessed rows; locked (SKIP LOCKED) on PostgreSQL so that several
        workers share them."""
        query = (
            select(
                outbox.c.id, outbox.c.topic, outbox.c.lead_id, outbox.c.payload, outbox.c.created_at
            )
            .where(outbox.c.processed_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return [
            OutboxMessage(row.id, row.topic, row.lead_id, dict(row.payload), row.created_at)
            for row in self.conn.execute(query)
        ]

    def mark_processed(self, ids: Sequence[int], at: datetime) -> None:
        if ids:
            self.conn.execute(
                update(outbox).where(outbox.c.id.in_(list(ids))).values(processed_at=at)
            )

    def backlog(self) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.processed_at.is_(None))
        return int(self.conn.scalar(query) or 0)
