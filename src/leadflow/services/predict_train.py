"""Training a conversion model on a typed table (from a CSV or from the store).

LightGBM on the table's columns (categories as codes of a stored vocabulary), calibrated on a
held-out quarter of its training rows, is cross-validated next to the one-hot logistic
baseline and the naive-Bayes baseline on the same folds, and on a time split when the table
has a time order; then fitted on every row and returned as a :class:`ModelFile`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import (
    StratifiedGroupKFold,
    StratifiedKFold,
    StratifiedShuffleSplit,
    train_test_split,
)

from leadflow.services.predict_bayes import naive_bayes_scores
from leadflow.services.predict_csv import (
    LGBM_PARAMS,
    TIME_SPLIT,
    CsvModelError,
    EvaluateOptions,
    Table,
    _as_text,
    _baseline,
    _cv_baseline,
    find_leaks,
    prepare,
    read_csv,
)
from leadflow.services.predict_model import (
    BEHAVIOUR_COUNTS,
    Calibration,
    Feature,
    ModelFile,
)

Progress = Callable[[str, int, int], None]  # (what is being done, steps done, steps in all)
Folds = list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
ISOTONIC_FROM = 500  # positives; below, a sigmoid calibration
MIN_LEVEL = 50  # rows a categorical level needs to be kept
SMALL = 1000  # positives under which the trees are kept small
SMALL_PARAMS: dict[str, Any] = {
    "num_leaves": 4,
    "min_child_samples": 60,
    "n_estimators": 300,
    "learning_rate": 0.01,
    "cat_smooth": 50.0,
    "min_data_per_group": 50,
    "colsample_bytree": 0.5,
}


@dataclass(frozen=True)
class TrainOptions:
    folds: int = 5
    seed: int = 0
    keep_leaks: bool = False


def _auc(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    return round(float(roc_auc_score(y, p)), 4)


def check_trainable(table: Table, folds: int) -> None:
    """Refuse a table that cannot be validated, saying how many rows are needed."""
    if folds < 2:
        raise CsvModelError(f"--folds must be at least 2, not {folds}")
    rows = len(table.y)
    positives = int(table.y.sum())
    rare = min(positives, rows - positives)
    needed = folds * 2
    if rare < needed:
        which = "positive" if positives <= rows - positives else "negative"
        raise CsvModelError(
            f"too few {which} rows to validate: {rare}, at least {needed} are needed "
            f"for {folds}-fold cross-validation (2 per fold)"
        )
    if not table.numeric and not table.categorical:
        reasons = "; ".join(f"{d['column']}: {d['reason']}" for d in table.dropped)
        raise CsvModelError(f"no usable feature column ({reasons or 'only the label'})")


def encode_table(table: Table, columns: list[str]) -> tuple[np.ndarray[Any, Any], list[Feature]]:
    """The columns as one float matrix (categories as codes, missing as NaN) and how."""
    matrix = np.empty((len(table.y), len(columns)), dtype=np.float64)
    features: list[Feature] = []
    least = min(MIN_LEVEL, max(5, len(table.y) // 50))  # 2 % of the rows on a small table
    for i, name in enumerate(columns):
        column = table.features[name]
        fill = 0.0 if name.startswith(BEHAVIOUR_COUNTS) else None
        if name in table.categorical:
            # levels seen on fewer than MIN_LEVEL rows count as unknown (missing), as an
            # unseen level will when scoring: trees cannot learn from a handful of rows
            counts = column.value_counts()
            kept = sorted(str(c) for c, n in counts.items() if n >= least)
            lookup = {c: float(j) for j, c in enumerate(kept)}
            values = column.astype(str).map(lookup).to_numpy(dtype=float, na_value=np.nan)
            matrix[:, i] = values
            features.append(Feature(name, "categorical", tuple(kept), fill))
        else:
            matrix[:, i] = column.to_numpy(dtype=float)
            features.append(Feature(name, "numeric", (), fill))
    return matrix, features


def positives_of(y: np.ndarray[Any, Any], groups: np.ndarray[Any, Any] | None = None) -> int:
    """The positive rows, or with groups (one lead's snapshots) the groups with a positive
    row: several snapshots of one lead are one example, not several."""
    if groups is None:
        return int(y.sum())
    return len(np.unique(groups[y == 1]))


def _lgbm(seed: int, y: np.ndarray[Any, Any], positives: int | None = None) -> LGBMClassifier:
    """LightGBM as evaluate runs it; smaller trees and more smoothing for few positives
    (``positives``: distinct positive leads, by default the positive rows), leaves of at most
    2 % of the rows on a small table."""
    params = dict(LGBM_PARAMS)
    if (int(y.sum()) if positives is None else positives) < SMALL:
        params.update(SMALL_PARAMS)
    params["min_child_samples"] = min(params["min_child_samples"], max(5, len(y) // 50))
    return LGBMClassifier(random_state=seed, n_jobs=2, **params)


def _held_out(
    y: np.ndarray[Any, Any], seed: int, groups: np.ndarray[Any, Any] | None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(75 %, 25 %) of the rows, stratified; with groups, whole groups on each side."""
    rows = np.arange(len(y))
    if groups is None:
        fit_part, held = train_test_split(rows, test_size=0.25, stratify=y, random_state=seed)
        return fit_part, held
    names, index = np.unique(groups, return_inverse=True)
    positive = np.zeros(len(names), dtype=int)
    np.maximum.at(positive, index, y.astype(int))
    split = StratifiedShuffleSplit(1, test_size=0.25, random_state=seed)
    kept, _ = next(split.split(np.zeros(len(names)), positive))
    in_fit = np.isin(index, kept)
    return rows[in_fit], rows[~in_fit]


def fit_calibrated(
    x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], categorical: list[int], seed: int,
    groups: np.ndarray[Any, Any] | None = None,
) -> tuple[LGBMClassifier, Calibration]:  # fmt: skip
    """LightGBM on every row, calibrated by a twin fitted on 75 % that scores the other 25 %
    (with groups, one lead's rows all on one side)."""
    positives = positives_of(y, groups)
    fit_part, held = _held_out(y, seed, groups)
    twin = _lgbm(seed, y[fit_part], positives).fit(
        x[fit_part], y[fit_part], categorical_feature=categorical or "auto"
    )
    scores = np.asarray(twin.predict_proba(x[held]))[:, 1]
    if positives >= ISOTONIC_FROM:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y[held])
        calibration = Calibration(
            "isotonic", tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_))
        )
    else:
        logit = np.log(np.clip(scores, 1e-6, 1 - 1e-6) / (1 - np.clip(scores, 1e-6, 1 - 1e-6)))
        sigmoid = LogisticRegression().fit(logit.reshape(-1, 1), y[held])
        calibration = Calibration(
            "sigmoid", coef=float(sigmoid.coef_[0][0]), intercept=float(sigmoid.intercept_[0])
        )
    model = _lgbm(seed, y, positives).fit(x, y, categorical_feature=categorical or "auto")
    return model, calibration


def _proba(
    model: LGBMClassifier, calibration: Calibration, x: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    return calibration.apply(np.asarray(model.predict_proba(x))[:, 1])


def time_split(order: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Rows in time order -> (the earliest 80 %, the latest 20 %), as sorted positions."""
    cut = int(len(order) * TIME_SPLIT)
    return np.sort(order[:cut]), np.sort(order[cut:])


@dataclass
class _Run:
    table: Table
    columns: list[str]
    x: np.ndarray[Any, Any]
    categorical: list[int]
    seed: int
    groups: np.ndarray[Any, Any] | None = None

    def lightgbm(
        self, train: np.ndarray[Any, Any], test: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        groups = None if self.groups is None else self.groups[train]
        model, calibration = fit_calibrated(
            self.x[train], self.table.y[train], self.categorical, self.seed, groups
        )
        return _proba(model, calibration, self.x[test])

    def bayes(
        self, train: np.ndarray[Any, Any], test: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        frame = self.table.features[self.columns]
        return naive_bayes_scores(frame, self.table.numeric, self.table.y, train, test)

    def logistic(self, train: np.ndarray[Any, Any], test: np.ndarray[Any, Any]) -> float:
        numeric = [c for c in self.table.numeric if c in self.columns]
        categorical = [c for c in self.table.categorical if c in self.columns]
        data = _as_text(self.table.features[self.columns], categorical)
        base = _baseline(numeric, categorical).fit(data.iloc[train], self.table.y[train])
        return _auc(self.table.y[test], base.predict_proba(data.iloc[test])[:, 1])


def _columns(table: Table, folds: Folds, options: TrainOptions) -> tuple[list[str], dict[str, Any]]:
    leaks, single = find_leaks(table, folds)
    columns = table.numeric + table.categorical
    dropped = list(table.dropped)
    if not options.keep_leaks:
        leaked = {leak["column"] for leak in leaks}
        dropped += [
            {"column": leak["column"], "reason": f"suspected leak: {leak['reason']}"}
            for leak in leaks
        ]
        columns = [c for c in columns if c not in leaked]
    if not columns:
        raise CsvModelError(
            "no usable feature column: every column is a suspected leak (--keep-leaks keeps them)"
        )
    info = {"suspected_leaks": leaks, "leaks_excluded": not options.keep_leaks,
            "dropped_columns": dropped, "single_column_auc": single}  # fmt: skip
    return columns, info


def train_table(
    table: Table,
    options: TrainOptions,
    outcome: str,
    trained_on: dict[str, Any],
    progress: Progress | None = None,
    groups: np.ndarray[Any, Any] | None = None,
) -> ModelFile:
    """Validate, compare with both baselines, fit on every row: the model and its metrics.
    Rows that share a group (one lead's snapshots) are kept in the same fold."""
    say = progress or (lambda *_: None)
    started = time.perf_counter()
    check_trainable(table, options.folds)
    rows, positives = len(table.y), int(table.y.sum())
    steps = options.folds + 3 + (1 if table.order is not None else 0)
    say("looking for leaks", 0, steps)
    if groups is None:
        splitter = StratifiedKFold(options.folds, shuffle=True, random_state=options.seed)
        folds: Folds = list(splitter.split(np.zeros(rows), table.y))
    else:
        grouped = StratifiedGroupKFold(options.folds, shuffle=True, random_state=options.seed)
        folds = list(grouped.split(np.zeros(rows), table.y, groups))
    columns, info = _columns(table, folds, options)
    x, features = encode_table(table, columns)
    categorical = [i for i, f in enumerate(features) if f.type == "categorical"]
    run = _Run(table, columns, x, categorical, options.seed, groups)
    oof = np.zeros(rows)
    lgbm_folds, bayes_folds = [], []
    for index, (train, test) in enumerate(folds, start=1):
        say(f"fold {index}/{options.folds}: LightGBM, naive Bayes", index, steps)
        oof[test] = run.lightgbm(train, test)
        lgbm_folds.append(_auc(table.y[test], oof[test]))
        bayes_folds.append(_auc(table.y[test], run.bayes(train, test)))
    say("logistic baseline", options.folds + 1, steps)
    logistic = round(_cv_baseline(table, columns, folds), 4)
    metrics: dict[str, Any] = {
        "rows": rows, "positives": positives, "positive_label": table.positive_label,
        "folds": options.folds, "seed": options.seed,
        "auc_cv": {"lightgbm": round(float(np.mean(lgbm_folds)), 4), "logistic": logistic,
                   "naive_bayes": round(float(np.mean(bayes_folds)), 4)},
        "auc_cv_folds": lgbm_folds,
        "auc_time_split": None,
        "brier": round(float(brier_score_loss(table.y, oof)), 4),
        "brier_base_rate": round(positives / rows * (1 - positives / rows), 4),
    }  # fmt: skip
    if table.order is not None:
        say("time split: train on the earliest 80 %", options.folds + 2, steps)
        metrics["auc_time_split"] = _time_split_aucs(run, table.order)
    say("fitting on every row", steps - 1, steps)
    model, calibration = fit_calibrated(x, table.y, categorical, options.seed, groups)
    metrics["calibration"] = calibration.method
    metrics["curve"] = threshold_curve(table.y, oof)
    metrics["chosen"] = "lightgbm"
    metrics["warnings"] = _warnings(metrics)
    metrics["used_columns"] = [f.to_json() | {"categories": len(f.categories)} for f in features]
    metrics.update(info)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    say("done", steps, steps)
    return ModelFile(
        kind="lightgbm", outcome=outcome, positive_label=table.positive_label,
        features=features, calibration=calibration,
        booster=model.booster_.model_to_string(), metrics=metrics, trained_on=trained_on,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip


def threshold_curve(
    y: np.ndarray[Any, Any], p: np.ndarray[Any, Any], points: int = 100
) -> list[list[float]]:
    """[threshold, precision, recall, share of leads at or above it] for thresholds at
    quantiles of the out-of-fold probabilities, highest first."""
    order = np.argsort(-p, kind="stable")
    ranked, hits = p[order], np.cumsum(y[order])
    positives = max(1, int(y.sum()))
    curve: list[list[float]] = []
    for share in np.linspace(1 / points, 1, points):
        last = max(0, round(float(share) * len(p)) - 1)
        threshold = float(ranked[last])
        last = int(np.searchsorted(-ranked, -threshold, side="right")) - 1  # ties included
        flagged, hit = last + 1, float(hits[last])
        curve.append([round(threshold, 6), round(hit / flagged, 4), round(hit / positives, 4),
                      round(flagged / len(p), 4)])  # fmt: skip
    return curve


def _time_split_aucs(run: _Run, order: np.ndarray[Any, Any]) -> dict[str, float] | None:
    train, test = time_split(order)
    y = run.table.y
    if len(set(y[test])) < 2 or len(set(y[train])) < 2:
        return None
    return {
        "lightgbm": _auc(y[test], run.lightgbm(train, test)),
        "logistic": run.logistic(train, test),
        "naive_bayes": _auc(y[test], run.bayes(train, test)),
    }


def _warnings(metrics: dict[str, Any]) -> list[str]:
    found = []
    for split in ("auc_cv", "auc_time_split"):
        aucs = metrics.get(split)
        if not aucs:
            continue
        best = max(("logistic", "naive_bayes"), key=lambda k: aucs[k])
        if aucs[best] > aucs["lightgbm"]:
            found.append(
                f"{split}: the {best.replace('_', '-')} baseline ranks better "
                f"({aucs[best]:.3f} vs {aucs['lightgbm']:.3f})"
            )
    return found


def train_csv(path: Path, options: EvaluateOptions, progress: Progress | None = None) -> ModelFile:
    """``leadflow model train --csv``: a model to keep, from any CSV of leads with an outcome."""
    if progress is not None:
        progress(f"reading {path.name}", 0, 1)
    table = prepare(read_csv(path, options.sep), options)
    trained_on = {"source": "csv", "file": path.name, "label": options.label,
                  "sep": options.sep, "rows_without_label": table.rows_without_label}  # fmt: skip
    train = TrainOptions(options.folds, options.seed, options.keep_leaks)
    return train_table(table, train, f"{options.label} = {table.positive_label}", trained_on,
                       progress)  # fmt: skip
