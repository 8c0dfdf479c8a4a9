"""Model files on disk (``--out model.lfm``) and scoring a CSV of new rows with one."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from leadflow.services.predict_csv import CsvModelError, read_csv
from leadflow.services.predict_model import ModelFile, ModelFileError, Predictor

SCORE_COLUMN = "p_convert"
CHUNK = 50_000


def save_model_file(model: ModelFile, path: Path) -> None:
    path.write_text(model.to_text(), encoding="utf-8")


def load_model_file(path: Path) -> ModelFile:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    return ModelFile.from_text(text, where=str(path))


def score_frame(predictor: Predictor, frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Calibrated probabilities of every row of a text frame with the model's columns."""
    names = [f.name for f in predictor.features]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise CsvModelError(
            f"the file lacks the model's column(s) {', '.join(map(repr, missing))}; "
            f"the model uses: {', '.join(names)}"
        )
    out = np.empty(len(frame), dtype=float)
    for start in range(0, len(frame), CHUNK):
        part = frame.iloc[start : start + CHUNK]
        out[start : start + len(part)] = predictor.predict_matrix(predictor.encode_frame(part))
    return out


def score_csv(
    model_path: Path, csv: Path, sep: str = ",", out: Path | None = None
) -> dict[str, Any]:
    """Score the rows of ``csv``; write them with a ``p_convert`` column to ``out`` when
    given. Returns a summary (and the scored frame under ``frame``)."""
    model = load_model_file(model_path)
    predictor = Predictor(model)
    frame = read_csv(csv, sep)
    started = time.perf_counter()
    scores = score_frame(predictor, frame)
    seconds = time.perf_counter() - started
    frame[SCORE_COLUMN] = np.round(scores, 6)
    if out is not None:
        frame.to_csv(out, sep=sep, index=False)
    return {
        "model": model.version,
        "outcome": model.outcome,
        "file": str(csv),
        "rows": len(frame),
        "mean_p_convert": round(float(scores.mean()), 4) if len(frame) else None,
        "rows_per_second": round(len(frame) / seconds) if seconds > 0 else None,
        "out": str(out) if out is not None else None,
        "frame": frame,
    }
