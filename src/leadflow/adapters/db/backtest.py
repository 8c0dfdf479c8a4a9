"""What a backtest reads, and nothing it writes: leads in id order, their stage history and
their events in time order, inside read-only transactions.

PostgreSQL runs the transaction ``READ ONLY`` and streams events through a server-side cursor;
SQLite sets ``PRAGMA query_only`` for the transaction. A write would fail on either backend.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, func, not_, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from leadflow.adapters.db.tables import accounts, events, leads
from leadflow.adapters.db.tables import stage_changes as history
from leadflow.domain.scoring import ScoredEvent
from leadflow.services.backtest import BacktestLead

STREAM_ROWS = 2000  # rows fetched per round trip from the server-side cursor


@contextmanager
def reading(engine: Engine) -> Iterator[SqlBacktestRepository]:
    """A repository over one read-only transaction; it is rolled back at the end."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(postgresql_readonly=True)  # reset when pooled again
            yield SqlBacktestRepository(conn)
            return
        conn.exec_driver_sql("PRAGMA query_only = ON")  # inside the transaction it begins
        try:
            yield SqlBacktestRepository(conn)
        finally:
            try:
                conn.exec_driver_sql("PRAGMA query_only = OFF")  # before BEGIN refuses
                conn.rollback()
            except SQLAlchemyError:
                conn.invalidate()  # never hand a read-only connection back to the pool


def _since(moment: datetime | None) -> list[ColumnElement[bool]]:
    return [leads.c.first_seen_at >= moment] if moment is not None else []


class SqlBacktestRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def window_end(self, outcome_events: Collection[str]) -> datetime | None:
        """The newest event that is not an outcome: where the replayed history ends."""
        outcome = and_(events.c.type == "track", func.lower(events.c.name).in_(outcome_events))
        query = select(func.max(events.c.timestamp)).where(
            or_(events.c.name.is_(None), not_(outcome))
        )
        found: datetime | None = self.conn.scalar(query)
        return found

    def count_leads(self, since: datetime | None) -> int:
        query = select(func.count()).where(leads.c.merged_into.is_(None), *_since(since))
        return int(self.conn.scalar(query) or 0)

    def lead_ids_after(self, after: int, limit: int, since: datetime | None) -> list[int]:
        query = (
            select(leads.c.id)
            .where(leads.c.id > after, leads.c.merged_into.is_(None), *_since(since))
            .order_by(leads.c.id)
            .limit(limit)
        )
        return list(self.conn.scalars(query))

    def leads(self, lead_ids: Sequence[int]) -> dict[int, BacktestLead]:
        """The leads' traits and account traits as they are now."""
        account = (
            select(accounts.c.traits)
            .where(accounts.c.id == leads.c.account_id)
            .scalar_subquery()
            .label("account_traits")
        )
        query = select(leads.c.id, leads.c.traits, leads.c.email, leads.c.p_convert, account).where(
            leads.c.id.in_(list(lead_ids))
        )
        return {
            row.id: BacktestLead(
                row.id, row.traits or {}, row.account_traits or {}, row.email, row.p_convert
            )
            for row in self.conn.execute(query)
        }

    def stage_reached(
        self, lead_ids: Sequence[int], stages: Collection[str]
    ) -> dict[int, datetime]:
        """When each lead first reached one of ``stages``, including the history of the
        leads merged into it."""
        wanted = list(lead_ids)
        owner = func.coalesce(leads.c.merged_into, history.c.lead_id).label("owner")
        query = (
            select(owner, func.min(history.c.at).label("at"))
            .join(leads, leads.c.id == history.c.lead_id)
            .where(
                history.c.to_stage.in_(list(stages)),
                or_(history.c.lead_id.in_(wanted), leads.c.merged_into.in_(wanted)),
            )
            .group_by(owner)
        )
        return {row.owner: row.at for row in self.conn.execute(query)}

    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, ScoredEvent]]:
        """The leads' events in (lead, timestamp, id) order, streamed."""
        query = (
            select(
                events.c.lead_id,
                events.c.type,
                events.c.name,
                events.c.timestamp,
                events.c.properties,
                events.c.raw,
            )
            .where(events.c.lead_id.in_(list(lead_ids)))
            .order_by(events.c.lead_id, events.c.timestamp, events.c.id)
            .execution_options(stream_results=True, yield_per=STREAM_ROWS)
        )
        for row in self.conn.execute(query):
            context = row.raw.get("context") if isinstance(row.raw, dict) else None
            event = ScoredEvent(
                row.type, row.name, row.timestamp, row.properties or {}, context or {}
            )
            yield row.lead_id, event
