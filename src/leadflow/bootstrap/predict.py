"""Predictive scoring: training, stored models, live probabilities."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leadflow.adapters.db.leads import SqlLeadRepository
from leadflow.adapters.db.predict import SqlPredictRepository
from leadflow.adapters.db.predict import reading as predict_reading
from leadflow.adapters.db.rescore import SqlRescoreRepository
from leadflow.bootstrap.scoring import Scoring
from leadflow.domain.errors import (
    NotFound,
    ValidationError,
)
from leadflow.services import leads as lead_service
from leadflow.services import predict_live
from leadflow.services import rescore as rescore_service
from leadflow.services.predict_live import LivePredictor
from leadflow.services.predict_model import ModelFile
from leadflow.services.predict_store import StoreTrainOptions, train_from_store
from leadflow.services.predict_train import Progress as TrainProgress
from leadflow.services.qualify import Qualifier


class Predict(Scoring):
    """Predictive scoring: training, stored models, live probabilities."""

    # predictive scoring -----------------------------------------------------------------
    predictor_error: str | None = None  # why the active model could not be loaded

    def _load_predictor(self) -> None:
        """Load the active conversion model once; the qualifier sets p_convert with it. A
        model this version cannot read is left inactive, with the reason kept."""
        self.predictor_error = None
        with self.engine.connect() as conn:
            text = SqlPredictRepository(conn).model_text()
        predictor = None
        if text is not None:
            try:
                model = ModelFile.from_text(text, "the active model")
                predictor = LivePredictor(model, self.model.rules)
            except ValidationError as exc:
                self.predictor_error = exc.message
        self.qualifier = Qualifier(self.model, predictor)

    def train_model(
        self, options: StoreTrainOptions, progress: TrainProgress | None = None
    ) -> ModelFile:
        """Train a conversion model from the store's leads and store it (not activated)."""
        model = train_from_store(
            lambda: predict_reading(self.engine), self.model, options, progress
        )
        self.save_predictive_model(model)
        return model

    def save_predictive_model(self, model: ModelFile) -> None:
        with self.transaction() as conn:
            SqlPredictRepository(conn).save_model(model, self.clock.now())

    def predictive_models(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return SqlPredictRepository(conn).models()

    def predictive_model(self, version: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            found = SqlPredictRepository(conn).model_summary(version)
        if found is None:
            raise NotFound(f"no predictive model {version!r} (leadflow model list)")
        return found

    def predictive_model_file(self, version: str | None = None) -> ModelFile:
        """A stored model (the active one by default), ready to score or report on."""
        with self.engine.connect() as conn:
            text = SqlPredictRepository(conn).model_text(version)
        if text is None:
            raise NotFound(
                f"no predictive model {version!r} (leadflow model list)"
                if version
                else "no active predictive model (leadflow model activate VERSION)"
            )
        return ModelFile.from_text(text, f"model {version or 'active'}")

    def activate_model(
        self, version: str | None, progress: Callable[[int, int], None] | None = None
    ) -> int:
        """Make a stored model the live one (None: none) and refresh every lead's p_convert
        with it; returns the number of leads refreshed."""
        if version is not None:
            self.predictive_model(version)
        with self.transaction() as conn:
            SqlPredictRepository(conn).activate(version)
        self._load_predictor()
        return self.refresh_predictions(progress)

    def refresh_predictions(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild every lead's feature state from its events and its p_convert."""
        with self.engine.connect() as conn:
            chunks = list(rescore_service.chunks_of_leads(SqlRescoreRepository(conn)))
            total = SqlRescoreRepository(conn).count_leads()
        done = 0
        for ids in chunks:
            with self.transaction() as conn:
                predict_live.refresh_chunk(
                    SqlPredictRepository(conn), self.qualifier.predictor, ids, self.clock.now()
                )
            done += len(ids)
            if progress is not None:
                progress(done, total)
        return done

    def prediction(self, lead_id: int) -> dict[str, Any]:
        """The lead's conversion probability now and the factors pushing it up or down."""
        predictor = self.qualifier.predictor
        with self.engine.connect() as conn:
            live = lead_service.get_lead(SqlLeadRepository(conn), lead_id).id
            record = SqlPredictRepository(conn).current(live)
        if record is None:
            raise NotFound(f"no lead with id {lead_id}")
        if predictor is None:
            reason = self.predictor_error or "no active model (leadflow model activate)"
            return {"lead_id": live, "p_convert": None, "factors": [], "reason": reason}
        found = predictor.explain(record, self.clock.now())
        if found is None:
            return {"lead_id": live, "p_convert": None, "factors": [],
                    "reason": "no feature state yet (leadflow model refresh)"}  # fmt: skip
        return {"lead_id": live, **found}
