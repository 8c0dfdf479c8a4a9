"""What the dashboard reads beyond the reports: stage counts now and the weekly trend."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from leadflow.adapters.db import dashboard as dashboard_db
from leadflow.bootstrap.users import Users


class Dashboard(Users):
    """The overview's figures (docs/dashboard.md)."""

    def stage_counts(self) -> dict[str, int]:
        """Live leads per current stage."""
        with self.engine.connect() as conn:
            return dashboard_db.stage_counts(conn)

    def stage_trend(self, stage: str = "mql", weeks: int = 12) -> list[tuple[date, int]]:
        """Leads that moved into ``stage`` per ISO week (Monday, UTC), the last ``weeks``
        weeks including the current one, oldest first; weeks with none count 0."""
        today = self.clock.now().astimezone(UTC).date()
        first = dashboard_db.week_start(today) - timedelta(weeks=weeks - 1)
        since = datetime.combine(first, time(), tzinfo=UTC)
        with self.engine.connect() as conn:
            found = dashboard_db.stage_trend(conn, stage, since)
        return [(first + timedelta(weeks=i), found.get(first + timedelta(weeks=i), 0))
                for i in range(weeks)]  # fmt: skip
