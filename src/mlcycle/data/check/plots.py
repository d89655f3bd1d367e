"""The data check's plots as PNG files: classes, label quality, missing values, learning curve.

Drawn like :mod:`mlcycle.evaluate.plots`: on matplotlib's Agg canvas through
:class:`matplotlib.figure.Figure` (never ``pyplot``), with no software-version metadata,
so the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle._optional import require
from mlcycle.data.check.learning_curve import LearningCurve

__all__ = ["PLOT_FILES", "save_plots"]

#: Plot name -> file name, in the order they are written (missing_values only when a
#: feature has missing values, learning_curve only when it was measured).
PLOT_FILES = {
    "class_balance": "class_balance.png",
    "label_quality": "label_quality.png",
    "missing_values": "missing_values.png",
    "learning_curve": "learning_curve.png",
}

_DPI = 100
_MAX_BARS = 40


def _figure(width: float, height: float) -> Any:
    figure_mod = require("matplotlib.figure", "train")
    agg = require("matplotlib.backends.backend_agg", "train")
    fig = figure_mod.Figure(figsize=(width, height), dpi=_DPI)
    agg.FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=_DPI, metadata={"Software": None})
    fig.clear()
    return path


def _class_balance(counts: Mapping[str, int], rare: Sequence[str], path: Path) -> Path:
    names = list(counts)[:_MAX_BARS]
    fig = _figure(min(3.0 + 0.45 * len(names), 12.0), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["tab:red" if n in rare else "tab:blue" for n in names]
    ax.bar(range(len(names)), [counts[n] for n in names], color=colors)
    tilted = len(names) > 4
    ax.set_xticks(
        range(len(names)),
        labels=names,
        rotation=45 if tilted else 0,
        ha="right" if tilted else "center",
    )
    ax.set_ylabel("rows")
    ax.set_title("Rows per class (red: rare)")
    return _save(fig, path)


def _label_quality(quality: np.ndarray[Any, Any], threshold: float | None, path: Path) -> Path:
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(quality, bins=40, range=(0.0, 1.0), color="tab:blue")
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", linestyle="--", label="best-scored flagged issue")
        ax.legend(loc="upper left", fontsize="small")
    ax.set_yscale("log")
    ax.set_xlabel("label quality (out-of-sample probability of the given label)")
    ax.set_ylabel("rows (log scale)")
    ax.set_title("Label quality")
    return _save(fig, path)


def _missing(features: Sequence[Mapping[str, Any]], path: Path) -> Path:
    rows = sorted((f for f in features if f["missing"]), key=lambda f: -float(f["missing_rate"]))[
        :_MAX_BARS
    ]
    fig = _figure(6.0, min(1.5 + 0.3 * len(rows), 12.0))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(range(len(rows)), [f["missing_rate"] for f in rows], color="tab:orange")
    ax.set_yticks(range(len(rows)), labels=[f["name"] for f in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of rows missing")
    ax.set_title("Missing values")
    return _save(fig, path)


def _curve(curve: LearningCurve, path: Path) -> Path:
    fig = _figure(6.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    n = np.asarray(curve.sizes, dtype=np.float64)
    for mean, std, label, color in (
        (curve.train_mean, curve.train_std, "training", "tab:gray"),
        (curve.test_mean, curve.test_std, "held-out fold", "tab:blue"),
    ):
        m, s = np.asarray(mean), np.asarray(std)
        ax.plot(n, m, marker="o", color=color, label=label)
        ax.fill_between(n, m - s, m + s, color=color, alpha=0.2)
    if curve.fit.method == "power_law":
        a, b, c = (curve.fit.params[k] for k in ("a", "b", "c"))
        grid = np.linspace(n[0], 2 * n[-1], 100)
        sign = 1.0 if curve.higher_is_better else -1.0
        ax.plot(
            grid,
            sign * (a - b * (grid / n[-1]) ** -c),
            linestyle="--",
            color="tab:green",
            label="power-law fit, to 2x the data",
        )
    ax.set_xlabel("training rows")
    ax.set_ylabel(curve.metric)
    ax.set_title(f"Learning curve: {curve.verdict}")
    ax.legend(loc="best", fontsize="small")
    return _save(fig, path)


def save_plots(
    folder: Path,
    *,
    counts: Mapping[str, int],
    rare_classes: Sequence[str],
    quality: np.ndarray[Any, Any],
    issue_threshold: float | None,
    features: Sequence[Mapping[str, Any]],
    curve: LearningCurve,
) -> dict[str, Path]:
    """Write the check's plots into ``folder`` (created when missing).

    Parameters
    ----------
    folder
        Where the PNG files go.
    counts, rare_classes
        Rows per class, and the rare ones (drawn in red).
    quality
        Label quality score of every row.
    issue_threshold
        The highest quality among the flagged label issues (a dashed line); None: none.
    features
        The feature health rows (:func:`~mlcycle.data.check.coverage.feature_health`).
    curve
        The learning curve.

    Returns
    -------
    dict
        Plot name -> written file (see :data:`PLOT_FILES`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "class_balance": _class_balance(counts, rare_classes, folder / PLOT_FILES["class_balance"]),
        "label_quality": _label_quality(
            quality, issue_threshold, folder / PLOT_FILES["label_quality"]
        ),
    }
    if any(f["missing"] for f in features):
        out["missing_values"] = _missing(features, folder / PLOT_FILES["missing_values"])
    if curve.sizes:
        out["learning_curve"] = _curve(curve, folder / PLOT_FILES["learning_curve"])
    for name, file in PLOT_FILES.items():  # a plot of an earlier run that no longer applies
        if name not in out:
            (folder / file).unlink(missing_ok=True)
    return out
