"""Versions of the scoring model, stored under their content hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from leadflow.adapters.db.engine import insert_ignore
from leadflow.adapters.db.tables import scoring_models as models


class SqlModelRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def remember(self, version: str, spec: dict[str, Any], at: datetime) -> None:
        """Store a version once; storing it again changes nothing."""
        self.conn.execute(
            insert_ignore(self.conn, models, ["version"]).values(
                version=version, spec=spec, created_at=at
            )
        )

    def versions(self) -> list[tuple[str, datetime]]:
        query = select(models.c.version, models.c.created_at).order_by(models.c.created_at)
        return [(row.version, row.created_at) for row in self.conn.execute(query)]
