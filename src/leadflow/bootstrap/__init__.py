"""The composition root: Settings -> engine -> repositories -> services, behind one facade.

``Leadflow`` is the library API. Each method is an edge: it opens a transaction, calls the
services and commits. The facade is assembled from one class per noun, each building on the
one before: core (store, sources, ingestion, leads), segments, scoring, predict, nurture
(consent, journeys), channels (email, SMS), handoff, reports and users.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from leadflow.adapters.db import migrate
from leadflow.adapters.db.models import SqlModelRepository
from leadflow.adapters.db.segments import SqlSegmentRepository
from leadflow.bootstrap.dashboard import Dashboard
from leadflow.config import Settings
from leadflow.domain.errors import StoreUnavailable
from leadflow.services import segments as segment_service

__all__ = ["Leadflow", "open_leadflow"]


class Leadflow(Dashboard):
    """leadflow as a library: every use case, over one database."""

    def migrate(self) -> None:
        """Create or upgrade the schema to the latest revision."""
        try:
            migrate.upgrade(self.engine)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the database: {exc.orig}") from None
        with self.transaction() as conn:
            SqlModelRepository(conn).remember(self.model.version, self.model.spec, self.clock.now())
        self._load_predictor()
        with self.transaction() as conn:  # the config's segments, saved and refreshed if changed
            repo = SqlSegmentRepository(conn)
            segment_service.sync(repo, self.declared_segments, self.clock.now())
        for journey in self.declared_journeys:
            self.save_journey(journey.name, dict(journey.spec), origin="config")


def open_leadflow(settings: Settings | None = None, *, migrate_schema: bool = True) -> Leadflow:
    """Build leadflow from settings (the environment by default) and bring its schema up."""
    app = Leadflow(settings or Settings())
    if migrate_schema:
        app.migrate()
    return app
