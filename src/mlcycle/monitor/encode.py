"""Prediction-log rows as JSON text, fast: whole blocks through orjson, rows by template.

Encoding the features of every predicted row is the monitor's largest per-row cost. A
numeric block is serialised in one ``orjson.dumps`` call (float32 values print as short
as they were sent, NaN as ``null``), split into rows, and each row's values are put into
a byte template of ``"name":value`` pairs; categorical values (rarely many) go through a
small dict. About 2 microseconds a row for 30 features, against 8 for a dict per row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

__all__ = ["RowEncoder"]

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


class RowEncoder:
    """Encodes features and probabilities of many rows at once.

    Parameters
    ----------
    numeric_names, categorical_names
        Column names of the numeric and categorical blocks.
    classes
        Names of the probability columns.

    Examples
    --------
    >>> enc = RowEncoder(["a", "b"], ["c"], ["no", "yes"])
    >>> num = np.array([[0.1, np.nan], [2.0, 3.5]], dtype=np.float32)
    >>> cat = np.array([["x"], ["y"]], dtype=object)
    >>> enc.features(num, cat, np.array([True, False]))
    ['{"a":0.1,"b":null,"c":"x"}', None]
    >>> enc.probabilities(np.array([[0.25, 0.75]], dtype=np.float32))
    ['{"no":0.25,"yes":0.75}']
    """

    def __init__(
        self, numeric_names: Sequence[str], categorical_names: Sequence[str], classes: Sequence[str]
    ) -> None:
        self._numeric = _template(numeric_names)
        self._width = len(numeric_names)
        self._categorical = list(categorical_names)
        self._classes = _template(classes)
        self._n_classes = len(classes)

    def features(
        self,
        numeric: np.ndarray[Any, Any],
        categorical: np.ndarray[Any, Any],
        keep: np.ndarray[Any, Any],
    ) -> list[str | None]:
        """One JSON object per row (``None`` where ``keep`` is false)."""
        rows = np.flatnonzero(keep)
        out: list[str | None] = [None] * len(keep)
        if rows.size == 0:
            return out
        parts = (
            _fill(self._numeric, numeric[rows].astype(np.float32), self._width)
            if self._width
            else [b""] * rows.size
        )
        if self._categorical:
            names = self._categorical
            cats = categorical[rows].tolist()
            for k, (i, num) in enumerate(zip(rows.tolist(), parts, strict=True)):
                text = orjson.dumps(dict(zip(names, cats[k], strict=True)))
                out[i] = (b"{" + num + (b"," if num else b"") + text[1:]).decode()
        else:
            for i, num in zip(rows.tolist(), parts, strict=True):
                out[i] = (b"{" + num + b"}").decode()
        return out

    def probabilities(self, proba: np.ndarray[Any, Any]) -> list[str]:
        """One JSON object of class probabilities per row."""
        if len(proba) == 0:
            return []
        return [
            (b"{" + p + b"}").decode()
            for p in _fill(self._classes, proba.astype(np.float32), self._n_classes)
        ]


def _template(names: Sequence[str]) -> bytes:
    # b'"a":%b,"b":%b' (percent signs in names escaped for the % operator)
    return b",".join(orjson.dumps(str(n)).replace(b"%", b"%%") + b":%b" for n in names)


def _fill(template: bytes, block: np.ndarray[Any, Any], width: int) -> list[bytes]:
    text = orjson.dumps(np.ascontiguousarray(block), option=_NUMPY)  # b'[[1.0,2.0],[3.0,4.0]]'
    rows = text[2:-2].split(b"],[")
    if width == 1:
        return [template % (r,) for r in rows]
    return [template % tuple(r.split(b",")) for r in rows]
