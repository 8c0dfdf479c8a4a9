"""A trained conversion model as a file: a JSON text with a format version, holding the
LightGBM model string, the calibrator and the encoding of every feature, and no pickle.

:class:`Predictor` scores rows with it: a batch (a CSV) or one lead at a time (the live
path: a 1-row numpy array through the LightGBM booster, no pandas), and explains a score
with the features pushing it up or down (LightGBM's ``pred_contrib``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import orjson
import pandas as pd

from leadflow.domain.errors import ValidationError

FORMAT = "leadflow-predictive-model"
FORMAT_VERSION = 1
PLACEHOLDERS = frozenset(
    {"", "na", "n/a", "nan", "null", "none", "unknown", "select", "-", "?", "#n/a", "missing"}
)
MISSING = "(missing)"
BEHAVIOUR_COUNTS = ("count ", "decayed ")  # absent from a lead's state means none yet
TIE_BREAK = 1e-6
FACTORS = 5
BATCH = 1000  # rows from which LightGBM predicts on every core


class ModelFileError(ValidationError):
    """A model file that cannot be used, with the reason and what to do."""


def as_text(value: Any) -> str:
    """A stored value as the text a CSV would hold (training and scoring agree on it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Feature:
    name: str
    type: str  # "numeric" or "categorical"
    categories: tuple[str, ...] = ()
    fill: float | None = None  # the value of a feature the row does not have

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.categories:
            found["categories"] = list(self.categories)
        if self.fill is not None:
            found["fill"] = self.fill
        return found

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Feature:
        fill = data.get("fill")
        return cls(
            str(data["name"]),
            str(data["type"]),
            tuple(data.get("categories") or ()),
            float(fill) if fill is not None else None,
        )


@dataclass(frozen=True)
class Calibration:
    """Raw booster probabilities -> calibrated ones: isotonic steps or a sigmoid of the logit."""

    method: str
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    coef: float = 1.0
    intercept: float = 0.0

    def apply(self, raw: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self.method == "isotonic":
            stepped = np.interp(raw, self.x, self.y)
            # isotonic steps tie many scores: a vanishing share of the raw score keeps the order
            out: np.ndarray[Any, Any] = stepped * (1 - TIE_BREAK) + TIE_BREAK * raw
            return out
        clipped = np.clip(raw, 1e-6, 1 - 1e-6)
        logit = np.log(clipped / (1 - clipped))
        sigmoid: np.ndarray[Any, Any] = 1 / (1 + np.exp(-(self.coef * logit + self.intercept)))
        return sigmoid

    def to_json(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}
        return {"method": "sigmoid", "coef": self.coef, "intercept": self.intercept}

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Calibration:
        if data["method"] == "isotonic":
            return cls("isotonic", tuple(map(float, data["x"])), tuple(map(float, data["y"])))
        return cls("sigmoid", coef=float(data["coef"]), intercept=float(data["intercept"]))


@dataclass
class ModelFile:
    """Everything needed to score new rows, and how the model was made and how it did."""

    kind: str
    outcome: str
    positive_label: str
    features: list[Feature]
    calibration: Calibration
    booster: str
    metrics: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""

    @property
    def version(self) -> str:
        content = orjson.dumps(
            [self.kind, self.outcome, [f.to_json() for f in self.features],
             self.calibration.to_json(), self.booster],
        )  # fmt: skip
        return hashlib.sha256(content).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "kind": self.kind,
            "outcome": self.outcome,
            "positive_label": self.positive_label,
            "created_at": self.created_at,
            "trained_on": self.trained_on,
            "metrics": self.metrics,
            "features": [f.to_json() for f in self.features],
            "calibration": self.calibration.to_json(),
            "booster": self.booster,
        }

    def to_text(self) -> str:
        return orjson.dumps(self.to_json()).decode()

    @classmethod
    def from_json(cls, data: Any, where: str = "the model") -> ModelFile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelFileError(f"{where} is not a leadflow model (no format {FORMAT!r})")
        found = data.get("format_version")
        if found != FORMAT_VERSION:
            age = "an older" if isinstance(found, int) and found < FORMAT_VERSION else "another"
            raise ModelFileError(
                f"{where} was written by {age} version of leadflow (model format {found!r}; "
                f"this version reads format {FORMAT_VERSION}): train it again with "
                "`leadflow model train`"
            )
        try:
            return cls(
                kind=str(data["kind"]),
                outcome=str(data["outcome"]),
                positive_label=str(data["positive_label"]),
                features=[Feature.of(f) for f in data["features"]],
                calibration=Calibration.of(data["calibration"]),
                booster=str(data["booster"]),
                metrics=dict(data.get("metrics") or {}),
                trained_on=dict(data.get("trained_on") or {}),
                created_at=str(data.get("created_at") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{where} is damaged: {type(exc).__name__} {exc}") from None

    @classmethod
    def from_text(cls, text: str | bytes, where: str = "the model") -> ModelFile:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise ModelFileError(f"{where} is not a leadflow model (not JSON)") from None
        return cls.from_json(data, where)


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float(value) if isinstance(value, bool) else math.nan
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.lower() in PLACEHOLDERS:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return math.nan


class Predictor:
    """Scores rows (mappings of feature name to value) with one :class:`ModelFile`."""

    def __init__(self, model: ModelFile) -> None:
        self.model = model
        self.version = model.version
        try:
            self.booster = lgb.Booster(model_str=model.booster)
        except lgb.basic.LightGBMError as exc:
            raise ModelFileError(f"the model's booster cannot be read: {exc}") from None
        self.features = model.features
        self.codes = [{c: float(i) for i, c in enumerate(f.categories)} for f in model.features]

    def _value(self, index: int, feature: Feature, value: Any) -> float:
        if value is None and feature.fill is not None:
            return feature.fill
        if feature.type == "numeric":
            return _number(value)
        text = as_text(value).strip()
        if text.lower() in PLACEHOLDERS:
            text = MISSING
        return self.codes[index].get(text, math.nan)

    def encode(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray[Any, Any]:
        matrix = np.empty((len(rows), len(self.features)), dtype=np.float64)
        for r, row in enumerate(rows):
            for i, feature in enumerate(self.features):
                matrix[r, i] = self._value(i, feature, row.get(feature.name))
        return matrix

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
        """:meth:`encode` for a text table (a CSV read as strings), a column at a time."""
        matrix = np.empty((len(frame), len(self.features)), dtype=np.float64)
        for i, feature in enumerate(self.features):
            text = frame[feature.name].astype(str).str.strip()
            empty = text.str.lower().isin(PLACEHOLDERS)
            if feature.type == "numeric":
                values = pd.to_numeric(text.mask(empty), errors="coerce")
                matrix[:, i] = values.to_numpy(dtype=float, na_value=np.nan)
            else:
                codes = text.mask(empty, MISSING).map(self.codes[i])
                matrix[:, i] = codes.to_numpy(dtype=float, na_value=np.nan)
        return matrix

    def predict_matrix(self, matrix: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        threads = 1 if len(matrix) < BATCH else 0  # one row: no thread pool to wake up
        raw = np.asarray(self.booster.predict(matrix, num_threads=threads), dtype=float)
        return self.model.calibration.apply(raw)

    def predict(self, row: Mapping[str, Any]) -> float:
        return float(self.predict_matrix(self.encode([row]))[0])

    def factors(self, row: Mapping[str, Any], top: int = FACTORS) -> dict[str, Any]:
        """The probability and the features that push it up or down the most, in log-odds."""
        matrix = self.encode([row])
        contrib = np.asarray(self.booster.predict(matrix, pred_contrib=True, num_threads=1))[0]
        order = np.argsort(-np.abs(contrib[:-1]))
        factors = []
        for i in order[:top]:
            effect = float(contrib[i])
            if effect == 0.0:
                break
            feature = self.features[i]
            value = row.get(feature.name)
            if value is None and feature.fill is not None:
                value = feature.fill
            factors.append(
                {
                    "feature": feature.name,
                    "value": value,
                    "effect": round(effect, 4),
                    "direction": "up" if effect > 0 else "down",
                }
            )
        return {
            "p_convert": round(float(self.predict_matrix(matrix)[0]), 6),
            "base_log_odds": round(float(contrib[-1]), 4),
            "factors": factors,
        }
