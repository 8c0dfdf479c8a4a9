"""Leads as qualification reads and writes them: loaded under row locks, saved in bulk;
the score ledger, the stage history and the outbox written in the same transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from leadflow.adapters.db.tables import (
    accounts,
    events,
    leads,
    outbox,
)
from leadflow.adapters.db.tables import score_ledger as ledger
from leadflow.adapters.db.tables import stage_changes as history
from leadflow.domain.lifecycle import StageChange
from leadflow.domain.profiles import Profile
from leadflow.domain.scoring import ScoredEvent
from leadflow.ports import LeadRecord, LedgerRow, OutboxRow

PROFILE_COLUMNS = (
    leads.c.traits,
    leads.c.email,
    leads.c.phone,
    leads.c.account_id,
    leads.c.first_seen_at,
    leads.c.last_seen_at,
    leads.c.first_touch,
    leads.c.first_source_id,
)
SCORE_COLUMNS = (
    leads.c.stage,
    leads.c.version,
    leads.c.score_state,
    leads.c.fit_score,
    leads.c.fit_grade,
    leads.c.engagement_score,
    leads.c.p_convert,
    leads.c.scored_at,
    leads.c.model_version,
    leads.c.mql_at,
    leads.c.sla_due_at,
    leads.c.next_review_at,
)
WRITTEN = (*PROFILE_COLUMNS, *SCORE_COLUMNS)
PROFILE_NAMES = frozenset(c.name for c in PROFILE_COLUMNS)
WRITTEN_FROM = tuple((c.name, c.name in PROFILE_NAMES) for c in WRITTEN)


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _record(row: Any) -> LeadRecord:
    profile = Profile(*(getattr(row, c.name) for c in PROFILE_COLUMNS))
    return LeadRecord(
        id=row.id,
        stage=row.stage,
        version=row.version,
        profile=profile,
        account_traits=row.account_traits or {},
        score_state=row.score_state or {},
        fit_score=row.fit_score,
        fit_grade=row.fit_grade,
        engagement_score=row.engagement_score,
        p_convert=row.p_convert,
        scored_at=row.scored_at,
        model_version=row.model_version,
        mql_at=row.mql_at,
        sla_due_at=row.sla_due_at,
        next_review_at=row.next_review_at,
    )


def _values(record: LeadRecord) -> dict[str, Any]:
    found: dict[str, Any] = {"b_id": record.id}
    for name, in_profile in WRITTEN_FROM:  # names: comparing Column objects builds SQL
        found[name] = getattr(record.profile if in_profile else record, name)
    return found


class LeadRecords:
    """Mixed into the ingestion repository; usable on its own by the worker and the CLI."""

    conn: Connection
    pg: bool

    def load_for_update(self, lead_ids: Iterable[int]) -> dict[int, LeadRecord]:
        """The leads with their account's traits, locked in id order on PostgreSQL
        (SQLite writers already take turns)."""
        ids = sorted(set(lead_ids))
        if not ids:
            return {}
        query = (
            select(
                leads.c.id,
                *PROFILE_COLUMNS,
                *SCORE_COLUMNS,
                select(accounts.c.traits)
                .where(accounts.c.id == leads.c.account_id)
                .scalar_subquery()
                .label("account_traits"),
            )
            .where(leads.c.id.in_(ids))
            .order_by(leads.c.id)
        )
        if self.pg:
            query = query.with_for_update(of=leads, key_share=True)
        return {row.id: _record(row) for row in self.conn.execute(query)}

    def current(self, lead_id: int) -> LeadRecord | None:
        """The lead as it is now, without a lock (compare-and-set follows)."""
        pg, self.pg = self.pg, False
        try:
            return self.load_for_update([lead_id]).get(lead_id)
        finally:
            self.pg = pg

    def compare_and_set(
        self, record: LeadRecord, expected_stage: str, expected_version: int
    ) -> bool:
        """Write the record only if its stage and version are still the expected ones."""
        values = _values(record)
        values.pop("b_id")
        result = self.conn.execute(
            update(leads)
            .where(
                leads.c.id == record.id,
                leads.c.stage == expected_stage,
                leads.c.version == expected_version,
            )
            .values(values)
        )
        return result.rowcount == 1

    def save_leads(self, records: Sequence[LeadRecord], at: datetime) -> None:
        if not records:
            return
        rows = [_values(r) for r in sorted(records, key=lambda r: r.id)]
        if self.pg:
            self.conn.execute(_SAVE_PG, {"rows": dumps(rows), "at": at})
            return
        statement = (
            update(leads)
            .where(leads.c.id == bindparam("b_id"))
            .values({c.name: bindparam(c.name, type_=c.type) for c in WRITTEN})
            .values(updated_at=at)
        )
        self.conn.execute(statement, rows)

    def record_scores(self, rows: Sequence[LedgerRow]) -> None:
        if not rows:
            return
        values = [
            {
                "lead_id": r.lead_id,
                "event_id": r.event_id,
                "model_version": r.model_version,
                "rule_id": r.rule_id,
                "points": r.points,
                "counted": r.counted,
                "reason": r.reason,
                "timestamp": r.timestamp,
            }
            for r in rows
        ]
        if self.pg:
            self.conn.execute(_LEDGER_PG, {"rows": dumps(values)})
        else:
            self.conn.execute(insert(ledger).prefix_with("OR IGNORE"), values)

    def record_changes(self, changes: Sequence[StageChange], pending: Sequence[OutboxRow]) -> None:
        if changes:
            self.conn.execute(
                insert(history),
                [
                    {
                        "lead_id": c.lead_id,
                        "from_stage": c.from_stage,
                        "to_stage": c.to_stage,
                        "at": c.at,
                        "actor": c.actor,
                        "reason": c.reason,
                        "note": c.note,
                        "model_version": c.model_version,
                    }
                    for c in changes
                ],
            )
        if pending:
            self.conn.execute(
                insert(outbox),
                [
                    {
                        "topic": o.topic,
                        "lead_id": o.lead_id,
                        "payload": o.payload,
                        "created_at": o.created_at,
                    }
                    for o in pending
                ],
            )

    def events_of(self, lead_ids: Sequence[int]) -> Iterator[tuple[int, int, ScoredEvent]]:
        """The leads' events in arrival order (event id), as scoring sees them."""
        query = (
            select(
                events.c.lead_id,
                events.c.id,
                events.c.type,
                events.c.name,
                events.c.timestamp,
                events.c.properties,
                events.c.raw["context"].label("context"),  # not the whole raw message
            )
            .where(events.c.lead_id.in_(list(lead_ids)))
            .order_by(events.c.lead_id, events.c.id)
        )
        for row in self.conn.execute(query):
            context = row.context if isinstance(row.context, dict) else None
            event = ScoredEvent(
                row.type, row.name, row.timestamp, row.properties or {}, context or {}
            )
            yield row.lead_id, row.id, event

    def forget_scores(self, lead_ids: Sequence[int], version: str) -> None:
        """A replay of a version replaces that version's ledger rows of these leads."""
        self.conn.execute(
            delete(ledger).where(
                ledger.c.lead_id.in_(list(lead_ids)), ledger.c.model_version == version
            )
        )

    def accounts_by_group(self, group_ids: Iterable[str]) -> dict[str, tuple[int, dict[str, Any]]]:
        wanted = sorted(set(group_ids))
        if not wanted:
            return {}
        query = select(accounts.c.group_id, accounts.c.id, accounts.c.traits).where(
            accounts.c.group_id.in_(wanted)
        )
        return {row.group_id: (row.id, row.traits or {}) for row in self.conn.execute(query)}


_SAVE_PG = text(
    """
    UPDATE leads SET
        traits = t.traits, email = t.email, phone = t.phone, account_id = t.account_id,
        first_seen_at = t.first_seen_at, last_seen_at = t.last_seen_at,
        first_touch = t.first_touch, first_source_id = t.first_source_id,
        stage = t.stage, version = t.version, score_state = t.score_state,
        fit_score = t.fit_score, fit_grade = t.fit_grade, engagement_score = t.engagement_score,
        p_convert = t.p_convert, scored_at = t.scored_at, model_version = t.model_version,
        mql_at = t.mql_at,
        sla_due_at = t.sla_due_at, next_review_at = t.next_review_at, updated_at = :at
    FROM json_to_recordset(CAST(:rows AS json)) AS t(
        b_id bigint, traits jsonb, email text, phone text, account_id bigint,
        first_seen_at timestamptz, last_seen_at timestamptz, first_touch jsonb,
        first_source_id bigint, stage text, version int, score_state jsonb, fit_score float8,
        fit_grade text, engagement_score float8, p_convert float8, scored_at timestamptz,
        model_version text,
        mql_at timestamptz, sla_due_at timestamptz, next_review_at timestamptz
    )
    WHERE leads.id = t.b_id
    """
)

_LEDGER_PG = text(
    """
    INSERT INTO score_ledger
        (lead_id, event_id, model_version, rule_id, points, counted, reason, timestamp)
    SELECT lead_id, event_id, model_version, rule_id, points, counted, reason, timestamp
    FROM json_to_recordset(CAST(:rows AS json)) AS r(
        lead_id bigint, event_id bigint, model_version text, rule_id text, points float8,
        counted boolean, reason text, timestamp timestamptz
    )
    ON CONFLICT (event_id, rule_id, model_version) DO NOTHING
    """
)
