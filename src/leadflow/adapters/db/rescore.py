"""What batch rescoring reads and writes: leads in id order, their events in arrival order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy import Connection, delete, func, select

from leadflow.adapters.db.records import LeadRecords, leads
from leadflow.adapters.db.tables import Event, ScoreLedger, cast_table
from leadflow.domain.scoring import ScoredEvent

events = cast_table(Event)
ledger = cast_table(ScoreLedger)


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

    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]:
        query = (
            select(
                events.c.lead_id,
                events.c.id,
                events.c.type,
                events.c.name,
                events.c.timestamp,
                events.c.properties,
                events.c.raw,
            )
            .where(events.c.lead_id.in_(list(lead_ids)))
            .order_by(events.c.lead_id, events.c.id)
        )
        for row in self.conn.execute(query):
            context = row.raw.get("context") if isinstance(row.raw, dict) else None
            event = ScoredEvent(
                row.type, row.name, row.timestamp, row.properties or {}, context or {}
            )
            yield row.lead_id, row.id, event

    def forget_scores(self, lead_ids: Sequence[int], version: str) -> None:
        """A rebuild of a version replaces that version's ledger rows of these leads."""
        self.conn.execute(
            delete(ledger).where(
                ledger.c.lead_id.in_(list(lead_ids)), ledger.c.model_version == version
            )
        )
