"""Monitoring reports: a JSON document, and the same content as one self-contained HTML file.

A report is a plain dict (the JSON content). Two kinds:

* ``drift`` (``mlcycle drift REF CUR --html``): the per-feature tests of
  :mod:`mlcycle.monitor.drift` and a reference-vs-current histogram per feature;
* ``monitor`` (``mlcycle monitor report``): a window of the prediction store --
  metric timelines per time bucket (requests, rows, error rate, latency p50/p99, mean
  confidence, low-confidence rate, class mix, accuracy on the rows with feedback), the
  ``metric_points`` series and the alarms in the window, and the drift of the logged
  features against a reference (a data file, or a bundle's ``profile.json``).

Layout of a document::

    kind: "drift" | "monitor", title, generated_at (ISO, UTC)
    drift:    {reference, dataset: {drifted, share, threshold, drifted_features},
               features: [FeatureDrift.to_dict()],
               histograms: {feature: {type: numeric, edges, reference, current}
                                     | {type: categorical, categories, reference, current}},
               skipped: {feature: reason}}
    (drift kind: also reference and current file names at the top level, and
     dataset / features as in ``mlcycle drift --output``.)
    (monitor kind:) window: {since, until, store, model, stage},
                    summary: {rows, requests, errors, error_rate, latency_p50_ms, ...},
                    timeline: {bucket_seconds, low_confidence_below, classes,
                               buckets: [{start, requests, rows, ...}]},
                    metric_points: [{name, labels, stage, model_version, points}],
                    alarms: [{time, name, metric, state, ...}],
                    drift: as above, or null with drift_note saying why.

Histogram values are shares (each side sums to 1). Missing numbers are ``null``; the
JSON holds no NaN. :func:`mlcycle.monitor.report_html.render_html` turns a document into
one self-contained HTML page with plots.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlcycle.exceptions import ConfigError, DataError
from mlcycle.monitor.drift import (
    DatasetDrift,
    DriftSettings,
    FeatureDrift,
    categorical_drift,
    dataset_drift,
    drift_from_profile,
    numeric_drift,
)
from mlcycle.monitor.images import reference_stat
from mlcycle.monitor.log_read import log_extent, snapshot, window_rows, with_feedback
from mlcycle.monitor.pipeline import pipeline_summary
from mlcycle.monitor.store import ALARMS, METRIC_POINTS

__all__ = [
    "LOW_CONFIDENCE",
    "EmptyWindowError",
    "categorical_histogram",
    "drift_document",
    "drift_section",
    "iso",
    "numeric_histogram",
    "store_document",
    "write_report",
]

#: Confidence below which a prediction counts as low-confidence.
LOW_CONFIDENCE = 0.6
_HIST_BINS = 30
_TOP_CATEGORIES = 10
_TOP_CLASSES = 8
_BUCKETS = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400)
_MAX_BUCKETS = 48


class EmptyWindowError(DataError):
    """The report's time window holds no prediction."""


# -- numbers ---------------------------------------------------------------------------


def iso(t: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC time (``2026-01-02T03:04:05Z``); ``None`` stays."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(v: Any) -> float | None:
    if v is None:
        return None
    x = float(v)
    return x if math.isfinite(x) else None


def _clean(obj: Any) -> Any:
    """``obj`` with NaN / infinity as ``None`` and numpy scalars as Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _num(obj)
    return obj


def _shares(counts: np.ndarray[Any, Any]) -> list[float]:
    total = float(counts.sum())
    return [float(c) / total if total else 0.0 for c in counts]


def numeric_histogram(
    reference: Sequence[float] | np.ndarray[Any, Any],
    current: Sequence[float] | np.ndarray[Any, Any],
    bins: int = _HIST_BINS,
) -> dict[str, Any]:
    """Shares of the reference and the current values over the same bins.

    The bins split the range from the lower 0.5 % point to the upper 99.5 % point of the
    two samples evenly; values beyond fall in the outer bins. Missing values are left
    out.

    Parameters
    ----------
    reference, current
        The values.
    bins
        Number of bins.

    Returns
    -------
    dict
        ``{"type": "numeric", "edges": [bins + 1], "reference": [bins],
        "current": [bins]}``.

    Examples
    --------
    >>> h = numeric_histogram([0.0, 1.0, 2.0, 3.0], [2.0, 3.0], bins=2)
    >>> h["reference"], h["current"]
    ([0.5, 0.5], [0.0, 1.0])
    """
    ref = _finite(reference)
    cur = _finite(current)
    both = [a for a in (ref, cur) if a.size]
    if not both:
        lo, hi = 0.0, 1.0
    else:
        tails = [np.quantile(a, [0.005, 0.995]) for a in both]
        lo, hi = min(float(t[0]) for t in tails), max(float(t[1]) for t in tails)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)

    def shares(a: np.ndarray[Any, Any]) -> list[float]:
        # Even bins over (lo, hi): numpy's fast path; values beyond go to the outer bins.
        counts, _ = np.histogram(np.clip(a, lo, hi), bins=bins, range=(lo, hi))
        return _shares(counts)

    return {
        "type": "numeric",
        "edges": [float(e) for e in edges],
        "reference": shares(ref),
        "current": shares(cur),
    }


def categorical_histogram(
    reference_counts: Mapping[str, int],
    current_counts: Mapping[str, int],
    top: int = _TOP_CATEGORIES,
) -> dict[str, Any]:
    """Shares of the ``top`` most common categories (of both sides) and of the others.

    Returns
    -------
    dict
        ``{"type": "categorical", "categories": [...], "reference": [...],
        "current": [...]}``; a last category ``(other)`` holds the rest, when any.

    Examples
    --------
    >>> categorical_histogram({"a": 3, "b": 1}, {"a": 1, "b": 1})["current"]
    [0.5, 0.5]
    """
    n_ref = sum(reference_counts.values()) or 1
    n_cur = sum(current_counts.values()) or 1
    weight: dict[str, float] = {}
    for k, v in reference_counts.items():
        weight[k] = weight.get(k, 0.0) + v / n_ref
    for k, v in current_counts.items():
        weight[k] = weight.get(k, 0.0) + v / n_cur
    cats = [k for k, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
    ref: list[float] = [reference_counts.get(c, 0) / n_ref for c in cats]
    cur: list[float] = [current_counts.get(c, 0) / n_cur for c in cats]
    if len(weight) > top:
        cats.append("(other)")
        ref.append(max(0.0, 1.0 - sum(ref)))
        cur.append(max(0.0, 1.0 - sum(cur)))
    return {"type": "categorical", "categories": cats, "reference": ref, "current": cur}


def _finite(values: Any) -> np.ndarray[Any, Any]:
    arr = np.asarray(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values
    arr = arr.astype(np.float64, copy=False)
    out: np.ndarray[Any, Any] = arr[np.isfinite(arr)]
    return out


def _floats(values: Iterable[Any]) -> np.ndarray[Any, Any]:
    """Logged values as float64; anything that is not a number becomes NaN."""
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or v is None:
            out.append(math.nan)
        elif isinstance(v, int | float):
            out.append(float(v))
        else:
            try:
                out.append(float(str(v)))
            except ValueError:
                out.append(math.nan)
    return np.asarray(out, dtype=np.float64)


def _category_counts(values: Iterable[Any]) -> dict[str, int]:
    return dict(Counter(str(v) for v in values if v is not None and v != ""))


# -- documents -------------------------------------------------------------------------


def drift_section(
    result: DatasetDrift,
    histograms: Mapping[str, Mapping[str, Any]],
    reference: str,
    skipped: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The drift part of a report.

    Parameters
    ----------
    result
        The tests and the verdict.
    histograms
        Feature -> :func:`numeric_histogram` / :func:`categorical_histogram`.
    reference
        What the data was compared with (a file, a bundle's profile).
    skipped
        Feature -> why it was not tested.
    """
    section: dict[str, Any] = _clean(
        {
            "reference": reference,
            "dataset": {
                "drifted": result.drifted,
                "share": result.share,
                "threshold": result.threshold,
                "drifted_features": result.drifted_features,
            },
            "features": [f.to_dict() for f in result.features],
            "histograms": {k: dict(v) for k, v in histograms.items()},
            "skipped": dict(skipped or {}),
        }
    )
    return section


def drift_document(
    result: DatasetDrift,
    histograms: Mapping[str, Mapping[str, Any]],
    reference: Path | str,
    current: Path | str,
) -> dict[str, Any]:
    """The report of ``mlcycle drift REFERENCE CURRENT --html``.

    Holds ``reference``, ``current``, ``dataset`` and ``features`` as ``--output`` writes
    them, plus ``drift`` (:func:`drift_section`, with the histograms).
    """
    section = drift_section(result, histograms, str(reference))
    return {
        "kind": "drift",
        "title": f"Data drift: {Path(current).name} vs {Path(reference).name}",
        "generated_at": iso(datetime.now(UTC).timestamp()),
        "reference": str(reference),
        "current": str(current),
        "dataset": section["dataset"],
        "features": section["features"],
        "drift": section,
    }


def store_document(
    engine: sa.Engine,
    since: float,
    until: float,
    *,
    model: str | None = None,
    stage: str | None = None,
    reference: Path | None = None,
    profile: Mapping[str, Any] | None = None,
    settings: DriftSettings | None = None,
    low_confidence: float = LOW_CONFIDENCE,
    bucket_seconds: int | None = None,
    store_label: str = "",
) -> dict[str, Any]:
    """The report of a window ``[since, until)`` of the prediction store.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect`.
    since, until
        The window, in unix seconds.
    model, stage
        Only predictions of this model name / stage (default: all).
    reference
        A CSV or Parquet file of reference data for the drift section.
    profile
        A bundle's parsed ``profile.json``, for the drift section (when no
        ``reference``).
    settings
        Drift thresholds.
    low_confidence
        Confidence below which a prediction is low-confidence.
    bucket_seconds
        Width of a timeline bucket (default: chosen for at most 48 buckets over the
        span of the predictions).
    store_label
        How the store is named in the report (a URL without password, a file).

    Returns
    -------
    dict
        The document (see the module docstring).

    Raises
    ------
    EmptyWindowError
        No prediction in the window; the message names the window and what the store
        holds.
    DataError
        The reference file cannot be read.
    """
    rows = _window_rows(engine, since, until, model, stage)
    if not rows:
        raise EmptyWindowError(_empty_message(engine, since, until, model, stage, store_label))
    times = np.array([r.time for r in rows], dtype=np.float64)
    first, last = float(times.min()), float(times.max())
    width = bucket_seconds or _bucket_width(last - first)
    origin = math.floor(first / width) * width
    index = ((times - origin) // width).astype(np.int64)
    classes = [c for c, _ in Counter(r.label for r in rows if r.label is not None).most_common()]
    shown = classes[:_TOP_CLASSES]
    buckets = []
    for i in range(int(index.max()) + 1):
        chosen = [r for r, k in zip(rows, index, strict=True) if k == i]
        buckets.append({"start": iso(origin + i * width), **_stats(chosen, shown, low_confidence)})
    window = {
        "since": iso(since),
        "until": iso(until),
        "store": store_label,
        "model": model,
        "stage": stage,
    }
    summary = _stats(rows, shown, low_confidence)
    summary.update(
        first=iso(first),
        last=iso(last),
        model_versions=sorted({r.model_version for r in rows}),
    )
    doc: dict[str, Any] = {
        "kind": "monitor",
        "title": "Monitoring report" + (f": {model}" if model else ""),
        "generated_at": iso(datetime.now(UTC).timestamp()),
        "window": window,
        "summary": summary,
        "timeline": {
            "bucket_seconds": width,
            "low_confidence_below": low_confidence,
            "classes": shown,
            "buckets": buckets,
        },
        "metric_points": _metric_points(engine, since, until, stage),
        "alarms": _alarms(engine, since, until, model, stage),
        "pipeline": pipeline_summary(engine, since, until),
        "drift": None,
        "drift_note": "",
    }
    columns = _logged_features(rows)
    if reference is not None:
        doc["drift"] = _drift_against_file(reference, columns, settings)
    elif profile is not None:
        doc["drift"] = _drift_against_profile(profile, columns, settings)
    else:
        doc["drift_note"] = "no reference given (--reference FILE or BUNDLE_DIR)"
    if doc["drift"] is not None and not doc["drift"]["features"]:
        doc["drift_note"] = "no logged feature could be compared with the reference"
    cleaned: dict[str, Any] = _clean(doc)
    return cleaned


def _window_rows(
    engine: sa.Engine, since: float, until: float, model: str | None, stage: str | None
) -> list[Any]:
    with snapshot(engine) as conn:
        rows = window_rows(
            conn, since=since, until=until, model_name=model or None, stage=stage or None
        )
        return with_feedback(conn, rows)


def _empty_message(
    engine: sa.Engine,
    since: float,
    until: float,
    model: str | None,
    stage: str | None,
    store_label: str,
) -> str:
    which = [f"model {model!r}" if model else "", f"stage {stage!r}" if stage else ""]
    scope = " and ".join(w for w in which if w)
    with snapshot(engine) as conn:
        n, lo, hi = log_extent(conn)
        if scope:
            m, mlo, mhi = log_extent(conn, model_name=model or None, stage=stage or None)
    text = f"no predictions{' of ' + scope if scope else ''} from {iso(since)} to {iso(until)}"
    where = f" in {store_label}" if store_label else ""
    if not n:
        return f"{text}: the store{where} holds no predictions at all"
    text += f"; the store{where} holds {n} prediction(s) in total, from {iso(lo)} to {iso(hi)}"
    if scope:
        text += f", {m} of them of {scope}" + (f" (from {iso(mlo)} to {iso(mhi)})" if m else "")
    return text + ". Choose a window with --since / --until"


def _bucket_width(span: float) -> int:
    for width in _BUCKETS:
        if span / width < _MAX_BUCKETS:
            return width
    return _BUCKETS[-1]


def _stats(rows: Sequence[Any], classes: Sequence[str], low: float) -> dict[str, Any]:
    """Counts and rates of a set of prediction rows."""
    n = len(rows)
    errors = sum(r.error is not None for r in rows)
    latency_by_request: dict[str, float] = {}
    for r in rows:
        if r.latency_ms is not None:
            latency_by_request[r.request_id] = max(
                latency_by_request.get(r.request_id, 0.0), float(r.latency_ms)
            )
    latency = np.array(list(latency_by_request.values()), dtype=np.float64)
    conf = np.array([r.confidence for r in rows if r.confidence is not None], dtype=np.float64)
    labelled = [r for r in rows if r.label is not None]
    mix = Counter(r.label for r in labelled)
    judged = [r for r in labelled if r.true_label is not None]
    correct = sum(r.label == r.true_label for r in judged)
    class_mix = {c: mix.get(c, 0) / len(labelled) if labelled else None for c in classes}
    if labelled and len(mix) > len(classes):
        class_mix["(other)"] = sum(v for k, v in mix.items() if k not in classes) / len(labelled)
    return {
        "rows": n,
        "requests": len({r.request_id for r in rows}),
        "errors": errors,
        "error_rate": errors / n if n else None,
        "latency_p50_ms": float(np.percentile(latency, 50)) if latency.size else None,
        "latency_p99_ms": float(np.percentile(latency, 99)) if latency.size else None,
        "mean_confidence": float(conf.mean()) if conf.size else None,
        "low_confidence_rate": float((conf < low).mean()) if conf.size else None,
        "class_mix": class_mix,
        "feedback": len(judged),
        "accuracy": correct / len(judged) if judged else None,
    }


def _metric_points(
    engine: sa.Engine, since: float, until: float, stage: str | None
) -> list[dict[str, Any]]:
    m = METRIC_POINTS
    query = sa.select(m.c.time, m.c.name, m.c.stage, m.c.model_version, m.c.labels, m.c.value)
    query = query.where(m.c.time >= since, m.c.time < until)
    if stage:
        query = query.where(m.c.stage == stage)
    series: dict[tuple[str, str, str, str], list[list[Any]]] = {}
    with engine.connect() as conn:
        for r in conn.execute(query.order_by(m.c.time, m.c.id)):
            key = (r.name, r.labels or "", r.stage, r.model_version)
            series.setdefault(key, []).append([iso(r.time), r.value])
    out = []
    for (name, labels, st, version), points in sorted(series.items()):
        try:
            parsed = json.loads(labels) if labels else {}
        except ValueError:
            parsed = {"labels": labels}
        out.append(
            {
                "name": name,
                "labels": parsed,
                "stage": st,
                "model_version": version,
                "points": points,
            }
        )
    return out


def _alarms(
    engine: sa.Engine, since: float, until: float, model: str | None, stage: str | None
) -> list[dict[str, Any]]:
    a = ALARMS
    query = sa.select(a).where(a.c.time >= since, a.c.time < until)
    if model:
        query = query.where(sa.or_(a.c.model_name == model, a.c.model_name == ""))
    if stage:
        query = query.where(a.c.stage == stage)
    with engine.connect() as conn:
        rows = list(conn.execute(query.order_by(a.c.time, a.c.id)))
    return [
        {
            "time": iso(r.time),
            "name": r.name,
            "metric": r.metric,
            "severity": r.severity,
            "state": r.state,
            "value": r.value,
            "threshold": r.threshold,
            "stage": r.stage,
            "model": r.model_name,
            "model_version": r.model_version,
            "message": r.message,
            "acknowledged_at": iso(r.acknowledged_at),
            "acknowledged_by": r.acknowledged_by,
        }
        for r in rows
    ]


def _logged_features(rows: Sequence[Any]) -> dict[str, list[Any]]:
    """Feature -> values of the rows that logged features (``None`` where absent)."""
    dicts = []
    for r in rows:
        if r.features:
            try:
                value = json.loads(r.features)
            except ValueError:
                continue
            if isinstance(value, dict):
                dicts.append(value)
    names: dict[str, None] = {}
    for d in dicts:
        names.update(dict.fromkeys(d))
    return {name: [d.get(name) for d in dicts] for name in names}


def _drift_against_file(
    reference: Path, columns: Mapping[str, list[Any]], settings: DriftSettings | None
) -> dict[str, Any]:
    from mlcycle.monitor.files import TableColumns

    table = TableColumns(reference)
    results: list[FeatureDrift] = []
    histograms: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name, values in columns.items():
        if name not in table.names:
            skipped[name] = f"not a column of {reference.name}"
            continue
        try:
            if table.is_numeric(name):
                ref, cur = table.values(name), _floats(values)
                results.append(numeric_drift(name, ref, cur, settings))
                histograms[name] = numeric_histogram(ref, cur)
            else:
                ref_counts = table.counts(name)
                results.append(categorical_drift(name, ref_counts, values, settings))
                histograms[name] = categorical_histogram(ref_counts, _category_counts(values))
        except DataError as exc:
            skipped[name] = str(exc)
    return drift_section(dataset_drift(results, settings), histograms, str(reference), skipped)


def _drift_against_profile(
    profile: Mapping[str, Any], columns: Mapping[str, list[Any]], settings: DriftSettings | None
) -> dict[str, Any]:
    specs: Mapping[str, Any] = profile.get("features", {})
    usable: dict[str, Any] = {}
    histograms: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for name, values in columns.items():
        spec = specs.get(name)
        stat = reference_stat(specs, name) if spec is None else None
        if stat is not None:  # an image's brightness or contrast, as the log holds them
            spec = {**stat, "kind": "numeric"}
        if spec is None or spec.get("kind") not in ("numeric", "categorical", "text"):
            skipped[name] = "not a feature of the profile"
            continue
        if spec["kind"] == "text":
            ref_lengths = (spec.get("length") or {}).get("sample")
            lengths = [float(len(v)) for v in values if isinstance(v, str) and v]
            if not ref_lengths or not lengths:
                skipped[name] = "no text to compare (or no text lengths in the profile)"
                continue
            usable[name] = values
            histograms[name] = numeric_histogram(
                np.asarray(ref_lengths, np.float64), np.asarray(lengths, np.float64)
            )
        elif spec["kind"] == "numeric":
            cur = _floats(values)
            if not np.isfinite(cur).any() or not spec.get("sample"):
                skipped[name] = "no non-missing value to compare"
                continue
            usable[name] = cur
            histograms[name] = numeric_histogram(np.asarray(spec["sample"], np.float64), cur)
        else:
            counts = _category_counts(values)
            if not counts or not spec.get("counts"):
                skipped[name] = "no non-missing value to compare"
                continue
            usable[name] = values
            histograms[name] = categorical_histogram(spec["counts"], counts)
    result = drift_from_profile(profile, usable, settings)
    return drift_section(result, histograms, "bundle profile.json", skipped)


# -- writing ---------------------------------------------------------------------------


def write_report(doc: Mapping[str, Any], output: Path) -> list[Path]:
    """Write a report document as HTML and/or JSON, chosen by ``output``'s suffix.

    Parameters
    ----------
    doc
        The document (:func:`drift_document`, :func:`store_document`).
    output
        ``*.html``: the HTML report there, and the same content as JSON next to it
        (same name, ``.json``). ``*.json``: the JSON only.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    ConfigError
        ``output`` ends neither in ``.html`` nor in ``.json``.
    """
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".html", ".htm", ".json"):
        raise ConfigError(f"report file {output} must end in .html (plus JSON) or .json")
    output.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(dict(doc)), indent=2, allow_nan=False) + "\n"
    if suffix == ".json":
        output.write_text(text, encoding="utf-8")
        return [output]
    from mlcycle.monitor.report_html import render_html

    sibling = output.with_suffix(".json")
    output.write_text(render_html(doc), encoding="utf-8")
    sibling.write_text(text, encoding="utf-8")
    return [output, sibling]
