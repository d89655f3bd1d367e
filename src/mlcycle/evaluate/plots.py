"""Evaluation plots as PNG files: confusion matrix, ROC, precision-recall, reliability.

Figures are drawn on matplotlib's Agg canvas through :class:`matplotlib.figure.Figure`
(never ``pyplot``), so nothing needs a display, no global figure registry grows, and
each figure is freed as soon as it is saved. PNGs carry no software-version metadata:
the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle._optional import require
from mlcycle.evaluate.metrics import calibration_table, check_inputs

__all__ = ["PLOT_FILES", "save_plots"]

# Plot name -> file name, in the order they are written.
PLOT_FILES = {
    "confusion_matrix": "confusion_matrix.png",
    "roc": "roc.png",
    "pr": "pr.png",
    "reliability": "reliability.png",
}

_DPI = 100


def _figure(width: float, height: float) -> Any:
    figure_mod = require("matplotlib.figure", "train")
    agg = require("matplotlib.backends.backend_agg", "train")
    fig = figure_mod.Figure(figsize=(width, height), dpi=_DPI)
    agg.FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    fig.clear()
    return path


def _one_vs_rest(
    idx: npt.NDArray[np.intp], p: npt.NDArray[np.float64], names: list[str]
) -> list[tuple[str, npt.NDArray[np.bool_], npt.NDArray[np.float64]]]:
    """The (class, is-positive, score) curves to draw: the positive class when binary."""
    columns = [1] if len(names) == 2 else list(range(len(names)))
    return [(names[j], idx == j, p[:, j]) for j in columns]


def _confusion(cm: npt.NDArray[np.int64], names: list[str], path: Path) -> Path:
    k = len(names)
    side = min(3.0 + 0.5 * k, 12.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = cm.max() / 2.0 if cm.size else 0.0
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                color="white" if cm[i, j] > threshold else "black",
            )
    ax.set_xticks(
        range(k), labels=names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center"
    )
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix")
    fig.tight_layout()
    return _save(fig, path)


def _roc(
    curves: list[tuple[str, npt.NDArray[np.bool_], npt.NDArray[np.float64]]], path: Path
) -> Path:
    skm = require("sklearn.metrics", "train")
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    for name, positive, score in curves:
        if positive.all() or not positive.any():
            ax.plot([], [], label=f"{name} (undefined: one class only)")
            continue
        fpr, tpr, _ = skm.roc_curve(positive, score)
        auc = skm.auc(fpr, tpr)
        ax.plot(fpr, tpr, linewidth=1.5, label=f"{name} (AUC {auc:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve" + (" (one-vs-rest)" if len(curves) > 1 else ""))
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def _pr(
    curves: list[tuple[str, npt.NDArray[np.bool_], npt.NDArray[np.float64]]], path: Path
) -> Path:
    skm = require("sklearn.metrics", "train")
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for name, positive, score in curves:
        if not positive.any():
            ax.plot([], [], label=f"{name} (undefined: no samples)")
            continue
        precision, recall, _ = skm.precision_recall_curve(positive, score)
        ap = skm.average_precision_score(positive, score)
        ax.step(recall, precision, where="post", linewidth=1.5, label=f"{name} (AP {ap:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve" + (" (one-vs-rest)" if len(curves) > 1 else ""))
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    return _save(fig, path)


def _reliability(table: dict[str, Any], path: Path) -> Path:
    fig = _figure(5.5, 6.0)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.08)
    top = fig.add_subplot(grid[0])
    bottom = fig.add_subplot(grid[1], sharex=top)
    edges = np.asarray(table["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    filled = [i for i, c in enumerate(table["count"]) if c > 0]
    accuracy = [table["accuracy"][i] for i in filled]
    confidence = [table["confidence"][i] for i in filled]
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    top.bar(centers[filled], accuracy, width=width * 0.9, alpha=0.35, label="accuracy per bin")
    top.plot(confidence, accuracy, marker="o", linewidth=1.5, label="observed")
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability (ECE {table['ece']:.3f})")
    top.legend(loc="upper left", fontsize="small")
    top.tick_params(labelbottom=False)
    bottom.bar(centers, table["count"], width=width * 0.9, color="tab:grey")
    bottom.set_xlim(0, 1)
    bottom.set_xlabel("confidence (top-class probability)")
    bottom.set_ylabel("count")
    return _save(fig, path)


def save_plots(
    y_true: npt.ArrayLike,
    proba: npt.ArrayLike,
    classes: Sequence[str],
    out_dir: Path,
    *,
    calibration_bins: int = 10,
) -> dict[str, Path]:
    """Write the evaluation plots of one labelled set as PNG files.

    Parameters
    ----------
    y_true
        True labels, ``[N]``.
    proba
        Predicted probabilities, ``[N, n_classes]``, columns in ``classes`` order.
    classes
        Class names; with two classes the curves are drawn for ``classes[1]``, with more
        there is one one-vs-rest curve per class.
    out_dir
        Folder of the PNG files; created when missing. Existing plots are overwritten.
    calibration_bins
        Equal-width bins of the reliability diagram.

    Returns
    -------
    dict[str, Path]
        ``confusion_matrix``, ``roc``, ``pr`` and ``reliability`` mapped to their files
        (see :data:`PLOT_FILES`).
    """
    _, p, idx = check_inputs(y_true, proba, classes)
    names = [str(c) for c in classes]
    out_dir.mkdir(parents=True, exist_ok=True)
    cm = np.zeros((len(names), len(names)), dtype=np.int64)
    np.add.at(cm, (idx, p.argmax(axis=1)), 1)
    curves = _one_vs_rest(idx, p, names)
    table = calibration_table(y_true, proba, classes, n_bins=calibration_bins)
    return {
        "confusion_matrix": _confusion(cm, names, out_dir / PLOT_FILES["confusion_matrix"]),
        "roc": _roc(curves, out_dir / PLOT_FILES["roc"]),
        "pr": _pr(curves, out_dir / PLOT_FILES["pr"]),
        "reliability": _reliability(table, out_dir / PLOT_FILES["reliability"]),
    }
