"""The composition root: Settings -> engine -> repositories -> services, behind one facade.

``Leadflow`` is the library API. Each method is an edge: it opens a transaction, calls the
services and commits.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from leadflow.adapters.db import migrate
from leadflow.adapters.db.backtest import reading as backtest_reading
from leadflow.adapters.db.engine import make_engine, writing
from leadflow.adapters.db.explain import SqlExplainRepository
from leadflow.adapters.db.ingest import SqlIngestRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.adapters.db.models import SqlModelRepository
from leadflow.adapters.db.rescore import SqlRescoreRepository
from leadflow.adapters.db.sources import SqlSourceRepository
from leadflow.config import Settings
from leadflow.domain.errors import (
    AuthenticationError,
    BatchErrors,
    NotFound,
    StoreUnavailable,
    ValidationError,
)
from leadflow.domain.events import normalize_batch
from leadflow.domain.lifecycle import StageChange
from leadflow.ports import (
    Clock,
    ConflictView,
    EventView,
    LeadFilter,
    LeadPage,
    LeadView,
    MergeView,
    SourceRecord,
    SystemClock,
)
from leadflow.services import backtest as backtest_service
from leadflow.services import explain as explain_service
from leadflow.services import leads as lead_service
from leadflow.services import lifecycle as lifecycle_service
from leadflow.services import rescore as rescore_service
from leadflow.services import sources as source_service
from leadflow.services.ingest import Ingestor, IngestResult
from leadflow.services.models import ScoringModel, load_model
from leadflow.services.qualify import Qualifier
from leadflow.services.rescore import ProgressFn, RescoreReport

_RETRIES = 10
# PostgreSQL deadlock_detected and serialization_failure: the loser may simply run again.
_TRANSIENT_STATES = frozenset({"40P01", "40001"})


def _transient(exc: IntegrityError | OperationalError) -> bool:
    """A lost race with a concurrent batch (unique key taken, deadlock), worth a retry."""
    return isinstance(exc, IntegrityError) or (
        getattr(exc.orig, "sqlstate", None) in _TRANSIENT_STATES
    )


class Leadflow:
    """leadflow as a library: sources, ingestion and leads over one database."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = make_engine(settings.resolved_database_url(), settings.db_pool_size)
        self._write_keys: dict[str, SourceRecord] = {}
        self.model: ScoringModel = load_model(settings.config_file)
        self.qualifier = Qualifier(self.model)

    # lifecycle -------------------------------------------------------------------------
    def migrate(self) -> None:
        """Create or upgrade the schema to the latest revision."""
        try:
            migrate.upgrade(self.engine)
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the database: {exc.orig}") from None
        with self.transaction() as conn:
            SqlModelRepository(conn).remember(self.model.version, self.model.spec, self.clock.now())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Leadflow:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends (rolled back on error)."""
        with writing(self.engine) as conn:
            yield conn

    # sources ---------------------------------------------------------------------------
    def create_source(self, name: str) -> SourceRecord:
        with self.transaction() as conn:
            return source_service.create_source(SqlSourceRepository(conn), name, self.clock.now())

    def ensure_source(self, name: str) -> SourceRecord:
        with self.transaction() as conn:
            return source_service.ensure_source(SqlSourceRepository(conn), name, self.clock.now())

    def sources(self) -> list[SourceRecord]:
        with self.engine.connect() as conn:
            return SqlSourceRepository(conn).all()

    def source_for_key(self, write_key: str) -> SourceRecord:
        """The source a write key belongs to (cached); AuthenticationError when unknown."""
        found = self._write_keys.get(write_key)
        if found is None:
            with self.engine.connect() as conn:
                found = SqlSourceRepository(conn).by_write_key(write_key)
            if found is None:
                raise AuthenticationError("unknown write key")
            self._write_keys[write_key] = found
        return found

    # ingestion -------------------------------------------------------------------------
    def ingest(
        self,
        source: SourceRecord | str,
        messages: Sequence[object],
        *,
        route_type: str | None = None,
        defaults: dict[str, Any] | None = None,
        received_at: datetime | None = None,
        raise_on_error: bool = False,
    ) -> IngestResult:
        """Validate and store messages. Invalid items are reported by index; valid ones kept."""
        record = self.source_for_key(source) if isinstance(source, str) else source
        at = received_at or self.clock.now()
        good, bad = normalize_batch(
            list(messages), received_at=at, route_type=route_type, defaults=defaults
        )
        result = self.ingest_normalized(record.id, good, at)
        result.errors = bad
        if bad and raise_on_error:
            raise BatchErrors(errors=bad, accepted=result.accepted)
        return result

    def import_batch(
        self,
        source: SourceRecord,
        messages: Sequence[object],
        *,
        received_at: datetime | None = None,
    ) -> IngestResult:
        """Store messages read from a file (``leadflow import``), one chunk per call.

        Like :meth:`ingest`, except that a message with neither userId nor anonymousId is
        accepted when ``traits.email`` is an email address: a lead known only by email.
        Invalid messages are reported by index in ``errors``; valid ones are kept.
        """
        at = received_at or self.clock.now()
        good, bad = normalize_batch(list(messages), received_at=at, require_id=False)
        result = self.ingest_normalized(source.id, good, at)
        result.errors = bad
        return result

    def ingest_normalized(
        self, source_id: int, events: Sequence[Any], at: datetime
    ) -> IngestResult:
        """Store already normalised events, retrying when a concurrent batch won a race."""
        for attempt in range(_RETRIES):
            try:
                with self.transaction() as conn:
                    ingestor = Ingestor(
                        SqlIngestRepository(conn),
                        self.qualifier,
                        self.settings.default_phone_region,
                    )
                    return ingestor.ingest(source_id, events, at)
            except (IntegrityError, OperationalError) as exc:
                if attempt == _RETRIES - 1 or not _transient(exc):
                    raise
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
        raise AssertionError("unreachable")

    # leads -----------------------------------------------------------------------------
    def lead(self, lead_id: int) -> LeadView:
        with self.engine.connect() as conn:
            return lead_service.get_lead(SqlLeadRepository(conn), lead_id)

    def leads(
        self,
        filters: LeadFilter | None = None,
        *,
        limit: int = 50,
        after: int | None = None,
        count: bool = False,
    ) -> LeadPage:
        with self.engine.connect() as conn:
            return lead_service.list_leads(
                SqlLeadRepository(conn), filters or LeadFilter(), limit, after, count
            )

    def lead_events(self, lead_id: int, limit: int = 100) -> list[EventView]:
        with self.engine.connect() as conn:
            repo = SqlLeadRepository(conn)
            live = lead_service.get_lead(repo, lead_id).id
            return repo.events(live, limit)

    def merges(self, lead_id: int | None = None) -> list[MergeView]:
        with self.engine.connect() as conn:
            return SqlLeadRepository(conn).merges(lead_id)

    def conflicts(
        self, lead_id: int | None = None, include_resolved: bool = False
    ) -> list[ConflictView]:
        with self.engine.connect() as conn:
            return SqlLeadRepository(conn).conflicts(lead_id, include_resolved)

    # scoring and lifecycle -------------------------------------------------------------
    def explain(self, lead_id: int) -> dict[str, Any]:
        """Why the lead has its scores and stage: rules, events, fit, policy, history."""
        with self.engine.connect() as conn:
            live = lead_service.get_lead(SqlLeadRepository(conn), lead_id).id
            found = explain_service.explain(
                SqlExplainRepository(conn), self.model, live, self.clock.now()
            )
        if found is None:
            raise NotFound(f"no lead with id {lead_id}")
        return found

    def decide(
        self, lead_id: int, decision: str, reason: str, actor: str = "user", note: str = ""
    ) -> StageChange:
        """Sales accepts (MQL -> SAL) or rejects (MQL -> recycled) an MQL with a reason code."""
        if decision not in ("accept", "reject"):
            raise ValidationError(f"decision: {decision!r} is not 'accept' or 'reject'")
        with self.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            return lifecycle_service.decide(
                repo, self.model, self._live(conn, lead_id), decision, reason, actor, note,
                self.clock.now(),
            )  # fmt: skip

    def move_stage(
        self, lead_id: int, stage: str, reason: str, actor: str = "user", note: str = ""
    ) -> StageChange:
        """Move a lead along the lifecycle (SAL -> SQL -> opportunity -> customer...)."""
        with self.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            return lifecycle_service.move(
                repo, self.model, self._live(conn, lead_id), stage, reason, actor, note,
                self.clock.now(),
            )  # fmt: skip

    @staticmethod
    def _live(conn: Connection, lead_id: int) -> int:
        return lead_service.get_lead(SqlLeadRepository(conn), lead_id).id

    def rescore(self, progress: ProgressFn | None = None) -> RescoreReport:
        """Replay the event log under the live model version, in chunks of leads."""
        total = RescoreReport()
        with self.engine.connect() as conn:
            chunks = list(rescore_service.chunks_of_leads(SqlRescoreRepository(conn)))
        for ids in chunks:
            with self.transaction() as conn:
                done = rescore_service.rescore_chunk(
                    SqlRescoreRepository(conn), self.qualifier, ids, self.clock.now()
                )
            total.leads += done.leads
            total.events += done.events
            total.changes += done.changes
            if progress is not None:
                progress(done)
        return total

    def model_versions(self) -> list[tuple[str, datetime]]:
        """Every version of the scoring model this store has used, oldest first."""
        with self.engine.connect() as conn:
            return SqlModelRepository(conn).versions()

    def count_leads(self) -> int:
        with self.engine.connect() as conn:
            return SqlRescoreRepository(conn).count_leads()

    def backtest(
        self,
        candidate: ScoringModel,
        since: date | None = None,
        capacity: int = backtest_service.DEFAULT_CAPACITY,
        outcome_events: Sequence[str] = backtest_service.DEFAULT_OUTCOME_EVENTS,
        progress: backtest_service.ProgressFn | None = None,
    ) -> dict[str, Any]:
        """Replay the stored history with ``candidate`` and with the live model, read-only:
        MQLs per week, precision, recall, time to MQL and capacity (docs/backtest.md)."""
        return backtest_service.run_backtest(
            lambda: backtest_reading(self.engine), self.model, candidate, since=since,
            capacity=capacity, outcome_events=outcome_events, progress=progress,
        )  # fmt: skip


def open_leadflow(settings: Settings | None = None, *, migrate_schema: bool = True) -> Leadflow:
    """Build leadflow from settings (the environment by default) and bring its schema up."""
    app = Leadflow(settings or Settings())
    if migrate_schema:
        app.migrate()
    return app
