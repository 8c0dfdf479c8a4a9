"""Score quality: do higher scores convert more? Conversion by engagement decile, by fit
grade x engagement band (the A1-D4 matrix), and the calibration of the predicted probability.

A lead *converts* when it reached the outcome stage or one after it (SQL by default: SQL,
opportunity or customer), by a stage change or as its stage now. Deciles and bands rank the
leads of the window by engagement now, highest first: decile 1 and band 1 are the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leadflow.domain.errors import ValidationError
from leadflow.domain.lifecycle import STAGES
from leadflow.services.reports import rate

FUNNEL_ORDER = ("lead", "mql", "sal", "sql", "opportunity", "customer")
GRADES = ("A", "B", "C", "D")
BANDS = (1, 2, 3, 4)
CALIBRATION_BINS = 10


def outcome_stages(outcome: str) -> tuple[str, ...]:
    """The outcome stage and those after it in the funnel."""
    stage = outcome.strip().lower()
    if stage not in FUNNEL_ORDER or stage == "lead":
        known = ", ".join(s for s in FUNNEL_ORDER if s != "lead")
        if stage in STAGES:
            raise ValidationError(f"outcome: {stage!r} is not a funnel stage; one of {known}")
        raise ValidationError(f"outcome: unknown stage {outcome!r}; one of {known}")
    return FUNNEL_ORDER[FUNNEL_ORDER.index(stage) :]


@dataclass(frozen=True, slots=True)
class Decile:
    decile: int
    leads: int
    converted: int
    min_engagement: float
    max_engagement: float

    def to_json(self) -> dict[str, Any]:
        return {
            "decile": self.decile,
            "leads": self.leads,
            "converted": self.converted,
            "conversion": rate(self.converted, self.leads),
            "min_engagement": round(self.min_engagement, 2),
            "max_engagement": round(self.max_engagement, 2),
        }


@dataclass(frozen=True, slots=True)
class Cell:
    grade: str
    band: int
    leads: int
    converted: int

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": f"{self.grade}{self.band}",
            "grade": self.grade,
            "band": self.band,
            "leads": self.leads,
            "converted": self.converted,
            "conversion": rate(self.converted, self.leads),
        }


@dataclass(frozen=True, slots=True)
class Bin:
    low: float
    high: float
    leads: int
    mean_predicted: float
    converted: int

    def to_json(self) -> dict[str, Any]:
        return {
            "range": [self.low, self.high],
            "leads": self.leads,
            "mean_predicted": round(self.mean_predicted, 4),
            "observed": rate(self.converted, self.leads),
        }


@dataclass(slots=True)
class ScoreQuality:
    outcome: str
    leads: int
    converted: int
    deciles: list[Decile] = field(default_factory=list)
    matrix: list[Cell] = field(default_factory=list)
    calibration: list[Bin] = field(default_factory=list)
    brier: float | None = None
    predicted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "leads": self.leads,
            "converted": self.converted,
            "conversion": rate(self.converted, self.leads),
            "deciles": [d.to_json() for d in self.deciles],
            "matrix": [c.to_json() for c in self.full_matrix()],
            "calibration": {
                "leads_with_prediction": self.predicted,
                "brier": None if self.brier is None else round(self.brier, 5),
                "bins": [b.to_json() for b in self.calibration],
            },
        }

    def full_matrix(self) -> list[Cell]:
        """Every grade x band cell, empty ones included, A1 first."""
        found = {(c.grade, c.band): c for c in self.matrix}
        return [found.get((g, b), Cell(g, b, 0, 0)) for g in GRADES for b in BANDS]
