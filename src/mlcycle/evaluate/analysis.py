"""Error analysis: the model's score on slices of the data, gaps to a baseline, priorities.

For the whole set and for every slice (declared in ``analyze.slices`` or found
automatically), :func:`analyze` computes the rows, their share of the set, the primary
metric and the accuracy, the baseline for that slice, the gap (how far the model is
*below* the baseline, sign-aware) and the **potential gain**, gap x share: the
improvement of the whole set's score that closing the slice's gap would bring, to first
order. Slices are ranked by potential gain, so the first rows of the table are what to
work on next.

The baseline of a slice is, in order:

1. the slice's own ``baseline`` (e.g. human-level performance on it);
2. with ``prefer_model`` (``--baseline-model``), the older model's score on the slice;
3. the human-level figure (``evaluate.baselines`` entries with a ``value`` for the
   primary metric; the best when there are several);
4. the older model's score on the same rows (``evaluate.baselines`` entries with a
   ``model``);
5. else the model's own score on the whole set: the gap then says how much worse than
   average the slice is.

Everything here is plain computation on numpy arrays and a frame of raw features; the
command (:mod:`mlcycle.analyze_command`) finds the model and the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlcycle.config.structured import BaselineConfig
from mlcycle.data.schema import Schema
from mlcycle.evaluate.baselines import _validate
from mlcycle.evaluate.metrics import (
    check_inputs,
    classification_metrics,
    higher_is_better,
    numeric_metric_keys,
)
from mlcycle.evaluate.slices import Slice, slice_mask
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FORMAT_VERSION",
    "SKEW_RATIO",
    "Reference",
    "analyze",
    "class_balance",
    "reference_from_config",
]

#: Version of the ``analysis.json`` layout.
FORMAT_VERSION = 1
#: Largest / smallest class support at which classes count as skewed.
SKEW_RATIO = 1.5
#: Jaccard similarity of two slices' rows above which the later is marked ``similar_to``.
SIMILAR = 0.8

Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Reference:
    """Where the baseline of a slice without its own comes from.

    Parameters
    ----------
    value
        A fixed figure of the primary metric, e.g. human-level performance.
    value_name
        Its name in ``evaluate.baselines`` (shown as ``value:NAME``).
    model_proba
        An older model's probabilities on the same rows, ``[N, len(model_classes)]``.
    model_classes
        The column order of ``model_proba``.
    model_name
        The older model's reference (shown as ``model:NAME``).
    prefer_model
        Use the older model before the fixed figure (it was asked for explicitly).
    """

    value: float | None = None
    value_name: str = ""
    model_proba: npt.NDArray[np.float64] | None = None
    model_classes: tuple[str, ...] = ()
    model_name: str = ""
    prefer_model: bool = False


def reference_from_config(
    baselines: Sequence[BaselineConfig], metric: str, metric_keys: Sequence[str]
) -> tuple[float | None, str, str | None]:
    """The human-level figure and the baseline model that ``evaluate.baselines`` gives.

    Parameters
    ----------
    baselines
        ``evaluate.baselines``; each entry is validated as training does.
    metric
        The primary metric; only ``value`` entries for it count.
    metric_keys
        The metrics a baseline may name (for validation).

    Returns
    -------
    tuple
        ``(value, value_name, model_ref)``: the best fixed figure for ``metric`` and its
        name (``None``, ``""`` without one), and the first ``model`` reference, or ``None``.

    Examples
    --------
    >>> bs = [BaselineConfig(name="a", value=0.9), BaselineConfig(name="b", value=0.95),
    ...       BaselineConfig(name="old", model="@champion")]
    >>> reference_from_config(bs, "f1_macro", ["f1_macro"])
    (0.95, 'b', '@champion')
    """
    better = higher_is_better(metric)
    value: float | None = None
    value_name = ""
    model: str | None = None
    for i, b in enumerate(baselines):
        _validate(i, b, metric_keys)
        if b.value is not None and str(b.metric) == metric:
            v = float(b.value)
            if value is None or (v > value if better else v < value):
                value, value_name = v, str(b.name)
        elif b.model is not None and str(b.model).strip() and model is None:
            model = str(b.model).strip()
    return value, value_name, model


def _score(
    y: npt.NDArray[np.str_],
    proba: npt.NDArray[np.float64],
    classes: Sequence[str],
    mask: Mask,
    metric: str,
) -> tuple[float | None, float | None]:
    """``(metric, accuracy)`` of the rows in ``mask``; ``(None, None)`` without rows."""
    if not mask.any():
        return None, None
    m = classification_metrics(y[mask], proba[mask], classes)
    value = m.get(metric)
    return (None if value is None else float(value)), float(m["accuracy"])


def _worse_key(score: float, better: bool) -> float:
    """Sorts worse scores first."""
    return score if better else -score


@dataclass
class _Entry:
    sl: Slice
    mask: Mask
    score: float | None
    accuracy: float | None
    model_score: float | None = None


def class_balance(y: npt.ArrayLike, classes: Sequence[str]) -> dict[str, Any]:
    """Class counts, the imbalance ratio and what always predicting the majority scores.

    Parameters
    ----------
    y
        True labels.
    classes
        All the model's classes (absent ones count 0).

    Returns
    -------
    dict
        ``counts`` (class -> rows), ``imbalance_ratio`` (largest / smallest count among
        the classes present; ``None`` with fewer than two present), ``majority_class``,
        ``majority_accuracy`` and ``skewed`` (ratio >= :data:`SKEW_RATIO`).

    Examples
    --------
    >>> b = class_balance(["a"] * 9 + ["b"] * 3, ["a", "b"])
    >>> b["imbalance_ratio"], b["majority_accuracy"], b["skewed"]
    (3.0, 0.75, True)
    """
    labels = np.asarray(y).astype(str)
    counts = {str(c): int(np.sum(labels == str(c))) for c in classes}
    present = [n for n in counts.values() if n > 0]
    ratio = float(max(present) / min(present)) if len(present) >= 2 else None
    majority = max(counts, key=lambda c: counts[c])
    n = max(len(labels), 1)
    return {
        "counts": counts,
        "imbalance_ratio": ratio,
        "majority_class": majority,
        "majority_accuracy": counts[majority] / n,
        "skewed": ratio is not None and ratio >= SKEW_RATIO,
    }


def _pick_auto(scored: list[_Entry], per_feature: int, min_rows: int, better: bool) -> list[_Entry]:
    """The ``per_feature`` worst candidates of each feature (with enough rows)."""
    by_feature: dict[str, list[_Entry]] = {}
    for e in scored:
        if e.score is None or int(e.mask.sum()) < min_rows:
            continue
        by_feature.setdefault(e.sl.features[0], []).append(e)
    kept: list[_Entry] = []
    for entries in by_feature.values():
        assert all(e.score is not None for e in entries)
        entries.sort(key=lambda e: (_worse_key(e.score or 0.0, better), -int(e.mask.sum())))
        kept += entries[:per_feature]
    return kept


def _baseline(e: _Entry, ref: Reference, overall: float | None) -> tuple[float | None, str]:
    if e.sl.baseline is not None:
        return e.sl.baseline, "slice"
    if ref.prefer_model and e.model_score is not None:
        return e.model_score, f"model:{ref.model_name}"
    if ref.value is not None:
        return ref.value, f"value:{ref.value_name}"
    if e.model_score is not None:
        return e.model_score, f"model:{ref.model_name}"
    return overall, "overall"


def _gap(score: float | None, baseline: float | None, better: bool) -> float | None:
    if score is None or baseline is None:
        return None
    return baseline - score if better else score - baseline


def _jaccard(a: Mask, b: Mask) -> float:
    union = int(np.sum(a | b))
    return float(np.sum(a & b)) / union if union else 0.0


def analyze(
    y: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    frame: pd.DataFrame,
    schema: Schema,
    *,
    metric: str,
    slices: Sequence[Slice] = (),
    candidates: Sequence[Slice] = (),
    per_feature: int = 2,
    min_rows: int = 10,
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Score the model on the whole set and on every slice, and rank the slices.

    Parameters
    ----------
    y, proba, classes
        True labels, the model's probabilities and their column order, as for
        :func:`~mlcycle.evaluate.metrics.classification_metrics`.
    frame
        The rows' raw features (numeric as float, categorical and text as strings).
    schema
        The data's schema (feature kinds, for the slice conditions).
    metric
        The primary metric (a top-level number of ``classification_metrics``).
    slices
        Declared slices; all are reported (empty ones with a warning).
    candidates
        Automatic candidates (:func:`~mlcycle.evaluate.auto_slices.candidate_slices`);
        of each feature only the ``per_feature`` worst with at least ``min_rows`` rows
        and a defined score are kept. A candidate named like a declared slice is skipped.
    per_feature
        Automatic slices kept per feature.
    min_rows
        Slices with fewer rows are reported but not ranked.
    reference
        Where baselines come from (see the module docstring); ``None``: none.

    Returns
    -------
    dict
        ``metric``, ``higher_is_better``, ``rows``, ``overall`` and ``slices`` (ranked
        first, by potential gain, then the unranked) with, for each: ``name``,
        ``where``, ``source``, ``features``, ``rows``, ``share``, ``score``,
        ``accuracy``, ``baseline``, ``baseline_source``, ``model_score``, ``gap``,
        ``potential_gain``, ``rank``, ``status`` (``ranked``, ``too_small``,
        ``undefined`` or ``empty``), ``note`` and ``similar_to``; also ``confusion``,
        ``per_class``, ``class_balance``, ``reference``, ``warnings`` and ``notes``.

    Raises
    ------
    ConfigError
        ``metric`` is not a metric, ``min_rows`` / ``per_feature`` are below 1, or a
        slice does not fit the data (an unknown feature, a range on a category, ...).
    """
    if min_rows < 1:
        raise ConfigError(f"analyze.min_rows must be at least 1, got {min_rows}")
    if per_feature < 1:
        raise ConfigError(
            f"analyze.auto_per_feature must be at least 1, got {per_feature}; "
            "set analyze.auto=false to find no slices automatically"
        )
    ref = reference or Reference()
    labels, p, _ = check_inputs(y, proba, classes)
    names = [str(c) for c in classes]
    n = labels.shape[0]
    whole = classification_metrics(labels, p, names)
    keys = numeric_metric_keys(whole)
    if metric not in keys:
        raise ConfigError(
            f"evaluate.primary_metric is {metric!r}, which is not a metric; "
            f"use one of: {', '.join(keys)}"
        )
    better = higher_is_better(metric)
    model_p: npt.NDArray[np.float64] | None = None
    if ref.model_proba is not None:
        _, model_p, _ = check_inputs(labels, ref.model_proba, ref.model_classes)

    def entry(sl: Slice, mask: Mask) -> _Entry:
        score, acc = _score(labels, p, names, mask, metric)
        e = _Entry(sl, mask, score, acc)
        if model_p is not None:
            e.model_score, _ = _score(labels, model_p, ref.model_classes, mask, metric)
        return e

    warnings: list[str] = []
    declared: list[_Entry] = []
    for sl in slices:
        e = entry(sl, slice_mask(frame, sl, schema))
        if not e.mask.any():
            warnings.append(
                f"slice '{sl.name}' ({sl.describe()}) matches no rows of these {n}; "
                "check its conditions against the data"
            )
        declared.append(e)
    taken = {sl.name for sl in slices}
    scored = [entry(c, slice_mask(frame, c, schema)) for c in candidates if c.name not in taken]
    auto = _pick_auto(scored, per_feature, min_rows, better)

    everything = np.ones(n, dtype=bool)
    overall_e = entry(Slice("all rows"), everything)
    overall_score = overall_e.score
    rows_out = [_row(e, ref, overall_score, n, min_rows, better) for e in [*declared, *auto]]
    ranked = sorted(
        (r for r in rows_out if r["status"] == "ranked"),
        key=lambda r: (-r["potential_gain"], -r["rows"], r["name"]),
    )
    rest = [r for r in rows_out if r["status"] != "ranked"]
    masks = {e.sl.name: e.mask for e in [*declared, *auto]}
    for i, r in enumerate(ranked):
        r["rank"] = i + 1
        for earlier in ranked[:i]:
            if _jaccard(masks[r["name"]], masks[earlier["name"]]) >= SIMILAR:
                r["similar_to"] = earlier["name"]
                break

    overall = _row(overall_e, ref, overall_score, n, 1, better)
    for key in ("rank", "status", "note", "similar_to", "source", "features"):
        overall.pop(key)
    overall["name"] = "all rows"

    balance = class_balance(labels, names)
    notes = _notes(ref, rows_out, overall, balance, whole, metric)
    per_class = {
        c: {k: v[k] for k in ("precision", "recall", "f1", "support")}
        for c, v in whole["per_class"].items()
    }
    return {
        "metric": metric,
        "higher_is_better": better,
        "rows": n,
        "overall": overall,
        "slices": [*ranked, *rest],
        "confusion": whole["confusion_matrix"],
        "per_class": per_class,
        "class_balance": balance,
        "reference": {
            "value": ref.value,
            "value_name": ref.value_name or None,
            "model": ref.model_name or None,
            "prefer_model": ref.prefer_model,
        },
        "warnings": warnings,
        "notes": notes,
    }


def _row(
    e: _Entry, ref: Reference, overall: float | None, n: int, min_rows: int, better: bool
) -> dict[str, Any]:
    rows = int(e.mask.sum())
    share = rows / n if n else 0.0
    baseline, source = _baseline(e, ref, overall)
    gap = _gap(e.score, baseline, better)
    gain = None if gap is None else gap * share
    if rows == 0:
        status, note = "empty", "matches no rows"
    elif e.score is None:
        status = "undefined"
        note = "the metric is undefined on these rows (e.g. they hold one class only)"
    elif rows < min_rows:
        status, note = "too_small", f"fewer than {min_rows} rows (analyze.min_rows): not ranked"
    elif gain is None:
        status, note = "undefined", "no baseline to compare with"
    else:
        status, note = "ranked", ""
    return {
        "name": e.sl.name,
        "where": e.sl.describe(),
        "source": e.sl.source,
        "features": list(e.sl.features),
        "rows": rows,
        "share": share,
        "score": e.score,
        "accuracy": e.accuracy,
        "baseline": baseline,
        "baseline_source": source,
        "model_score": e.model_score,
        "gap": gap,
        "potential_gain": gain,
        "rank": None,
        "status": status,
        "note": note,
        "similar_to": None,
    }


def _notes(
    ref: Reference,
    rows: list[dict[str, Any]],
    overall: dict[str, Any],
    balance: dict[str, Any],
    whole: dict[str, Any],
    metric: str,
) -> list[str]:
    notes: list[str] = []
    if any(r["baseline_source"] == "overall" for r in rows) and overall["score"] is not None:
        notes.append(
            f"no baseline for some slices (no slice baseline, human-level {metric} in "
            "evaluate.baselines or baseline model): their gap is relative to the model's "
            f"own {metric} on all rows ({overall['score']:.4f}), i.e. how much worse than "
            "average they are"
        )
    if balance["skewed"]:
        counts = ", ".join(f"{c} {k}" for c, k in balance["counts"].items())
        notes.append(
            f"the classes are skewed (imbalance ratio {balance['imbalance_ratio']:.2f}: "
            f"{counts}): always predicting '{balance['majority_class']}' would score "
            f"accuracy {balance['majority_accuracy']:.3f}, so accuracy flatters the model; "
            "read precision, recall and F1 per class"
        )
    notes += [str(x) for x in whole.get("notes", [])]
    return notes
