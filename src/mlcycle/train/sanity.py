"""The overfit check: can the pipeline learn a handful of rows by heart?

Any working model should reach (near) perfect training accuracy on a few dozen rows. When
it does not, either something is broken (labels misaligned with the features, the wrong
label column, features that carry nothing) or the model is too weak or too regularised
for the data. The check runs in seconds, before a long training run.

Limits that only make sense for the full data size are scaled to the sample: gradient
boosting's and the forest's ``min_samples_leaf`` shrink in proportion (20 rows per leaf
cannot split 32 rows at all), and the MLP trains without early stopping (its held-out
fraction would be two rows). Penalties (``C``, ``alpha``, ``l2_regularization``) are kept,
since they are what the check is meant to catch.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcycle.config.structured import ModelConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import TrainingError
from mlcycle.train.fit import fit_model

__all__ = ["SanityResult", "sanity_check"]

_HINTS = {
    "logreg": "raise model.C (weaker regularisation) or model.max_iter",
    "gbdt": "raise model.C, model.max_iter or model.max_leaf_nodes, or lower "
    "model.min_samples_leaf",
    "random_forest": "raise model.max_depth (or set it to null) or lower model.min_samples_leaf",
    "mlp": "raise model.C (smaller alpha), model.max_iter or model.learning_rate_init, or "
    "widen model.hidden_layer_sizes",
    "cnn": "raise model.epochs, model.C (smaller weight_decay) or model.hidden, or widen "
    "model.channels",
}


@dataclass(frozen=True)
class SanityResult:
    """Outcome of :func:`sanity_check`.

    Parameters
    ----------
    rows
        Rows the model was fitted on.
    train_accuracy
        Accuracy on those same rows.
    passed
        ``train_accuracy >= train_cfg.sanity_min_accuracy``.
    message
        What happened, and on failure what it means and what to try.
    """

    rows: int
    train_accuracy: float
    passed: bool
    message: str


def sanity_check(ds: Dataset, model_cfg: ModelConfig, train_cfg: TrainConfig) -> SanityResult:
    """Fit on ``train_cfg.sanity_rows`` rows and check the model learns them.

    Parameters
    ----------
    ds
        Data to sample from (usually the training split).
    model_cfg
        The model to check, as it would be trained.
    train_cfg
        ``sanity_rows``, ``sanity_min_accuracy``, the seed and the preprocessing.

    Returns
    -------
    SanityResult
        Training accuracy on the sample and whether it reached the threshold.

    Raises
    ------
    TrainingError
        The data has fewer than two classes.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from pathlib import Path
    >>> from mlcycle.config.structured import LogRegConfig, TrainConfig
    >>> from mlcycle.data.dataset import DataVersion, Dataset
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> x = np.arange(40, dtype="float32")
    >>> ds = Dataset(pd.DataFrame({"x": x}), np.where(x < 20, "a", "b"),
    ...              Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")]),
    ...              DataVersion("x", "p", False, 0), Path("p"))
    >>> sanity_check(ds, LogRegConfig(C=100.0), TrainConfig()).passed
    True
    """
    y = np.asarray(ds.y).astype(str)
    classes = np.unique(y)
    if len(classes) < 2:
        only = f"'{classes[0]}'" if len(classes) else "none"
        raise TrainingError(
            f"the sanity check needs at least two classes; the data has {only}. "
            "Check the label column"
        )
    n = min(len(y), max(int(train_cfg.sanity_rows), len(classes)))
    index = _stratified_sample(y, n, train_cfg.seed)
    sample = ds.subset(index)
    cfg = _for_small_sample(model_cfg, n, len(y))
    # Augmentation is not what this checks (and its slices may miss the sample): off.
    no_augment = dataclasses.replace(
        train_cfg, augment=dataclasses.replace(train_cfg.augment, enabled=False)
    )
    trained = fit_model(sample, cfg, no_augment)
    accuracy = float(np.mean(trained.predict(sample) == sample.y.astype(str)))
    threshold = float(train_cfg.sanity_min_accuracy)
    passed = accuracy >= threshold
    name = model_cfg.name
    if passed:
        message = (
            f"{name} memorised {n} rows: the features, the labels and the model can learn. "
            "Go on and train on the full data"
        )
    else:
        hint = _HINTS.get(name, "use a more flexible model")
        message = (
            f"{name} could not memorise {n} rows. That points to a bug (labels not aligned "
            "with the features, the wrong label column, features that carry no signal) or "
            f"to a model too weak or too regularised for this data: {hint} (C is now "
            f"{getattr(model_cfg, 'C', None)}), then run `mlcycle sanity` again"
        )
    return SanityResult(rows=n, train_accuracy=accuracy, passed=passed, message=message)


def _stratified_sample(y: np.ndarray[Any, Any], n: int, seed: int) -> np.ndarray[Any, Any]:
    """``n`` row positions, every class at least once, in proportion otherwise."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.maximum(1, np.floor(counts * n / len(y))).astype(int)
    quota = np.minimum(quota, counts)
    # Hand out the remaining rows to the classes with the largest unmet share.
    while quota.sum() < n:
        room = counts - quota
        want = counts * n / len(y) - quota
        want[room == 0] = -np.inf
        quota[int(np.argmax(want))] += 1
    while quota.sum() > n:
        quota[int(np.argmax(quota))] -= 1
    picked = [
        rng.choice(np.flatnonzero(y == c), size=int(q), replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked))


def _for_small_sample(cfg: ModelConfig, rows: int, total: int) -> ModelConfig:
    """``cfg`` with size-dependent limits scaled from ``total`` rows down to ``rows``."""
    changes: dict[str, Any] = {}
    leaf = getattr(cfg, "min_samples_leaf", None)
    if cfg.name in ("gbdt", "random_forest") and isinstance(leaf, int) and leaf > 1:
        changes["min_samples_leaf"] = max(1, math.floor(leaf * rows / max(total, 1)))
    if cfg.name == "mlp" and getattr(cfg, "early_stopping", False):
        changes["early_stopping"] = False
    epochs, batch = getattr(cfg, "epochs", None), getattr(cfg, "batch_size", None)
    if cfg.name == "cnn" and isinstance(epochs, int) and isinstance(batch, int) and batch > 0:
        # as many optimiser steps as on the full data (one batch per epoch here), at most 500
        steps = epochs * math.ceil(total / batch) / math.ceil(rows / batch)
        changes["epochs"] = min(500, max(epochs, math.ceil(steps)))
    if not changes:
        return cfg
    if dataclasses.is_dataclass(cfg):
        return dataclasses.replace(cfg, **changes)
    out = copy.copy(cfg)
    for key, value in changes.items():
        setattr(out, key, value)
    return out
