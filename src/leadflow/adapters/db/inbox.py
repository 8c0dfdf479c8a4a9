"""The inbox of staged ingestion: accepted request bodies waiting for a drainer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from leadflow.adapters.db.tables import InboxRow, cast_table

inbox = cast_table(InboxRow)


@dataclass(frozen=True, slots=True)
class InboxItem:
    id: int
    source_id: int
    route: str
    received_at: datetime
    body: bytes


class SqlInbox:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(self, source_id: int, route: str, received_at: datetime, messages: int,
            body: bytes) -> None:  # fmt: skip
        values = {"source_id": source_id, "route": route, "received_at": received_at,
                  "messages": messages, "body": body}  # fmt: skip
        self.conn.execute(insert(inbox).values(values))

    def take(self, limit: int) -> list[InboxItem]:
        """The oldest rows, locked for this transaction; rows another drainer holds are
        skipped on PostgreSQL (SQLite has one writer at a time anyway)."""
        query = select(
            inbox.c.id, inbox.c.source_id, inbox.c.route, inbox.c.received_at, inbox.c.body
        ).order_by(inbox.c.id).limit(limit)  # fmt: skip
        if self.conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [InboxItem(*row) for row in self.conn.execute(query)]

    def remove(self, ids: list[int]) -> None:
        if ids:
            self.conn.execute(delete(inbox).where(inbox.c.id.in_(ids)))

    def status(self) -> dict[str, Any]:
        waiting = func.coalesce(func.sum(inbox.c.messages), 0)
        row = self.conn.execute(select(func.count(), waiting, func.min(inbox.c.received_at))).one()
        return {"requests": int(row[0]), "messages": int(row[1]), "oldest": row[2]}
