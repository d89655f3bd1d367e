"""The preprocessing + estimator pipeline, and the model input layout it is trained on.

The pipeline sees a frame whose columns are exactly ``schema.model_order`` (numeric
features, then categorical ones) and selects them **by integer position**, so the very
same ``ColumnTransformer`` converts to an ONNX graph with two inputs, ``numeric``
(float32 ``[N, n_numeric]``) and ``categorical`` (string ``[N, n_categorical]``); see
"Model input layout" in ``docs/architecture.md``.

Numeric features are imputed (``preprocess.numeric_impute``) and standardised
(``preprocess.scale``; skipped for tree families, which are invariant to it and whose
float32 ONNX thresholds would otherwise disagree with scikit-learn on rows near a split).
Categorical features are one-hot encoded; ``""`` (missing) is a category like any other,
and a category unseen in training encodes as all zeros, in scikit-learn and in ONNX alike.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlcycle.config.structured import ModelConfig, PreprocessConfig
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ConfigError, DataError, TrainingError
from mlcycle.train.estimators import TREE_FAMILIES, make_estimator

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = [
    "INPUT_CATEGORICAL",
    "INPUT_IMAGE",
    "INPUT_NUMERIC",
    "INPUT_TEXT",
    "build_pipeline",
    "model_frame",
    "onnx_inputs",
    "text_vectorizer",
]

logger = logging.getLogger(__name__)

#: Name of the ONNX input holding the numeric features.
INPUT_NUMERIC = "numeric"
#: Name of the ONNX input holding the categorical features.
INPUT_CATEGORICAL = "categorical"
#: Name of the ONNX input holding the text features.
INPUT_TEXT = "text"
#: Name of the ONNX input holding the image feature (float32 ``[N, C, H, W]``).
INPUT_IMAGE = "image"

_IMPUTE = ("mean", "median", "most_frequent")


def build_pipeline(
    schema: Schema, model_cfg: ModelConfig, preprocess: PreprocessConfig, seed: int
) -> Pipeline:
    """The unfitted pipeline ``preprocess`` (a ColumnTransformer) → ``model``.

    Image data (or ``model=cnn``) gets the one-step pipeline of
    :func:`mlcycle.train.cnn.image_pipeline` instead.

    Parameters
    ----------
    schema
        Features of the data; the pipeline expects a frame in ``schema.model_order``
        (build it with :func:`model_frame`).
    model_cfg
        The model family and its hyperparameters.
    preprocess
        Imputation, scaling and categorical encoding.
    seed
        ``random_state`` of the estimator.

    Returns
    -------
    Pipeline
        Steps ``preprocess`` and ``model``.

    Raises
    ------
    TrainingError
        The schema has text features (not supported by the scikit-learn trainer yet) or
        no numeric or categorical feature at all.
    ConfigError
        Unknown ``numeric_impute`` or model family.

    Examples
    --------
    >>> from mlcycle.config.structured import LogRegConfig, PreprocessConfig
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("c", "categorical"), FeatureSpec("x", "numeric")])
    >>> p = build_pipeline(s, LogRegConfig(), PreprocessConfig(), seed=0)
    >>> [(name, cols) for name, _, cols in p.named_steps["preprocess"].transformers]
    [('numeric', [0]), ('categorical', [1])]
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from mlcycle.features.step import with_derived_features

    derived = with_derived_features(
        schema, preprocess, lambda s, p: build_pipeline(s, model_cfg, p, seed)
    )
    if derived is not None:  # data.derived: a "derive" step first (docs/features.md)
        return derived
    if schema.image or getattr(model_cfg, "name", None) == "cnn":
        from mlcycle.train.cnn import image_pipeline

        return image_pipeline(schema, model_cfg, seed)
    n_num, n_cat, n_text = len(schema.numeric), len(schema.categorical), len(schema.text)
    if n_num + n_cat + n_text == 0:
        raise TrainingError("the schema has no feature to train on")
    if preprocess.numeric_impute not in _IMPUTE:
        raise ConfigError(
            f"train.preprocess.numeric_impute is {preprocess.numeric_impute!r}; "
            f"use one of {', '.join(_IMPUTE)}"
        )

    transformers: list[tuple[str, Any, list[int] | int]] = []
    if n_num:
        steps: list[tuple[str, Any]] = [
            (
                "impute",
                SimpleImputer(strategy=preprocess.numeric_impute, keep_empty_features=True),
            )
        ]
        if preprocess.scale and model_cfg.name not in TREE_FAMILIES:
            steps.append(("scale", StandardScaler()))
        elif preprocess.scale:
            logger.debug("not scaling numeric features: %s is scale-invariant", model_cfg.name)
        transformers.append((INPUT_NUMERIC, Pipeline(steps), list(range(n_num))))
    if n_cat:
        encoder: Any
        if preprocess.one_hot:
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        transformers.append((INPUT_CATEGORICAL, encoder, list(range(n_num, n_num + n_cat))))
    for j in range(n_text):
        # An integer (not a list) selects the column as 1-D strings, what TF-IDF expects.
        transformers.append((f"{INPUT_TEXT}_{j}", text_vectorizer(preprocess), n_num + n_cat + j))

    column_transformer = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline(
        [("preprocess", column_transformer), ("model", make_estimator(model_cfg, seed))]
    )


def text_vectorizer(preprocess: PreprocessConfig) -> Any:
    """The TF-IDF vectoriser of one text feature, as ``preprocess`` configures it.

    Words are runs of two or more letters or digits (scikit-learn's default pattern),
    lower-cased when ``text_lowercase``; the vocabulary keeps the ``text_max_features``
    most frequent n-grams of 1 to ``text_ngram_max`` words seen in at least
    ``text_min_df`` training rows. The exported graph tokenises the same way. Term
    counts are raw (no ``sublinear_tf``: skl2onnx's converter ignores it, so the graph
    would disagree with scikit-learn on any repeated word).

    Parameters
    ----------
    preprocess
        The ``train.preprocess`` section.

    Returns
    -------
    sklearn.feature_extraction.text.TfidfVectorizer
        Unfitted.

    Raises
    ------
    ConfigError
        A text setting out of range.

    Examples
    --------
    >>> text_vectorizer(PreprocessConfig()).ngram_range
    (1, 2)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    for key, low in (("text_max_features", 1), ("text_ngram_max", 1), ("text_min_df", 1)):
        value = getattr(preprocess, key)
        if not isinstance(value, int) or value < low:
            raise ConfigError(
                f"train.preprocess.{key} is {value!r}; it must be an integer >= {low}"
            )
    if preprocess.text_ngram_max > 3:
        raise ConfigError(
            f"train.preprocess.text_ngram_max is {preprocess.text_ngram_max}; use 1, 2 or 3 "
            "(longer n-grams rarely help and make the vocabulary and the graph large)"
        )
    return TfidfVectorizer(
        lowercase=preprocess.text_lowercase,
        ngram_range=(1, preprocess.text_ngram_max),
        max_features=preprocess.text_max_features,
        min_df=preprocess.text_min_df,
        dtype=np.float32,
    )


def model_frame(data: Dataset | pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The features in the layout the pipeline is trained on.

    Parameters
    ----------
    data
        A :class:`~mlcycle.data.dataset.Dataset` or any frame holding the schema's
        numeric and categorical features (other columns are ignored).
    schema
        Which columns are numeric and categorical.

    Returns
    -------
    pandas.DataFrame
        Columns ``schema.model_order``: numeric as float32 (missing as NaN), then
        categorical as ``str`` objects (missing as ``""``).

    Raises
    ------
    DataError
        A feature is missing from the frame, or a numeric feature holds non-numbers.

    Examples
    --------
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("c", "categorical"), FeatureSpec("x", "numeric")])
    >>> model_frame(pd.DataFrame({"c": ["u", None], "x": [1, None]}), s).to_dict("list")
    {'x': [1.0, nan], 'c': ['u', '']}
    """
    frame = data.frame if isinstance(data, Dataset) else data
    missing = [c for c in schema.model_order if c not in frame.columns]
    if missing:
        raise DataError(
            f"the data lacks the feature column(s) {missing}; the schema expects "
            f"{schema.model_order}"
        )
    columns: dict[str, Any] = {}
    for f in schema.numeric:
        columns[f.name] = _numeric(frame[f.name].to_numpy(), f.name)
    for f in [*schema.categorical, *schema.text]:
        columns[f.name] = pd.Series(_strings(frame[f.name].to_numpy()), dtype=object)
    for f in schema.image:  # one float32 array [C, H, W] per row
        columns[f.name] = pd.Series(_images(frame[f.name].to_numpy(), f.name), dtype=object)
    out = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
    return out[schema.model_order]


def onnx_inputs(frame: pd.DataFrame, schema: Schema) -> dict[str, np.ndarray[Any, Any]]:
    """The ONNX graph's inputs for ``frame``: ``numeric`` and ``categorical`` arrays.

    Parameters
    ----------
    frame
        A frame holding the schema's features (e.g. from :func:`model_frame`).
    schema
        Which columns are numeric and categorical.

    Returns
    -------
    dict
        ``numeric``: float32 ``[N, n_numeric]``; ``categorical``: object array of ``str``
        ``[N, n_categorical]`` with missing as ``""``. An input whose group is empty is
        left out.

    Examples
    --------
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> s = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
    >>> onnx_inputs(pd.DataFrame({"x": [1.5, 2.0]}), s)["numeric"].tolist()
    [[1.5], [2.0]]
    """
    mf = model_frame(frame, schema)
    out: dict[str, np.ndarray[Any, Any]] = {}
    if schema.numeric:
        cols = [f.name for f in schema.numeric]
        out[INPUT_NUMERIC] = np.ascontiguousarray(mf[cols].to_numpy(dtype=np.float32))
    if schema.categorical:
        cols = [f.name for f in schema.categorical]
        out[INPUT_CATEGORICAL] = mf[cols].to_numpy(dtype=object)
    if schema.text:
        cols = [f.name for f in schema.text]
        out[INPUT_TEXT] = mf[cols].to_numpy(dtype=object)
    if schema.image:
        from mlcycle.train.cnn import stack_images

        out[INPUT_IMAGE] = stack_images(mf[[schema.image[0].name]])
    return out


def _numeric(values: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    if values.dtype == np.float32:
        return values
    try:
        numbers = pd.to_numeric(pd.Series(values), errors="raise")
        return np.asarray(numbers.to_numpy(dtype=np.float32, na_value=np.nan))
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"numeric feature '{name}' holds values that are not numbers ({exc}); "
            "fix the data or declare the feature as categorical in the schema"
        ) from None


def _images(values: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values.tolist()):
        arr = np.asarray(v, dtype=np.float32) if v is not None else None
        if arr is None or arr.ndim not in (2, 3):
            raise DataError(
                f"image feature '{name}' holds {type(v).__name__} in row {i}; each row needs "
                "an image array [C, H, W] (or [H, W])"
            )
        out[i] = arr[None] if arr.ndim == 2 else arr
    return out


def _strings(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.asarray(values, dtype=object).copy()
    out[pd.isna(out)] = ""
    return out.astype(str).astype(object)
