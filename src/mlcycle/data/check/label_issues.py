"""Likely label errors: confident learning on out-of-sample probabilities.

:func:`out_of_sample_probabilities` fits the project's own pipeline (preprocessing and
model, exactly as ``mlcycle train`` builds it) on all folds but one and predicts the
held-out fold, for every fold, so each row's probabilities come from a model that never
saw it. :func:`find_label_issues` hands them to cleanlab's confident learning
(``cleanlab.filter.find_label_issues``, ``prune_by_noise_rate``): it estimates how often
each class is mislabelled as each other class and flags the rows the model is most
confidently against, about as many as that estimate says. Each issue is ranked by its
label quality score (the out-of-sample probability of the given label; lower is worse)
and comes with the label the model suggests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle._optional import require
from mlcycle.config.structured import ModelConfig, PreprocessConfig
from mlcycle.data.check.cv import fit_notes, stratified_folds
from mlcycle.data.dataset import Dataset

__all__ = ["LabelIssue", "LabelIssues", "find_label_issues", "out_of_sample_probabilities"]


@dataclass(frozen=True)
class LabelIssue:
    """A row whose label is likely wrong."""

    #: 1 for the worst (lowest label quality).
    rank: int
    #: Position of the row among the data file's rows (0 is the first row after the header).
    row: int
    #: The label the data gives.
    given: str
    #: The label the out-of-sample model finds most likely.
    suggested: str
    #: Out-of-sample probability of the given label (cleanlab's self-confidence); in [0, 1].
    quality: float
    #: Out-of-sample probability of the suggested label.
    suggested_probability: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "rank": self.rank,
            "row": self.row,
            "given": self.given,
            "suggested": self.suggested,
            "quality": round(self.quality, 6),
            "suggested_probability": round(self.suggested_probability, 6),
        }


@dataclass
class LabelIssues:
    """What the label-issue finder found."""

    #: Rows checked.
    rows: int
    #: Issues found (all of them, whatever ``max_issues`` lists).
    found: int
    #: The issues listed, worst first (at most ``max_issues``).
    issues: list[LabelIssue]
    #: Issues found per given label.
    by_class: dict[str, int]
    #: Accuracy of the out-of-sample predictions against the given labels.
    out_of_sample_accuracy: float
    #: Label quality score of every row, in dataset order (for the histogram).
    quality: np.ndarray[Any, Any] = field(repr=False)
    #: Warnings of the fits and of cleanlab, counted.
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report (without the per-row scores)."""
        return {
            "method": "confident_learning",
            "rows": self.rows,
            "found": self.found,
            "share": round(self.found / self.rows, 6) if self.rows else 0.0,
            "listed": len(self.issues),
            "by_class": dict(self.by_class),
            "out_of_sample_accuracy": round(self.out_of_sample_accuracy, 6),
            "issues": [i.to_dict() for i in self.issues],
            "notes": list(self.notes),
        }


def out_of_sample_probabilities(
    data: Dataset,
    model_cfg: ModelConfig,
    preprocess: PreprocessConfig,
    *,
    folds: int,
    seed: int,
    notes: list[str] | None = None,
) -> tuple[np.ndarray[Any, Any], list[str]]:
    """Cross-validated class probabilities of every row from the project's pipeline.

    Parameters
    ----------
    data
        The dataset (all labelled rows).
    model_cfg, preprocess
        The model family and preprocessing, as ``mlcycle train`` uses them.
    folds
        Stratified folds (>= 2; every class needs at least that many rows).
    seed
        Seed of the folds and of the estimator.
    notes
        Receives the fits' warnings (see :func:`~mlcycle.data.check.cv.fit_notes`).

    Returns
    -------
    pred_probs : numpy.ndarray
        ``[n_rows, n_classes]``, each row predicted by the model of the fold that held it
        out.
    classes : list of str
        The column order: the classes present in ``data.y``, sorted.

    Raises
    ------
    DataError
        A class has fewer rows than ``folds``.
    """
    model_selection = require("sklearn.model_selection", "train")
    from mlcycle.train.pipeline import build_pipeline, model_frame

    classes = sorted({str(c) for c in data.y})
    cv = stratified_folds(data.y, folds, seed)
    pipeline = build_pipeline(data.schema, model_cfg, preprocess, seed)
    with fit_notes(notes if notes is not None else [], "out-of-sample probabilities"):
        probs = model_selection.cross_val_predict(
            pipeline, model_frame(data, data.schema), data.y, cv=cv, method="predict_proba"
        )
    return np.asarray(probs, dtype=np.float64), classes


def find_label_issues(
    y: np.ndarray[Any, Any],
    pred_probs: np.ndarray[Any, Any],
    classes: list[str],
    *,
    rows: np.ndarray[Any, Any] | None = None,
    max_issues: int = 50,
) -> LabelIssues:
    """Rows whose given label the out-of-sample probabilities confidently disagree with.

    Parameters
    ----------
    y
        The given labels (strings, each one of ``classes``).
    pred_probs
        Out-of-sample probabilities ``[n_rows, n_classes]``, columns in ``classes`` order.
    classes
        The classes, sorted.
    rows
        Each row's position in the data file (default: its position in ``y``).
    max_issues
        How many issues to list, worst first (all are counted).

    Returns
    -------
    LabelIssues

    Examples
    --------
    >>> y = np.array(["a"] * 6 + ["b"] * 6)
    >>> p = np.array([[0.9, 0.1]] * 5 + [[0.05, 0.95]] + [[0.1, 0.9]] * 6)
    >>> found = find_label_issues(y, p, ["a", "b"])
    >>> [(i.row, i.given, i.suggested) for i in found.issues]
    [(5, 'a', 'b')]
    """
    cleanlab_filter = require("cleanlab.filter", "train")
    cleanlab_rank = require("cleanlab.rank", "train")
    labels = np.searchsorted(np.asarray(classes), np.asarray(y).astype(str))
    probs = np.asarray(pred_probs, dtype=np.float64)
    positions = np.arange(len(labels)) if rows is None else np.asarray(rows)
    notes: list[str] = []
    with fit_notes(notes, "label issues"):
        ranked = cleanlab_filter.find_label_issues(
            labels,
            probs,
            return_indices_ranked_by="self_confidence",
            filter_by="prune_by_noise_rate",
            n_jobs=1,
        )
        quality = cleanlab_rank.get_label_quality_scores(labels, probs, method="self_confidence")
    ranked = np.asarray(ranked, dtype=np.intp)
    suggested = probs.argmax(axis=1)
    issues = [
        LabelIssue(
            rank=k + 1,
            row=int(positions[i]),
            given=classes[int(labels[i])],
            suggested=classes[int(suggested[i])],
            quality=float(quality[i]),
            suggested_probability=float(probs[i, suggested[i]]),
        )
        for k, i in enumerate(ranked[:max_issues])
    ]
    by_class = Counter(classes[int(labels[i])] for i in ranked)
    return LabelIssues(
        rows=len(labels),
        found=len(ranked),
        issues=issues,
        by_class={c: by_class[c] for c in classes if by_class[c]},
        out_of_sample_accuracy=float(np.mean(suggested == labels)) if len(labels) else 0.0,
        quality=np.asarray(quality, dtype=np.float64),
        notes=notes,
    )
