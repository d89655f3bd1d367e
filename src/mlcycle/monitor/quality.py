"""Online quality: how right the live model is, from predictions that got feedback.

:func:`quality_metrics` scores (predicted, true) label pairs with the names the offline
evaluation uses (:func:`mlcycle.evaluate.metrics.classification_metrics`):
``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``, ``per_class`` and
``n_samples``, so :func:`quality_drop` can set them against the bundle's test-split
numbers (:func:`offline_quality`). As offline, macro averages run over the classes
present among the true labels, and a present class that is never predicted has an
undefined precision (``None``) that counts as 0 in the average (scikit-learn's
``zero_division=0``). :class:`QualityWindow` keeps the last ``size`` pairs.

numpy and the standard library only: the server imports this module.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle.exceptions import BundleError, DataError

__all__ = [
    "QUALITY_METRICS",
    "QualityWindow",
    "offline_quality",
    "quality_drop",
    "quality_metrics",
]

#: The headline numbers, as named in the bundle's ``evaluation.json``.
QUALITY_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

Pair = tuple[str, str] | tuple[str, str, float]


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _metrics_from_counts(
    counts: Mapping[tuple[str, str], int], classes: Sequence[str]
) -> dict[str, Any]:
    """The metrics of a (predicted, true) -> count table."""
    names = [str(c) for c in classes]
    extra = sorted({label for pair in counts for label in pair if counts[pair]} - set(names))
    names += extra
    k = len(names)
    index = {name: j for j, name in enumerate(names)}
    cm = np.zeros((k, k), dtype=np.int64)  # rows true, columns predicted
    for (pred, true), n in counts.items():
        cm[index[true], index[pred]] += n
    n_samples = int(cm.sum())
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    per_class = {
        name: {
            "precision": _ratio(tp[j], predicted[j]),
            "recall": _ratio(tp[j], support[j]),
            "f1": _ratio(2 * tp[j], support[j] + predicted[j]),
            "support": int(support[j]),
        }
        for j, name in enumerate(names)
    }
    present = [name for j, name in enumerate(names) if support[j] > 0]

    def macro(metric: str) -> float | None:
        if not present:
            return None
        return float(np.mean([per_class[c][metric] or 0.0 for c in present]))

    notes = [f"labels {extra} are not among the classes given"] if extra else []
    return {
        "n_samples": n_samples,
        "accuracy": _ratio(float(tp.sum()), n_samples),
        "precision_macro": macro("precision"),
        "recall_macro": macro("recall"),
        "f1_macro": macro("f1"),
        "per_class": per_class,
        "confusion_matrix": {"labels": names, "matrix": cm.tolist()},
        "classes": names,
        "notes": notes,
    }


def quality_metrics(pairs: Iterable[Pair], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro precision, recall and F1 (and per class) of labelled predictions.

    Parameters
    ----------
    pairs
        ``(predicted, true)`` labels, or the ``(predicted, true, time)`` rows of
        :func:`mlcycle.monitor.feedback.labelled_predictions`.
    classes
        The model's classes. A label outside them is added (and noted) rather than
        dropped.

    Returns
    -------
    dict
        ``n_samples``; ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``
        (``None`` without samples); ``per_class`` (``precision``, ``recall``, ``f1``,
        ``support``; ``None`` where undefined); ``confusion_matrix`` (``labels``,
        ``matrix`` with rows true, columns predicted); ``classes``; ``notes``.

    Examples
    --------
    >>> m = quality_metrics([("a", "a"), ("b", "a"), ("b", "b")], ["a", "b"])
    >>> round(m["accuracy"], 4), m["per_class"]["a"]["recall"], m["n_samples"]
    (0.6667, 0.5, 3)
    """
    counts: Counter[tuple[str, str]] = Counter()
    for pair in pairs:
        counts[(str(pair[0]), str(pair[1]))] += 1
    return _metrics_from_counts(counts, classes)


class QualityWindow:
    """The last ``size`` (predicted, true) pairs and their metrics.

    Parameters
    ----------
    size
        Most pairs kept; adding one more forgets the oldest.
    classes
        The model's classes (labels seen outside them are added, see
        :func:`quality_metrics`).

    Examples
    --------
    >>> w = QualityWindow(2, ["a", "b"])
    >>> for pred, true in [("a", "b"), ("a", "a"), ("b", "b")]:
    ...     w.add(pred, true)
    >>> len(w), w.metrics()["accuracy"]
    (2, 1.0)
    """

    def __init__(self, size: int, classes: Sequence[str] = ()) -> None:
        if size < 1:
            raise DataError(f"a quality window holds at least 1 pair, got size {size}")
        self.size = size
        self.classes = [str(c) for c in classes]
        self._pairs: deque[tuple[str, str]] = deque()
        self._counts: Counter[tuple[str, str]] = Counter()

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, predicted: str, true: str) -> None:
        """Add one pair, forgetting the oldest when the window is full."""
        pair = (str(predicted), str(true))
        self._pairs.append(pair)
        self._counts[pair] += 1
        if len(self._pairs) > self.size:
            old = self._pairs.popleft()
            self._counts[old] -= 1
            if not self._counts[old]:
                del self._counts[old]

    def extend(self, pairs: Iterable[Pair]) -> None:
        """Add pairs (or ``(predicted, true, time)`` rows) in order."""
        for pair in pairs:
            self.add(pair[0], pair[1])

    def metrics(self) -> dict[str, Any]:
        """:func:`quality_metrics` of the pairs in the window."""
        return _metrics_from_counts(self._counts, self.classes)


def offline_quality(bundle_dir: str | Path, split: str = "test") -> dict[str, Any]:
    """The quality the model had at training, from its bundle's ``evaluation.json``.

    Parameters
    ----------
    bundle_dir
        The bundle folder.
    split
        The evaluation split: ``test`` (the fixed holdout) or ``val``.

    Returns
    -------
    dict
        ``split``, ``n_samples``, the :data:`QUALITY_METRICS` and ``per_class``
        (precision, recall, f1, support) as the evaluation stored them.

    Raises
    ------
    BundleError
        The file is missing or unreadable, or holds no metrics of ``split``.
    """
    from mlcycle.bundle import EVALUATION_FILE

    path = Path(bundle_dir) / EVALUATION_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(
            f"{path} does not exist; the bundle has no offline evaluation to compare with"
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}; re-export the bundle") from None
    splits = doc.get("splits") if isinstance(doc, dict) else None
    metrics = splits.get(split) if isinstance(splits, dict) else None
    if not isinstance(metrics, dict):
        have = sorted(splits) if isinstance(splits, dict) else []
        raise BundleError(
            f"{path} has no metrics of the {split!r} split (splits: {have or 'none'}); "
            "it was not written by mlcycle train"
        )
    per_class = {
        str(name): {k: values.get(k) for k in ("precision", "recall", "f1", "support")}
        for name, values in (metrics.get("per_class") or {}).items()
        if isinstance(values, dict)
    }
    return {
        "split": split,
        "n_samples": metrics.get("n_samples"),
        **{key: metrics.get(key) for key in QUALITY_METRICS},
        "per_class": per_class,
    }


def quality_drop(online: Mapping[str, Any], offline: Mapping[str, Any]) -> dict[str, float | None]:
    """How much worse each headline metric is live than at training: offline - online.

    Parameters
    ----------
    online
        From :func:`quality_metrics` or :meth:`QualityWindow.metrics`.
    offline
        From :func:`offline_quality`.

    Returns
    -------
    dict
        One entry per :data:`QUALITY_METRICS` name: positive when the live model does
        worse; ``None`` where either side lacks the number.

    Examples
    --------
    >>> drop = quality_drop({"accuracy": 0.75, "f1_macro": None},
    ...                     {"accuracy": 0.875, "f1_macro": 0.9})
    >>> drop
    {'accuracy': 0.125, 'precision_macro': None, 'recall_macro': None, 'f1_macro': None}
    """
    out: dict[str, float | None] = {}
    for key in QUALITY_METRICS:
        live, trained = _number(online.get(key)), _number(offline.get(key))
        out[key] = None if live is None or trained is None else trained - live
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
