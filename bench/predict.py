"""Predictive scoring benchmark: accuracy goals, training time, scoring throughput.

1. The real data sets (../shared/data, skipped when absent): `leadflow model train --csv` with
   no column excluded by hand but bank marketing's `duration`; 5-fold CV AUC of LightGBM,
   the logistic and the naive-Bayes baselines; LightGBM training time and batch scoring
   throughput as ratios to the logistic baseline's, measured in the same run; one-row
   latency of the live path.
2. The simulator: a model trained from a store of one simulated company (`--outcome`), then
   used on a second company (another seed) at the end of its window, ranks the eventual
   customers (the simulator's ground truth) against the hand-written default scoring model's
   engagement and fit. Ingestion of the second company runs twice, in-process, without and
   with the model active: events/s and their ratio.

    .venv/bin/python bench/predict.py
    .venv/bin/python bench/predict.py --leads 8000 --skip-csv
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from leadflow import Leadflow, Settings
from leadflow.adapters.db.predict import reading as predict_reading
from leadflow.services.predict_csv import (
    EvaluateOptions,
    _as_text,
    _baseline,
    prepare,
    read_csv,
)
from leadflow.services.predict_model import ModelFile, Predictor
from leadflow.services.predict_store import WINDOWS, StoreTrainOptions, build_training_set
from leadflow.services.predict_train import encode_table, fit_calibrated, train_csv
from leadflow.simulator import SimulationConfig, simulate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = [
    ("bank marketing", DATA / "bank_marketing_uci" / "bank-additional-full.csv", "y", ";",
     ("duration",), 0.80),
    ("online shoppers", DATA / "online_shoppers_intention_uci" / "online_shoppers_intention.csv",
     "Revenue", ",", (), 0.78),
]  # fmt: skip


CUTOFF = 14.0  # days after first seen: the first ranking scores each lead at this age


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _best(fn: Any, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def csv_figures(name: str, path: Path, label: str, sep: str, exclude: tuple[str, ...],
                goal: float) -> None:  # fmt: skip
    if not path.exists():
        print(f"{name}: skipped, {path} is absent")
        return
    options = EvaluateOptions(label=label, sep=sep, exclude=exclude)
    model = train_csv(path, options)
    aucs = model.metrics["auc_cv"]
    verdict = "met" if aucs["lightgbm"] >= goal else "NOT met"
    leaks = [leak["column"] for leak in model.metrics["suspected_leaks"]]
    print(f"{name}: 5-fold CV AUC LightGBM {aucs['lightgbm']:.3f} (goal {goal}: {verdict}), "
          f"logistic {aucs['logistic']:.3f}, naive Bayes {aucs['naive_bayes']:.3f}; "
          f"leaks excluded: {leaks}")  # fmt: skip
    table = prepare(read_csv(path, sep), options)
    columns = [f.name for f in model.features]
    x, features = encode_table(table, columns)
    categorical = [i for i, f in enumerate(features) if f.type == "categorical"]
    numeric = [c for c in table.numeric if c in columns]
    cats = [c for c in table.categorical if c in columns]
    text = _as_text(table.features[columns], cats)
    lgbm_fit = _best(lambda: fit_calibrated(x, table.y, categorical, 0), 1)
    logistic = _baseline(numeric, cats)
    logistic_fit = _best(lambda: logistic.fit(text, table.y), 1)
    predictor = Predictor(ModelFile.from_text(model.to_text()))
    frame = read_csv(path, sep)
    rows = frame[columns].to_dict("records")
    lgbm_score = _best(lambda: predictor.predict_matrix(predictor.encode_frame(frame)))
    logistic_score = _best(lambda: logistic.predict_proba(text))
    one = rows[0]
    single = _best(lambda: [predictor.predict(one) for _ in range(1000)]) / 1000
    n = len(rows)
    print(f"  training on {n:,} rows: LightGBM + calibration {lgbm_fit:.2f}s, logistic "
          f"{logistic_fit:.2f}s (ratio {lgbm_fit / logistic_fit:.2f})")  # fmt: skip
    print(f"  scoring: LightGBM {n / lgbm_score:,.0f} rows/s (encoding included), logistic "
          f"{n / logistic_score:,.0f} rows/s (ratio {logistic_score / lgbm_score:.2f}); "
          f"one row on the live path {single * 1e6:.0f} us")  # fmt: skip


def _ingest(app: Leadflow, messages: list[dict[str, Any]], batch: int = 500) -> float:
    source = app.ensure_source("simulator")
    start = time.perf_counter()
    for i in range(0, len(messages), batch):
        app.ingest(source, messages[i : i + batch])
    return len(messages) / (time.perf_counter() - start)


def _open(folder: Path, name: str, clock: FixedClock) -> Leadflow:
    settings = Settings(database_url=f"sqlite:///{folder / name}", home=folder)
    app = Leadflow(settings, clock=clock)
    app.migrate()
    return app


def simulator_figures(args: argparse.Namespace, folder: Path) -> None:
    train_company = simulate(SimulationConfig(seed=args.seed, leads=args.leads, emit_outcomes=True))
    end = train_company.window[1]
    app = _open(folder, "train.db", FixedClock(end))
    messages = list(train_company.messages())
    rate = _ingest(app, messages)
    print(f"simulator: {len(messages):,} events of {args.leads:,} leads ingested "
          f"({rate:,.0f} events/s, no model active)")  # fmt: skip
    windows = tuple(float(d) for d in args.window.split(","))
    start = time.perf_counter()
    options = StoreTrainOptions(args.outcome, windows, args.age_out,
                                exclude_converted=args.exclude_converted)  # fmt: skip
    model = app.train_model(options)
    seconds = time.perf_counter() - start
    metrics = model.metrics
    print(f"  trained from the store on '{args.outcome}' in {seconds:.1f}s: "
          f"{metrics['rows']:,} rows ({model.trained_on['distinct_leads']:,} leads, cut-offs "
          f"{args.window} days), {metrics['positives']} positive; CV AUC LightGBM "
          f"{metrics['auc_cv']['lightgbm']:.3f}, logistic {metrics['auc_cv']['logistic']:.3f}, "
          f"naive Bayes {metrics['auc_cv']['naive_bayes']:.3f}; rules at the same cut-offs "
          f"{metrics['rules_model']}")  # fmt: skip
    app.close()
    test_company = simulate(SimulationConfig(seed=args.seed + 1, leads=args.leads))
    test_end = test_company.window[1]
    test_messages = list(test_company.messages())
    plain = _open(folder, "plain.db", FixedClock(test_end))
    plain_rate = _ingest(plain, test_messages)
    plain.close()
    live = _open(folder, "live.db", FixedClock(test_end))
    live.save_predictive_model(model)
    live.activate_model(model.version)
    live_rate = _ingest(live, test_messages)
    print(f"  ingestion in-process, {len(test_messages):,} events: {plain_rate:,.0f} events/s "
          f"without a model, {live_rate:,.0f} with the model active "
          f"(ratio {live_rate / plain_rate:.2f})")  # fmt: skip
    truth = _truth(live, test_company)
    _rank_at_cutoff(live, model, truth)
    live.refresh_predictions()  # writes every lead's p_convert as of the window's end
    _rank(live, truth)
    later = _truth(live, test_company, after=test_end)
    _rank(live, later, "at the end of the window, leads not yet an opportunity (conversions "
          "still to come)")  # fmt: skip
    live.close()


def _truth(app: Leadflow, company: Any, after: datetime | None = None) -> dict[int, bool]:
    """Lead id -> whether the simulated person eventually became a customer; with ``after``,
    only the people who had not become an opportunity by then."""
    by_device = {lead.anonymous_id: lead.customer_at is not None for lead in company.leads()}
    if after is not None:
        by_device = {
            lead.anonymous_id: by_device[lead.anonymous_id] for lead in company.leads()
            if lead.opportunity_at is None or lead.opportunity_at > after
        }  # fmt: skip
    found: dict[int, bool] = {}
    after = None
    while True:
        page = app.leads(limit=1000, after=after)
        for lead in page.items:
            known = [by_device[a] for a in lead.identities.get("anonymousId", []) if a in by_device]
            if known:
                found[lead.id] = any(known)
        if page.next_after is None:
            return found
        after = page.next_after


def _report(title: str, y: np.ndarray[Any, Any], scores: dict[str, Any]) -> None:
    print(f"  {title}: {len(y):,} leads, {int(y.sum())} eventual customers; AUC against the "
          "ground truth:")  # fmt: skip
    aucs = {name: float(roc_auc_score(y, values)) for name, values in scores.items()}
    for name, auc in aucs.items():
        print(f"    {name:26s} {auc:.3f}")
    best_rule = max(v for k, v in aucs.items() if k.startswith("rules"))
    verdict = "beats" if aucs["learned p_convert"] > best_rule else "does NOT beat"
    print(f"    the learned model {verdict} the best hand-written score "
          f"(ratio {aucs['learned p_convert'] / best_rule:.3f})")  # fmt: skip


def _rank_at_cutoff(app: Leadflow, model: ModelFile, truth: dict[int, bool]) -> None:
    """Each lead of the second company as of its own cut-off (first seen + window), the
    learned model and the rules on the same replayed history."""
    options = StoreTrainOptions("opportunity", (CUTOFF,), age_out_days=0.0)
    rows, _ = build_training_set(lambda: predict_reading(app.engine), app.model, options)
    keep = [i for i, lead in enumerate(rows.groups) if lead in truth]
    predictor = Predictor(model)
    p = predictor.predict_matrix(predictor.encode([rows.rows[i] for i in keep]))
    engagement = np.asarray(rows.engagement)[keep]
    fit = np.asarray(rows.fit)[keep]
    y = np.asarray([truth[rows.groups[i]] for i in keep])
    scores = {"learned p_convert": p, "rules: engagement": engagement, "rules: fit": fit,
              "rules: engagement + fit": engagement + fit}  # fmt: skip
    _report(f"ranked at each lead's cut-off ({CUTOFF:g} days after first seen)", y, scores)


def _rank(
    app: Leadflow, truth: dict[int, bool],
    title: str = "ranked at the end of the window (every lead, whatever its age)",
) -> None:  # fmt: skip
    """The leads of the second company in ``truth`` as of the end of its window."""
    rows: list[tuple[bool, float, float, float]] = []
    after = None
    while True:
        page = app.leads(limit=1000, after=after)
        for lead in page.items:
            if lead.id in truth and lead.p_convert is not None:
                rows.append((truth[lead.id], lead.p_convert, lead.engagement_score,
                             lead.fit_score))  # fmt: skip
        if page.next_after is None:
            break
        after = page.next_after
    y = np.array([r[0] for r in rows])
    scores = {
        "learned p_convert": [r[1] for r in rows],
        "rules: engagement": [r[2] for r in rows],
        "rules: fit": [r[3] for r in rows],
        "rules: engagement + fit": [r[2] + r[3] for r in rows],
    }
    _report(title, y, scores)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=6000, help="simulated leads per company")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--outcome", default="opportunity")
    parser.add_argument(
        "--window",
        default=",".join(f"{d:g}" for d in WINDOWS),
        help="cut-offs in days, e.g. 3,14,45",
    )
    parser.add_argument(
        "--exclude-converted",
        action="store_true",
        help="train without the rows of leads converted before the cut-off",
    )
    parser.add_argument("--age-out", type=float, default=60.0)
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument("--skip-simulator", action="store_true")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.skip_csv:
        for item in SETS:
            csv_figures(*item)
    if not args.skip_simulator:
        with tempfile.TemporaryDirectory() as folder:
            simulator_figures(args, Path(folder))


if __name__ == "__main__":
    main()
