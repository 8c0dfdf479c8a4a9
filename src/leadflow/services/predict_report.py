"""Choosing a threshold for a conversion model: precision and recall at a threshold, and the
threshold that fits a sales capacity, from the out-of-fold curve stored with the model."""

from __future__ import annotations

import re
from typing import Any

from leadflow.domain.errors import ValidationError

_CAPACITY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(/\s*(day|week|month)|%)\s*$")
PER_WEEK = {"day": 7.0, "week": 1.0, "month": 7 / 30.4375}


def capacity_share(text: str, leads_per_week: float | None) -> float:
    """``200/week``, ``40/day``, ``800/month`` or ``10%`` -> the share of leads sales takes."""
    found = _CAPACITY.match(text)
    if found is None:
        raise ValidationError(
            f"--capacity: {text!r} is not N/day, N/week, N/month or N% (e.g. 200/week)"
        )
    amount = float(found.group(1))
    if found.group(2) == "%":
        return min(1.0, amount / 100)
    if not leads_per_week:
        raise ValidationError(
            "--capacity: this model does not know how many leads arrive per week (it was "
            "trained from a CSV); give the capacity as a share of leads, e.g. 10%"
        )
    return min(1.0, amount * PER_WEEK[found.group(3)] / leads_per_week)


def _row(point: list[float], leads_per_week: float | None) -> dict[str, Any]:
    threshold, precision, recall, share = point
    found: dict[str, Any] = {
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "share_flagged": share,
    }
    if leads_per_week:
        found["leads_per_week"] = round(share * leads_per_week, 1)
    return found


def threshold_report(
    metrics: dict[str, Any],
    trained_on: dict[str, Any],
    threshold: float | None = None,
    capacity: str | None = None,
) -> dict[str, Any]:
    """Precision and recall at ``threshold`` and at the threshold that fits ``capacity``."""
    curve: list[list[float]] = metrics.get("curve") or []
    if not curve:
        raise ValidationError("this model has no stored validation curve: train it again")
    per_week = trained_on.get("leads_per_week")
    report: dict[str, Any] = {
        "positives": metrics.get("positives"),
        "rows": metrics.get("rows"),
        "leads_per_week": per_week,
        "measured_on": "out-of-fold predictions of the cross-validation",
    }
    if threshold is not None:
        at_or_above = [p for p in curve if p[0] >= threshold] or curve[:1]
        report["at_threshold"] = _row(at_or_above[-1], per_week) | {"asked": threshold}
    if capacity is not None:
        share = capacity_share(capacity, per_week)
        fits = [p for p in curve if p[3] <= share] or curve[:1]
        report["at_capacity"] = _row(fits[-1], per_week) | {
            "capacity": capacity,
            "capacity_share": round(share, 4),
        }
    return report
