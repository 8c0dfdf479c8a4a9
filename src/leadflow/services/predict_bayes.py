"""The naive-Bayes baseline, in the style of Odoo's lead probability: per-field frequency
tables of won and lost leads (Laplace smoothing), numbers cut into quantile bins, missing
values a value of their own, the fields assumed independent. It looks at lead fields only:
what a CRM without behaviour data could do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

BINS = 10
ALPHA = 1.0  # Laplace smoothing


def _codes(column: pd.Series, numeric: bool, train: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Non-negative value codes; 0 is missing. Numbers: quantile bins of the training rows."""
    if not numeric:
        return np.asarray(column.cat.codes.to_numpy(), dtype=np.int64) + 1
    values = column.to_numpy(dtype=float)
    known = values[train][~np.isnan(values[train])]
    if known.size == 0:
        return np.zeros(len(values), dtype=np.int64)
    edges = np.unique(np.quantile(known, np.linspace(0, 1, BINS + 1)[1:-1]))
    binned = np.searchsorted(edges, values, side="right") + 1
    return np.where(np.isnan(values), 0, binned).astype(np.int64)


def naive_bayes_scores(
    features: pd.DataFrame,
    numeric: list[str],
    y: np.ndarray[Any, Any],
    train: np.ndarray[Any, Any],
    test: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """Log-odds of the outcome for the ``test`` rows, learnt on the ``train`` rows."""
    y_train = y[train]
    positives = float(y_train.sum())
    negatives = float(len(y_train) - positives)
    score = np.full(len(test), np.log((positives + ALPHA) / (negatives + ALPHA)))
    for name in features.columns:
        codes = _codes(features[name], name in numeric, train)
        size = int(codes.max()) + 1
        won = np.bincount(codes[train][y_train == 1], minlength=size)
        lost = np.bincount(codes[train][y_train == 0], minlength=size)
        p_won = (won + ALPHA) / (positives + ALPHA * size)
        p_lost = (lost + ALPHA) / (negatives + ALPHA * size)
        score += np.log(p_won[codes[test]]) - np.log(p_lost[codes[test]])
    return score
