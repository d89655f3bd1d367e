"""Fit a model family on a training split."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.config.structured import ModelConfig, TrainConfig
from mlcycle.data.augment import augment_training_set
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ConfigError, SchemaError, TrainingError
from mlcycle.train.estimators import log_convergence_warnings
from mlcycle.train.pipeline import build_pipeline, model_frame

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

__all__ = ["TrainedModel", "fit_model"]

logger = logging.getLogger(__name__)


@dataclass
class TrainedModel:
    """A fitted pipeline and what is needed to use and export it.

    Parameters
    ----------
    pipeline
        The fitted scikit-learn pipeline (``preprocess`` → ``model``); it expects a frame
        in the schema's model order (see :func:`~mlcycle.train.pipeline.model_frame`).
    classes
        Class labels in the order of ``predict_proba``'s columns; equal to
        ``pipeline.classes_``.
    fit_seconds
        Wall time of ``pipeline.fit``.
    model_cfg
        The config the model was built from.
    schema
        The schema of the training data (lets :meth:`predict` take a plain frame).
    augmentation
        What ``train.augment`` added to the training split (see
        :func:`~mlcycle.data.augment.augment_training_set`); ``None`` when off.
    """

    pipeline: Pipeline
    classes: list[str]
    fit_seconds: float
    model_cfg: ModelConfig
    schema: Schema | None = None
    augmentation: dict[str, Any] | None = None

    @property
    def family(self) -> str:
        """The model family (``model_cfg.name``)."""
        return str(self.model_cfg.name)

    def predict_proba(self, data: Dataset | pd.DataFrame) -> np.ndarray[Any, Any]:
        """Class probabilities ``[N, n_classes]`` (columns in ``classes`` order)."""
        frame = model_frame(data, self._schema(data))
        return np.asarray(self.pipeline.predict_proba(frame))

    def predict(self, data: Dataset | pd.DataFrame) -> np.ndarray[Any, Any]:
        """Predicted labels ``[N]`` as ``str``."""
        frame = model_frame(data, self._schema(data))
        return np.asarray(self.pipeline.predict(frame)).astype(str)

    def _schema(self, data: Dataset | pd.DataFrame) -> Schema:
        if isinstance(data, Dataset):
            return data.schema
        if self.schema is None:
            raise TrainingError("pass a Dataset: this model does not know its schema")
        return self.schema


def fit_model(train: Dataset, model_cfg: ModelConfig, train_cfg: TrainConfig) -> TrainedModel:
    """Fit ``model_cfg``'s family with ``train_cfg``'s preprocessing and seed.

    Parameters
    ----------
    train
        The training split; labels are strings.
    model_cfg
        Model family and hyperparameters.
    train_cfg
        Seed and preprocessing.

    Returns
    -------
    TrainedModel
        The fitted pipeline; ``classes`` are the schema's classes present in ``train``,
        in the schema's (sorted) order.

    Raises
    ------
    TrainingError
        Empty data, a single class, or the estimator failed to fit.
    SchemaError
        A label is not one of the schema's classes.
    ConfigError
        A hyperparameter scikit-learn rejects.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from pathlib import Path
    >>> from mlcycle.config.structured import LogRegConfig, TrainConfig
    >>> from mlcycle.data.dataset import DataVersion, Dataset
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> ds = Dataset(pd.DataFrame({"x": np.array([0, 1, 2, 3], dtype="float32")}),
    ...              np.array(["lo", "lo", "hi", "hi"]),
    ...              Schema("y", ["hi", "lo"], [FeatureSpec("x", "numeric")]),
    ...              DataVersion("x", "p", False, 0), Path("p"))
    >>> fit_model(ds, LogRegConfig(), TrainConfig()).classes
    ['hi', 'lo']
    """
    schema = train.schema
    y = np.asarray(train.y).astype(str)
    if len(y) == 0:
        raise TrainingError("the training split is empty; check the data and split fractions")
    present, counts = np.unique(y, return_counts=True)
    unknown = sorted(set(present.tolist()) - set(schema.classes))
    if unknown:
        raise SchemaError(
            f"labels {unknown} are not among the schema's classes {schema.classes}; "
            "add them to `classes` in the schema file, or fix the label column"
        )
    if len(present) < 2:
        raise TrainingError(
            f"the training split has a single class '{present[0]}' ({counts[0]} rows); a "
            f"classifier needs at least two. Check the label column '{schema.label}', add "
            "rows of the other classes, or keep split.stratify=true so every split gets them"
        )
    absent = [c for c in schema.classes if c not in set(present.tolist())]
    if absent:
        logger.warning(
            "classes %s of the schema do not occur in the training split; the model will "
            "never predict them",
            absent,
        )

    train, augmentation = augment_training_set(train, train_cfg.augment, seed=train_cfg.seed)
    y = np.asarray(train.y).astype(str)
    pipeline = build_pipeline(schema, model_cfg, train_cfg.preprocess, train_cfg.seed)
    frame = model_frame(train, schema)
    start = time.perf_counter()
    try:
        with log_convergence_warnings(model_cfg.name):
            pipeline.fit(frame, y)
    except ValueError as exc:
        if type(exc).__name__ == "InvalidParameterError":
            raise ConfigError(f"model '{model_cfg.name}': {exc}") from None
        raise TrainingError(f"fitting '{model_cfg.name}' failed: {exc}") from exc
    fit_seconds = time.perf_counter() - start

    # predict_proba's columns follow pipeline.classes_ (sorted); that order is the contract.
    classes = [str(c) for c in pipeline.classes_]
    if classes != [c for c in schema.classes if c in set(classes)]:
        logger.warning(
            "the schema lists classes %s unsorted; the model's probabilities follow the "
            "sorted order %s",
            schema.classes,
            classes,
        )
    logger.info("fitted %s on %d rows in %.2fs", model_cfg.name, len(y), fit_seconds)
    return TrainedModel(
        pipeline=pipeline,
        classes=classes,
        fit_seconds=fit_seconds,
        model_cfg=model_cfg,
        schema=schema,
        augmentation=augmentation,
    )
