"""Journeys, their runs and logs, coupons, and the facts a run's decisions read, in bulk."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    String,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from leadflow.adapters.db.engine import chunks, insert_ignore
from leadflow.adapters.db.tables import (
    coupons,
    deliveries,
    journey_log,
    journey_runs,
    journeys,
    leads,
    outbox,
    segment_members,
    segments,
    stage_changes,
)
from leadflow.ports import OutboxRow

_RUN_MOVES = ("status", "step", "due_at", "state", "finished_at", "exit_reason", "updated_at")
_UPDATE_RUNS_PG = text(
    """
    UPDATE journey_runs AS r SET
        status = v.status, step = v.step, due_at = v.due_at, state = v.state,
        finished_at = v.finished_at, exit_reason = v.exit_reason, updated_at = v.updated_at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(
        id bigint, status text, step text, due_at timestamptz, state jsonb,
        finished_at timestamptz, exit_reason text, updated_at timestamptz
    )
    WHERE r.id = v.id
    """
)

_START_RUNS_PG = text(
    """
    INSERT INTO journey_runs (journey, lead_id, entry, status, step, due_at, state, version,
        entered_at, updated_at, finished_at, exit_reason)
    SELECT journey, lead_id, entry, status, step, due_at, state, version, entered_at,
        updated_at, finished_at, exit_reason
    FROM json_to_recordset(CAST(:rows AS json)) AS v(
        journey text, lead_id bigint, entry int, status text, step text, due_at timestamptz,
        state jsonb, version text, entered_at timestamptz, updated_at timestamptz,
        finished_at timestamptz, exit_reason text
    )
    ON CONFLICT (journey, lead_id, entry) DO NOTHING
    """
)
_TRAITS_PG = text(
    """
    UPDATE leads AS l SET traits = l.traits || v.patch, updated_at = v.at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(id bigint, patch jsonb, at timestamptz)
    WHERE l.id = v.id
    """
)
_COUPONS_PG = text(
    """
    INSERT INTO coupons (offer, lead_id, code, expires_at, created_at)
    SELECT offer, lead_id, code, expires_at, created_at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(
        offer text, lead_id bigint, code text, expires_at timestamptz, created_at timestamptz
    )
    ON CONFLICT (offer, lead_id) DO UPDATE SET offer = EXCLUDED.offer
    RETURNING id, offer, code, lead_id, created_at, expires_at, redeemed_at
    """
)
_LOG_PG = text(
    """
    INSERT INTO journey_log (run_id, lead_id, journey, step, outcome, detail, at)
    SELECT run_id, lead_id, journey, step, outcome, detail, at
    FROM json_to_recordset(CAST(:rows AS json)) AS v(
        run_id bigint, lead_id bigint, journey text, step text, outcome text, detail text,
        at timestamptz
    )
    """
)


def _json(value: object) -> str:
    """JSON text for a json_to_recordset parameter (datetimes in ISO 8601)."""
    return orjson.dumps(value, default=str).decode()


@dataclass(slots=True)
class RunRow:
    id: int
    journey: str
    lead_id: int
    entry: int
    status: str
    step: str | None
    due_at: datetime | None
    state: dict[str, Any]
    version: str
    entered_at: datetime
    finished_at: datetime | None
    exit_reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "journey": self.journey,
            "lead_id": self.lead_id,
            "entry": self.entry,
            "status": self.status,
            "step": self.step,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "entered_at": self.entered_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "exit_reason": self.exit_reason,
            "state": self.state,
        }


@dataclass(slots=True)
class LeadBrief:
    id: int
    stage: str
    traits: dict[str, Any]
    email: str | None = None
    phone: str | None = None
    merged_into: int | None = None


def _run(row: Any) -> RunRow:
    return RunRow(
        id=row.id,
        journey=row.journey,
        lead_id=row.lead_id,
        entry=row.entry,
        status=row.status,
        step=row.step,
        due_at=row.due_at,
        state=dict(row.state or {}),
        version=row.version,
        entered_at=row.entered_at,
        finished_at=row.finished_at,
        exit_reason=row.exit_reason,
    )


class SqlJourneyRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    # definitions -------------------------------------------------------------------------
    def save(
        self, name: str, version: str, spec: dict[str, Any], origin: str, at: datetime
    ) -> bool:
        """Create or replace a definition; False when it was already this version."""
        row = self.conn.execute(select(journeys.c.version).where(journeys.c.name == name)).first()
        values = {"version": version, "spec": spec, "origin": origin, "updated_at": at}
        if row is None:
            self.conn.execute(
                insert(journeys).values(name=name, enabled=True, created_at=at, **values)
            )
            return True
        if row.version == version:
            return False
        self.conn.execute(update(journeys).where(journeys.c.name == name).values(**values))
        return True

    def set_enabled(self, name: str, enabled: bool, at: datetime) -> bool:
        result = self.conn.execute(
            update(journeys).where(journeys.c.name == name).values(enabled=enabled, updated_at=at)
        )
        return bool(result.rowcount)

    def delete(self, name: str) -> bool:
        return bool(self.conn.execute(journeys.delete().where(journeys.c.name == name)).rowcount)

    def definitions(self) -> list[tuple[str, dict[str, Any], bool, str, str]]:
        """(name, spec, enabled, origin, version) of every journey."""
        j = journeys.c
        rows = self.conn.execute(
            select(j.name, j.spec, j.enabled, j.origin, j.version).order_by(j.name)
        )
        return [(r.name, dict(r.spec), bool(r.enabled), r.origin, r.version) for r in rows]

    def segment_names(self) -> list[str]:
        return list(self.conn.scalars(select(segments.c.name).order_by(segments.c.name)))

    # runs --------------------------------------------------------------------------------
    def run_history(
        self, journey: str, lead_ids: Iterable[int]
    ) -> dict[int, tuple[bool, datetime | None, int]]:
        """Per lead: (an active run exists, when the last run finished, highest entry)."""
        ids = sorted(set(lead_ids))
        found: dict[int, tuple[bool, datetime | None, int]] = {}
        for chunk in chunks(ids):
            query = (
                select(
                    journey_runs.c.lead_id,
                    func.sum(case((journey_runs.c.status == "active", 1), else_=0)),
                    func.max(journey_runs.c.finished_at),
                    func.max(journey_runs.c.entry),
                )
                .where(journey_runs.c.journey == journey, journey_runs.c.lead_id.in_(chunk))
                .group_by(journey_runs.c.lead_id)
            )
            for lead, active, finished, entry in self.conn.execute(query):
                found[lead] = (bool(active), finished, int(entry or 0))
        return found

    def date_candidates(
        self, journey: str, trait: str, prefixes: Sequence[str], since: datetime, limit: int
    ) -> list[int]:
        """Live leads whose trait starts with one of the ISO dates and that entered no run of
        the journey since ``since``; bound parameters only, the trait name included."""
        value: ColumnElement[Any]
        if self.pg:
            value = leads.c.traits.op("->>", return_type=String())(bindparam("trait", trait))
        else:
            value = func.json_extract(
                leads.c.traits, bindparam("path", f'$."{trait}"'), type_=String()
            )
        matches = [value.like(f"{p}%") for p in prefixes]
        recent = (
            select(journey_runs.c.id)
            .where(
                journey_runs.c.journey == journey,
                journey_runs.c.lead_id == leads.c.id,
                journey_runs.c.entered_at >= since,
            )
            .exists()
        )
        query = (
            select(leads.c.id)
            .where(leads.c.merged_into.is_(None), or_(*matches), ~recent)
            .order_by(leads.c.id)
            .limit(limit)
        )
        return list(self.conn.scalars(query))

    def start_runs(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert new runs; a run that already exists (same journey, lead, entry) is skipped."""
        if not rows:
            return 0
        if self.pg:
            payload = _json(list(rows))
            return max(self.conn.execute(_START_RUNS_PG, {"rows": payload}).rowcount, 0)
        statement = insert_ignore(self.conn, journey_runs, ["journey", "lead_id", "entry"])
        result = self.conn.execute(statement, list(rows))
        return max(result.rowcount, 0)

    def due_runs(self, now: datetime, limit: int) -> list[RunRow]:
        query = (
            select(journey_runs)
            .where(journey_runs.c.status == "active", journey_runs.c.due_at <= now)
            .order_by(journey_runs.c.due_at, journey_runs.c.id)
            .limit(limit)
        )
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return [_run(row) for row in self.conn.execute(query)]

    def runs(
        self,
        journey: str | None = None,
        lead_id: int | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[RunRow]:
        query = select(journey_runs).order_by(journey_runs.c.id.desc()).limit(limit)
        if journey is not None:
            query = query.where(journey_runs.c.journey == journey)
        if lead_id is not None:
            query = query.where(journey_runs.c.lead_id == lead_id)
        if status is not None:
            query = query.where(journey_runs.c.status == status)
        return [_run(row) for row in self.conn.execute(query)]

    def active_runs_of(self, lead_ids: Iterable[int]) -> list[RunRow]:
        ids = sorted(set(lead_ids))
        if not ids:
            return []
        query = select(journey_runs).where(
            journey_runs.c.status == "active", journey_runs.c.lead_id.in_(ids)
        )
        if self.pg:
            query = query.with_for_update(skip_locked=True)
        return [_run(row) for row in self.conn.execute(query)]

    def update_runs(self, rows: Sequence[dict[str, Any]]) -> None:
        """Bulk update of runs: each dict has ``run_id`` and every column of ``_RUN_MOVES``."""
        if not rows:
            return
        if self.pg:
            payload = _json([{**r, "id": r["run_id"]} for r in rows])
            self.conn.execute(_UPDATE_RUNS_PG, {"rows": payload})
            return
        values: dict[str, Any] = {key: bindparam(f"v_{key}") for key in _RUN_MOVES}
        statement = update(journey_runs).where(journey_runs.c.id == bindparam("v_run_id"))
        self.conn.execute(
            statement.values(values), [{f"v_{k}": v for k, v in row.items()} for row in rows]
        )

    def resume(self, run_ids: Iterable[int], at: datetime) -> None:
        """Make runs that waited for a hand-off due now."""
        ids = sorted(set(run_ids))
        if ids:
            self.conn.execute(
                update(journey_runs)
                .where(journey_runs.c.id.in_(ids), journey_runs.c.status == "active")
                .values(due_at=at, updated_at=at)
            )

    def log(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.pg:
            self.conn.execute(_LOG_PG, {"rows": _json(list(rows))})
        else:
            self.conn.execute(insert(journey_log), list(rows))

    def logs_of(self, run_id: int) -> list[dict[str, Any]]:
        query = select(journey_log).where(journey_log.c.run_id == run_id).order_by(journey_log.c.id)
        return [
            {"step": r.step, "outcome": r.outcome, "detail": r.detail, "at": r.at.isoformat()}
            for r in self.conn.execute(query)
        ]

    # facts for decisions -----------------------------------------------------------------
    def leads(self, lead_ids: Iterable[int]) -> dict[int, LeadBrief]:
        ids = sorted(set(lead_ids))
        found: dict[int, LeadBrief] = {}
        for chunk in chunks(ids):
            query = select(
                leads.c.id,
                leads.c.stage,
                leads.c.traits,
                leads.c.email,
                leads.c.phone,
                leads.c.merged_into,
            ).where(leads.c.id.in_(chunk))
            for row in self.conn.execute(query):
                found[row.id] = LeadBrief(
                    row.id, row.stage, dict(row.traits or {}), row.email, row.phone, row.merged_into
                )
        return found

    def memberships(self, lead_ids: Iterable[int]) -> dict[int, set[str]]:
        ids = sorted(set(lead_ids))
        found: dict[int, set[str]] = {}
        for chunk in chunks(ids):
            query = select(segment_members.c.lead_id, segment_members.c.segment).where(
                segment_members.c.lead_id.in_(chunk)
            )
            for lead, segment in self.conn.execute(query):
                found.setdefault(lead, set()).add(segment)
        return found

    def engagement(self, run_ids: Iterable[int]) -> dict[int, dict[str, set[str]]]:
        """Per run, per step: which of opened/clicked/replied its deliveries saw."""
        ids = sorted(set(run_ids))
        found: dict[int, dict[str, set[str]]] = {}
        for chunk in chunks(ids):
            query = select(
                deliveries.c.run_id,
                deliveries.c.step,
                deliveries.c.opened_at,
                deliveries.c.clicked_at,
                deliveries.c.replied_at,
            ).where(deliveries.c.run_id.in_(chunk))
            for run_id, step, opened, clicked, replied in self.conn.execute(query):
                seen = found.setdefault(run_id, {}).setdefault(step, set())
                for name, when in (("opened", opened), ("clicked", clicked), ("replied", replied)):
                    if when is not None:
                        seen.add(name)
                if clicked is not None:  # a click implies the message was opened
                    seen.add("opened")
        return found

    def set_traits(self, changes: Mapping[int, dict[str, Any]], at: datetime) -> None:
        """Merge each lead's new traits into its traits, in one statement per batch."""
        if not changes:
            return
        if self.pg:
            rows_pg = [
                {"id": lead, "patch": traits, "at": at.isoformat()}
                for lead, traits in sorted(changes.items())
            ]
            self.conn.execute(_TRAITS_PG, {"rows": _json(rows_pg)})
            return
        statement = text(
            "UPDATE leads SET traits = json_patch(traits, :patch), updated_at = :at WHERE id = :id"
        )
        stamp = at.astimezone(UTC).replace(tzinfo=None)  # SQLite keeps naive UTC
        rows = [
            {"id": lead, "patch": json.dumps(traits, default=str), "at": stamp}
            for lead, traits in sorted(changes.items())
        ]
        self.conn.execute(statement, rows)

    def add_outbox(self, rows: Sequence[OutboxRow]) -> None:
        if rows:
            self.conn.execute(
                insert(outbox),
                [
                    {
                        "topic": r.topic,
                        "lead_id": r.lead_id,
                        "payload": r.payload,
                        "created_at": r.created_at,
                    }
                    for r in rows
                ],
            )

    # coupons -----------------------------------------------------------------------------
    def coupon_of(self, offer: str, lead_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(
            select(coupons).where(and_(coupons.c.offer == offer, coupons.c.lead_id == lead_id))
        ).first()
        return _coupon(row) if row is not None else None

    def issue_coupons(
        self, wanted: Sequence[tuple[str, int, str, datetime | None]], at: datetime
    ) -> dict[tuple[str, int], dict[str, Any]]:
        """Each (offer, lead)'s coupon, issued now with the given code unless the lead has
        one for the offer already; keyed by (offer, lead id)."""
        if not wanted:
            return {}
        rows = [
            {"offer": o, "lead_id": lead, "code": code, "expires_at": exp, "created_at": at}
            for o, lead, code, exp in wanted
        ]
        found: dict[tuple[str, int], dict[str, Any]] = {}
        if self.pg:  # the upsert returns the new rows and the ones that were there
            result = self.conn.execute(_COUPONS_PG, {"rows": _json(rows)})
            for row in result:
                found[(row.offer, row.lead_id)] = _coupon(row)
            return found
        statement = insert_ignore(self.conn, coupons, ["offer", "lead_id"])
        self.conn.execute(statement, rows)
        offers = sorted({o for o, _lead, _c, _e in wanted})
        leads_wanted = sorted({lead for _o, lead, _c, _e in wanted})
        for chunk in chunks(leads_wanted):
            query = select(coupons).where(
                coupons.c.lead_id.in_(chunk),
                coupons.c.offer.in_(offers),
            )
            for row in self.conn.execute(query):
                found[(row.offer, row.lead_id)] = _coupon(row)
        return found

    def coupon_by_code(self, code: str, lock: bool = False) -> dict[str, Any] | None:
        query = select(coupons).where(coupons.c.code == code)
        if lock and self.pg:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return _coupon(row) if row is not None else None

    def redeem(self, coupon_id: int, at: datetime) -> bool:
        result = self.conn.execute(
            update(coupons)
            .where(coupons.c.id == coupon_id, coupons.c.redeemed_at.is_(None))
            .values(redeemed_at=at)
        )
        return bool(result.rowcount)

    def coupons_of(self, lead_id: int) -> list[dict[str, Any]]:
        query = select(coupons).where(coupons.c.lead_id == lead_id).order_by(coupons.c.id)
        return [_coupon(row) for row in self.conn.execute(query)]

    # reports -----------------------------------------------------------------------------
    def step_report(self, journey: str) -> list[dict[str, Any]]:
        """Per step and variant: deliveries by status, engagement counts, unsubscribes, and
        conversions: leads that reached SQL or beyond after the message was sent."""
        d = deliveries.c
        converted = (
            select(stage_changes.c.id)
            .where(
                stage_changes.c.lead_id == d.lead_id,
                stage_changes.c.to_stage.in_(("sql", "opportunity", "customer")),
                stage_changes.c.at >= d.sent_at,
            )
            .exists()
        )
        query = (
            select(
                d.step,
                d.variant,
                func.count().label("total"),
                func.count().filter(d.status.in_(("sent", "delivered"))).label("sent"),
                func.count().filter(d.status == "delivered").label("delivered"),
                func.count().filter(d.status == "skipped").label("skipped"),
                func.count().filter(d.status == "failed").label("failed"),
                func.count().filter(d.status == "bounced").label("bounced"),
                func.count(d.opened_at).label("opened"),
                func.count(d.clicked_at).label("clicked"),
                func.count(d.replied_at).label("replied"),
                func.count(d.unsubscribed_at).label("unsubscribed"),
                func.count().filter(converted).label("converted"),
            )
            .where(d.journey == journey)
            .group_by(d.step, d.variant)
            .order_by(d.step, d.variant)
        )
        return [dict(row._mapping) for row in self.conn.execute(query)]

    def run_counts(self, journey: str) -> dict[str, int]:
        query = (
            select(journey_runs.c.status, func.count())
            .where(journey_runs.c.journey == journey)
            .group_by(journey_runs.c.status)
        )
        return {status: int(count) for status, count in self.conn.execute(query)}

    def exit_reasons(self, journey: str) -> dict[str, int]:
        query = (
            select(journey_runs.c.exit_reason, func.count())
            .where(journey_runs.c.journey == journey, journey_runs.c.status == "done")
            .group_by(journey_runs.c.exit_reason)
        )
        return {reason: int(count) for reason, count in self.conn.execute(query)}

    def sent_since(self, lead_ids: Iterable[int], since: datetime) -> dict[int, list[datetime]]:
        """Send times of messages handed off to each lead since ``since`` (frequency caps)."""
        ids = sorted(set(lead_ids))
        found: dict[int, list[datetime]] = {}
        if not ids:
            return found
        query = select(deliveries.c.lead_id, deliveries.c.sent_at).where(
            deliveries.c.lead_id.in_(ids),
            deliveries.c.sent_at >= since,
            deliveries.c.status.in_(("sent", "delivered", "bounced")),
        )
        for lead, sent_at in self.conn.execute(query):
            found.setdefault(lead, []).append(sent_at)
        return found


def _coupon(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "offer": row.offer,
        "code": row.code,
        "lead_id": row.lead_id,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "redeemed_at": row.redeemed_at.isoformat() if row.redeemed_at else None,
    }
