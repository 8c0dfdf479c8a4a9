"""Sources: where events come from, each with its write key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from leadflow.adapters.db.tables import sources
from leadflow.ports import SourceRecord


def _record(row: object) -> SourceRecord:
    return SourceRecord(row.id, row.name, row.write_key, row.created_at)  # type: ignore[attr-defined]


class SqlSourceRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def by_write_key(self, write_key: str) -> SourceRecord | None:
        row = self.conn.execute(select(sources).where(sources.c.write_key == write_key)).first()
        return _record(row) if row else None

    def by_name(self, name: str) -> SourceRecord | None:
        row = self.conn.execute(select(sources).where(sources.c.name == name)).first()
        return _record(row) if row else None

    def add(self, name: str, write_key: str, at: datetime) -> SourceRecord:
        new_id = self.conn.execute(
            insert(sources).values(name=name, write_key=write_key, created_at=at)
        ).inserted_primary_key
        assert new_id is not None
        return SourceRecord(int(new_id[0]), name, write_key, at)

    def all(self) -> list[SourceRecord]:
        return [_record(r) for r in self.conn.execute(select(sources).order_by(sources.c.id))]
