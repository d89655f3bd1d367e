"""Compute derived features in numpy, exactly as the exported graph does.

The inputs are the model's own input blocks (see "Model input layout" in
``docs/architecture.md``): numeric features as float32 (missing as NaN) and categorical
ones as strings (missing as ``""``). Every operation runs in float32 or int64, like the
graph's, so the training pipeline and the served graph agree to the bit.

Examples
--------
>>> import numpy as np
>>> from mlcycle.data.schema import FeatureSpec, Schema
>>> from mlcycle.features.spec import Bins, Ratio
>>> schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric"), FeatureSpec("n", "numeric")])
>>> num = np.array([[6.0, 3.0], [1.0, 0.0], [np.nan, 2.0]], dtype=np.float32)
>>> empty = np.empty((3, 0), dtype=object)
>>> derive_columns([Ratio("r", "x", "n"), Bins("b", "x", (1.0, 5.0))], schema, num, empty)
array([[ 2.,  2.],
       [nan,  1.],
       [nan, nan]], dtype=float32)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlcycle.data.schema import Schema
from mlcycle.features.calendar import NumpyIntOps, date_part
from mlcycle.features.spec import Bins, DatePart, DerivedFeature, Flag, Ratio, Term

__all__ = ["DATE_LIMIT", "derive_columns"]

#: Dates further than this many seconds from 1970 (about the years -1200 and 5100) are
#: treated as missing, so the conversion to int64 stays exact in numpy and in the graph.
DATE_LIMIT = 1e11

_Array = np.ndarray[Any, Any]


def derive_columns(
    features: Sequence[DerivedFeature],
    schema: Schema,
    numeric: _Array,
    categorical: _Array,
) -> _Array:
    """The derived features of each row, float32 ``[N, len(features)]``.

    Parameters
    ----------
    features
        Parsed by :func:`~mlcycle.features.spec.parse_derived` against ``schema``.
    schema
        Gives the columns of ``numeric`` and ``categorical`` (schema order).
    numeric
        float32 ``[N, n_numeric]``, missing as NaN.
    categorical
        Strings ``[N, n_categorical]``, missing as ``""``.

    Returns
    -------
    numpy.ndarray
        One float32 column per derived feature; a missing value is NaN (a flag is never
        missing).
    """
    n = len(numeric) if numeric.ndim == 2 and numeric.shape[1] else len(categorical)
    num = {f.name: j for j, f in enumerate(schema.numeric)}
    cat = {f.name: j for j, f in enumerate(schema.categorical)}
    x = np.asarray(numeric, dtype=np.float32)
    out = np.empty((n, len(features)), dtype=np.float32)
    with np.errstate(all="ignore"):
        for k, feature in enumerate(features):
            if isinstance(feature, Ratio):
                out[:, k] = _ratio(x[:, num[feature.numerator]], x[:, num[feature.denominator]])
            elif isinstance(feature, Bins):
                out[:, k] = _bins(x[:, num[feature.feature]], feature.edges)
            elif isinstance(feature, DatePart):
                out[:, k] = _date_part(x[:, num[feature.feature]], feature.part)
            else:
                out[:, k] = _flag(feature, x, num, categorical, cat)
    return out


def _ratio(a: _Array, b: _Array) -> _Array:
    r = np.divide(a, b, dtype=np.float32)
    return np.where(np.isfinite(r), r, np.float32(np.nan))


def _bins(x: _Array, edges: tuple[float, ...]) -> _Array:
    e = np.asarray(edges, dtype=np.float32)
    index = (x[:, None] >= e[None, :]).sum(axis=1).astype(np.float32)
    return np.where(np.isnan(x), np.float32(np.nan), index)


def _date_part(x: _Array, part: str) -> _Array:
    valid = np.abs(x) <= np.float32(DATE_LIMIT)
    secs = np.floor(np.where(valid, x, np.float32(0))).astype(np.int64)
    value = date_part(NumpyIntOps(), secs, part).astype(np.float32)
    return np.where(valid, value, np.float32(np.nan))


def _flag(
    flag: Flag, x: _Array, num: dict[str, int], categorical: _Array, cat: dict[str, int]
) -> _Array:
    masks = [_term(t, x, num, categorical, cat) for t in flag.terms]
    combined = np.logical_and.reduce(masks) if flag.mode == "all" else np.logical_or.reduce(masks)
    return np.asarray(combined, dtype=np.float32)


def _term(
    term: Term, x: _Array, num: dict[str, int], categorical: _Array, cat: dict[str, int]
) -> _Array:
    if term.values is not None:
        column = np.asarray(categorical[:, cat[term.feature]], dtype=object)
        hit = np.isin(column, np.asarray(term.values, dtype=object))
        return np.logical_not(hit) if term.negate else hit
    v = x[:, num[term.feature]]
    mask = np.ones(len(v), dtype=bool)
    if term.min is not None:
        mask &= v >= np.float32(term.min)
    if term.max is not None:
        mask &= v < np.float32(term.max)
    return mask
