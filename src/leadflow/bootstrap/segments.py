"""Segments: definitions, live membership and counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from leadflow.adapters.db.segments import SqlSegmentRepository
from leadflow.bootstrap.core import Core
from leadflow.config import Settings
from leadflow.ports import (
    Clock,
)
from leadflow.services import segments as segment_service
from leadflow.services.segments import RefreshReport, StoredSegment


class Segments(Core):
    """Segments: definitions, live membership and counts."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        super().__init__(settings, clock)
        self.declared_segments = segment_service.from_config(
            settings.segments, settings.config_file
        )

    def _ingest_options(self, conn: Connection) -> dict[str, Any]:
        return {
            **super()._ingest_options(conn),
            "on_change": self.segment_tracker(conn).leads_changed,
        }

    # segments --------------------------------------------------------------------------
    def segment_tracker(self, conn: Connection) -> segment_service.SegmentTracker:
        """Keeps segment membership current for leads changed in ``conn``'s transaction."""
        return segment_service.SegmentTracker(SqlSegmentRepository(conn))

    def segments(self) -> list[StoredSegment]:
        with self.engine.connect() as conn:
            return SqlSegmentRepository(conn).all()

    def segment(self, name: str) -> StoredSegment:
        with self.engine.connect() as conn:
            return segment_service.get(SqlSegmentRepository(conn), name)

    def segment_count(self, name: str) -> int:
        with self.engine.connect() as conn:
            repo = SqlSegmentRepository(conn)
            return repo.member_count(segment_service.get(repo, name).name)

    def put_segment(self, name: str, definition: object) -> RefreshReport:
        """Create or replace a segment from plain data and compute its members."""
        segment = segment_service.parse_definition(name, definition)
        with self.transaction() as conn:
            return segment_service.put(SqlSegmentRepository(conn), segment, self.clock.now())

    def delete_segment(self, name: str) -> None:
        with self.transaction() as conn:
            segment_service.delete(SqlSegmentRepository(conn), name)

    def segment_members(
        self, name: str, limit: int = 100, after: int | None = None
    ) -> list[tuple[int, datetime]]:
        """Members as (lead id, entered at), by lead id, after the lead id ``after``."""
        with self.engine.connect() as conn:
            return segment_service.members(SqlSegmentRepository(conn), name, limit, after)

    def lead_segments(self, lead_id: int) -> list[str]:
        """The segments the lead is in now, by name."""
        with self.engine.connect() as conn:
            live = self._live(conn, lead_id)
            return sorted(SqlSegmentRepository(conn).memberships([live]).get(live, set()))

    def refresh_segments(self, name: str | None = None) -> list[RefreshReport]:
        """Evaluate one segment (or all) in SQL and write the difference."""
        names = [name] if name is not None else [s.name for s in self.segments()]
        reports = []
        for each in names:
            with self.transaction() as conn:
                repo = SqlSegmentRepository(conn)
                reports.append(segment_service.refresh(repo, each, self.clock.now()))
        return reports

    def preview_segment(self, definition: object, limit: int = 20) -> dict[str, Any]:
        """How many leads an unsaved definition selects now, and the first ``limit`` ids."""
        tree = segment_service.parse_definition("preview", definition).tree
        with self.engine.connect() as conn:
            repo = SqlSegmentRepository(conn)
            return segment_service.preview(repo, tree, self.clock.now(), limit)
