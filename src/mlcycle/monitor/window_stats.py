"""What a window of live traffic says: input, output, software metrics and drift.

:func:`window_metrics` turns a :class:`~mlcycle.monitor.window.RowView` and a
:class:`~mlcycle.monitor.window.RequestView` into named values (the same names alarm
rules use):

================================  ========================================================
``input.missing_rate``            per feature: share of rows with the value missing
``input.out_of_range_rate``       per numeric feature: share outside the training min..max
``input.unseen_category_rate``    per categorical feature: share of categories not in
                                  training
``input.mean``                    per numeric feature
``input.quantile``                per numeric feature and ``q`` in 0.05, 0.5, 0.95
``input.text_length_mean``        per text feature: mean length in characters
``input.text_length_quantile``    per text feature and ``q`` in 0.05, 0.5, 0.95
                                  (an image feature ``image`` is watched as the numeric
                                  features ``image.brightness`` and ``image.contrast``:
                                  see monitor/images.py)
``output.confidence_mean``        mean top probability
``output.confidence_quantile``    top probability's quantiles, ``q`` in 0.05, 0.5, 0.95
``output.low_confidence_rate``    share of rows whose top probability is below the setting
``output.null_rate``              share of rows with no finite probability
``output.class_share``            per class: share of rows predicted as it
``latency_p50_ms``,               over requests in the window
``latency_p99_ms``
``error_rate``                    share of requests answered with an error (4xx / 5xx)
``throughput_rps``                requests per second over the window's time span
``pipeline.latency_p50_ms``,      for a stage of a pipeline: from the pipeline's start
``pipeline.latency_p99_ms``       (``X-Pipeline-Start``) to this stage's answer; at the
                                  last stage, the end-to-end latency
``drift.score``                   per feature: the test's statistic (see drift.py); a
                                  text feature is tested on its length
``drift.psi``                     per feature: population stability index
``drift.detected``                per feature: 1 when the test says drifted
``drift.share``                   share of drifted features (the dataset verdict's input)
``drift.prediction``              prediction drift: the class mix against the validation
                                  predictions in the bundle's profile (chi-square p-value
                                  small or Jensen-Shannon large means drifted)
================================  ========================================================
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle.exceptions import DataError
from mlcycle.monitor.drift import (
    KS_EXACT_BELOW,
    DatasetDrift,
    DriftSettings,
    FeatureDrift,
    categorical_drift_from_counts,
    dataset_drift,
    numeric_drift,
)
from mlcycle.monitor.images import reference_stat
from mlcycle.monitor.window import RequestView, RowView

__all__ = [
    "FeatureSpec",
    "MetricValue",
    "WindowResult",
    "feature_specs",
    "text_lengths",
    "window_metrics",
]

QUANTILES = (0.05, 0.5, 0.95)


@dataclass(frozen=True)
class MetricValue:
    """One value of a named metric over a window, with its labels and sample count."""

    name: str
    value: float
    samples: int
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureSpec:
    """What the monitor knows of a feature from the bundle's profile."""

    name: str
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    sample: Sequence[float] | None = None
    counts: Mapping[str, int] | None = None


@dataclass
class WindowResult:
    """Every metric of one evaluation, and the drift verdicts behind them."""

    time: float
    rows: int
    requests: int
    metrics: list[MetricValue]
    drift: DatasetDrift | None = None
    prediction_drift: FeatureDrift | None = None


def feature_specs(profile: Mapping[str, Any], names: Sequence[str]) -> dict[str, FeatureSpec]:
    """Specs of ``names`` from a bundle profile (features it does not describe are left out).

    Parameters
    ----------
    profile
        The bundle's ``profile.json``.
    names
        Features the model uses.
    """
    out: dict[str, FeatureSpec] = {}
    described = profile.get("features", {}) if isinstance(profile, Mapping) else {}
    for name in names:
        spec = described.get(name)
        if not isinstance(spec, Mapping):
            spec = reference_stat(described, name)
            if spec is None:
                continue
            # an image's brightness or contrast: a numeric feature (see monitor/images.py)
            spec = {**spec, "kind": "numeric"}
        if spec.get("kind") == "numeric":
            out[name] = FeatureSpec(
                name,
                "numeric",
                _float_or_none(spec.get("min")),
                _float_or_none(spec.get("max")),
                sample=spec.get("sample") or None,
            )
        elif spec.get("kind") == "text":
            length = spec.get("length")
            sample = length.get("sample") if isinstance(length, Mapping) else None
            out[name] = FeatureSpec(name, "text", sample=sample or None)
        elif spec.get("kind") == "categorical":
            counts = spec.get("counts") or {}
            out[name] = FeatureSpec(
                name, "categorical", counts={str(k): int(v) for k, v in counts.items()}
            )
    return out


def window_metrics(
    rows: RowView,
    requests: RequestView,
    *,
    numeric_names: Sequence[str],
    categorical_names: Sequence[str],
    classes: Sequence[str],
    specs: Mapping[str, FeatureSpec],
    missing_category: str,
    low_confidence: float,
    drift: DriftSettings,
    min_rows: int,
    reference_predictions: Mapping[str, int] | None = None,
    now: float = 0.0,
) -> WindowResult:
    """All metrics of a window (see the module docstring for the names).

    Parameters
    ----------
    rows, requests
        The window's rows and requests.
    numeric_names, categorical_names
        Column names of ``rows.numeric`` and ``rows.categorical``.
    classes
        Class labels; ``rows.predicted`` holds indices into them.
    specs
        The profile's view of each feature (:func:`feature_specs`).
    missing_category
        The text that stands for a missing category.
    low_confidence
        Top probability below which a prediction is low-confidence.
    drift
        Thresholds of the drift tests.
    min_rows
        No drift tests on fewer rows.
    reference_predictions
        Class counts of the validation predictions, for prediction drift.
    now
        Time of the evaluation (unix seconds).
    """
    out: list[MetricValue] = []
    n = rows.rows
    if n:
        out += _numeric_inputs(rows.numeric, numeric_names, specs)
        out += _categorical_inputs(rows.categorical, categorical_names, specs, missing_category)
        out += _outputs(rows, classes, low_confidence)
    out += _software(requests)
    result = WindowResult(now, n, requests.requests, out)
    if n >= min_rows:
        result.drift = _feature_drift(
            rows, numeric_names, categorical_names, specs, missing_category, drift
        )
        for f in result.drift.features:
            labels = {"feature": f.feature}
            out.append(MetricValue("drift.score", f.statistic, f.n_current, labels))
            out.append(MetricValue("drift.psi", f.psi, f.n_current, labels))
            out.append(MetricValue("drift.detected", float(f.drifted), f.n_current, labels))
        if result.drift.features:
            out.append(MetricValue("drift.share", result.drift.share, n))
        if reference_predictions:
            counts = Counter(classes[i] for i in rows.predicted.tolist())
            try:
                pd = categorical_drift_from_counts(
                    "prediction", reference_predictions, counts, drift
                )
            except DataError:
                pd = None
            if pd is not None:
                result.prediction_drift = pd
                value = pd.p_value if pd.p_value is not None else pd.statistic
                out.append(MetricValue("drift.prediction", value, n, {"test": pd.test}))
    return result


def _numeric_inputs(
    values: np.ndarray[Any, Any], names: Sequence[str], specs: Mapping[str, FeatureSpec]
) -> list[MetricValue]:
    out: list[MetricValue] = []
    n = values.shape[0]
    missing = np.isnan(values)
    missing_rate = missing.mean(axis=0)
    with np.errstate(all="ignore"):
        means = np.nanmean(np.where(missing, np.nan, values), axis=0) if n else []
    for j, name in enumerate(names):
        labels = {"feature": name}
        out.append(MetricValue("input.missing_rate", float(missing_rate[j]), n, labels))
        column = values[:, j][~missing[:, j]]
        if column.size == 0:
            continue
        out.append(MetricValue("input.mean", float(means[j]), int(column.size), labels))
        for q, v in zip(QUANTILES, np.quantile(column, QUANTILES), strict=True):
            out.append(
                MetricValue(
                    "input.quantile", float(v), int(column.size), {"feature": name, "q": str(q)}
                )
            )
        spec = specs.get(name)
        if spec is not None and spec.minimum is not None and spec.maximum is not None:
            outside = np.count_nonzero((column < spec.minimum) | (column > spec.maximum))
            out.append(MetricValue("input.out_of_range_rate", outside / n, n, labels))
    return out


def _categorical_inputs(
    values: np.ndarray[Any, Any],
    names: Sequence[str],
    specs: Mapping[str, FeatureSpec],
    missing_category: str,
) -> list[MetricValue]:
    out: list[MetricValue] = []
    n = values.shape[0]
    for j, name in enumerate(names):
        counts = Counter(values[:, j].tolist())
        missing = counts.pop(missing_category, 0) + counts.pop("", 0) + counts.pop(None, 0)
        labels = {"feature": name}
        out.append(MetricValue("input.missing_rate", missing / n, n, labels))
        spec = specs.get(name)
        if spec is not None and spec.kind == "text":
            out += _text_lengths(values[:, j], name, missing_category)
        elif spec is not None and spec.counts is not None:
            unseen = sum(c for v, c in counts.items() if v not in spec.counts)
            out.append(MetricValue("input.unseen_category_rate", unseen / n, n, labels))
    return out


def text_lengths(values: np.ndarray[Any, Any], missing_category: str) -> np.ndarray[Any, Any]:
    """Length in characters of each present text (missing values are left out).

    Examples
    --------
    >>> text_lengths(np.array(["ab", "", "abcd", None], dtype=object), "").tolist()
    [2.0, 4.0]
    """
    return np.fromiter(
        (len(v) for v in values.tolist() if v not in (None, "", missing_category)),
        dtype=np.float64,
    )


def _text_lengths(
    values: np.ndarray[Any, Any], name: str, missing_category: str
) -> list[MetricValue]:
    lengths = text_lengths(values, missing_category)
    if lengths.size == 0:
        return []
    k = int(lengths.size)
    out = [MetricValue("input.text_length_mean", float(lengths.mean()), k, {"feature": name})]
    for q, v in zip(QUANTILES, np.quantile(lengths, QUANTILES), strict=True):
        out.append(
            MetricValue("input.text_length_quantile", float(v), k, {"feature": name, "q": str(q)})
        )
    return out


def _outputs(rows: RowView, classes: Sequence[str], low_confidence: float) -> list[MetricValue]:
    n = rows.rows
    conf = rows.confidence
    finite = np.isfinite(conf)
    out = [MetricValue("output.null_rate", float(1.0 - finite.mean()), n)]
    if finite.any():
        ok = conf[finite]
        out.append(MetricValue("output.confidence_mean", float(ok.mean()), int(ok.size)))
        for q, v in zip(QUANTILES, np.quantile(ok, QUANTILES), strict=True):
            out.append(
                MetricValue("output.confidence_quantile", float(v), int(ok.size), {"q": str(q)})
            )
        out.append(
            MetricValue(
                "output.low_confidence_rate", float((ok < low_confidence).mean()), int(ok.size)
            )
        )
    shares = np.bincount(rows.predicted, minlength=len(classes)) / n
    for c, share in zip(classes, shares.tolist(), strict=False):
        out.append(MetricValue("output.class_share", share, n, {"class": c}))
    return out


def _software(requests: RequestView) -> list[MetricValue]:
    m = requests.requests
    if m == 0:
        return []
    p50, p99 = np.quantile(requests.latency, (0.5, 0.99)) * 1000.0
    out = [
        MetricValue("latency_p50_ms", float(p50), m),
        MetricValue("latency_p99_ms", float(p99), m),
        MetricValue("error_rate", float(requests.failed.mean()), m),
    ]
    span = float(requests.times[-1] - requests.times[0])
    if m > 1 and span > 0:
        out.append(MetricValue("throughput_rps", (m - 1) / span, m))
    in_pipeline = requests.pipeline[np.isfinite(requests.pipeline)]
    if in_pipeline.size:
        q50, q99 = np.quantile(in_pipeline, (0.5, 0.99)) * 1000.0
        out.append(MetricValue("pipeline.latency_p50_ms", float(q50), int(in_pipeline.size)))
        out.append(MetricValue("pipeline.latency_p99_ms", float(q99), int(in_pipeline.size)))
    return out


def _feature_drift(
    rows: RowView,
    numeric_names: Sequence[str],
    categorical_names: Sequence[str],
    specs: Mapping[str, FeatureSpec],
    missing_category: str,
    settings: DriftSettings,
) -> DatasetDrift:
    results: list[FeatureDrift] = []
    for j, name in enumerate(numeric_names):
        spec = specs.get(name)
        if spec is None or not spec.sample:
            continue
        column = rows.numeric[:, j]
        if not np.isfinite(column).any():
            continue
        results.append(
            numeric_drift(name, spec.sample, column, settings, ks_exact_below=KS_EXACT_BELOW)
        )
    for j, name in enumerate(categorical_names):
        spec = specs.get(name)
        if spec is not None and spec.kind == "text" and spec.sample:
            lengths = text_lengths(rows.categorical[:, j], missing_category)
            if lengths.size:  # a text's drift is the drift of its length
                results.append(
                    numeric_drift(
                        name, spec.sample, lengths, settings, ks_exact_below=KS_EXACT_BELOW
                    )
                )
            continue
        if spec is None or not spec.counts:
            continue
        counts = Counter(rows.categorical[:, j].tolist())
        for gone in (missing_category, "", None):
            counts.pop(gone, None)
        if not counts:
            continue
        results.append(categorical_drift_from_counts(name, spec.counts, counts, settings))
    return dataset_drift(results, settings)


def _float_or_none(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None
