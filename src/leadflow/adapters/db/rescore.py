"""What batch rescoring reads and writes: leads in id order, their events in arrival order."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from leadflow.adapters.db.records import LeadRecords
from leadflow.adapters.db.tables import leads


class SqlRescoreRepository(LeadRecords):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def lead_ids_after(self, after: int, limit: int) -> list[int]:
        query = (
            select(leads.c.id)
            .where(leads.c.id > after, leads.c.merged_into.is_(None))
            .order_by(leads.c.id)
            .limit(limit)
        )
        return list(self.conn.scalars(query))

    def count_leads(self) -> int:
        query = select(func.count()).where(leads.c.merged_into.is_(None))
        return int(self.conn.scalar(query) or 0)
