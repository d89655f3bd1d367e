"""Classification metrics of predicted probabilities, as plain JSON-ready data.

Inputs are plain numpy: ``y_true`` (labels as strings), ``proba`` (``[N, n_classes]``)
and ``classes`` (the column order of ``proba``). The predicted label of a row is the
argmax of its probabilities (the first class on ties). Undefined values (a class absent
from ``y_true``, a class never predicted) become ``None`` (JSON ``null``) and are
explained in ``notes``; they never raise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle._optional import require
from mlcycle.exceptions import DataError

__all__ = [
    "LOWER_IS_BETTER",
    "calibration_table",
    "check_inputs",
    "classification_metrics",
    "higher_is_better",
    "numeric_metric_keys",
    "predicted_labels",
]

# Top-level metrics where a smaller value is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece"})

# Probabilities are clipped to [_EPS, 1] before the logarithm of the log loss.
_EPS = 1e-15

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of the top-level ``metric`` means a better model.

    Examples
    --------
    >>> higher_is_better("f1_macro"), higher_is_better("log_loss")
    (True, False)
    """
    return metric not in LOWER_IS_BETTER


def numeric_metric_keys(metrics: dict[str, Any]) -> list[str]:
    """Top-level keys of ``metrics`` that hold a number (or ``None`` for undefined).

    These are the keys a baseline or the primary metric may name.

    Examples
    --------
    >>> numeric_metric_keys({"accuracy": 0.9, "roc_auc": None, "classes": ["a", "b"]})
    ['accuracy', 'roc_auc']
    """
    return [
        k
        for k, v in metrics.items()
        if v is None or (isinstance(v, int | float) and not isinstance(v, bool))
    ]


def check_inputs(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, classes: Sequence[str]
) -> tuple[npt.NDArray[np.str_], FloatArray, IntArray]:
    """Validate the inputs and return labels, probabilities and true column indices.

    Parameters
    ----------
    y_true
        True labels, ``[N]``; converted to strings.
    proba
        Predicted probabilities, ``[N, len(classes)]``.
    classes
        Class names in the column order of ``proba``; at least two, unique.

    Returns
    -------
    tuple
        ``(y, p, idx)``: labels as a string array, probabilities as float64, and the
        column of each row's true class.

    Raises
    ------
    DataError
        Shapes disagree, probabilities are not finite, or a label is not in ``classes``.
    """
    names = [str(c) for c in classes]
    if len(names) < 2 or len(set(names)) != len(names):
        raise DataError(
            f"classes must be at least two distinct names, got {names!r}; "
            "pass the model's class names in the column order of proba"
        )
    y = np.asarray(y_true).astype(str).reshape(-1)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(names):
        raise DataError(
            f"proba must have shape [N, {len(names)}] (one column per class), got {list(p.shape)}"
        )
    if p.shape[0] != y.shape[0] or y.shape[0] == 0:
        raise DataError(
            f"y_true has {y.shape[0]} labels but proba has {p.shape[0]} rows; "
            "they must be equal and non-zero"
        )
    if not np.all(np.isfinite(p)):
        raise DataError("proba holds NaN or infinite values; check the model's output")
    lookup = {c: i for i, c in enumerate(names)}
    unknown = sorted(set(y.tolist()) - lookup.keys())
    if unknown:
        raise DataError(
            f"y_true holds labels that are not among the classes {names}: {unknown[:10]}; "
            "evaluate on data with the classes the model was trained on"
        )
    idx = np.fromiter((lookup[v] for v in y.tolist()), dtype=np.intp, count=y.shape[0])
    return y, p, idx


def predicted_labels(proba: npt.ArrayLike, classes: Sequence[str]) -> npt.NDArray[np.str_]:
    """The label of each row: the class of its largest probability (first one on ties).

    Examples
    --------
    >>> predicted_labels([[0.2, 0.8], [0.5, 0.5]], ["a", "b"]).tolist()
    ['b', 'a']
    """
    p = np.asarray(proba, dtype=np.float64)
    names: npt.NDArray[np.str_] = np.asarray([str(c) for c in classes], dtype=np.str_)
    out: npt.NDArray[np.str_] = names[np.argmax(p, axis=1)]
    return out


def calibration_table(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    *,
    n_bins: int = 10,
) -> dict[str, Any]:
    """Reliability of the top-class confidence, in equal-width bins over ``[0, 1]``.

    The confidence of a row is its largest probability; it is correct when that class
    is the true one. The expected calibration error is
    ``sum_b |B_b| / N * |accuracy(B_b) - confidence(B_b)|``.

    Parameters
    ----------
    y_true, proba, classes
        As for :func:`classification_metrics`.
    n_bins
        Number of equal-width bins; a confidence of exactly 1 falls in the last bin.

    Returns
    -------
    dict
        ``bins``, ``edges`` (``n_bins + 1`` floats), and per bin ``confidence`` (mean),
        ``accuracy`` and ``count`` (empty bins: ``None``, ``None``, 0), and ``ece``.

    Examples
    --------
    >>> t = calibration_table(["a", "a", "a", "a", "b"], [[0.8, 0.2]] * 5, ["a", "b"], n_bins=5)
    >>> t["count"], round(t["ece"], 12)
    ([0, 0, 0, 0, 5], 0.0)
    """
    if n_bins < 1:
        raise DataError(f"calibration bins must be at least 1, got {n_bins}")
    _, p, idx = check_inputs(y_true, proba, classes)
    return _calibration(p, idx, n_bins)


def _calibration(p: FloatArray, idx: IntArray, n_bins: int) -> dict[str, Any]:
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == idx).astype(np.float64)
    which = np.clip(np.floor(conf * n_bins).astype(np.intp), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct, minlength=n_bins)
    n = conf.shape[0]
    ece = float(np.sum(np.abs(acc_sum - conf_sum)) / n)
    nonzero = count > 0
    return {
        "bins": n_bins,
        "edges": [float(e) for e in np.linspace(0.0, 1.0, n_bins + 1)],
        "confidence": [
            float(s / c) if ok else None for s, c, ok in zip(conf_sum, count, nonzero, strict=True)
        ],
        "accuracy": [
            float(s / c) if ok else None for s, c, ok in zip(acc_sum, count, nonzero, strict=True)
        ],
        "count": [int(c) for c in count],
        "ece": ece,
    }


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _mean(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(sum(got) / len(got)) if got else None


def _json_float(x: float | None) -> float | None:
    if x is None or math.isnan(x):
        return None
    return float(x)


def _per_class(
    idx: IntArray, p: FloatArray, names: list[str], cm: npt.NDArray[np.int64]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Precision, recall, F1, support, ROC-AUC and PR-AUC of each class, and notes on
    the values that are undefined."""
    notes: list[str] = []
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    fp = predicted - tp
    fn = support - tp
    skm = require("sklearn.metrics", "train")
    per_class: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(names):
        positive = idx == j
        has_pos = bool(positive.any())
        has_neg = bool((~positive).any())
        roc = float(skm.roc_auc_score(positive, p[:, j])) if has_pos and has_neg else None
        ap = float(skm.average_precision_score(positive, p[:, j])) if has_pos else None
        per_class[name] = {
            "precision": _ratio(tp[j], predicted[j]),
            "recall": _ratio(tp[j], support[j]),
            "f1": _ratio(2 * tp[j], 2 * tp[j] + fp[j] + fn[j]),
            "support": int(support[j]),
            "roc_auc": roc,
            "pr_auc": ap,
        }
        if not has_pos:
            notes.append(
                f"class {name!r} has no samples in y_true: its recall, ROC-AUC and PR-AUC "
                "are undefined (null) and it is left out of the macro averages"
            )
        elif predicted[j] == 0:
            notes.append(
                f"class {name!r} is never predicted: its precision is undefined (null) "
                "and counts as 0 in the averages"
            )
        elif not has_neg:
            notes.append(f"every sample is of class {name!r}: its ROC-AUC is undefined (null)")

    return per_class, notes


def classification_metrics(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    *,
    calibration_bins: int = 10,
) -> dict[str, Any]:
    """All the metrics of a classifier's probabilities on one labelled set.

    Parameters
    ----------
    y_true
        True labels, ``[N]`` (strings).
    proba
        Predicted probabilities, ``[N, n_classes]``, columns in ``classes`` order.
    classes
        Class names; for two classes, ``classes[1]`` is the positive class of ROC-AUC,
        PR-AUC and the Brier score.
    calibration_bins
        Equal-width bins of the expected calibration error.

    Returns
    -------
    dict
        Plain JSON-ready data. Top-level numbers (the keys a baseline may compare):
        ``accuracy``; ``precision_macro``, ``recall_macro``, ``f1_macro`` and their
        ``_weighted`` forms; ``roc_auc`` and ``pr_auc`` (average precision; binary:
        of ``classes[1]``, multiclass: one-vs-rest macro); ``log_loss``; ``brier``
        (binary: mean squared error of the positive probability; multiclass: summed
        over classes, as scikit-learn does); ``ece``; ``n_samples``. Also ``per_class``
        (precision, recall, f1, support, roc_auc, pr_auc of each class),
        ``confusion_matrix`` (``labels`` and ``matrix``, rows true, columns predicted),
        ``calibration`` (see :func:`calibration_table`), ``classes``, ``positive_class``
        (binary only), ``average`` and ``notes``.

    Notes
    -----
    Macro averages run over the classes present in ``y_true``; a present class that is
    never predicted has an undefined precision that counts as 0 in the averages (as
    scikit-learn's ``zero_division=0``). With every class present these equal
    scikit-learn's ``average="macro"`` / ``"weighted"`` and ``multi_class="ovr"``.

    Examples
    --------
    >>> m = classification_metrics(["a", "b", "b"], [[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]],
    ...                            ["a", "b"])
    >>> round(m["accuracy"], 4), m["confusion_matrix"]["matrix"]
    (0.6667, [[1, 0], [1, 1]])
    """
    if calibration_bins < 1:
        raise DataError(f"calibration_bins must be at least 1, got {calibration_bins}")
    y, p, idx = check_inputs(y_true, proba, classes)
    names = [str(c) for c in classes]
    k = len(names)
    n = y.shape[0]
    pred = p.argmax(axis=1)
    notes: list[str] = []

    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (idx, pred), 1)
    per_class, notes = _per_class(idx, p, names, cm)
    support = cm.sum(axis=1)
    present = [name for j, name in enumerate(names) if support[j] > 0]

    def macro(metric: str) -> float | None:
        return _mean([per_class[c][metric] or 0.0 for c in present])

    def weighted(metric: str) -> float:
        return float(
            sum((per_class[c][metric] or 0.0) * per_class[c]["support"] for c in present) / n
        )

    if k == 2:
        average = "binary"
        positive_class: str | None = names[1]
        roc_auc = per_class[names[1]]["roc_auc"]
        pr_auc = per_class[names[1]]["pr_auc"]
        brier = float(np.mean((p[:, 1] - (idx == 1)) ** 2))
    else:
        average = "macro_ovr"
        positive_class = None
        roc_values = [per_class[c]["roc_auc"] for c in names]
        pr_values = [per_class[c]["pr_auc"] for c in names]
        roc_auc = _mean(roc_values)
        pr_auc = _mean(pr_values)
        defined = sum(v is not None for v in roc_values)
        if roc_auc is not None and defined < k:
            notes.append(f"roc_auc and pr_auc are macro averages over {defined} of {k} classes")
        onehot = np.zeros_like(p)
        onehot[np.arange(n), idx] = 1.0
        brier = float(np.mean(np.sum((p - onehot) ** 2, axis=1)))
    if roc_auc is None:
        notes.append("roc_auc is undefined: y_true holds a single class")

    true_p = np.clip(p[np.arange(n), idx], _EPS, 1.0)
    calibration = _calibration(p, idx, calibration_bins)

    metrics: dict[str, Any] = {
        "n_samples": int(n),
        "accuracy": float(np.mean(pred == idx)),
        "precision_macro": macro("precision"),
        "recall_macro": macro("recall"),
        "f1_macro": macro("f1"),
        "precision_weighted": weighted("precision"),
        "recall_weighted": weighted("recall"),
        "f1_weighted": weighted("f1"),
        "roc_auc": _json_float(roc_auc),
        "pr_auc": _json_float(pr_auc),
        "log_loss": float(-np.mean(np.log(true_p))),
        "brier": brier,
        "ece": calibration["ece"],
        "classes": names,
        "positive_class": positive_class,
        "average": average,
        "per_class": per_class,
        "confusion_matrix": {"labels": names, "matrix": cm.tolist()},
        "calibration": calibration,
        "notes": notes,
    }
    return metrics
