"""What a retraining learns from: the feedback dataset, split by time.

The feedback dataset (``retrain.feedback_path``, written by ``mlcycle data feedback``)
holds the training data's columns (the schema's features and the label) followed by
provenance columns whose names start with ``_``, among them ``_labelled_at`` (ISO 8601,
UTC). Rows labelled after the champion was registered are *new*; the newest
``retrain.recent_fraction`` of the new rows are *recent labelled traffic*: neither model
trained on them, so both are judged on them. Every other feedback row is added to the
training split (the validation and test splits stay as ``mlcycle train`` makes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle._optional import require
from mlcycle.data.dataset import Dataset, DataVersion
from mlcycle.data.schema import Schema
from mlcycle.exceptions import DataError

__all__ = [
    "LABELLED_AT",
    "Feedback",
    "FeedbackSplit",
    "append_rows",
    "has_rows",
    "iso",
    "read_feedback",
]

#: The provenance column with the time a row was labelled.
LABELLED_AT = "_labelled_at"
_EXPORT_HINT = "export labelled traffic with `mlcycle data feedback`"


@dataclass
class Feedback:
    """The feedback dataset: labelled rows, oldest first, and when each was labelled."""

    rows: Dataset
    labelled_at: np.ndarray[Any, np.dtype[np.float64]]
    version: DataVersion

    def __len__(self) -> int:
        return len(self.rows)

    def split(self, since: float, recent_fraction: float) -> FeedbackSplit:
        """Split by time: rows to train on, and the recent rows kept for judging.

        Parameters
        ----------
        since
            When the champion was registered (seconds since the epoch): rows labelled
            later are new.
        recent_fraction
            The share of the new rows, newest first, kept out of training.
        """
        new = np.flatnonzero(self.labelled_at > since)
        n_recent = round(len(new) * recent_fraction)
        recent = new[len(new) - n_recent :] if n_recent else new[:0]
        train = np.setdiff1d(np.arange(len(self)), recent)
        return FeedbackSplit(
            train=self.rows.subset(train),
            recent=self.rows.subset(recent),
            new_rows=len(new),
        )


@dataclass
class FeedbackSplit:
    """Feedback rows to add to the training split, and recent rows to judge on."""

    train: Dataset
    recent: Dataset
    new_rows: int


def _labelled_times(
    text: np.ndarray[Any, Any], path: Path
) -> np.ndarray[Any, np.dtype[np.float64]]:
    pd = require("pandas", "train")
    parsed = pd.to_datetime(pd.Series(text), utc=True, format="ISO8601", errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        examples = ", ".join(repr(v) for v in text[bad][:3].tolist())
        raise DataError(
            f"column {LABELLED_AT} of the feedback dataset {path} has {int(bad.sum())} value(s) "
            f"that are not ISO 8601 times (e.g. {examples}); fix them or {_EXPORT_HINT}"
        )
    stamps = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.asarray(stamps / 1e9, dtype=np.float64)


def has_rows(path: Path) -> bool:
    """Whether the CSV at ``path`` has a data row after its header."""
    with path.open("rb") as fh:
        return sum(1 for line, _ in zip(fh, range(2), strict=False) if line.strip()) > 1


def read_feedback(path: Path, schema: Schema, root: Path) -> Feedback:
    """Read the feedback dataset (:func:`~mlcycle.data.feedback_export.load_feedback`).

    Parameters
    ----------
    path
        The feedback CSV.
    schema
        The training data's schema, the contract the file must meet.
    root
        The project root (for the data version's path).

    Returns
    -------
    Feedback
        The labelled rows, oldest first.

    Raises
    ------
    DataError
        The file cannot be read, or a ``_labelled_at`` value is not an ISO 8601 time.
    SchemaError
        Its columns are not the schema's plus the provenance columns, or a value does
        not fit the schema.
    """
    from mlcycle.data.feedback_export import load_feedback

    data = load_feedback(path, schema, root=root)
    times = _labelled_times(data.provenance[LABELLED_AT], path)
    order = np.argsort(times, kind="stable")
    return Feedback(
        rows=data.dataset.subset(order), labelled_at=times[order], version=data.dataset.version
    )


def append_rows(base: Dataset, extra: Dataset) -> Dataset:
    """``base`` followed by ``extra`` (same schema), keeping ``base``'s path and version."""
    pd = require("pandas", "train")
    if len(extra) == 0:
        return base
    return Dataset(
        frame=pd.concat([base.frame, extra.frame[base.frame.columns]], ignore_index=True),
        y=np.concatenate([base.y, extra.y]),
        schema=base.schema,
        version=base.version,
        path=base.path,
    )


def iso(seconds: float) -> str:
    """An epoch time as ISO 8601 UTC, to the second.

    Examples
    --------
    >>> iso(0)
    '1970-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
