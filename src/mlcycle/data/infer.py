"""Infer a :class:`~mlcycle.data.schema.Schema` from a table.

Rules, per feature column:

- number dtypes (int, float) → ``numeric``, ``dtype`` ``int64`` or ``float64``, with the
  observed ``min``/``max``;
- bool columns (bool dtype, or only ``True``/``False`` values) → ``categorical`` with
  categories ``False``/``True`` and ``dtype: bool``: a flag is a category, and the model's
  categorical input is where the exported graph one-hot encodes it;
- text columns whose present values all parse as numbers → ``numeric`` (``float64``);
- other text columns → ``categorical`` when they have at most ``max_categories`` distinct
  values, else ``text``;
- columns of arrays (an ``.npz`` file's image arrays, see
  :func:`~mlcycle.data.load.read_arrays`) → ``image``, with the ``shape`` ``[C, H, W]`` of
  the first image and the ``min``/``max`` of all pixel values.

``nullable`` is True when the column has a missing value (NaN, None or a blank string).
The classes are the distinct labels as strings, sorted. A column of whole numbers stays
numeric even with few distinct values; edit ``kind`` in the schema file to treat codes as
categories.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from mlcycle.data._values import (
    is_bool_column,
    missing_mask,
    parse_numbers,
    text_values,
)
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["infer_feature", "infer_schema"]


def _bound(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def infer_feature(series: pd.Series, name: str, *, max_categories: int = 50) -> FeatureSpec:
    """Infer the spec of one feature column (see the module docstring for the rules).

    Parameters
    ----------
    series
        The column.
    name
        The feature name.
    max_categories
        Most distinct values a text column may have to be ``categorical``.

    Returns
    -------
    FeatureSpec
        The inferred spec.
    """
    import pandas as pd

    image = _image_feature(series, name)
    if image is not None:
        return image
    missing = missing_mask(series)
    nullable = bool(missing.any())
    if is_bool_column(series):
        return FeatureSpec(
            name, "categorical", dtype="bool", categories=["False", "True"], nullable=nullable
        )
    values, bad = parse_numbers(series)
    if not bad.any():
        dtype = "int64" if pd.api.types.is_integer_dtype(series.dtype) else "float64"
        present = values[~np.isnan(values)]
        lo = _bound(float(present.min())) if present.size else None
        hi = _bound(float(present.max())) if present.size else None
        return FeatureSpec(name, "numeric", dtype=dtype, min=lo, max=hi, nullable=nullable)
    distinct = sorted({t for t in text_values(series) if t is not None})
    if len(distinct) <= max_categories:
        return FeatureSpec(
            name, "categorical", dtype="string", categories=distinct, nullable=nullable
        )
    return FeatureSpec(name, "text", dtype="string", nullable=nullable)


def _image_feature(series: pd.Series, name: str) -> FeatureSpec | None:
    """An ``image`` spec when the column holds arrays, else ``None``."""
    if series.dtype != object:
        return None
    arrays = [v for v in series.tolist() if isinstance(v, np.ndarray)]
    if not arrays:
        return None
    first = arrays[0][None] if arrays[0].ndim == 2 else arrays[0]
    if first.ndim != 3:
        raise DataError(
            f"column '{name}' holds arrays of shape {list(arrays[0].shape)}; an image is "
            "[height, width] or [channels, height, width]"
        )
    lo = min(float(np.min(a)) for a in arrays if a.size)
    hi = max(float(np.max(a)) for a in arrays if a.size)
    dtype = str(first.dtype)
    return FeatureSpec(
        name,
        "image",
        dtype=dtype,
        min=_bound(lo),
        max=_bound(hi),
        nullable=len(arrays) < len(series),
        shape=[int(v) for v in first.shape],
    )


def infer_schema(frame: pd.DataFrame, label: str, *, max_categories: int = 50) -> Schema:
    """Infer the schema of a table whose column ``label`` holds the class labels.

    Parameters
    ----------
    frame
        The table, features and label.
    label
        Name of the label column.
    max_categories
        Most distinct values a text column may have to be ``categorical`` (else ``text``).

    Returns
    -------
    Schema
        Features in column order; classes are the distinct present labels, as sorted
        strings.

    Raises
    ------
    DataError
        When the label column is missing or there is no feature column.

    Examples
    --------
    >>> import pandas as pd
    >>> s = infer_schema(pd.DataFrame({"x": [1.5, 2.0], "c": ["a", "b"], "y": [1, 0]}), "y")
    >>> [(f.name, f.kind, f.min, f.max) for f in s.features]
    [('x', 'numeric', 1.5, 2.0), ('c', 'categorical', None, None)]
    >>> s.classes
    ['0', '1']
    """
    if max_categories < 1:
        raise DataError(f"max_categories must be at least 1; got {max_categories}")
    columns = [str(c) for c in frame.columns]
    if label not in columns:
        raise DataError(
            f"label column '{label}' is not in the data; columns: {columns}. "
            "Set data.label=<one of them>"
        )
    features = [
        infer_feature(frame[c], str(c), max_categories=max_categories)
        for c in frame.columns
        if str(c) != label
    ]
    if not features:
        raise DataError(f"the data has no feature columns besides the label '{label}'")
    classes = sorted({t for t in text_values(frame[label]) if t is not None})
    return Schema(label=label, classes=classes, features=features)
