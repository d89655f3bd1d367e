"""Reference statistics of the training data and of the predictions (``profile.json``).

Drift monitoring compares live traffic with these numbers. Everything is plain JSON:
floats are Python floats, a statistic that does not exist (the mean of an all-missing
column) is ``null``; there is no NaN or infinity.

Layout (``format_version`` 1)::

    rows, bins, sample_size, seed
    features: {name: {kind: numeric, count, missing_rate, mean, std, min, max,
                      quantiles: {"0.01": v, ..., "0.99": v},
                      histogram: {edges, counts, closed: "right"},
                      sample: [sorted values]}
               | {kind: categorical, count, missing_rate, counts: {category: n}}
               | {kind: text, count, missing_rate,
                  length: {count, mean, std, min, max, quantiles, histogram, sample}}
               | {kind: image, count, missing_rate, shape: [C, H, W],
                  brightness: {count, mean, std, min, max, quantiles, histogram, sample},
                  contrast: {...the same}}}
    label: {counts: {class: n}, shares: {class: share}}          (training labels)
    predictions: {rows, class_counts, class_mix, mean_probability,
                  confidence: {mean, quantiles, histogram}}      (on the validation rows)
    validation: {rows, label_counts, accuracy, mean_confidence}  (reference quality)

The predicted class of a row is the class of highest probability (what the ``label``
output returns). ``validation`` holds the quality the monitor compares feedback against
(concept drift): accuracy on the labelled validation rows and the mean confidence there.

Histograms have fixed bin edges chosen at the training quantiles (for PSI): ``edges``
are the inner cut points ``e_0 < ... < e_{k-2}`` of ``k`` bins, bin ``i`` holding the
values in ``(e_{i-1}, e_i]`` with ``e_{-1} = -inf`` and ``e_{k-1} = +inf`` (numpy:
``np.searchsorted(edges, x, side="left")`` is the bin of ``x``). Missing values are not
in the histogram; they are the ``missing_rate``. ``sample`` is a seeded random sample of
the non-missing values, kept sorted for two-sample KS tests. A text feature's ``length``
describes the length in characters of its present values the same way (the monitor's
text-length metrics and drift test read it). An image feature's ``brightness`` (mean
pixel of each image) and ``contrast`` (pixel standard deviation) are described the same
way; the monitor watches them as ``<image>.brightness`` and ``<image>.contrast``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec
from mlcycle.exceptions import ExportError
from mlcycle.monitor.images import IMAGE_STATS, image_stats

__all__ = ["PROFILE_FORMAT_VERSION", "QUANTILES", "build_profile", "histogram_bins"]

#: Version of the profile layout above.
PROFILE_FORMAT_VERSION = 1
#: Quantiles recorded for every numeric feature and for the confidence.
QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def build_profile(
    train: Dataset,
    val_proba: np.ndarray[Any, Any],
    val_labels: Sequence[str] | np.ndarray[Any, Any],
    classes: Sequence[str],
    *,
    bins: int = 10,
    sample_size: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Reference statistics for drift monitoring.

    Parameters
    ----------
    train
        The training split: feature statistics and the label mix.
    val_proba
        Predicted probabilities on the validation split, ``[N, len(classes)]``.
    val_labels
        The true labels of those validation rows.
    classes
        Class names in ``val_proba``'s column order.
    bins
        Histogram bins (quantile bins; fewer when values repeat).
    sample_size
        Largest reference sample kept per numeric feature.
    seed
        Seed of the reference samples.

    Returns
    -------
    dict
        The profile (see the module docstring), JSON-serialisable.

    Raises
    ------
    ExportError
        ``val_proba`` does not have one column per class, or ``val_labels`` one label
        per row.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from pathlib import Path
    >>> from mlcycle.data.dataset import DataVersion, Dataset
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> ds = Dataset(pd.DataFrame({"x": np.array([1, 2, np.nan, 4], dtype="float32")}),
    ...              np.array(["a", "b", "a", "b"]),
    ...              Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")]),
    ...              DataVersion("x", "p", False, 0), Path("p"))
    >>> p = build_profile(ds, np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "a"], ["a", "b"])
    >>> p["features"]["x"]["missing_rate"], p["features"]["x"]["sample"]
    (0.25, [1.0, 2.0, 4.0])
    >>> p["predictions"]["class_mix"], p["validation"]["accuracy"]
    ({'a': 0.5, 'b': 0.5}, 0.5)
    """
    classes = [str(c) for c in classes]
    proba = np.asarray(val_proba, dtype=np.float64)
    labels = np.asarray(val_labels).astype(str)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ExportError(
            f"val_proba has shape {proba.shape}; expected [rows, {len(classes)}] "
            f"for classes {classes}"
        )
    if len(labels) != len(proba):
        raise ExportError(f"{len(labels)} validation labels for {len(proba)} probability rows")

    rng = np.random.default_rng(seed)
    features: dict[str, Any] = {}
    for spec in train.schema.features:
        features[spec.name] = _feature(
            spec, train.frame[spec.name].to_numpy(), bins, sample_size, rng
        )

    y = np.asarray(train.y).astype(str)
    label_counts = {c: int(np.sum(y == c)) for c in train.schema.classes}
    return {
        "format_version": PROFILE_FORMAT_VERSION,
        "rows": len(train),
        "bins": bins,
        "sample_size": sample_size,
        "seed": seed,
        "features": features,
        "label": {"counts": label_counts, "shares": _shares(label_counts)},
        "predictions": _predictions(proba, classes, bins),
        "validation": _validation(proba, labels, classes),
    }


def histogram_bins(values: np.ndarray[Any, Any], edges: Sequence[float]) -> list[int]:
    """Counts of ``values`` in the bins defined by ``edges`` (see the module docstring).

    Parameters
    ----------
    values
        Non-missing values.
    edges
        Inner cut points, increasing.

    Returns
    -------
    list of int
        ``len(edges) + 1`` counts.

    Examples
    --------
    >>> histogram_bins(np.array([0.0, 1.0, 1.5, 9.0]), [1.0, 2.0])
    [2, 1, 1]
    """
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    return [int(c) for c in np.bincount(idx, minlength=len(edges) + 1)]


def _feature(
    spec: FeatureSpec,
    values: np.ndarray[Any, Any],
    bins: int,
    sample_size: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    n = len(values)
    if spec.kind == "image":
        return _image(spec, values, bins, sample_size, rng)
    if spec.kind == "numeric":
        x = np.asarray(values, dtype=np.float64)
        present = x[np.isfinite(x)]
        out: dict[str, Any] = {"kind": "numeric"}
        out.update(_numeric_summary(present, n))
        out["histogram"] = _histogram(present, bins)
        if len(present) > sample_size:
            present = rng.choice(present, size=sample_size, replace=False)
        out["sample"] = [_short(v) for v in np.sort(present)]
        return out
    text = np.asarray(values, dtype=object)
    missing = np.asarray(pd.isna(text), dtype=bool) | (text == "")
    if spec.kind == "categorical":
        cats, counts = np.unique(text[~missing].astype(str), return_counts=True)
        return {
            "kind": "categorical",
            "count": int((~missing).sum()),
            "missing_rate": _rate(int(missing.sum()), n),
            "counts": {str(c): int(k) for c, k in zip(cats, counts, strict=True)},
        }
    out = {
        "kind": spec.kind,
        "count": int((~missing).sum()),
        "missing_rate": _rate(int(missing.sum()), n),
    }
    if spec.kind == "text":
        out["length"] = _lengths(text[~missing], bins, sample_size, rng)
    return out


def _image(
    spec: FeatureSpec,
    values: np.ndarray[Any, Any],
    bins: int,
    sample_size: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """An image feature: its shape, and each image's brightness and contrast described
    like a numeric feature (summary, histogram, sorted sample)."""
    present = [v for v in values.tolist() if v is not None]
    n = len(values)
    out: dict[str, Any] = {
        "kind": "image",
        "count": len(present),
        "missing_rate": _rate(n - len(present), n),
        "shape": list(spec.shape or []),
    }
    stats = image_stats(np.stack(present)) if present else np.empty((0, len(IMAGE_STATS)))
    keep = (
        rng.choice(len(stats), size=sample_size, replace=False)
        if len(stats) > sample_size
        else np.arange(len(stats))
    )
    for j, stat in enumerate(IMAGE_STATS):
        column = stats[:, j]
        summary = _numeric_summary(column, len(column))
        summary.pop("missing_rate")
        summary["histogram"] = _histogram(column, bins)
        summary["sample"] = [_short(v) for v in np.sort(column[keep])]
        out[stat] = summary
    return out


def _lengths(
    texts: np.ndarray[Any, Any], bins: int, sample_size: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Length in characters of the present texts: summary, histogram and sorted sample."""
    lengths = np.fromiter((len(str(t)) for t in texts), dtype=np.float64, count=len(texts))
    out = _numeric_summary(lengths, len(lengths))
    out.pop("missing_rate")
    out["histogram"] = _histogram(lengths, bins)
    if len(lengths) > sample_size:
        lengths = rng.choice(lengths, size=sample_size, replace=False)
    out["sample"] = [float(v) for v in np.sort(lengths)]
    return out


def _numeric_summary(present: np.ndarray[Any, Any], n: int) -> dict[str, Any]:
    """count, missing_rate, mean, std, min, max and quantiles of the non-missing values."""
    k = len(present)
    if k == 0:
        return {
            "count": 0,
            "missing_rate": _rate(n, n),
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "quantiles": {str(q): None for q in QUANTILES},
        }
    qs = np.quantile(present, QUANTILES)
    return {
        "count": k,
        "missing_rate": _rate(n - k, n),
        "mean": _float(np.mean(present)),
        "std": _float(np.std(present)),
        "min": _float(np.min(present)),
        "max": _float(np.max(present)),
        "quantiles": {str(q): _float(v) for q, v in zip(QUANTILES, qs, strict=True)},
    }


def _histogram(present: np.ndarray[Any, Any], bins: int) -> dict[str, Any]:
    """Quantile bins over ``present``; edges rounded to float32 precision, counts exact."""
    if len(present) == 0 or bins < 2:
        return {"edges": [], "counts": [len(present)], "closed": "right"}
    raw = np.quantile(present, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = sorted({_short(e) for e in raw})
    # A cut at the maximum leaves the last bin empty by construction: drop it.
    edges = [e for e in edges if e < float(np.max(present))] or edges[:1]
    return {"edges": edges, "counts": histogram_bins(present, edges), "closed": "right"}


def _predictions(proba: np.ndarray[Any, Any], classes: list[str], bins: int) -> dict[str, Any]:
    n = len(proba)
    predicted = proba.argmax(axis=1) if n else np.empty(0, dtype=int)
    counts = {c: int(np.sum(predicted == i)) for i, c in enumerate(classes)}
    confidence = proba.max(axis=1) if n else np.empty(0)
    summary = _numeric_summary(confidence, n)
    return {
        "rows": n,
        "class_counts": counts,
        "class_mix": _shares(counts),
        "mean_probability": {
            c: (_float(np.mean(proba[:, i])) if n else None) for i, c in enumerate(classes)
        },
        "confidence": {
            "mean": summary["mean"],
            "quantiles": summary["quantiles"],
            "histogram": _histogram(confidence, bins),
        },
    }


def _validation(
    proba: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], classes: list[str]
) -> dict[str, Any]:
    n = len(proba)
    values, counts = np.unique(labels, return_counts=True)
    predicted = np.asarray(classes, dtype=object)[proba.argmax(axis=1)] if n else labels
    return {
        "rows": n,
        "label_counts": {str(v): int(k) for v, k in zip(values, counts, strict=True)},
        "accuracy": _float(np.mean(predicted == labels)) if n else None,
        "mean_confidence": _float(np.mean(proba.max(axis=1))) if n else None,
    }


def _shares(counts: dict[str, int]) -> dict[str, float | None]:
    total = sum(counts.values())
    return {c: (k / total if total else None) for c, k in counts.items()}


def _rate(k: int, n: int) -> float | None:
    return k / n if n else None


def _float(v: Any) -> float | None:
    f = float(v)
    return f if math.isfinite(f) else None


def _short(v: Any) -> float:
    """``v`` at float32 precision, written with the fewest digits that round-trip."""
    return float(str(np.float32(v)))
