"""The store, sources, ingestion and leads: the base of the facade."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from typing import Any, Self, TypeVar

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from leadflow.adapters.db.engine import make_engine, writing
from leadflow.adapters.db.inbox import SqlInbox
from leadflow.adapters.db.ingest import SqlIngestRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.sources import SqlSourceRepository
from leadflow.config import Settings
from leadflow.domain.errors import (
    AuthenticationError,
    BatchErrors,
)
from leadflow.domain.events import NormalizedEvent, normalize_batch, split_request
from leadflow.domain.events import Request as TrackingRequest
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
from leadflow.services import leads as lead_service
from leadflow.services import sources as source_service
from leadflow.services.ingest import Ingestor, IngestResult
from leadflow.services.models import ScoringModel, load_model
from leadflow.services.qualify import Qualifier

_RETRIES = 10
T = TypeVar("T")
# PostgreSQL deadlock_detected and serialization_failure: the loser may simply run again.
_TRANSIENT_STATES = frozenset({"40P01", "40001"})


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What one :meth:`Core.drain_inbox` call processed."""

    requests: int  # inbox rows taken and deleted
    result: IngestResult  # their messages: accepted, duplicates, leads created, merges


def _transient(exc: IntegrityError | OperationalError) -> bool:
    """A lost race with a concurrent batch (unique key taken, deadlock), worth a retry."""
    return isinstance(exc, IntegrityError) or (
        getattr(exc.orig, "sqlstate", None) in _TRANSIENT_STATES
    )


class Core:
    """The store, sources, ingestion and leads: the base of the facade."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = make_engine(settings.resolved_database_url(), settings.db_pool_size)
        self._write_keys: dict[str, SourceRecord] = {}
        self.model: ScoringModel = load_model(settings.config_file)
        self.qualifier = Qualifier(self.model)

    def _ingest_options(self, conn: Connection) -> dict[str, Any]:
        """What the layers above add to ingestion (segment membership, journey triggers)."""
        return {}

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends (rolled back on error)."""
        with writing(self.engine) as conn:
            yield conn

    @staticmethod
    def _live(conn: Connection, lead_id: int) -> int:
        return lead_service.get_lead(SqlLeadRepository(conn), lead_id).id

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

    def enqueue(
        self, source: SourceRecord, route: str, body: bytes, request: TrackingRequest
    ) -> IngestResult:
        """Staged ingestion: validate the messages of one tracking request and keep its body
        in the inbox, durably, for :meth:`drain_inbox`. Invalid items are reported by index
        as :meth:`ingest` reports them; the valid ones are processed by the drainer."""
        at = self.clock.now()
        good, bad = normalize_batch(
            request.messages, received_at=at, route_type=request.route_type,
            defaults=request.defaults,
        )  # fmt: skip
        if good:
            with self.transaction() as conn:
                SqlInbox(conn).add(source.id, route, at, len(good), body)
        return IngestResult(accepted=len(good), errors=bad)

    def drain_inbox(self, requests: int = 50) -> DrainReport:
        """Process up to ``requests`` staged requests, oldest first, in one transaction:
        their events are stored and scored, and their inbox rows deleted, together. Several
        drainers may run at once on PostgreSQL (rows are taken with SKIP LOCKED)."""
        return self._retrying(lambda conn: self._drain(conn, requests))

    def _drain(self, conn: Connection, requests: int) -> DrainReport:
        box = SqlInbox(conn)
        items = box.take(requests)
        total = IngestResult()
        if not items:
            return DrainReport(0, total)
        ingestor = self._ingestor(conn)
        for source_id, group in groupby(items, key=attrgetter("source_id")):
            events: list[NormalizedEvent] = []
            last = None
            for item in group:
                parts = split_request(item.route, orjson.loads(item.body))
                good, _ = normalize_batch(
                    parts.messages, received_at=item.received_at, route_type=parts.route_type,
                    defaults=parts.defaults,
                )  # fmt: skip
                events.extend(good)
                last = item.received_at
            assert last is not None
            total.add(ingestor.ingest(source_id, events, last))
        box.remove([item.id for item in items])
        return DrainReport(len(items), total)

    def inbox_status(self) -> dict[str, Any]:
        """Staged requests waiting: how many, their messages, the oldest one's arrival."""
        with self.engine.connect() as conn:
            return SqlInbox(conn).status()

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
        return self._retrying(lambda conn: self._ingestor(conn).ingest(source_id, events, at))

    def _ingestor(self, conn: Connection) -> Ingestor:
        """Ingestion inside ``conn``'s transaction, with what the layers above add to it."""
        return Ingestor(
            SqlIngestRepository(conn), self.qualifier, self.settings.default_phone_region,
            **self._ingest_options(conn),
        )  # fmt: skip

    def _retrying(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction, again when a concurrent one won a race."""
        for attempt in range(_RETRIES):
            try:
                with self.transaction() as conn:
                    return work(conn)
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
        sort: str = "newest",
        cursor: str | None = None,
    ) -> LeadPage:
        """A page of leads: newest first (``after``) or best first by ``sort`` (engagement,
        fit, p_convert), the next page starting at the page's ``next_cursor``."""
        with self.engine.connect() as conn:
            return lead_service.list_leads(
                SqlLeadRepository(conn), filters or LeadFilter(), limit, after, count, sort,
                cursor,
            )  # fmt: skip

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
