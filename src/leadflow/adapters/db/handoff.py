"""What the handoff reads (a lead's facts for the payload, the leads to export) and the sales
reps with their assignments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from leadflow.adapters.db.engine import insert_ignore
from leadflow.adapters.db.explain import SqlExplainRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.tables import (
    accounts,
    events,
    lead_assignments,
    leads,
    sales_reps,
    stage_changes,
)
from leadflow.services import explain as explain_service
from leadflow.services.assignment import OPEN_STAGES, Assignment, Rep, RepLoad, RepSpec, regions
from leadflow.services.handoff import HandoffFacts, touch_of
from leadflow.services.models import ScoringModel


def _rep(row: Any) -> Rep:
    return Rep(row.id, row.name, row.email, tuple(row.territories or ()), row.capacity, row.active)


class SqlAssignmentRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def sync_reps(self, reps: Sequence[RepSpec]) -> None:
        """The config's reps, by name; reps no longer listed are kept, inactive."""
        existing = {row.name: _rep(row) for row in self.conn.execute(select(sales_reps))}
        for spec in reps:
            found = existing.get(spec.name)
            wanted = Rep(
                found.id if found else 0,
                spec.name,
                spec.email,
                tuple(spec.territories),
                spec.capacity,
                spec.active,
            )
            values = wanted.to_json()
            del values["id"], values["name"]
            if found is None:
                insert = insert_ignore(self.conn, sales_reps, ["name"])
                self.conn.execute(insert.values(name=spec.name, **values))
            elif found != wanted:
                self.conn.execute(
                    update(sales_reps).where(sales_reps.c.id == found.id).values(values)
                )
        listed = {spec.name for spec in reps}
        gone = [rep.id for rep in existing.values() if rep.active and rep.name not in listed]
        if gone:
            self.conn.execute(
                update(sales_reps).where(sales_reps.c.id.in_(gone)).values(active=False)
            )

    def reps(self) -> list[Rep]:
        return [
            _rep(row) for row in self.conn.execute(select(sales_reps).order_by(sales_reps.c.id))
        ]

    def loads(self, lock: bool) -> list[RepLoad]:
        """Every rep, in config order, with their open leads and last assignment time."""
        query = select(sales_reps).order_by(sales_reps.c.id)
        if lock and self.pg:  # one assignment at a time: the turn is read, then taken
            query = query.with_for_update()
        reps = [_rep(row) for row in self.conn.execute(query)]
        last: dict[int, datetime] = dict(
            self.conn.execute(
                select(
                    lead_assignments.c.rep_id, func.max(lead_assignments.c.assigned_at)
                ).group_by(lead_assignments.c.rep_id)
            ).all()
        )
        open_leads: dict[int, int] = dict(
            self.conn.execute(
                select(lead_assignments.c.rep_id, func.count())
                .join(leads, leads.c.id == lead_assignments.c.lead_id)
                .where(leads.c.stage.in_(OPEN_STAGES))
                .group_by(lead_assignments.c.rep_id)
            ).all()
        )
        return [RepLoad(rep, int(open_leads.get(rep.id, 0)), last.get(rep.id)) for rep in reps]

    def assignment_of(self, lead_id: int) -> Assignment | None:
        row = self.conn.execute(
            select(lead_assignments, sales_reps)
            .join(sales_reps, sales_reps.c.id == lead_assignments.c.rep_id)
            .where(lead_assignments.c.lead_id == lead_id)
        ).first()
        if row is None:
            return None
        rep = Rep(
            row.rep_id, row.name, row.email, tuple(row.territories or ()), row.capacity, row.active
        )
        return Assignment(lead_id, rep, row.rule, row.assigned_at)

    def save(self, lead_id: int, rep_id: int, rule: str, at: datetime) -> None:
        values = {"rep_id": rep_id, "rule": rule, "assigned_at": at}
        done = self.conn.execute(
            update(lead_assignments).where(lead_assignments.c.lead_id == lead_id).values(values)
        )
        if not done.rowcount:
            self.conn.execute(lead_assignments.insert().values(lead_id=lead_id, **values))

    def regions_of(self, lead_id: int) -> set[str] | None:
        row = self.conn.execute(
            select(leads.c.traits, accounts.c.traits.label("account_traits"))
            .select_from(leads.outerjoin(accounts, accounts.c.id == leads.c.account_id))
            .where(leads.c.id == lead_id)
        ).first()
        if row is None:
            return None
        return regions(row.traits or {}, row.account_traits)


class SqlHandoffRepository:
    """Reads the facts of a handoff payload, in the caller's transaction."""

    def __init__(self, conn: Connection, model: ScoringModel, now: datetime) -> None:
        self.conn = conn
        self.model = model
        self.now = now

    def facts(self, lead_id: int, touches: int) -> HandoffFacts | None:
        lead_repo = SqlLeadRepository(self.conn)
        live = lead_repo.survivor_of(lead_id)
        lead = lead_repo.get(live) if live is not None else None
        if lead is None:
            return None
        explainer = SqlExplainRepository(self.conn)
        explained = explain_service.explain(explainer, self.model, lead.id, self.now)
        assignment = SqlAssignmentRepository(self.conn).assignment_of(lead.id)
        rep = None
        if assignment is not None:
            rep = {
                **assignment.rep.to_json(),
                "rule": assignment.rule,
                "assigned_at": assignment.assigned_at.isoformat(),
            }
        return HandoffFacts(
            lead=lead,
            explained=explained,
            history=explainer.history(lead.id),
            touches=self.touches(lead.id, touches),
            rep=rep,
        )

    def touches(self, lead_id: int, limit: int) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        query = (
            select(
                events.c.type, events.c.name, events.c.timestamp, events.c.properties, events.c.raw
            )
            .where(events.c.lead_id == lead_id, events.c.type.in_(("track", "page", "screen")))
            .order_by(events.c.timestamp.desc(), events.c.id.desc())
            .limit(limit)
        )
        return [
            touch_of(row.type, row.name, row.timestamp, row.properties or {}, row.raw)
            for row in self.conn.execute(query)
        ]

    def export_ids(
        self, stage: str, since: datetime | None, after: int | None, limit: int
    ) -> list[int]:
        """Leads now in ``stage`` (moved into it at or after ``since``), by id."""
        query = (
            select(leads.c.id)
            .where(leads.c.stage == stage, leads.c.merged_into.is_(None))
            .order_by(leads.c.id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(leads.c.id > after)
        if since is not None:
            moved = select(stage_changes.c.lead_id).where(
                stage_changes.c.to_stage == stage, stage_changes.c.at >= since
            )
            query = query.where(leads.c.id.in_(moved))
        return [int(i) for i in self.conn.scalars(query)]

    def count_in_stage(self, stage: str, since: datetime | None) -> int:
        query = select(func.count()).where(leads.c.stage == stage, leads.c.merged_into.is_(None))
        if since is not None:
            moved = select(stage_changes.c.lead_id).where(
                stage_changes.c.to_stage == stage, stage_changes.c.at >= since
            )
            query = query.where(leads.c.id.in_(moved))
        return int(self.conn.scalar(query) or 0)


def queue_ids(conn: Connection, rep: str | None, limit: int) -> list[tuple[int, str | None]]:
    """Live MQLs, best first: predicted probability, then engagement, then fit, then the
    oldest MQL; each with its rep's name (None when unassigned). ``rep``: only theirs."""
    query = (
        select(leads.c.id, sales_reps.c.name)
        .select_from(
            leads.outerjoin(lead_assignments, lead_assignments.c.lead_id == leads.c.id).outerjoin(
                sales_reps, sales_reps.c.id == lead_assignments.c.rep_id
            )
        )
        .where(leads.c.stage == "mql", leads.c.merged_into.is_(None))
        .order_by(
            leads.c.p_convert.desc().nulls_last(),
            leads.c.engagement_score.desc(),
            leads.c.fit_score.desc(),
            leads.c.mql_at,
            leads.c.id,
        )
        .limit(limit)
    )
    if rep is not None:
        query = query.where(sales_reps.c.name == rep)
    return [(row.id, row.name) for row in conn.execute(query)]
