"""What explanations read: a lead, its score ledger with the events behind it, its history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from leadflow.adapters.db.records import LeadRecords
from leadflow.adapters.db.tables import events
from leadflow.adapters.db.tables import score_ledger as ledger
from leadflow.adapters.db.tables import stage_changes as history
from leadflow.ports import LeadRecord
from leadflow.services.explain import LedgerEntry


class SqlExplainRepository(LeadRecords):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = False  # reads only: no row locks

    def record(self, lead_id: int) -> LeadRecord | None:
        return self.load_for_update([lead_id]).get(lead_id)

    def ledger(self, lead_id: int, version: str) -> list[LedgerEntry]:
        query = (
            select(
                ledger.c.event_id,
                ledger.c.rule_id,
                ledger.c.points,
                ledger.c.counted,
                ledger.c.reason,
                ledger.c.timestamp,
                events.c.type,
                events.c.name,
            )
            .join(events, events.c.id == ledger.c.event_id)
            .where(ledger.c.lead_id == lead_id, ledger.c.model_version == version)
            .order_by(ledger.c.id)
        )
        return [LedgerEntry(*row) for row in self.conn.execute(query)]

    def history(self, lead_id: int) -> list[dict[str, Any]]:
        query = select(history).where(history.c.lead_id == lead_id).order_by(history.c.id)
        return [
            {
                "from": row.from_stage,
                "to": row.to_stage,
                "at": row.at.isoformat(),
                "actor": row.actor,
                "reason": row.reason,
                "note": row.note,
                "model_version": row.model_version,
            }
            for row in self.conn.execute(query)
        ]
