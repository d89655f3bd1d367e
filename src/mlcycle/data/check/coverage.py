"""Does the data cover the important cases? Classes, categories, slices, feature health.

* **Class balance**: rows and share of each class, the imbalance ratio (largest class /
  smallest), and the classes rarer than ``rare_class_share``.
* **Rare categories**: values of a categorical feature seen in fewer than ``rare_count``
  rows; the model learns next to nothing about them.
* **Small slices**: each categorical value and each quantile bin of a numeric feature
  (each distinct value when it has no more than ``slice_bins`` of them) with fewer than
  ``min_slice_rows`` rows; a model's quality on them cannot be measured reliably.
* **Feature health**: per feature, the missing values and their rate, the distinct
  values, and whether it is constant (at most one distinct value: it carries no
  information).

Everything works on the loaded :class:`~mlcycle.data.dataset.Dataset`: numeric
features are float32 with NaN for missing, categorical and text features are strings
with ``""`` for missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.data.schema import Schema

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["class_balance", "feature_health", "rare_categories", "small_slices"]


def class_balance(y: np.ndarray[Any, Any], *, rare_class_share: float) -> dict[str, Any]:
    """Rows and share per class, the imbalance ratio and the rare classes.

    Parameters
    ----------
    y
        The labels.
    rare_class_share
        A class with a smaller share of the rows is listed in ``rare``.

    Returns
    -------
    dict
        ``counts`` and ``shares`` (class -> value, largest first), ``imbalance_ratio``
        (largest count / smallest count), ``rare`` (classes below the share).

    Examples
    --------
    >>> b = class_balance(np.array(["a"] * 19 + ["b"]), rare_class_share=0.1)
    >>> b["counts"], b["imbalance_ratio"], b["rare"]
    ({'a': 19, 'b': 1}, 19.0, ['b'])
    """
    classes, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    order = sorted(range(len(classes)), key=lambda i: (-int(counts[i]), str(classes[i])))
    total = int(counts.sum())
    by_class = {str(classes[i]): int(counts[i]) for i in order}
    shares = {c: round(n / total, 6) for c, n in by_class.items()}
    return {
        "counts": by_class,
        "shares": shares,
        "imbalance_ratio": round(float(counts.max()) / float(counts.min()), 4),
        "rare": [c for c, n in by_class.items() if n / total < rare_class_share],
        "rare_class_share": rare_class_share,
    }


def _value_counts(values: np.ndarray[Any, Any]) -> list[tuple[str, int]]:
    """(value, rows) of the present (non-empty) values, fewest first."""
    present = values[values != ""]
    names, counts = np.unique(present.astype(str), return_counts=True)
    return sorted(zip(names.tolist(), counts.tolist(), strict=True), key=lambda p: (p[1], p[0]))


def rare_categories(
    frame: pd.DataFrame, schema: Schema, *, rare_count: int
) -> list[dict[str, Any]]:
    """Categorical values seen in fewer than ``rare_count`` rows, rarest first.

    Examples
    --------
    >>> import pandas as pd
    >>> from mlcycle.data.schema import FeatureSpec
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("c", "categorical")])
    >>> rare_categories(pd.DataFrame({"c": ["u"] * 5 + ["v", ""]}), s, rare_count=2)
    [{'feature': 'c', 'value': 'v', 'rows': 1}]
    """
    out: list[dict[str, Any]] = []
    for spec in schema.categorical:
        for value, n in _value_counts(frame[spec.name].to_numpy(dtype=object)):
            if n < rare_count:
                out.append({"feature": spec.name, "value": value, "rows": int(n)})
    out.sort(key=lambda r: (r["rows"], r["feature"], r["value"]))
    return out


def _numeric_slices(values: np.ndarray[Any, Any], bins: int) -> list[tuple[str, int]]:
    """(slice name, rows) of a numeric feature: quantile bins, or its few distinct values."""
    present = values[~np.isnan(values)].astype(np.float64)
    if present.size == 0:
        return []
    distinct, counts = np.unique(present, return_counts=True)
    if distinct.size <= bins:
        return [(f"= {v:.6g}", int(n)) for v, n in zip(distinct, counts, strict=True)]
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
    # Bin j holds edges[j] < x <= edges[j + 1]; the first also holds its lower edge.
    index = np.clip(np.searchsorted(edges, present, side="left") - 1, 0, len(edges) - 2)
    sizes = np.bincount(index, minlength=len(edges) - 1)
    out = []
    for j, n in enumerate(sizes.tolist()):
        low = "[" if j == 0 else "("
        out.append((f"{low}{edges[j]:.6g}, {edges[j + 1]:.6g}]", int(n)))
    return out


def small_slices(
    frame: pd.DataFrame, schema: Schema, *, min_rows: int, bins: int
) -> list[dict[str, Any]]:
    """Slices with fewer than ``min_rows`` rows, smallest first.

    A slice is a categorical feature's value, or a numeric feature's quantile bin (each
    distinct value when the feature has no more than ``bins`` of them).

    Examples
    --------
    >>> import pandas as pd
    >>> from mlcycle.data.schema import FeatureSpec
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
    >>> small_slices(pd.DataFrame({"x": [0.0] * 50 + [1.0] * 3}), s, min_rows=10, bins=4)
    [{'feature': 'x', 'kind': 'numeric', 'slice': '= 1', 'rows': 3}]
    """
    out: list[dict[str, Any]] = []
    for spec in schema.categorical:
        for value, n in _value_counts(frame[spec.name].to_numpy(dtype=object)):
            if n < min_rows:
                out.append({"feature": spec.name, "kind": "categorical", "slice": value, "rows": n})
    for spec in schema.numeric:
        values = frame[spec.name].to_numpy(dtype=np.float64)
        for name, n in _numeric_slices(values, bins):
            if n < min_rows:
                out.append({"feature": spec.name, "kind": "numeric", "slice": name, "rows": n})
    out.sort(key=lambda r: (r["rows"], r["feature"], r["slice"]))
    return out


def _missing(column: pd.Series, kind: str) -> np.ndarray[Any, Any]:
    values = column.to_numpy()
    if kind == "numeric":
        out: np.ndarray[Any, Any] = np.isnan(values.astype(np.float64))
        return out
    if kind == "image":
        return np.array([v is None for v in values], dtype=bool)
    return np.asarray(values == "", dtype=bool)


def feature_health(
    frame: pd.DataFrame, schema: Schema, *, max_missing_rate: float
) -> list[dict[str, Any]]:
    """Missing values, distinct values and constancy of every feature, in schema order.

    Returns
    -------
    list of dict
        Per feature: ``name``, ``kind``, ``missing`` (rows), ``missing_rate``,
        ``distinct`` (present values; null for images), ``constant`` (at most one
        distinct present value), ``too_many_missing`` (rate above ``max_missing_rate``).

    Examples
    --------
    >>> import pandas as pd
    >>> from mlcycle.data.schema import FeatureSpec
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric"), FeatureSpec("k", "numeric")])
    >>> f = pd.DataFrame({"x": [1.0, np.nan, 3.0, np.nan], "k": [7.0] * 4})
    >>> [(h["name"], h["missing_rate"], h["constant"]) for h in
    ...  feature_health(f, s, max_missing_rate=0.2)]
    [('x', 0.5, False), ('k', 0.0, True)]
    """
    n = len(frame)
    out: list[dict[str, Any]] = []
    for spec in schema.features:
        column = frame[spec.name]
        missing = _missing(column, spec.kind)
        n_missing = int(missing.sum())
        distinct: int | None
        if spec.kind == "image":
            distinct = None
            constant = False
        else:
            present = column.to_numpy()[~missing]
            distinct = int(
                np.unique(present.astype(np.float64 if spec.kind == "numeric" else str)).size
            )
            constant = distinct <= 1
        rate = n_missing / n if n else 0.0
        out.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "missing": n_missing,
                "missing_rate": round(rate, 6),
                "distinct": distinct,
                "constant": constant,
                "too_many_missing": rate > max_missing_rate,
            }
        )
    return out
