"""Predictive models in the store, what training reads, and the feature-state refresh."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from leadflow.adapters.db.records import LeadRecords
from leadflow.adapters.db.tables import accounts, events, leads, predictive_models
from leadflow.adapters.db.tables import stage_changes as history
from leadflow.services.predict_model import ModelFile
from leadflow.services.predict_store import TrainingLead

SUMMARY = (
    predictive_models.c.version,
    predictive_models.c.kind,
    predictive_models.c.outcome,
    predictive_models.c.metrics,
    predictive_models.c.created_at,
    predictive_models.c.active,
)


def _summary(row: Any) -> dict[str, Any]:
    return {
        "version": row.version,
        "kind": row.kind,
        "outcome": row.outcome,
        "active": bool(row.active),
        "created_at": row.created_at.isoformat(),
        "metrics": row.metrics,
    }


class SqlPredictRepository(LeadRecords):
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    # models ----------------------------------------------------------------------------
    def save_model(self, model: ModelFile, at: datetime) -> None:
        """Store the model under its version (kept as it is when already stored)."""
        found = self.conn.scalar(
            select(predictive_models.c.version).where(predictive_models.c.version == model.version)
        )
        if found is not None:
            return
        self.conn.execute(
            predictive_models.insert().values(
                version=model.version,
                kind=model.kind,
                outcome=model.outcome,
                metrics=model.metrics,
                features=[f.to_json() for f in model.features],
                model=model.to_text(),
                created_at=at,
                active=False,
            )
        )

    def models(self) -> list[dict[str, Any]]:
        query = select(*SUMMARY).order_by(
            predictive_models.c.created_at, predictive_models.c.version
        )
        return [_summary(row) for row in self.conn.execute(query)]

    def model_summary(self, version: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            select(*SUMMARY, predictive_models.c.features).where(
                predictive_models.c.version == version
            )
        ).first()
        return None if row is None else _summary(row) | {"features": row.features}

    def model_text(self, version: str | None = None) -> str | None:
        """The stored model text of a version, or of the active model."""
        query = select(predictive_models.c.model)
        if version is None:
            query = query.where(predictive_models.c.active.is_(True))
        else:
            query = query.where(predictive_models.c.version == version)
        found: str | None = self.conn.scalar(query)
        return found

    def activate(self, version: str | None) -> None:
        """Make this version the active model (None: no active model)."""
        self.conn.execute(update(predictive_models).values(active=False))
        if version is not None:
            self.conn.execute(
                update(predictive_models)
                .where(predictive_models.c.version == version)
                .values(active=True)
            )

    # training --------------------------------------------------------------------------
    def data_end(self) -> datetime | None:
        found: datetime | None = self.conn.scalar(select(func.max(events.c.timestamp)))
        return found

    def lead_ids_after(self, after: int, limit: int) -> list[int]:
        query = (
            select(leads.c.id)
            .where(leads.c.id > after, leads.c.merged_into.is_(None))
            .order_by(leads.c.id)
            .limit(limit)
        )
        return list(self.conn.scalars(query))

    def count_leads(self) -> int:
        query = select(func.count()).where(leads.c.merged_into.is_(None))
        return int(self.conn.scalar(query) or 0)

    def training_leads(self, lead_ids: Sequence[int]) -> dict[int, TrainingLead]:
        account = (
            select(accounts.c.traits)
            .where(accounts.c.id == leads.c.account_id)
            .scalar_subquery()
            .label("account_traits")
        )
        query = select(leads.c.id, leads.c.traits, leads.c.email, account).where(
            leads.c.id.in_(list(lead_ids))
        )
        return {
            row.id: TrainingLead(row.id, row.traits or {}, row.account_traits or {}, row.email)
            for row in self.conn.execute(query)
        }

    def stage_reached(self, lead_ids: Sequence[int], stages: Sequence[str]) -> dict[int, datetime]:
        """When each lead first moved into one of the stages."""
        query = (
            select(history.c.lead_id, func.min(history.c.at))
            .where(history.c.lead_id.in_(list(lead_ids)), history.c.to_stage.in_(list(stages)))
            .group_by(history.c.lead_id)
        )
        return {lead_id: at for lead_id, at in self.conn.execute(query)}

    # the live state --------------------------------------------------------------------
    def save_predictions(self, rows: Sequence[tuple[int, dict[str, Any], float | None]]) -> None:
        """Write (lead id, score_state, p_convert) of leads whose state was rebuilt."""
        if not rows:
            return
        statement = (
            update(leads)
            .where(leads.c.id == bindparam("b_id"))
            .values(score_state=bindparam("b_state", type_=leads.c.score_state.type),
                    p_convert=bindparam("b_p"))
        )  # fmt: skip
        self.conn.execute(
            statement, [{"b_id": i, "b_state": state, "b_p": p} for i, state, p in rows]
        )


@contextmanager
def reading(engine: Engine) -> Iterator[SqlPredictRepository]:
    """A repository over one read transaction (training reads the store in chunks)."""
    with engine.connect() as conn:
        yield SqlPredictRepository(conn)
