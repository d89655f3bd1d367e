"""Duplicate rows: the same features with the same label, or with conflicting labels.

Rows are compared on the features the model sees (the schema's, after loading: numbers
as float32, missing values equal to each other, images by their pixels). Exact
duplicates inflate a class and leak between cross-validation folds; the same features
with two labels mean the labels are not defined consistently (or a feature that tells
the rows apart is missing), and no model can get all of them right.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Duplicates", "find_duplicates"]


@dataclass
class Duplicates:
    """Groups of rows with identical features."""

    #: Groups of rows with the same features and the same label.
    exact_groups: int
    #: Rows beyond the first of each such group (what removing duplicates would drop).
    exact_extra_rows: int
    #: The listed groups: ``{"rows": [...], "label": ...}``, largest first.
    exact: list[dict[str, Any]] = field(default_factory=list)
    #: Groups of rows with the same features and more than one label.
    conflicting_groups: int = 0
    #: Rows in those groups.
    conflicting_rows: int = 0
    #: The listed groups: ``{"rows": [...], "labels": {label: [rows]}}``, largest first.
    conflicting: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "exact_groups": self.exact_groups,
            "exact_extra_rows": self.exact_extra_rows,
            "exact": self.exact,
            "conflicting_groups": self.conflicting_groups,
            "conflicting_rows": self.conflicting_rows,
            "conflicting": self.conflicting,
        }


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with image cells (arrays) replaced by a digest of their pixels."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.dtype == object and any(isinstance(v, np.ndarray) for v in values.head(5)):
            out[column] = [
                "" if v is None else hashlib.sha1(np.ascontiguousarray(v).tobytes()).hexdigest()
                for v in values
            ]
    return out


def find_duplicates(
    frame: pd.DataFrame,
    y: np.ndarray[Any, Any],
    *,
    rows: np.ndarray[Any, Any] | None = None,
    max_listed: int = 50,
) -> Duplicates:
    """Find exact duplicates and duplicates with conflicting labels.

    Parameters
    ----------
    frame
        The features (a :class:`~mlcycle.data.dataset.Dataset`'s frame).
    y
        The labels.
    rows
        Each row's position in the data file (default: its position in ``frame``).
    max_listed
        Groups listed per kind, largest first (all are counted).

    Returns
    -------
    Duplicates

    Examples
    --------
    >>> import pandas as pd
    >>> f = pd.DataFrame({"x": [1.0, 1.0, 2.0, 2.0, 3.0], "c": ["u", "u", "v", "v", "w"]})
    >>> d = find_duplicates(f, np.array(["a", "a", "a", "b", "a"]))
    >>> d.exact, d.conflicting
    ([{'rows': [0, 1], 'label': 'a'}], [{'rows': [2, 3], 'labels': {'a': [2], 'b': [3]}}])
    """
    n = len(frame)
    positions = np.arange(n) if rows is None else np.asarray(rows)
    if n == 0 or frame.shape[1] == 0:
        return Duplicates(exact_groups=0, exact_extra_rows=0)
    table = _hashable(frame.reset_index(drop=True))
    keys = table.groupby(list(table.columns), dropna=False, sort=False).ngroup().to_numpy()
    labels = np.asarray(y).astype(str)
    members: dict[int, list[int]] = {}
    for i, k in enumerate(keys.tolist()):
        members.setdefault(k, []).append(i)
    exact: list[dict[str, Any]] = []
    conflicting: list[dict[str, Any]] = []
    extra = 0
    conflicting_rows = 0
    for group in members.values():
        if len(group) < 2:
            continue
        by_label: dict[str, list[int]] = {}
        for i in group:
            by_label.setdefault(str(labels[i]), []).append(int(positions[i]))
        for label, at in by_label.items():
            if len(at) > 1:
                exact.append({"rows": at, "label": label})
                extra += len(at) - 1
        if len(by_label) > 1:
            conflicting.append(
                {
                    "rows": sorted(int(positions[i]) for i in group),
                    "labels": dict(sorted(by_label.items())),
                }
            )
            conflicting_rows += len(group)
    exact.sort(key=lambda g: (-len(g["rows"]), g["rows"][0]))
    conflicting.sort(key=lambda g: (-len(g["rows"]), g["rows"][0]))
    return Duplicates(
        exact_groups=len(exact),
        exact_extra_rows=extra,
        exact=exact[:max_listed],
        conflicting_groups=len(conflicting),
        conflicting_rows=conflicting_rows,
        conflicting=conflicting[:max_listed],
    )
