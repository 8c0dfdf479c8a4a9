"""Scoring and the lifecycle: explanations, the sales step, rescoring, backtests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from leadflow.adapters.db.backtest import reading as backtest_reading
from leadflow.adapters.db.explain import SqlExplainRepository
from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.lifecycle import SqlLifecycleRepository
from leadflow.adapters.db.models import SqlModelRepository
from leadflow.adapters.db.rescore import SqlRescoreRepository
from leadflow.bootstrap.segments import Segments
from leadflow.domain.errors import (
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

    def rescore(self, progress: ProgressFn | None = None) -> RescoreReport:
        """Replay the event log under the live model version, in chunks of leads."""
        total = RescoreReport()
        with self.engine.connect() as conn:
            chunks = list(rescore_service.chunks_of_leads(SqlRescoreRepository(conn)))
        for ids in chunks:
            with self.transaction() as conn:
                done = rescore_service.rescore_chunk(
                    SqlRescoreRepository(conn), self.qualifier, ids, self.clock.now()
                )
                self.segment_tracker(conn).leads_changed(ids, self.clock.now())
            total.leads += done.leads
            total.events += done.events
            total.changes += done.changes
            if progress is not None:
                progress(done)
        return total

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
