"""Evaluation of a classifier's probabilities: metrics, plots, baselines and the report.

Inputs are plain numpy (``y_true`` labels as strings, ``proba`` ``[N, n_classes]``,
``classes`` the column order of ``proba``); outputs are JSON-ready data and PNG files.
scikit-learn, matplotlib and rich are imported only when a function needs them.
"""

from __future__ import annotations

from mlcycle.evaluate.baselines import BaselineResult, ModelResolver, compare_to_baselines
from mlcycle.evaluate.metrics import calibration_table, classification_metrics, predicted_labels
from mlcycle.evaluate.plots import save_plots
from mlcycle.evaluate.report import (
    evaluate_predictions,
    format_baseline_table,
    render_baseline_table,
)

__all__ = [
    "BaselineResult",
    "ModelResolver",
    "calibration_table",
    "classification_metrics",
    "compare_to_baselines",
    "evaluate_predictions",
    "format_baseline_table",
    "predicted_labels",
    "render_baseline_table",
    "save_plots",
]
