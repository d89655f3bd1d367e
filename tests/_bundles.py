"""Real bundles for the serving, batch and Lambda tests, exported from in-memory data.

``build_bundle("cancer", dest)``: breast cancer, 30 numeric features, two classes
(histogram gradient boosting). ``build_bundle("mixed", dest)``: numeric and categorical
features with missing values, three classes. ``build_bundle("tickets", dest)``: a text
message, a categorical channel and a numeric age, four teams (TF-IDF + logistic regression).
``build_bundle("digits", dest)``: 8x8 grey digit images, ten classes (a small CNN).
"""

from __future__ import annotations

from pathlib import Path

from sklearn.datasets import load_breast_cancer

from mlcycle.config.structured import CNNConfig, GBDTConfig, LogRegConfig, ModelConfig, TrainConfig
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import check_parity
from mlcycle.export.profile import build_profile
from mlcycle.train.fit import fit_model
from tests import _datasets

KINDS = ("cancer", "mixed", "tickets", "digits")


def build_bundle(kind: str, dest: Path) -> Path:
    """Train a small model on ``kind`` and write its bundle to ``dest``; return ``dest``."""
    if kind == "cancer":
        dataset = _datasets.sklearn_dataset(load_breast_cancer)
        name = "breast_cancer"
    elif kind == "mixed":
        dataset = _datasets.mixed_dataset()
        name = "mixed"
    elif kind == "tickets":
        dataset = _datasets.tickets_dataset()
        name = "tickets"
    elif kind == "digits":
        dataset = _datasets.digits_dataset()
        name = "digits"
    else:
        raise ValueError(f"unknown bundle kind {kind!r}; one of {KINDS}")
    train, val = _datasets.split(dataset)
    family: ModelConfig = LogRegConfig() if kind == "tickets" else GBDTConfig(max_iter=20)
    if kind == "digits":
        family = CNNConfig(epochs=8)
    model = fit_model(train, family, TrainConfig())
    onx = to_onnx(model.pipeline, train.schema)
    parity = check_parity(model, onx, val, 1e-4)
    return write_bundle(
        dest,
        model=onx,
        signature=make_signature(train.schema, model.classes, onx, name),
        profile=build_profile(train, model.predict_proba(val), val.y, model.classes),
        evaluation={"parity": parity.to_dict()},
        lineage={"git": {"commit": "abc"}},
    )
