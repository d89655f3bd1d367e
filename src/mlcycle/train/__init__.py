"""Training: estimators per model family, the preprocessing pipeline, fit and sanity check.

Needs mlcycle's ``train`` extra (scikit-learn, pandas).
"""

from __future__ import annotations

from mlcycle.train.estimators import FAMILIES, make_estimator
from mlcycle.train.fit import TrainedModel, fit_model
from mlcycle.train.pipeline import build_pipeline, model_frame, onnx_inputs
from mlcycle.train.sanity import SanityResult, sanity_check

__all__ = [
    "FAMILIES",
    "SanityResult",
    "TrainedModel",
    "build_pipeline",
    "fit_model",
    "make_estimator",
    "model_frame",
    "onnx_inputs",
    "sanity_check",
]
