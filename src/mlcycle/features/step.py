"""The pipeline step that appends derived features, and the hook that puts it in front.

:func:`with_derived_features` is how :func:`~mlcycle.train.pipeline.build_pipeline` adds
the step: the model pipeline is built for the *widened* schema (raw numeric features, then
the derived ones, then categorical and text features), and :class:`DeriveFeatures` turns
the raw model frame into that frame. Everything downstream (``predict_proba``, the parity
check, evaluation) keeps feeding raw features.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.features.compute import derive_columns
from mlcycle.features.spec import DerivedFeature, derived_entries, parse_derived

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["DERIVE_STEP", "DeriveFeatures", "with_derived_features"]

#: Name of the derivation step in a pipeline (the first step).
DERIVE_STEP = "derive"


class DeriveFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Append derived numeric features to a model frame.

    Parameters
    ----------
    schema
        The raw features; ``transform`` takes a frame in ``schema.model_order``.
    derived
        The ``data.derived`` entries (mappings, see :mod:`mlcycle.features.spec`).

    Attributes
    ----------
    features_
        The parsed derived features, in column order.

    Examples
    --------
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical")])
    >>> step = DeriveFeatures(s, [{"name": "hot", "kind": "flag", "any": [{"feature": "c",
    ...                                                                    "in": ["tea"]}]}])
    >>> frame = pd.DataFrame({"x": np.float32([1, 2]), "c": ["tea", "milk"]})
    >>> step.fit_transform(frame).to_dict("list")
    {'x': [1.0, 2.0], 'hot': [1.0, 0.0], 'c': ['tea', 'milk']}
    """

    def __init__(self, schema: Schema, derived: list[Any]) -> None:
        self.schema = schema
        self.derived = derived

    def output_schema(self) -> Schema:
        """The widened schema: the raw features, then one numeric feature per derived one.

        Raises
        ------
        ConfigError
            A bad ``derived`` entry (see :func:`~mlcycle.features.spec.parse_derived`).
        """
        features = parse_derived(derived_entries(self.derived), self.schema)
        extra = [FeatureSpec(f.name, "numeric", "float32", nullable=True) for f in features]
        return dataclasses.replace(self.schema, features=[*self.schema.features, *extra])

    def fit(self, X: pd.DataFrame, y: Any = None) -> DeriveFeatures:
        """Check the entries against the schema; nothing is learned from ``X``."""
        self.features_: list[DerivedFeature] = parse_derived(
            derived_entries(self.derived), self.schema
        )
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The frame in the widened schema's model order."""
        check_is_fitted(self, "features_")
        num = [f.name for f in self.schema.numeric]
        cat = [f.name for f in self.schema.categorical]
        numeric = X[num].to_numpy(dtype=np.float32) if num else np.empty((len(X), 0), np.float32)
        categorical = X[cat].to_numpy(dtype=object)
        values = derive_columns(self.features_, self.schema, numeric, categorical)
        derived = pd.DataFrame(values, columns=[f.name for f in self.features_], index=X.index)
        rest = [c for c in X.columns if c not in set(num)]
        return pd.concat([X[num], derived, X[rest]], axis=1)


def with_derived_features(
    schema: Schema, preprocess: Any, build: Callable[[Schema, Any], Pipeline]
) -> Pipeline | None:
    """The pipeline with a :class:`DeriveFeatures` step in front, or ``None`` without
    derived features.

    Parameters
    ----------
    schema
        The raw features.
    preprocess
        The ``train.preprocess`` section; its ``derived`` (``${data.derived}``) lists them.
    build
        Builds the rest of the pipeline for a schema and a preprocess section
        (``build_pipeline`` with the model and seed bound).

    Returns
    -------
    Pipeline or None

    Raises
    ------
    ConfigError
        A bad entry, raised here, before anything is fitted.
    """
    from sklearn.pipeline import Pipeline

    entries = derived_entries(getattr(preprocess, "derived", None))
    if not entries:
        return None
    step = DeriveFeatures(schema, entries)
    rest = build(step.output_schema(), dataclasses.replace(preprocess, derived=[]))
    return Pipeline([(DERIVE_STEP, step), *rest.steps])
