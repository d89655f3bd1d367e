"""The drift + labels recipe on breast_cancer: traffic whose size features grew by half.

A scanner recalibration makes every size measurement (radius, perimeter, area: their
mean, error and worst, 9 columns) 1.5 times larger. The champion, trained on the
original data, then calls many benign tumours malignant; a model retrained on the
training split plus the older 70 % of 200 such labelled rows relies less on size and
gets recent traffic right again, while staying as good on the original holdout.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlcycle.data.feedback_export import PROVENANCE_COLUMNS

#: The features the drift scales, by the words in their names.
SIZE_WORDS = ("radius", "perimeter", "area")


def drifted_feedback(
    data: pd.DataFrame,
    *,
    rows: int = 200,
    factor: float = 1.5,
    seed: int = 0,
    label: str = "diagnosis",
) -> pd.DataFrame:
    """``rows`` rows of ``data`` (with true labels), size features times ``factor``."""
    picked = np.random.default_rng(seed).choice(len(data), rows, replace=False)
    out = data.iloc[picked].reset_index(drop=True).copy()
    for column in out.columns:
        if column != label and any(w in column for w in SIZE_WORDS):
            out[column] = out[column] * factor
    return out


def write_feedback(
    path: Path,
    rows: pd.DataFrame,
    *,
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    version: str = "1",
) -> Path:
    """Write ``rows`` in the export format, labelled ``step`` apart from ``start``."""
    start = start or datetime.now(UTC)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*rows.columns, *PROVENANCE_COLUMNS])
        for i, values in enumerate(rows.itertuples(index=False)):
            when = (start + i * step).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            writer.writerow([*values, f"req-{i}", 0, "tester", when, "feedback", version])
    return path
