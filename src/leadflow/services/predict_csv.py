"""Evaluate a conversion model on any CSV of leads with an outcome, with no feature code.

The table is typed (numeric vs categorical), identifiers and constant columns are dropped,
placeholders ('Select', 'unknown', '', 'NA'...) become missing values, columns that look like
leaks are flagged (and excluded unless asked not to), then LightGBM with isotonic calibration
is cross-validated next to a one-hot logistic regression on the same columns and folds.
See docs/predict.md for the method and the figures on the real data sets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from leadflow.domain.errors import ValidationError

# Values that mean "not given" (compared lower-cased, stripped). In a numeric column they
# become NaN (LightGBM routes missing values on its own; the baseline imputes the median and
# adds a missing flag); in a categorical column they become one category, MISSING.
PLACEHOLDERS = frozenset(
    {"", "na", "n/a", "nan", "null", "none", "unknown", "select", "-", "?", "#n/a", "missing"}
)
MISSING = "(missing)"
POSITIVE_WORDS = ("yes", "true", "1", "y", "t", "won", "converted", "positive", "1.0")
LEAK_AUC = 0.95  # a single column at least this predictive is a suspected leak
DOMINANT_FLOOR = 0.80  # a column above this that alone beats every other column together
MAX_LEVELS = 50  # one-hot levels kept per categorical column in the baseline
TIME_SPLIT = 0.8
LGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 250,
    "learning_rate": 0.04,
    "num_leaves": 15,
    "min_child_samples": 40,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "verbose": -1,
}

Progress = Callable[[str], None]


class CsvModelError(ValidationError):
    """A CSV that cannot be evaluated: the problem is named in one line."""


@dataclass(frozen=True)
class EvaluateOptions:
    label: str
    sep: str = ","
    time_column: str | None = None  # a column, or "row" for the file's row order
    exclude: Sequence[str] = ()
    keep_leaks: bool = False
    folds: int = 5
    seed: int = 0


@dataclass
class Table:
    """The typed table: features, the 0/1 outcome, and what was dropped and why."""

    features: pd.DataFrame
    y: np.ndarray[Any, Any]
    numeric: list[str]
    categorical: list[str]
    positive_label: str
    dropped: list[dict[str, Any]] = field(default_factory=list)
    order: np.ndarray[Any, Any] | None = None  # row positions in time order
    rows_without_label: int = 0


def _is_placeholder(series: pd.Series) -> pd.Series:
    return series.str.strip().str.lower().isin(PLACEHOLDERS)


def read_csv(path: Path, sep: str) -> pd.DataFrame:
    """Every cell as text: typing is done here, not guessed by pandas."""
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise CsvModelError(f"{path}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise CsvModelError(f"{path}: not a CSV with separator {sep!r}: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _label(frame: pd.DataFrame, name: str) -> tuple[np.ndarray[Any, Any], str, pd.Series]:
    if name not in frame.columns:
        matches = [c for c in frame.columns if c.lower() == name.lower()]
        if len(matches) != 1:
            raise CsvModelError(
                f"no label column {name!r}; the columns are: {', '.join(frame.columns)}"
            )
        name = matches[0]
    raw = frame[name].str.strip()
    known = ~_is_placeholder(raw)
    values = sorted(raw[known].unique())
    if len(values) < 2:
        shown = repr(values[0]) if values else "nothing"
        raise CsvModelError(f"label column {name!r} is constant: every row has {shown}")
    if len(values) > 2:
        listed = ", ".join(repr(v) for v in values[:20]) + (" ..." if len(values) > 20 else "")
        raise CsvModelError(f"label column {name!r} has {len(values)} values, not two: {listed}")
    positive = next((v for v in values if v.lower() in POSITIVE_WORDS), None)
    if positive is None:  # no yes/true/1: the rarer value is the outcome
        counts = raw[known].value_counts()
        positive = str(counts.idxmin())
    return (raw == positive).to_numpy(dtype=int), positive, known


def _numeric(column: pd.Series) -> pd.Series | None:
    """The column as floats (placeholders NaN), or None when some value is not a number."""
    text = column.str.strip()
    text = text.mask(_is_placeholder(text))
    parsed = pd.to_numeric(text, errors="coerce")
    if parsed.isna().sum() != text.isna().sum():
        return None
    return parsed.astype(float)


def _time_order(frame: pd.DataFrame, time_column: str) -> np.ndarray[Any, Any]:
    if time_column == "row":
        return np.arange(len(frame))
    if time_column not in frame.columns:
        raise CsvModelError(
            f"no time column {time_column!r}; the columns are: {', '.join(frame.columns)}"
            " (or use --time-column row for the file's row order)"
        )
    column = frame[time_column]
    key: pd.Series | None = _numeric(column)
    if key is None:
        key = pd.to_datetime(column.str.strip(), errors="coerce", format="mixed")
    if key.isna().all():
        raise CsvModelError(f"time column {time_column!r} holds no dates or numbers")
    return np.argsort(key.to_numpy(), kind="stable")


def prepare(frame: pd.DataFrame, options: EvaluateOptions) -> Table:
    """Type the columns and drop what cannot be a feature (the reason kept for each)."""
    y, positive, known = _label(frame, options.label)
    label = next(c for c in frame.columns if c.lower() == options.label.lower())
    if options.label in frame.columns:
        label = options.label
    missing_label = int((~known).sum())
    frame = frame[known.to_numpy()].reset_index(drop=True)
    y = y[known.to_numpy()]
    unknown = [c for c in options.exclude if c not in frame.columns]
    if unknown:
        raise CsvModelError(
            f"--exclude names no column {', '.join(map(repr, unknown))}; "
            f"the columns are: {', '.join(frame.columns)}"
        )
    order = None
    if options.time_column:
        order = _time_order(frame, options.time_column)
    dropped: list[dict[str, Any]] = []
    features: dict[str, pd.Series] = {}
    numeric: list[str] = []
    categorical: list[str] = []
    rows = len(frame)
    for name in frame.columns:
        if name == label:
            continue
        if name in options.exclude:
            dropped.append({"column": name, "reason": "excluded (--exclude)"})
            continue
        if name == options.time_column:
            dropped.append({"column": name, "reason": "time column (used for the split)"})
            continue
        column = frame[name]
        empty = _is_placeholder(column)
        if empty.all():
            dropped.append({"column": name, "reason": "empty: every value is a placeholder"})
            continue
        as_number = _numeric(column)
        distinct = column[~empty].str.strip().nunique()
        if distinct <= 1 and not empty.any():
            dropped.append({"column": name, "reason": "constant"})
            continue
        integral = as_number is not None and bool(
            (as_number.dropna() == as_number.dropna().round()).all()
        )
        if distinct == rows and rows > 1 and (as_number is None or integral):
            dropped.append({"column": name, "reason": "identifier: a different value on every row"})
            continue
        if as_number is not None:
            features[name] = as_number
            numeric.append(name)
        else:
            if distinct > max(MAX_LEVELS, rows // 2):
                dropped.append(
                    {
                        "column": name,
                        "reason": f"near-identifier: {distinct} distinct values in {rows} rows",
                    }
                )
                continue
            text = column.str.strip().mask(empty, MISSING)
            features[name] = text.astype("category")
            categorical.append(name)
    return Table(
        features=pd.DataFrame(features),
        y=y,
        numeric=numeric,
        categorical=categorical,
        positive_label=positive,
        dropped=dropped,
        order=order,
        rows_without_label=missing_label,
    )


# -- models --------------------------------------------------------------------------------


def _baseline(numeric: list[str], categorical: list[str]) -> Pipeline:
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                numeric,
            )
        )
    if categorical:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=MAX_LEVELS)
        parts.append(("cat", encoder, categorical))
    return make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=2000))


class CalibratedBoosting:
    """LightGBM fitted on the whole training part, its scores mapped to probabilities by a
    calibrator (isotonic, or sigmoid under 500 positives) learnt on a held-out quarter of the
    training part scored by a twin model fitted on the other three quarters."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.method = "isotonic"
        self.model: LGBMClassifier | None = None
        self.calibrator: IsotonicRegression | LogisticRegression | None = None

    def _lgbm(self) -> LGBMClassifier:
        return LGBMClassifier(random_state=self.seed, n_jobs=2, **LGBM_PARAMS)

    def fit(self, x: pd.DataFrame, y: np.ndarray[Any, Any]) -> CalibratedBoosting:
        fit_part, held = train_test_split(
            np.arange(len(y)), test_size=0.25, stratify=y, random_state=self.seed
        )
        twin = self._lgbm().fit(x.iloc[fit_part], y[fit_part])
        scores = np.asarray(twin.predict_proba(x.iloc[held]))[:, 1]
        self.method = "isotonic" if int(y.sum()) >= 500 else "sigmoid"
        if self.method == "isotonic":
            self.calibrator = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
            self.calibrator.fit(scores, y[held])
        else:
            self.calibrator = LogisticRegression().fit(_logit(scores), y[held])
        self.model = self._lgbm().fit(x, y)
        return self

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray[Any, Any]:
        assert self.model is not None and self.calibrator is not None
        scores = np.asarray(self.model.predict_proba(x))[:, 1]
        if isinstance(self.calibrator, IsotonicRegression):
            # isotonic steps tie many scores; a vanishing share of the raw score breaks the
            # ties in the model's order, so calibration costs no ranking (AUC)
            p = np.asarray(self.calibrator.predict(scores), dtype=float) * (1 - 1e-6)
            p = p + 1e-6 * scores
        else:
            p = self.calibrator.predict_proba(_logit(scores))[:, 1]
        return np.column_stack([1 - p, p])


def _logit(p: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    logit: np.ndarray[Any, Any] = np.log(p / (1 - p)).reshape(-1, 1)
    return logit


def _as_text(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """For the baseline: categories as plain strings (OneHotEncoder wants one dtype)."""
    out = features.copy()
    for name in categorical:
        out[name] = out[name].astype(str)
    return out


def _auc(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    return float(roc_auc_score(y, p))


def single_column_auc(
    table: Table, name: str, folds: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
) -> float:
    """How well one column alone ranks the outcome: the positive rate of its value (a
    category, or one of 20 quantile bins, missing its own bin) learnt out of fold."""
    column = table.features[name]
    if name in table.numeric:
        values = column.to_numpy(dtype=float)
        bins = np.unique(np.nanquantile(values, np.linspace(0, 1, 21)))
        codes = np.where(np.isnan(values), -1, np.searchsorted(bins, values, side="right"))
    else:
        codes = column.cat.codes.to_numpy()
    y = table.y
    prior = y.mean()
    oof = np.zeros(len(y), dtype=float)
    for train, test in folds:
        keys, inverse = np.unique(codes[train], return_inverse=True)
        sums = np.bincount(inverse, weights=y[train])
        counts = np.bincount(inverse)
        rates = (sums + prior * 10) / (counts + 10)
        position = np.searchsorted(keys, codes[test])
        position = np.clip(position, 0, len(keys) - 1)
        seen = keys[position] == codes[test]
        oof[test] = np.where(seen, rates[position], prior)
    return _auc(y, oof)


def _filled_one_class(table: Table, name: str) -> dict[str, float] | None:
    column = table.features[name]
    filled = (column != MISSING) if name in table.categorical else column.notna()
    filled_arr = filled.to_numpy()
    pos = float(filled_arr[table.y == 1].mean())
    neg = float(filled_arr[table.y == 0].mean())
    if (pos == 0.0) != (neg == 0.0) and max(pos, neg) >= 0.01:
        return {"filled_share_positive": round(pos, 4), "filled_share_negative": round(neg, 4)}
    return None


def _cv_baseline(
    table: Table,
    columns: list[str],
    folds: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
) -> float:
    numeric = [c for c in table.numeric if c in columns]
    categorical = [c for c in table.categorical if c in columns]
    data = _as_text(table.features[columns], categorical)
    scores = []
    for train, test in folds:
        model = _baseline(numeric, categorical).fit(data.iloc[train], table.y[train])
        scores.append(_auc(table.y[test], model.predict_proba(data.iloc[test])[:, 1]))
    return float(np.mean(scores))


def find_leaks(
    table: Table, folds: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Columns too good to be true: a single-column AUC >= 0.95, a column filled in for one
    class only, or a column above 0.80 that alone ranks better than all the other columns
    together (the logistic baseline on them, same folds)."""
    columns = table.numeric + table.categorical
    single = {name: round(single_column_auc(table, name, folds), 4) for name in columns}
    leaks: list[dict[str, Any]] = []
    for name in columns:
        if single[name] >= LEAK_AUC:
            leaks.append(
                {
                    "column": name,
                    "reason": f"single-column AUC {single[name]:.3f} >= {LEAK_AUC}",
                    "single_column_auc": single[name],
                }
            )
            continue
        filled = _filled_one_class(table, name)
        if filled is not None:
            which = "positive" if filled["filled_share_positive"] else "negative"
            leaks.append(
                {
                    "column": name,
                    "reason": f"filled in for the {which} class only",
                    "single_column_auc": single[name],
                    **filled,
                }
            )
    flagged = {leak["column"] for leak in leaks}
    rest = [c for c in columns if c not in flagged]
    ranked = sorted(rest, key=lambda c: single[c], reverse=True)
    if len(ranked) >= 2 and single[ranked[0]] >= DOMINANT_FLOOR:
        top = ranked[0]
        others = _cv_baseline(table, ranked[1:], folds)
        if single[top] >= others:
            leaks.append(
                {
                    "column": top,
                    "reason": (
                        f"alone ranks better (AUC {single[top]:.3f}) than all "
                        f"{len(ranked) - 1} other columns together ({others:.3f})"
                    ),
                    "single_column_auc": single[top],
                    "auc_other_columns": round(others, 4),
                }
            )
    return leaks, single


def _fit_boosted(
    table: Table, columns: list[str], train: np.ndarray[Any, Any], seed: int
) -> CalibratedBoosting:
    data = table.features[columns]
    return CalibratedBoosting(seed).fit(data.iloc[train], table.y[train])


def evaluate_csv(
    path: Path, options: EvaluateOptions, progress: Progress | None = None
) -> dict[str, Any]:
    """Everything ``leadflow model evaluate`` prints, as a dict ready for JSON."""
    say = progress or (lambda _: None)
    started = time.perf_counter()
    if options.folds < 2:
        raise CsvModelError(f"--folds must be at least 2, not {options.folds}")
    say(f"reading {path.name}")
    table = prepare(read_csv(path, options.sep), options)
    rows = len(table.y)
    positives = int(table.y.sum())
    needed = options.folds * 2
    rare = min(positives, rows - positives)
    if rare < needed:
        which = "positive" if positives <= rows - positives else "negative"
        raise CsvModelError(
            f"too few {which} rows to validate: {rare}, at least {needed} are needed "
            f"for {options.folds}-fold cross-validation (2 per fold)"
        )
    if not table.numeric and not table.categorical:
        reasons = "; ".join(f"{d['column']}: {d['reason']}" for d in table.dropped)
        raise CsvModelError(f"no usable feature column ({reasons or 'only the label'})")
    splitter = StratifiedKFold(n_splits=options.folds, shuffle=True, random_state=options.seed)
    folds = list(splitter.split(np.zeros(rows), table.y))
    say("looking for leaks")
    leaks, single = find_leaks(table, folds)
    dropped = list(table.dropped)
    columns = table.numeric + table.categorical
    if not options.keep_leaks:
        for leak in leaks:
            dropped.append(
                {"column": leak["column"], "reason": f"suspected leak: {leak['reason']}"}
            )
        leaked = {leak["column"] for leak in leaks}
        columns = [c for c in columns if c not in leaked]
    if not columns:
        raise CsvModelError(
            "no usable feature column: every column is a suspected leak (--keep-leaks keeps them)"
        )
    numeric = [c for c in table.numeric if c in columns]
    categorical = [c for c in table.categorical if c in columns]
    oof = np.zeros(rows, dtype=float)
    fold_aucs: list[float] = []
    for index, (train, test) in enumerate(folds, start=1):
        say(f"fold {index}/{options.folds}: LightGBM + calibration")
        model = _fit_boosted(table, columns, train, options.seed)
        oof[test] = model.predict_proba(table.features[columns].iloc[test])[:, 1]
        fold_aucs.append(_auc(table.y[test], oof[test]))
    say("logistic baseline")
    baseline = _cv_baseline(table, columns, folds)
    result: dict[str, Any] = {
        "file": str(path),
        "rows": rows,
        "positives": positives,
        "positive_label": table.positive_label,
        "rows_without_label": table.rows_without_label,
        "folds": options.folds,
        "seed": options.seed,
        "model": "lightgbm + isotonic calibration"
        if positives >= 500
        else "lightgbm + sigmoid calibration",
        "auc_cv": round(float(np.mean(fold_aucs)), 4),
        "auc_cv_folds": [round(a, 4) for a in fold_aucs],
        "baseline_auc_cv": round(baseline, 4),
        "brier": round(float(brier_score_loss(table.y, oof)), 4),
        "brier_base_rate": round(float(positives / rows * (1 - positives / rows)), 4),
        "auc_time_split": None,
        "baseline_auc_time_split": None,
        "time_column": options.time_column,
        "suspected_leaks": leaks,
        "leaks_excluded": not options.keep_leaks,
        "used_columns": [{"column": c, "type": "numeric"} for c in numeric]
        + [{"column": c, "type": "categorical"} for c in categorical],
        "dropped_columns": dropped,
        "single_column_auc": single,
    }
    if table.order is not None:
        say("time split: train on the earliest 80 %")
        cut = int(rows * TIME_SPLIT)
        train, test = np.sort(table.order[:cut]), np.sort(table.order[cut:])
        if len(set(table.y[test])) == 2 and len(set(table.y[train])) == 2:
            model = _fit_boosted(table, columns, train, options.seed)
            p = model.predict_proba(table.features[columns].iloc[test])[:, 1]
            result["auc_time_split"] = round(_auc(table.y[test], p), 4)
            data = _as_text(table.features[columns], categorical)
            base = _baseline(numeric, categorical).fit(data.iloc[train], table.y[train])
            q = base.predict_proba(data.iloc[test])[:, 1]
            result["baseline_auc_time_split"] = round(_auc(table.y[test], q), 4)
    result["seconds"] = round(time.perf_counter() - started, 2)
    if any(math.isnan(a) for a in fold_aucs):  # pragma: no cover - guarded by the refusals
        raise CsvModelError("a fold had one class only")
    return result
