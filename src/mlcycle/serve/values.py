"""Judge the values of one block of features: numbers, or categories.

:mod:`mlcycle.serve.validation` turns each request layout into rows; this module checks
the values of one model input (``numeric`` or ``categorical``) and builds its array,
naming the first bad value's field with the ``locate`` function the layout gives.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mlcycle.serve.errors import RequestError

__all__ = [
    "Locate",
    "categorical_block",
    "json_type",
    "numeric_block",
    "parse_number",
    "short",
]

#: (row, feature) -> the field's name in the request, e.g. ``records[3].age``.
Locate = Callable[[int, str], str]
_F32_MAX = float(np.finfo(np.float32).max)


def numeric_block(
    features: Sequence[str], nullable: Sequence[bool], raw: Any, locate: Locate
) -> np.ndarray[Any, Any]:
    """Rows of numbers → float32 ``[N, k]``, or a 422 naming the first bad value.

    Parameters
    ----------
    features
        The block's features, in column order.
    nullable
        Per feature: may it be missing (null / NaN)?
    raw
        Rows (sequences of values) or a 2-D array.
    locate
        Names a value's field for the error.
    """
    shape = (len(raw), len(features))
    arr = raw if isinstance(raw, np.ndarray) else _grid(raw, shape, fast=True)
    if arr.dtype.kind not in "fiub" or arr.shape != shape:
        arr = _numbers(features, _grid(raw, shape, fast=False), locate)
    with np.errstate(over="ignore", invalid="ignore"):
        values = arr.astype(np.float32)
    finite = np.isfinite(values)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
        # a double just above float32's largest value rounds down to it, not to inf
        finite &= np.abs(arr) <= _F32_MAX
    if not finite.all():
        _check_nonfinite(features, nullable, arr, values, finite, locate)
    return values


def _numbers(
    features: Sequence[str], obj: np.ndarray[Any, Any], locate: Locate
) -> np.ndarray[Any, Any]:
    out = np.empty(obj.shape, dtype=np.float64)
    for (i, j), v in np.ndenumerate(obj):
        t = type(v)
        if t is float or t is int or t is bool or isinstance(v, np.number | np.bool_):
            try:
                out[i, j] = float(v)
            except OverflowError:
                out[i, j] = math.inf
        elif v is None:
            out[i, j] = math.nan
        else:
            f = features[j]
            raise RequestError(
                422,
                "wrong_type",
                f"numeric feature {f!r} got {json_type(v)} {short(v)}; "
                "send a number (or null for a missing value)",
                locate(i, f),
            )
    return out


def _check_nonfinite(
    features: Sequence[str],
    nullable: Sequence[bool],
    arr: np.ndarray[Any, Any],
    values: np.ndarray[Any, Any],
    finite: np.ndarray[Any, Any],
    locate: Locate,
) -> None:
    for i, j in zip(*np.nonzero(~finite), strict=True):
        f = features[j]
        if not math.isnan(values[i, j]):
            raise RequestError(
                422,
                "not_finite",
                f"numeric feature {f!r} got {short(arr[i, j])}, which is "
                "infinite or beyond float32's range (about ±3.4e38)",
                locate(int(i), f),
            )
        if not nullable[j]:
            raise RequestError(
                422,
                "missing_value",
                f"numeric feature {f!r} is missing (null or NaN) but "
                "the schema does not declare it nullable; send a number, or set "
                "serve.validation.allow_missing=true",
                locate(int(i), f),
            )


def categorical_block(
    features: Sequence[str],
    categories: Sequence[frozenset[str]],
    nullable: Sequence[bool],
    raw: Any,
    locate: Locate,
    *,
    policy: str,
    missing: str,
    kind: str = "categorical",
) -> np.ndarray[Any, Any]:
    """Rows of categories → object ``[N, m]`` of ``str``, or a 422 for the first bad one.

    Parameters
    ----------
    features, categories, nullable
        Per feature, in column order: its name, the values seen in training (empty: any)
        and whether it may be missing.
    raw
        Rows (sequences of values) or a 2-D array.
    locate
        Names a value's field for the error.
    policy
        An unseen category: ``error`` (422), ``missing`` or ``pass``.
    missing
        The text that stands for a missing category (the signature's ``missing_category``).
    kind
        ``categorical`` or ``text``: the word error messages use for the features (text
        features have no known values, so ``categories`` is empty for them).
    """
    n = len(raw)
    arr = _grid(raw, (n, len(features)), fast=False)
    out = np.empty((n, len(features)), dtype=object)
    for j, f in enumerate(features):
        rule = (f, f"{kind} feature {f!r}", categories[j], nullable[j], policy, missing)
        for i in range(n):
            out[i, j] = _category(arr[i, j], rule, locate, i)
    return out


def _category(
    v: Any, rule: tuple[str, str, frozenset[str], bool, str, str], locate: Locate, i: int
) -> str:
    f, what, known, nullable, policy, missing = rule
    t = type(v)
    if t is bytes:
        try:
            v = v.decode()
        except UnicodeDecodeError:
            raise RequestError(
                422,
                "wrong_type",
                f"{what} got bytes that are not UTF-8",
                locate(i, f),
            ) from None
    elif t is int or isinstance(v, np.integer):
        v = str(v)
    elif v is None:
        v = ""
    elif t is not str and not isinstance(v, np.str_):
        raise RequestError(
            422,
            "wrong_type",
            f"{what} got {json_type(v)} {short(v)}; send a string (or null for a missing value)",
            locate(i, f),
        )
    if v == "" or v == missing:
        if not nullable:
            raise RequestError(
                422,
                "missing_value",
                f"{what} is missing but the schema does not declare it nullable; send "
                f"{'a non-empty text' if what.startswith('text') else 'one of its categories'}"
                ", or set serve.validation.allow_missing=true",
                locate(i, f),
            )
        return missing
    if known and v not in known and policy != "pass":
        if policy == "missing":
            return missing
        shown = ", ".join(sorted(known)[:20])
        raise RequestError(
            422,
            "unseen_category",
            f"{what} got {short(v)}, a value "
            f"never seen in training (known: {shown}); fix the value, or set "
            "serve.validation.unseen_category to missing or pass",
            locate(i, f),
        )
    return str(v)


def _grid(raw: Any, shape: tuple[int, int], *, fast: bool) -> np.ndarray[Any, Any]:
    """Rows as a 2-D array: numpy's own guess when ``fast``, else an object grid."""
    if fast:
        try:
            return np.array(raw)
        except (ValueError, TypeError, OverflowError):
            return np.empty((0, 0), dtype=object)
    if isinstance(raw, np.ndarray) and raw.ndim == 2:
        return raw.astype(object)
    out = np.empty(shape, dtype=object)
    for i, row in enumerate(raw):
        for j, v in enumerate(row):
            out[i, j] = v
    return out


def parse_number(text: str, field: str) -> float:
    """A CSV cell as a number (empty: NaN), or a 422 naming ``field``."""
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise RequestError(
            422, "wrong_type", f"{field} is {short(text)}, which is not a number", field
        ) from None


def json_type(v: Any) -> str:
    """``v``'s JSON type in words, for error messages (``"a string"``, ``"null"``, ...)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float | np.number):
        return "a number"
    if isinstance(v, str | bytes):
        return "a string"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


_REPR = reprlib.Repr()  # bounded depth: a client may nest lists a thousand deep
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 60


def short(v: Any) -> str:
    """A bounded ``repr`` of ``v`` for error messages (at most 60 characters).

    Examples
    --------
    >>> len(short("x" * 100)) <= 60, short(np.float32(1.5))
    (True, '1.5')
    """
    text = _REPR.repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 60 else text[:57] + "..."
