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
JSON holds no NaN. :func:`render_html` draws the plots with matplotlib (Agg, one
:class:`matplotlib.figure.Figure` per plot, no pyplot) as inline SVG, with inline CSS:
the file opens offline, with no script and no external resource.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlcycle._optional import require
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
from mlcycle.monitor.pipeline import pipeline_summary
from mlcycle.monitor.store import ALARMS, FEEDBACK, METRIC_POINTS, PREDICTIONS

__all__ = [
    "LOW_CONFIDENCE",
    "EmptyWindowError",
    "categorical_histogram",
    "drift_document",
    "drift_section",
    "iso",
    "numeric_histogram",
    "render_html",
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
_MAX_METRIC_PLOTS = 12
_REF, _CUR, _BAD = "#4c72b0", "#dd8452", "#c44e52"


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


def _filters(table: sa.Table, model: str | None, stage: str | None) -> list[Any]:
    out = []
    if model:
        out.append(table.c.model_name == model)
    if stage:
        out.append(table.c.stage == stage)
    return out


def _window_rows(
    engine: sa.Engine, since: float, until: float, model: str | None, stage: str | None
) -> list[Any]:
    p, f = PREDICTIONS, FEEDBACK
    query = (
        sa.select(
            p.c.time,
            p.c.request_id,
            p.c.row,
            p.c.model_version,
            p.c.features,
            p.c.label,
            p.c.confidence,
            p.c.latency_ms,
            p.c.error,
            f.c.label.label("true_label"),
        )
        .select_from(p.outerjoin(f, sa.and_(f.c.request_id == p.c.request_id, f.c.row == p.c.row)))
        .where(p.c.time >= since, p.c.time < until, *_filters(p, model, stage))
        .order_by(p.c.time, p.c.id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query))


def _empty_message(
    engine: sa.Engine,
    since: float,
    until: float,
    model: str | None,
    stage: str | None,
    store_label: str,
) -> str:
    p = PREDICTIONS
    which = [f"model {model!r}" if model else "", f"stage {stage!r}" if stage else ""]
    scope = " and ".join(w for w in which if w)
    with engine.connect() as conn:
        n, lo, hi = conn.execute(sa.select(sa.func.count(), sa.func.min(p.c.time),
                                           sa.func.max(p.c.time))).one()  # fmt: skip
        if scope:
            m, mlo, mhi = conn.execute(
                sa.select(sa.func.count(), sa.func.min(p.c.time), sa.func.max(p.c.time)).where(
                    *_filters(p, model, stage)
                )
            ).one()
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
        if spec is None or spec.get("kind") not in ("numeric", "categorical"):
            skipped[name] = "not a numeric or categorical feature of the profile"
            continue
        if spec["kind"] == "numeric":
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
    sibling = output.with_suffix(".json")
    output.write_text(render_html(doc), encoding="utf-8")
    sibling.write_text(text, encoding="utf-8")
    return [output, sibling]


# -- HTML ------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.drift{color:#c44e52;font-weight:bold}.ok{color:#2a7d2a}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid figure{margin:0}
figcaption{font-size:.85em;text-align:center}
svg{max-width:100%;height:auto}.note{color:#666}
"""


def _fmt(v: Any, spec: str = ".4g") -> str:
    """A number as the report shows it (also used by the tests to match the JSON)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format(v, spec)
    return html.escape(str(v))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    head = "".join(
        f'<th class="{"l" if i < left else ""}">{html.escape(h)}</th>'
        for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Svg:
    """Figures rendered to inline SVG, with ids made unique across the page."""

    def __init__(self) -> None:
        self.count = 0
        self._mpl = require("matplotlib", "train")
        self._figure = require("matplotlib.figure", "train")
        require("matplotlib.backends.backend_svg", "train")

    def figure(self, width: float, height: float) -> Any:
        fig = self._figure.Figure(figsize=(width, height), dpi=100)
        fig.subplots_adjust(left=0.15, right=0.97, top=0.88, bottom=0.22)
        return fig

    def render(self, fig: Any) -> str:
        self.count += 1
        buf = io.StringIO()
        with self._mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mlcycle"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        fig.clear()
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
        text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
        prefix = f"f{self.count}-"
        text = re.sub(r'\bid="', f'id="{prefix}', text)
        text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
        return text.replace("<svg ", '<svg role="img" ', 1)


def render_html(doc: Mapping[str, Any]) -> str:
    """The document as one self-contained HTML page: inline CSS, inline SVG plots, no JS.

    Parameters
    ----------
    doc
        A report document (:func:`drift_document` or :func:`store_document`).

    Returns
    -------
    str
        The HTML text.
    """
    svg = _Svg()
    title = html.escape(str(doc.get("title", "Report")))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        f'<p class="note">generated {_fmt(doc.get("generated_at"))} by mlcycle</p>',
    ]
    if doc.get("kind") == "monitor":
        parts.append(_monitor_html(doc, svg))
    elif doc.get("kind") == "drift":
        parts.append(
            f"<p>reference <code>{_fmt(doc.get('reference'))}</code>, current "
            f"<code>{_fmt(doc.get('current'))}</code></p>"
        )
    if doc.get("drift"):
        parts.append(_drift_html(doc["drift"], svg))
    elif doc.get("drift_note"):
        parts.append(f'<h2>Data drift</h2><p class="note">{_fmt(doc["drift_note"])}</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _drift_html(section: Mapping[str, Any], svg: _Svg) -> str:
    ds = section["dataset"]
    features = section["features"]
    n_drifted = len(ds["drifted_features"])
    verdict = (
        '<span class="drift">DRIFT</span>' if ds["drifted"] else '<span class="ok">no drift</span>'
    )
    out = [
        "<h2>Data drift</h2>",
        f"<p>Compared with <code>{_fmt(section['reference'])}</code>: {verdict} -- "
        f"{n_drifted} of {len(features)} features drifted (share {_fmt(ds['share'])}, "
        f"threshold {_fmt(ds['threshold'])}).</p>",
    ]
    if features:
        out.append(_scores_svg(features, svg))
    rows = [
        [
            _fmt(f["feature"]),
            _fmt(f["kind"]),
            _fmt(f["test"]),
            _fmt(f["statistic"]),
            _fmt(f["p_value"]),
            _fmt(f["threshold"]),
            _fmt(f["psi"]),
            '<span class="drift">yes</span>' if f["drifted"] else "no",
            _fmt(f["n_reference"]),
            _fmt(f["n_current"]),
        ]
        for f in features
    ]
    headers = ["feature", "kind", "test", "statistic", "p-value", "threshold", "PSI", "drifted",
               "n reference", "n current"]  # fmt: skip
    out.append(_table(headers, rows, left=3))
    if section.get("skipped"):
        skipped = [[_fmt(k), _fmt(v)] for k, v in section["skipped"].items()]
        out.append("<p>Not tested:</p>" + _table(["feature", "why"], skipped, left=2))
    out.append('<h2>Reference vs current, per feature</h2><div class="grid">')
    for f in features:
        hist = section["histograms"].get(f["feature"])
        if hist is None:
            continue
        caption = f"{_fmt(f['feature'])}: {_fmt(f['test'])} {_fmt(f['statistic'])}" + (
            " (drifted)" if f["drifted"] else ""
        )
        out.append(f"<figure>{_histogram_svg(f['feature'], hist, svg)}"
                   f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip
    out.append("</div>")
    return "\n".join(out)


def _scores_svg(features: Sequence[Mapping[str, Any]], svg: _Svg) -> str:
    names = [str(f["feature"]) for f in features]
    values = [f["psi"] or 0.0 for f in features]
    fig = svg.figure(max(4.0, 0.35 * len(names) + 1.5), 3.0)
    ax = fig.add_subplot(1, 1, 1)
    colors = [_BAD if f["drifted"] else _REF for f in features]
    ax.bar(range(len(names)), values, color=colors)
    for level in (0.1, 0.2):
        ax.axhline(level, color="#888", linestyle="--", linewidth=0.8)
    ax.set_xticks(range(len(names)), labels=names, rotation=60 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center", fontsize=8)  # fmt: skip
    ax.set_ylabel("PSI")
    ax.set_title("PSI per feature (red: drifted by its test)", fontsize=9)
    return svg.render(fig)


def _histogram_svg(name: str, hist: Mapping[str, Any], svg: _Svg) -> str:
    fig = svg.figure(3.6, 2.4)
    ax = fig.add_subplot(1, 1, 1)
    if hist["type"] == "numeric":
        edges = np.asarray(hist["edges"], dtype=np.float64)
        ax.stairs(hist["reference"], edges, fill=True, color=_REF, alpha=0.55, label="reference")
        ax.stairs(hist["current"], edges, fill=True, color=_CUR, alpha=0.55, label="current")
    else:
        cats = [str(c) for c in hist["categories"]]
        x = np.arange(len(cats))
        ax.bar(x - 0.2, hist["reference"], width=0.4, color=_REF, label="reference")
        ax.bar(x + 0.2, hist["current"], width=0.4, color=_CUR, label="current")
        short = [c if len(c) <= 12 else c[:11] + "..." for c in cats]
        ax.set_xticks(x, labels=short, rotation=45 if len(cats) > 3 else 0,
                      ha="right" if len(cats) > 3 else "center", fontsize=7)  # fmt: skip
    ax.set_ylabel("share", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(name, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return svg.render(fig)


def _monitor_html(doc: Mapping[str, Any], svg: _Svg) -> str:
    w, s, tl = doc["window"], doc["summary"], doc["timeline"]
    scope = ", ".join(
        x for x in (f"model {w['model']}" if w.get("model") else "",
                    f"stage {w['stage']}" if w.get("stage") else "") if x
    )  # fmt: skip
    out = [
        f"<p>Window {_fmt(w['since'])} to {_fmt(w['until'])}"
        f"{' (' + html.escape(scope) + ')' if scope else ''}; store "
        f"<code>{_fmt(w['store'])}</code>. Predictions from {_fmt(s['first'])} to "
        f"{_fmt(s['last'])}; model versions {_fmt(', '.join(s['model_versions']))}.</p>",
        "<h2>Summary</h2>",
    ]
    low = tl["low_confidence_below"]
    summary_rows = [
        ["rows", _fmt(s["rows"])],
        ["requests", _fmt(s["requests"])],
        ["errors", _fmt(s["errors"])],
        ["error rate", _fmt(s["error_rate"])],
        ["latency p50 (ms)", _fmt(s["latency_p50_ms"])],
        ["latency p99 (ms)", _fmt(s["latency_p99_ms"])],
        ["mean confidence", _fmt(s["mean_confidence"])],
        [f"low-confidence rate (&lt; {_fmt(low)})", _fmt(s["low_confidence_rate"])],
        ["rows with feedback", _fmt(s["feedback"])],
        ["accuracy (rows with feedback)", _fmt(s["accuracy"])],
    ]
    summary_rows += [[f"class mix: {_fmt(c)}", _fmt(v)] for c, v in s["class_mix"].items()]
    out.append(_table(["metric", "value"], summary_rows))
    out.append(f"<h2>Timelines</h2><p class=\"note\">buckets of {_fmt(tl['bucket_seconds'])} s"
               "; latency over requests</p>")  # fmt: skip
    out.append(_timeline_html(tl, svg))
    if doc.get("pipeline"):
        out.append(_pipeline_html(doc["pipeline"]))
    out.append("<h2>Monitor metrics</h2>")
    if doc["metric_points"]:
        out.append(_metric_points_html(doc["metric_points"], svg))
    else:
        out.append('<p class="note">no metric points in the window</p>')
    out.append("<h2>Alarms</h2>")
    if doc["alarms"]:
        rows = [
            [_fmt(a["time"]), _fmt(a["name"]), _fmt(a["metric"]), _fmt(a["severity"]),
             _fmt(a["state"]), _fmt(a["value"]), _fmt(a["threshold"]), _fmt(a["model_version"]),
             _fmt(a["message"]), _fmt(a["acknowledged_by"])]
            for a in doc["alarms"]
        ]  # fmt: skip
        headers = ["time", "name", "metric", "severity", "state", "value", "threshold",
                   "version", "message", "acknowledged by"]  # fmt: skip
        out.append(_table(headers, rows, left=5))
    else:
        out.append('<p class="note">no alarms in the window</p>')
    return "\n".join(out)


def _pipeline_html(pipe: Mapping[str, Any]) -> str:
    rows = [
        [_fmt(st["stage"]), _fmt(st["requests"]), _fmt(st["error_rate"]),
         _fmt(st["latency_p50_ms"]), _fmt(st["latency_p99_ms"])]
        for st in pipe["stages"]
    ]  # fmt: skip
    rows.append(
        ["end to end", _fmt(pipe["complete_runs"]), "", _fmt(pipe["latency_p50_ms"]),
         _fmt(pipe["latency_p99_ms"])]
    )  # fmt: skip
    return (
        "<h2>Pipeline</h2>"
        f'<p class="note">{_fmt(pipe["runs"])} runs, {_fmt(pipe["complete_runs"])} through '
        "every stage; end to end: from the first stage's request to the last stage's "
        "answer</p>"
        + _table(["stage", "requests", "error rate", "latency p50 (ms)", "latency p99 (ms)"], rows)
    )


def _times(stamps: Sequence[str]) -> list[datetime]:
    return [datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) for t in stamps]


def _nan(values: Iterable[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _timeline_html(tl: Mapping[str, Any], svg: _Svg) -> str:
    buckets = tl["buckets"]
    x = _times([b["start"] for b in buckets])
    panels: list[tuple[str, list[tuple[str, str]]]] = [
        ("volume", [("requests", "requests"), ("rows", "rows")]),
        ("error rate", [("error_rate", "error rate")]),
        ("latency (ms)", [("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")]),
        ("confidence", [("mean_confidence", "mean confidence"),
                        ("low_confidence_rate", "low-confidence rate")]),
        ("accuracy (feedback)", [("accuracy", "accuracy")]),
    ]  # fmt: skip
    out = ['<div class="grid">']
    for title, series in panels:
        fig = svg.figure(4.2, 2.4)
        ax = fig.add_subplot(1, 1, 1)
        for key, label in series:
            ax.plot(x, _nan(b[key] for b in buckets), marker="o", markersize=3, label=label)
        _time_axis(ax)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        out.append(f"<figure>{svg.render(fig)}</figure>")
    classes = [*tl["classes"]]
    if buckets and "(other)" in buckets[0]["class_mix"]:
        classes.append("(other)")
    if classes:
        fig = svg.figure(4.2, 2.4)
        ax = fig.add_subplot(1, 1, 1)
        for c in classes:
            ax.plot(x, _nan(b["class_mix"].get(c) for b in buckets), marker="o",
                    markersize=3, label=str(c))  # fmt: skip
        _time_axis(ax)
        ax.set_title("class mix (share of predicted labels)", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        out.append(f"<figure>{svg.render(fig)}</figure>")
    out.append("</div>")
    return "\n".join(out)


def _time_axis(ax: Any) -> None:
    dates = require("matplotlib.dates", "train")
    locator = dates.AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=UTC))
    ax.tick_params(labelsize=7)


def _metric_points_html(series: Sequence[Mapping[str, Any]], svg: _Svg) -> str:
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for s in series:
        by_name.setdefault(str(s["name"]), []).append(s)
    out = ['<div class="grid">']
    for name, group in list(by_name.items())[:_MAX_METRIC_PLOTS]:
        fig = svg.figure(4.2, 2.4)
        ax = fig.add_subplot(1, 1, 1)
        for s in group[:10]:
            label = ", ".join(
                x for x in (
                    *(f"{k}={v}" for k, v in s["labels"].items()),
                    s["stage"], f"v{s['model_version']}" if s["model_version"] else "",
                ) if x
            ) or name  # fmt: skip
            ax.plot(_times([p[0] for p in s["points"]]), _nan(p[1] for p in s["points"]),
                    marker="o", markersize=3, label=label)  # fmt: skip
        _time_axis(ax)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        out.append(f"<figure>{svg.render(fig)}</figure>")
    out.append("</div>")
    if len(by_name) > _MAX_METRIC_PLOTS:
        out.append(f'<p class="note">{len(by_name) - _MAX_METRIC_PLOTS} more metrics in the '
                   "JSON report</p>")  # fmt: skip
    rows = [[_fmt(s["name"]), _fmt(json.dumps(s["labels"]) if s["labels"] else ""),
             _fmt(s["stage"]), _fmt(s["model_version"]), _fmt(len(s["points"])),
             _fmt(s["points"][-1][1])] for s in series]  # fmt: skip
    headers = ["metric", "labels", "stage", "version", "points", "last value"]
    return "\n".join(out) + _table(headers, rows, left=4)
