"""The ingestion repository: bulk identity, lead, account and event writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, cast, func, insert, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from leadflow.adapters.db.tables import (
    Account,
    Event,
    Identity,
    IdentityConflictRow,
    Lead,
    LeadMerge,
    Time,
    cast_table,
)
from leadflow.domain.identity import IdentityConflict, IdentityKey, Merge
from leadflow.ports import EventRow, LeadTouch, NewLead

leads = cast_table(Lead)
identities = cast_table(Identity)
events = cast_table(Event)
accounts = cast_table(Account)
merges = cast_table(LeadMerge)
conflicts = cast_table(IdentityConflictRow)
_CHUNK = 500


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqlIngestRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def _insert(self, table: Any) -> Any:
        return pg_insert(table) if self.pg else sqlite_insert(table)

    def _json_merge(self, column: Any, patch: Any) -> ColumnElement[Any]:
        """Shallow merge of a JSON object into a JSON column, done by the database."""
        if self.pg:
            result: ColumnElement[Any] = column.op("||")(cast(patch, JSONB))
            return result
        return func.json_patch(column, patch)

    def existing_message_ids(self, source_id: int, message_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(set(message_ids))):
            query = select(events.c.message_id).where(
                events.c.source_id == source_id, events.c.message_id.in_(chunk)
            )
            found.update(self.conn.scalars(query))
        return found

    def owners(self, keys: Iterable[IdentityKey]) -> dict[IdentityKey, int]:
        by_text = {key.text: key for key in keys}
        found: dict[IdentityKey, int] = {}
        for chunk in _chunks(list(by_text)):
            query = select(identities.c.key, identities.c.lead_id).where(
                identities.c.key.in_(chunk)
            )
            for text, lead_id in self.conn.execute(query):
                found[by_text[text]] = lead_id
        return found

    def lead_keys(self, lead_ids: Iterable[int]) -> dict[int, frozenset[IdentityKey]]:
        grouped: dict[int, set[IdentityKey]] = {}
        for chunk in _chunks(list(lead_ids)):
            query = select(identities.c.lead_id, identities.c.kind, identities.c.value).where(
                identities.c.lead_id.in_(chunk)
            )
            for lead_id, kind, value in self.conn.execute(query):
                grouped.setdefault(lead_id, set()).add(IdentityKey(kind, value))
        return {lead: frozenset(keys) for lead, keys in grouped.items()}

    def create_leads(self, new: Sequence[NewLead]) -> dict[int, int]:
        if not new:
            return {}
        rows = [
            {
                "traits": {},
                "stage": "lead",
                "version": 1,
                "fit_score": 0.0,
                "engagement_score": 0.0,
                "first_source_id": lead.source_id,
                "first_touch": lead.first_touch,
                "created_at": lead.created_at,
                "first_seen_at": lead.first_seen_at,
                "last_seen_at": lead.first_seen_at,
                "updated_at": lead.created_at,
            }
            for lead in new
        ]
        statement = insert(leads).returning(leads.c.id, sort_by_parameter_order=True)
        ids = list(self.conn.scalars(statement, rows))
        return {lead.ref: lead_id for lead, lead_id in zip(new, ids, strict=True)}

    def attach(self, keys: Sequence[tuple[IdentityKey, int]], at: datetime) -> None:
        if not keys:
            return
        rows = [
            {"key": k.text, "kind": k.kind, "value": k.value, "lead_id": lead, "created_at": at}
            for k, lead in keys
        ]
        self.conn.execute(insert(identities), rows)

    def merge(self, merge: Merge, message_id: str | None, at: datetime) -> None:
        loser, survivor = merge.loser, merge.survivor
        self.conn.execute(
            update(identities).where(identities.c.lead_id == loser).values(lead_id=survivor)
        )
        self.conn.execute(update(events).where(events.c.lead_id == loser).values(lead_id=survivor))
        self.conn.execute(
            update(leads).where(leads.c.merged_into == loser).values(merged_into=survivor)
        )
        old = leads.alias("old")
        lost = select(old).where(old.c.id == loser).subquery()
        self.conn.execute(
            update(leads)
            .where(leads.c.id == survivor)
            .values(
                traits=self._json_merge(select(lost.c.traits).scalar_subquery(), leads.c.traits),
                email=func.coalesce(leads.c.email, select(lost.c.email).scalar_subquery()),
                phone=func.coalesce(leads.c.phone, select(lost.c.phone).scalar_subquery()),
                account_id=func.coalesce(
                    leads.c.account_id, select(lost.c.account_id).scalar_subquery()
                ),
                first_seen_at=self._least(
                    leads.c.first_seen_at, select(lost.c.first_seen_at).scalar_subquery()
                ),
                updated_at=at,
            )
        )
        self.conn.execute(
            update(leads).where(leads.c.id == loser).values(merged_into=survivor, updated_at=at)
        )
        self.conn.execute(
            insert(merges).values(
                survivor_id=survivor,
                merged_id=loser,
                cause=merge.cause,
                message_id=message_id,
                created_at=at,
            )
        )

    def _least(self, a: Any, b: Any) -> ColumnElement[Any]:
        if self.pg:
            return func.least(a, b)
        return func.min(func.coalesce(a, b), func.coalesce(b, a))

    def _greatest(self, a: Any, b: Any) -> ColumnElement[Any]:
        if self.pg:
            return func.greatest(a, b)
        return func.max(func.coalesce(a, b), func.coalesce(b, a))

    def record_conflicts(
        self, found: Sequence[tuple[IdentityConflict, str | None]], at: datetime
    ) -> None:
        if not found:
            return
        rows = [
            {
                "lead_id": c.lead_a,
                "other_lead_id": c.lead_b,
                "key": c.key.text,
                "reason": c.reason,
                "message_id": message_id,
                "resolved": False,
                "created_at": at,
            }
            for c, message_id in found
        ]
        self.conn.execute(self._insert(conflicts).on_conflict_do_nothing(), rows)

    def upsert_accounts(self, found: Mapping[str, dict[str, Any]], at: datetime) -> None:
        for group_id, traits in found.items():
            name = traits.get("name") if isinstance(traits.get("name"), str) else None
            statement = self._insert(accounts).values(
                group_id=group_id, name=name, traits=traits, created_at=at, updated_at=at
            )
            excluded = statement.excluded
            self.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[accounts.c.group_id],
                    set_={
                        "traits": self._json_merge(accounts.c.traits, excluded.traits),
                        "name": func.coalesce(excluded.name, accounts.c.name),
                        "updated_at": excluded.updated_at,
                    },
                )
            )

    def touch_leads(self, touches: Sequence[LeadTouch], at: datetime) -> None:
        if not touches:
            return
        account_ids = self._account_ids({t.account_group_id for t in touches} - {None})
        rows = [
            {
                "b_id": t.lead_id,
                "b_first": t.first_seen_at,
                "b_last": t.last_seen_at,
                "b_traits": t.traits,
                "b_email": t.email,
                "b_phone": t.phone,
                "b_account": account_ids.get(t.account_group_id or ""),
                "b_at": at,
            }
            for t in touches
        ]
        traits_param = bindparam("b_traits", type_=leads.c.traits.type)
        statement = (
            update(leads)
            .where(leads.c.id == bindparam("b_id"))
            .values(
                first_seen_at=self._least(leads.c.first_seen_at, bindparam("b_first", type_=Time)),
                last_seen_at=self._greatest(leads.c.last_seen_at, bindparam("b_last", type_=Time)),
                traits=self._json_merge(leads.c.traits, traits_param),
                email=func.coalesce(bindparam("b_email"), leads.c.email),
                phone=func.coalesce(bindparam("b_phone"), leads.c.phone),
                account_id=func.coalesce(bindparam("b_account"), leads.c.account_id),
                updated_at=bindparam("b_at", type_=Time),
            )
        )
        self.conn.execute(statement, rows)

    def _account_ids(self, group_ids: set[str | None]) -> dict[str, int]:
        if not group_ids:
            return {}
        query = select(accounts.c.group_id, accounts.c.id).where(accounts.c.group_id.in_(group_ids))
        return {group: account for group, account in self.conn.execute(query)}

    def insert_events(self, rows: Sequence[EventRow]) -> int:
        if not rows:
            return 0
        params = [
            {
                "source_id": r.source_id,
                "message_id": r.message_id,
                "lead_id": r.lead_id,
                "type": r.type,
                "name": r.name,
                "timestamp": r.timestamp,
                "received_at": r.received_at,
                "properties": r.properties,
                "raw": r.raw,
            }
            for r in rows
        ]
        statement = self._insert(events).on_conflict_do_nothing(
            index_elements=[events.c.source_id, events.c.message_id]
        )
        result = self.conn.execute(statement, params)
        return int(result.rowcount or 0)
