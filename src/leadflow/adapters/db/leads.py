"""Reading leads, their events, merges and identity conflicts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, literal_column, or_, select, tuple_

from leadflow.adapters.db.engine import chunks
from leadflow.adapters.db.tables import (
    accounts,
    events,
    identities,
    identity_conflicts,
    lead_merges,
    leads,
)
from leadflow.ports import (
    KIND_LABELS,
    ConflictView,
    EventView,
    LeadFilter,
    LeadPage,
    LeadView,
    MergeView,
)
from leadflow.services import leads as lead_service

# The value each order sorts by; a lead with no probability sorts as -1, after every other.
SORT_VALUES: dict[str, Callable[[], ColumnElement[Any]]] = {
    "engagement": lambda: leads.c.engagement_score,
    "fit": lambda: leads.c.fit_score,
    "p_convert": lambda: func.coalesce(leads.c.p_convert, literal_column("-1.0")),
}


class SqlLeadRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def survivor_of(self, lead_id: int) -> int | None:
        """The live lead for an id, following merges; None when there is no such lead."""
        seen: set[int] = set()
        current = lead_id
        while current not in seen:
            seen.add(current)
            row = self.conn.execute(
                select(leads.c.id, leads.c.merged_into).where(leads.c.id == current)
            ).first()
            if row is None:
                return None
            if row.merged_into is None:
                return int(row.id)
            current = int(row.merged_into)
        return current

    def get(self, lead_id: int) -> LeadView | None:
        views = self._views(select(leads).where(leads.c.id == lead_id))
        return views[0] if views else None

    def views(self, lead_ids: list[int]) -> dict[int, LeadView]:
        """Several leads at once, by id (absent ids are left out)."""
        found: dict[int, LeadView] = {}
        for chunk in chunks(lead_ids):
            for view in self._views(select(leads).where(leads.c.id.in_(chunk))):
                found[view.id] = view
        return found

    def page(
        self, filters: LeadFilter, limit: int, after: int | None, count: bool,
        sort: str = "newest", key: tuple[float, int] | None = None,
    ) -> LeadPage:  # fmt: skip
        """Keyset paging: each page starts after the last lead of the one before, so a deep
        page costs what the first one does (an index on (sort value, id) serves each order)."""
        query = self._filtered(select(leads), filters)
        total = None
        if count:
            total = int(self.conn.scalar(self._filtered(select(func.count()), filters)) or 0)
        if sort == "newest":
            if after is not None:
                query = query.where(leads.c.id < after)
            query = query.order_by(leads.c.id.desc())
        else:
            value = SORT_VALUES[sort]()
            if key is not None:
                query = query.where(tuple_(value, leads.c.id) < tuple_(key[0], key[1]))
            query = query.order_by(value.desc(), leads.c.id.desc())
        items = self._views(query.limit(limit + 1))
        more = len(items) > limit
        last = items[limit - 1] if more else None
        next_after = last.id if last is not None and sort == "newest" else None
        cursor = lead_service.cursor_of(last, sort) if last is not None else None
        return LeadPage(items[:limit], next_after, total, cursor)

    @staticmethod
    def _filtered(query: Select[Any], f: LeadFilter) -> Select[Any]:
        query = query.select_from(leads).where(leads.c.merged_into.is_(None))
        if f.stage:
            query = query.where(leads.c.stage == f.stage)
        if f.email:
            query = query.where(leads.c.email == f.email.strip().lower())
        if f.search:
            needle = f.search.strip().lower()
            query = query.where(
                or_(
                    leads.c.email.contains(needle, autoescape=True),
                    leads.c.phone.contains(needle, autoescape=True),
                )
            )
        if f.source_id is not None:
            query = query.where(leads.c.first_source_id == f.source_id)
        if f.account_group_id:
            account = select(accounts.c.id).where(accounts.c.group_id == f.account_group_id)
            query = query.where(leads.c.account_id.in_(account.scalar_subquery()))
        if f.grade:
            query = query.where(leads.c.fit_grade == f.grade)
        if f.seen_since is not None:
            query = query.where(leads.c.last_seen_at >= f.seen_since)
        return query

    def _views(self, query: Select[Any]) -> list[LeadView]:
        rows = list(self.conn.execute(query))
        if not rows:
            return []
        ids = [row.id for row in rows]
        keys: dict[int, dict[str, list[str]]] = {i: {} for i in ids}
        found = self.conn.execute(
            select(identities.c.lead_id, identities.c.kind, identities.c.value)
            .where(identities.c.lead_id.in_(ids))
            .order_by(identities.c.id)
        )
        for lead_id, kind, value in found:
            keys[lead_id].setdefault(KIND_LABELS.get(kind, kind), []).append(value)
        account_ids = {row.account_id for row in rows if row.account_id is not None}
        account_map = self._accounts(account_ids)
        counted = self.conn.execute(
            select(events.c.lead_id, func.count())
            .where(events.c.lead_id.in_(ids))
            .group_by(events.c.lead_id)
        )
        counts = {lead_id: int(n) for lead_id, n in counted}
        return [
            _view(row, keys[row.id], account_map.get(row.account_id), counts.get(row.id, 0))
            for row in rows
        ]

    def _accounts(self, ids: set[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        query = select(accounts).where(accounts.c.id.in_(ids))
        return {
            r.id: {"id": r.id, "group_id": r.group_id, "name": r.name, "traits": r.traits}
            for r in self.conn.execute(query)
        }

    def events(self, lead_id: int, limit: int) -> list[EventView]:
        query = (
            select(events)
            .where(events.c.lead_id == lead_id)
            .order_by(events.c.timestamp.desc(), events.c.id.desc())
            .limit(limit)
        )
        return [
            EventView(
                r.id,
                r.source_id,
                r.message_id,
                r.type,
                r.name,
                r.timestamp,
                r.received_at,
                r.properties,
            )
            for r in self.conn.execute(query)
        ]

    def merges(self, lead_id: int | None) -> list[MergeView]:
        table = lead_merges
        query = select(table).order_by(table.c.id)
        if lead_id is not None:
            query = query.where(or_(table.c.survivor_id == lead_id, table.c.merged_id == lead_id))
        return [
            MergeView(r.survivor_id, r.merged_id, r.cause, r.message_id, r.created_at)
            for r in self.conn.execute(query)
        ]

    def conflicts(self, lead_id: int | None, include_resolved: bool) -> list[ConflictView]:
        table = identity_conflicts
        query = select(table).order_by(table.c.id)
        if lead_id is not None:
            query = query.where(or_(table.c.lead_id == lead_id, table.c.other_lead_id == lead_id))
        if not include_resolved:
            query = query.where(table.c.resolved.is_(False))
        return [
            ConflictView(
                r.id, r.lead_id, r.other_lead_id, r.key, r.reason, r.message_id, r.created_at
            )
            for r in self.conn.execute(query)
        ]


def _view(
    row: Any, keys: dict[str, list[str]], account: dict[str, Any] | None, event_count: int
) -> LeadView:
    return LeadView(
        id=row.id,
        email=row.email,
        phone=row.phone,
        identities=keys,
        traits=row.traits or {},
        stage=row.stage,
        fit_score=row.fit_score,
        fit_grade=row.fit_grade,
        engagement_score=row.engagement_score,
        p_convert=row.p_convert,
        account=account,
        first_touch=row.first_touch or {},
        created_at=row.created_at,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        event_count=event_count,
        model_version=row.model_version,
        scored_at=row.scored_at,
        mql_at=row.mql_at,
        sla_due_at=row.sla_due_at,
    )
