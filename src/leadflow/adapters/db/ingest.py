"""The ingestion repository: bulk identity, lead, account and event writes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from leadflow.adapters.db.engine import chunks
from leadflow.adapters.db.records import LeadRecords, dumps
from leadflow.adapters.db.tables import (
    accounts,
    events,
    identities,
    leads,
    score_ledger,
)
from leadflow.adapters.db.tables import identity_conflicts as conflicts
from leadflow.adapters.db.tables import lead_merges as merges
from leadflow.domain.identity import IdentityConflict, IdentityKey, Merge
from leadflow.domain.profiles import merged
from leadflow.ports import EventRow, NewLead


class SqlIngestRepository(LeadRecords):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def _insert(self, table: Any) -> Any:
        return pg_insert(table) if self.pg else sqlite_insert(table)

    def existing_message_ids(self, source_id: int, message_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(set(message_ids))):
            query = select(events.c.message_id).where(
                events.c.source_id == source_id, events.c.message_id.in_(chunk)
            )
            found.update(self.conn.scalars(query))
        return found

    def lock_keys(self, keys: Iterable[IdentityKey]) -> None:
        """Serialise concurrent batches that share an identity key, in one global order, so
        that looking a key up and creating it never races. SQLite needs nothing: its
        writers already take turns (BEGIN IMMEDIATE)."""
        if self.pg:
            self.conn.execute(_LOCK_KEYS_PG, {"keys": [key.text for key in keys]})

    def owners(self, keys: Iterable[IdentityKey]) -> dict[IdentityKey, int]:
        by_text = {key.text: key for key in keys}
        found: dict[IdentityKey, int] = {}
        for chunk in chunks(list(by_text)):
            query = select(identities.c.key, identities.c.lead_id).where(
                identities.c.key.in_(chunk)
            )
            for stored, lead_id in self.conn.execute(query):
                found[by_text[stored]] = lead_id
        return found

    def lead_keys(self, lead_ids: Iterable[int]) -> dict[int, frozenset[IdentityKey]]:
        grouped: dict[int, set[IdentityKey]] = {}
        for chunk in chunks(list(lead_ids)):
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
        if self.pg:
            ids = list(self.conn.scalars(_NEXT_LEAD_IDS_PG, {"n": len(rows)}))
            for row, lead_id in zip(rows, ids, strict=True):
                row["id"] = lead_id
            self.conn.execute(_LEADS_PG, {"rows": dumps(rows)})
        else:
            statement = insert(leads).returning(leads.c.id, sort_by_parameter_order=True)
            ids = list(self.conn.scalars(statement, rows))
        return {lead.ref: lead_id for lead, lead_id in zip(new, ids, strict=True)}

    def attach(self, keys: Sequence[tuple[IdentityKey, int]], at: datetime) -> None:
        if not keys:
            return
        rows = [
            {"key": k.text, "kind": k.kind, "value": k.value, "lead_id": lead, "created_at": at}
            for k, lead in sorted(keys, key=lambda pair: pair[0].text)  # one lock order for all
        ]
        if self.pg:
            self.conn.execute(_IDENTITIES_PG, {"rows": dumps(rows)})
        else:
            self.conn.execute(insert(identities), rows)

    def merge(
        self,
        merge: Merge,
        message_id: str | None,
        at: datetime,
        merge_scores: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    ) -> None:
        loser, survivor = merge.loser, merge.survivor
        found = self.load_for_update([loser, survivor])
        kept, lost = found[survivor], found[loser]
        kept.profile = merged(kept.profile, lost.profile)
        kept.score_state = merge_scores(kept.score_state, lost.score_state)
        self.save_leads([kept], at)
        for table in (identities, events, score_ledger):
            self.conn.execute(
                update(table).where(table.c.lead_id == loser).values(lead_id=survivor)
            )
        self.conn.execute(
            update(leads).where(leads.c.merged_into == loser).values(merged_into=survivor)
        )
        self.conn.execute(
            update(leads)
            .where(leads.c.id == loser)
            .values(merged_into=survivor, next_review_at=None, sla_due_at=None, updated_at=at)
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
        if not found:
            return
        rows: list[dict[str, Any]] = [
            {
                "group_id": group_id,
                "name": traits.get("name") if isinstance(traits.get("name"), str) else None,
                "traits": traits,
                "at": at,
            }
            for group_id, traits in sorted(found.items())
        ]
        if self.pg:  # one statement; concurrent writers merge traits in the database
            self.conn.execute(_ACCOUNTS_PG, {"rows": dumps(rows)})
            return
        existing = {
            row.group_id: row.traits
            for row in self.conn.execute(
                select(accounts.c.group_id, accounts.c.traits).where(
                    accounts.c.group_id.in_(list(found))
                )
            )
        }
        for row in rows:
            statement = sqlite_insert(accounts).values(
                group_id=row["group_id"],
                name=row["name"],
                traits=row["traits"],
                created_at=at,
                updated_at=at,
            )
            self.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[accounts.c.group_id],
                    set_={
                        "traits": {**existing.get(row["group_id"], {}), **row["traits"]},
                        "name": func.coalesce(statement.excluded.name, accounts.c.name),
                        "updated_at": at,
                    },
                )
            )

    def insert_events(self, rows: Sequence[EventRow]) -> dict[str, int]:
        """Append the events; return the ids of those that were new, by message id."""
        if not rows:
            return {}
        document = [
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
        if self.pg:
            found = self.conn.execute(_EVENTS_PG, {"rows": dumps(document)})
            return {message_id: event_id for event_id, message_id in found}
        # SQLite: writers take turns and duplicates were dropped before, so all rows are new.
        statement = insert(events).returning(
            events.c.id, events.c.message_id, sort_by_parameter_order=True
        )
        return {row.message_id: row.id for row in self.conn.execute(statement, document)}


_NEXT_LEAD_IDS_PG = text(
    "SELECT nextval(pg_get_serial_sequence('leads', 'id')) FROM generate_series(1, :n)"
)

_LEADS_PG = text(
    """
    INSERT INTO leads (id, traits, stage, version, fit_score, engagement_score, first_source_id,
        first_touch, created_at, first_seen_at, last_seen_at, updated_at)
    SELECT id, traits, stage, version, fit_score, engagement_score, first_source_id,
        first_touch, created_at, first_seen_at, last_seen_at, updated_at
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        id bigint, traits jsonb, stage text, version int, fit_score float8,
        engagement_score float8, first_source_id bigint, first_touch jsonb,
        created_at timestamptz, first_seen_at timestamptz, last_seen_at timestamptz,
        updated_at timestamptz
    )
    """
)

_IDENTITIES_PG = text(
    """
    INSERT INTO identities (key, kind, value, lead_id, created_at)
    SELECT key, kind, value, lead_id, created_at
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        key text, kind text, value text, lead_id bigint, created_at timestamptz
    )
    """
)

_ACCOUNTS_PG = text(
    """
    INSERT INTO accounts (group_id, name, traits, created_at, updated_at)
    SELECT group_id, name, traits, at, at
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        group_id text, name text, traits jsonb, at timestamptz
    )
    ON CONFLICT (group_id) DO UPDATE SET
        traits = accounts.traits || excluded.traits,
        name = COALESCE(excluded.name, accounts.name),
        updated_at = excluded.updated_at
    """
)

_LOCK_KEYS_PG = text(
    """
    SELECT count(pg_advisory_xact_lock(h)) FROM (
        SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(CAST(:keys AS text[])) AS k
        ORDER BY h
    ) AS ordered
    """
)

_EVENTS_PG = text(
    """
    INSERT INTO events
        (source_id, message_id, lead_id, type, name, timestamp, received_at, properties, raw)
    SELECT source_id, message_id, lead_id, type, name, timestamp, received_at, properties, raw
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        source_id bigint, message_id text, lead_id bigint, type text, name text,
        timestamp timestamptz, received_at timestamptz, properties jsonb, raw json
    )
    ON CONFLICT (message_id, source_id) DO NOTHING
    RETURNING id, message_id
    """
)
