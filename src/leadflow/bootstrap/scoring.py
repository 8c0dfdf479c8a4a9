"""Scoring and the lifecycle: explanations, the sales step, rescoring, backtests."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from leadflow.adapters.db.backtest import reading as backtest_reading
from leadflow.adapters.db.explain import SqlExplainRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.adapters.db.models import SqlModelRepository
from leadflow.adapters.db.rescore import SqlRescoreRepository
from leadflow.bootstrap.segments import Segments
from leadflow.config import Settings
from leadflow.domain.errors import (
    ConfigError,
    NotFound,
    ValidationError,
)
from leadflow.domain.lifecycle import StageChange
from leadflow.services import backtest as backtest_service
from leadflow.services import explain as explain_service
from leadflow.services import leads as lead_service
from leadflow.services import lifecycle as lifecycle_service
from leadflow.services import rescore as rescore_service
from leadflow.services.models import ScoringModel
from leadflow.services.rescore import ProgressFn, RescoreReport

_worker: Scoring | None = None  # in a rescore worker process: the store it opened


def _open_worker(settings: Settings, version: str) -> None:
    """A rescore worker process opens the store with the parent's settings; the model it
    loads must be the one the parent rebuilds with."""
    global _worker
    from leadflow.bootstrap import open_leadflow  # the full Leadflow, built in the child

    _worker = open_leadflow(settings, migrate_schema=False)
    if _worker.model.version != version:
        raise ConfigError(
            f"the scoring model changed during the rebuild ({version} became "
            f"{_worker.model.version}); run it again"
        )


def _rescore_in_worker(ids: list[int], at: datetime) -> RescoreReport:
    assert _worker is not None, "the worker process was not opened"
    return _worker.rescore_leads(ids, at)


class Scoring(Segments):
    """Scoring and the lifecycle: explanations, the sales step, rescoring, backtests."""

    # scoring and lifecycle -------------------------------------------------------------
    def explain(self, lead_id: int) -> dict[str, Any]:
        """Why the lead has its scores and stage: rules, events, fit, policy, history."""
        with self.engine.connect() as conn:
            live = lead_service.get_lead(SqlLeadRepository(conn), lead_id).id
            found = explain_service.explain(
                SqlExplainRepository(conn), self.model, live, self.clock.now(),
                self.qualifier.predictor,
            )  # fmt: skip
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
            change = lifecycle_service.decide(
                repo, self.model, self._live(conn, lead_id), decision, reason, actor, note,
                self.clock.now(),
            )  # fmt: skip
            self.segment_tracker(conn).leads_changed([change.lead_id], change.at)
            return change

    def move_stage(
        self, lead_id: int, stage: str, reason: str, actor: str = "user", note: str = ""
    ) -> StageChange:
        """Move a lead along the lifecycle (SAL -> SQL -> opportunity -> customer...)."""
        with self.transaction() as conn:
            repo = SqlLifecycleRepository(conn)
            change = lifecycle_service.move(
                repo, self.model, self._live(conn, lead_id), stage, reason, actor, note,
                self.clock.now(),
            )  # fmt: skip
            self.segment_tracker(conn).leads_changed([change.lead_id], change.at)
            return change

    def rescore(
        self,
        progress: ProgressFn | None = None,
        processes: int = 1,
        chunk: int = rescore_service.CHUNK,
    ) -> RescoreReport:
        """Replay the event log under the live model version, in chunks of ``chunk`` leads,
        each in its own transaction. ``processes`` > 1 (PostgreSQL) shares the chunks among
        that many worker processes: leads are independent, so each chunk lands on the same
        state whichever process rebuilds it."""
        if processes < 1:
            raise ValidationError(f"processes: {processes} is not a positive number")
        if chunk < 1:
            raise ValidationError(f"chunk: {chunk} is not a positive number")
        if processes > 1 and self.engine.dialect.name != "postgresql":
            raise ValidationError(
                f"processes: {processes} needs PostgreSQL; SQLite lets one writer work at a "
                "time, so rebuild with one process"
            )
        total = RescoreReport()
        with self.engine.connect() as conn:
            chunks = list(rescore_service.chunks_of_leads(SqlRescoreRepository(conn), chunk))

        def count(done: RescoreReport) -> None:
            total.add(done)
            if progress is not None:
                progress(done)

        if processes == 1 or len(chunks) < 2:
            for ids in chunks:
                count(self.rescore_leads(ids))
            return total
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            min(processes, len(chunks)), mp_context=context, initializer=_open_worker,
            initargs=(self.settings, self.model.version),
        ) as pool:  # fmt: skip
            now = self.clock.now()  # the workers' clock is the system's: one instant for all
            futures = [pool.submit(_rescore_in_worker, ids, now) for ids in chunks]
            for future in as_completed(futures):
                count(future.result())
        return total

    def rescore_leads(self, ids: list[int], at: datetime | None = None) -> RescoreReport:
        """Rebuild these leads' scores from their events and apply the policy as of ``at``
        (now by default), in one transaction (retried on a conflict)."""

        def chunk(conn: Connection) -> RescoreReport:
            now = at or self.clock.now()
            done = rescore_service.rescore_chunk(
                SqlRescoreRepository(conn), self.qualifier, ids, now
            )
            self.segment_tracker(conn).leads_changed(ids, now)
            return done

        return self._retrying(chunk)

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
