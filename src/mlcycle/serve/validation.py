"""Check request rows against a bundle's signature and build the model's input arrays.

Every protocol (``/predict`` records, MLflow's ``dataframe_split`` / ``instances`` /
CSV, Open Inference Protocol tensors, Lambda events, batch files) ends here, so a value
is judged the same way whichever door it came in by:

* **numeric** features take JSON numbers (``true`` / ``false`` count as 1 / 0); ``null``
  is a missing value, allowed only for features the schema declares ``nullable`` (or
  everywhere with ``allow_missing``); infinities and numbers beyond float32 are refused;
* **categorical** features take strings (integers are read as their decimal text);
  ``null`` and ``""`` are missing; a value never seen in training follows the
  ``unseen_category`` policy: ``error``, ``missing`` or ``pass``;
* every feature the model uses must be present, and a field that is no feature of the
  schema is refused unless ``unknown_feature`` is ``ignore``.

The common case (all numbers, no missing values) is checked with numpy in bulk; only a
batch that fails it is walked value by value, to name the first bad value's field.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from mlcycle.serve.errors import RequestError
from mlcycle.serve.settings import ValidationSettings

__all__ = ["FeatureBatch", "Validator"]

Locate = Callable[[int, str], str]
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class FeatureBatch:
    """Validated model inputs (``numeric`` float32 ``[N, k]``, ``categorical`` str)."""

    inputs: dict[str, np.ndarray[Any, Any]]
    rows: int


@dataclass(frozen=True)
class _Block:
    name: str
    numeric: bool
    features: tuple[str, ...]


class Validator:
    """Turns request rows into model inputs, or raises :class:`RequestError` (422/400).

    Parameters
    ----------
    signature
        The bundle's ``signature.json`` document.
    settings
        Policies for missing values, unseen categories and unknown fields.
    """

    def __init__(self, signature: Mapping[str, Any], settings: ValidationSettings) -> None:
        self.settings = settings
        specs = {str(f["name"]): f for f in signature["features"]}
        self.blocks = [
            _Block(str(s["name"]), s["dtype"] == "float32", tuple(map(str, s["features"])))
            for s in signature["inputs"]
        ]
        self.features: list[str] = [f for b in self.blocks for f in b.features]
        self.kinds = {
            f: ("numeric" if b.numeric else "categorical") for b in self.blocks for f in b.features
        }
        #: The used features in the schema's order: the order of positional rows.
        self.schema_order: list[str] = [f for f in specs if f in set(self.features)]
        self.known = frozenset(specs) | frozenset(self.features)
        self._required = frozenset(self.features)
        self._by_name = {f: f for f in self.features}
        self._record_getters = [itemgetter(*b.features) for b in self.blocks]
        self._missing_category = str(signature.get("missing_category", ""))
        self.nullable = {
            f: bool(settings.allow_missing or specs.get(f, {}).get("nullable", False))
            for f in self.features
        }
        self.categories: dict[str, frozenset[str]] = {
            f: frozenset(map(str, specs.get(f, {}).get("categories") or ()))
            for b in self.blocks
            if not b.numeric
            for f in b.features
        }

    # -- entry points ---------------------------------------------------------------

    def records(self, records: Any, where: str = "records") -> FeatureBatch:
        """Rows as a list of ``{feature: value}`` objects."""
        n = self._check_rows(records, where)
        width = len(self._required)
        for i, record in enumerate(records):
            if type(record) is not dict:
                raise RequestError(
                    422,
                    "wrong_type",
                    f"{where}[{i}] must be an object of feature: value "
                    f"pairs, not {_json_type(record)}",
                    f"{where}[{i}]",
                )
            if len(record) != width:
                self._check_keys(record.keys(), f"{where}[{i}]")
        try:
            return self._build(records, self._by_name, n, _dotted(where))
        except KeyError:  # as many keys as features, but not the features: name the first
            for i, record in enumerate(records):
                self._check_keys(record.keys(), f"{where}[{i}]")
            raise

    def table(self, columns: Any, data: Any, where: str = "dataframe_split") -> FeatureBatch:
        """Rows as lists, with ``columns`` naming the position of each feature."""
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise RequestError(
                422,
                "wrong_type",
                f"{where}.columns must be a list of feature names",
                f"{where}.columns",
            )
        _check_unique(columns, f"{where}.columns")
        self._check_keys(columns, f"{where}.columns")
        return self._lists(columns, data, f"{where}.data")

    def positional(self, rows: Any, where: str = "instances") -> FeatureBatch:
        """Rows as lists of values in the schema's feature order (:attr:`schema_order`)."""
        return self._lists(list(self.schema_order), rows, where)

    def columns(self, columns: Any, where: str = "inputs") -> FeatureBatch:
        """Columns as ``{feature: [values]}``, all of one length."""
        if not isinstance(columns, dict):
            raise RequestError(422, "wrong_type", f"{where} must be an object", where)
        self._check_keys(columns.keys(), where)
        lengths = {f: len(v) if isinstance(v, list) else -1 for f, v in columns.items()}
        bad = [f for f, n in lengths.items() if n < 0]
        if bad:
            raise RequestError(
                422,
                "wrong_type",
                f"{where}.{bad[0]} must be a list with one value per row",
                f"{where}.{bad[0]}",
            )
        n = lengths[self.features[0]]
        odd = [f for f in self.features if lengths[f] != n]
        if odd:
            raise RequestError(
                422,
                "wrong_shape",
                f"{where}.{odd[0]} has {lengths[odd[0]]} values but "
                f"{where}.{self.features[0]} has {n}; every feature needs one value per row",
                f"{where}.{odd[0]}",
            )
        rows = list(zip(*(columns[f] for f in self.features), strict=True))
        self._check_rows(rows, where)
        keys = {f: i for i, f in enumerate(self.features)}
        return self._build(rows, keys, n, lambda i, f: f"{where}.{f}[{i}]")

    def arrays(self, arrays: Mapping[str, np.ndarray[Any, Any]], where: str) -> FeatureBatch:
        """The model's own input tensors (``numeric`` ``[N, k]``, ``categorical`` ``[N, m]``)."""
        missing = [b.name for b in self.blocks if b.name not in arrays]
        if missing:
            raise RequestError(422, "missing_input", f"input {missing[0]!r} is missing", where)
        n = -1
        out: dict[str, np.ndarray[Any, Any]] = {}
        for b in self.blocks:
            arr = arrays[b.name]
            if arr.ndim != 2 or arr.shape[1] != len(b.features) or (n >= 0 and len(arr) != n):
                rows = "N" if n < 0 else str(n)
                raise RequestError(
                    422,
                    "wrong_shape",
                    f"input {b.name!r} has shape {list(arr.shape)}; "
                    f"expected [{rows}, {len(b.features)}] ({', '.join(b.features)})",
                    f"{where}.{b.name}",
                )
            n = len(arr)
            self._check_count(n, where)
            locate = _tensor(f"{where}.{b.name}", b.features)
            out[b.name] = self._block(b, arr, locate)
        return FeatureBatch(out, n)

    def text_rows(
        self, header: Sequence[str], rows: Sequence[Sequence[str]], where: str
    ) -> FeatureBatch:
        """Rows of text (CSV): numbers are parsed, empty cells are missing."""
        _check_unique(header, f"{where} header")
        self._check_keys(header, f"{where} header")
        n = self._check_rows(rows, where)
        width = len(header)
        for i, row in enumerate(rows):
            if len(row) != width:
                raise RequestError(
                    400,
                    "wrong_shape",
                    f"{where} line {i + 2} has {len(row)} cells; the header has {width}",
                    f"{where}[{i}]",
                )
        index = {f: list(header).index(f) for f in self.features}
        parsed: list[list[Any]] = [list(row) for row in rows]
        for b in self.blocks:
            if b.numeric:
                for f in b.features:
                    j = index[f]
                    for i, row in enumerate(parsed):
                        row[j] = _parse_number(row[j], f"{where}[{i}].{f}")
            else:
                for f in b.features:
                    j = index[f]
                    for row in parsed:
                        row[j] = row[j] or None
        return self._build(parsed, index, n, _dotted(where))

    def _lists(self, columns: list[str], data: Any, where: str) -> FeatureBatch:
        n = self._check_rows(data, where)
        width = len(columns)
        for i, row in enumerate(data):
            if type(row) is not list or len(row) != width:
                got = f"a list of {len(row)}" if type(row) is list else _json_type(row)
                raise RequestError(
                    422,
                    "wrong_shape",
                    f"{where}[{i}] must be a list of {width} values (one per column), not {got}",
                    f"{where}[{i}]",
                )
        keys = {f: columns.index(f) for f in self.features}
        return self._build(data, keys, n, _indexed(where, columns))

    # -- checks ---------------------------------------------------------------------

    def _check_rows(self, rows: Any, where: str) -> int:
        if not isinstance(rows, list):
            raise RequestError(
                422, "wrong_type", f"{where} must be a list of rows, not {_json_type(rows)}", where
            )
        self._check_count(len(rows), where)
        return len(rows)

    def _check_count(self, n: int, where: str) -> None:
        if n == 0:
            raise RequestError(
                422, "empty_batch", f"{where} is empty; send at least one row", where
            )
        if n > self.settings.max_rows:
            raise RequestError(
                422,
                "too_many_rows",
                f"{where} has {n} rows; the limit is "
                f"{self.settings.max_rows} (serve.validation.max_rows): split the batch",
                where,
            )

    def _check_keys(self, keys: Any, where: str) -> None:
        present = set(keys)
        missing = [f for f in self.features if f not in present]
        if missing:
            raise RequestError(
                422,
                "missing_feature",
                f"feature {missing[0]!r} is missing from {where}; the "
                f"model needs {len(self.features)} features: {', '.join(self.features)}",
                f"{where}.{missing[0]}",
            )
        if self.settings.unknown_feature == "error":
            unknown = sorted(k for k in present if k not in self.known)
            if unknown:
                raise RequestError(
                    422,
                    "unknown_feature",
                    f"{unknown[0]!r} in {where} is not a feature of the "
                    f"model; remove it (known: {', '.join(self.features)})",
                    f"{where}.{unknown[0]}",
                )

    # -- building -------------------------------------------------------------------

    def _build(
        self, rows: Sequence[Any], keys: Mapping[str, Any], n: int, locate: Locate
    ) -> FeatureBatch:
        out: dict[str, np.ndarray[Any, Any]] = {}
        getters = self._record_getters if keys is self._by_name else None
        for i, b in enumerate(self.blocks):
            getter = getters[i] if getters else itemgetter(*(keys[f] for f in b.features))
            if len(b.features) == 1:
                raw: Any = [(getter(r),) for r in rows]
            else:
                raw = list(map(getter, rows))
            out[b.name] = self._block(b, raw, locate)
        return FeatureBatch(out, n)

    def _block(self, b: _Block, raw: Any, locate: Locate) -> np.ndarray[Any, Any]:
        return self._numeric(b, raw, locate) if b.numeric else self._categorical(b, raw, locate)

    def _numeric(self, b: _Block, raw: Any, locate: Locate) -> np.ndarray[Any, Any]:
        shape = (len(raw), len(b.features))
        arr = raw if isinstance(raw, np.ndarray) else _grid(raw, shape, fast=True)
        if arr.dtype.kind not in "fiub" or arr.shape != shape:
            arr = self._numeric_slow(b, _grid(raw, shape, fast=False), locate)
        with np.errstate(over="ignore", invalid="ignore"):
            values = arr.astype(np.float32)
        finite = np.isfinite(values)
        if arr.dtype.kind == "f" and arr.dtype.itemsize > 4:
            # a double just above float32's largest value rounds down to it, not to inf
            finite &= np.abs(arr) <= _F32_MAX
        if not finite.all():
            self._check_nonfinite(b, arr, values, finite, locate)
        return values

    def _numeric_slow(
        self, b: _Block, obj: np.ndarray[Any, Any], locate: Locate
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
                f = b.features[j]
                raise RequestError(
                    422,
                    "wrong_type",
                    f"numeric feature {f!r} got {_json_type(v)} {_short(v)}; "
                    "send a number (or null for a missing value)",
                    locate(i, f),
                )
        return out

    def _check_nonfinite(
        self,
        b: _Block,
        arr: np.ndarray[Any, Any],
        values: np.ndarray[Any, Any],
        finite: np.ndarray[Any, Any],
        locate: Locate,
    ) -> None:
        for i, j in zip(*np.nonzero(~finite), strict=True):
            f = b.features[j]
            if not math.isnan(values[i, j]):
                raise RequestError(
                    422,
                    "not_finite",
                    f"numeric feature {f!r} got {_short(arr[i, j])}, which is "
                    "infinite or beyond float32's range (about ±3.4e38)",
                    locate(int(i), f),
                )
            if not self.nullable[f]:
                raise RequestError(
                    422,
                    "missing_value",
                    f"numeric feature {f!r} is missing (null or NaN) but "
                    "the schema does not declare it nullable; send a number, or set "
                    "serve.validation.allow_missing=true",
                    locate(int(i), f),
                )

    def _categorical(self, b: _Block, raw: Any, locate: Locate) -> np.ndarray[Any, Any]:
        n = len(raw)
        arr = _grid(raw, (n, len(b.features)), fast=False)
        out = np.empty((n, len(b.features)), dtype=object)
        policy = self.settings.unseen_category
        for j, f in enumerate(b.features):
            known = self.categories[f]
            nullable = self.nullable[f]
            for i in range(n):
                out[i, j] = self._category(arr[i, j], f, known, nullable, policy, locate, i)
        return out

    def _category(
        self,
        v: Any,
        f: str,
        known: frozenset[str],
        nullable: bool,
        policy: str,
        locate: Locate,
        i: int,
    ) -> str:
        t = type(v)
        if t is bytes:
            try:
                v = v.decode()
            except UnicodeDecodeError:
                raise RequestError(
                    422,
                    "wrong_type",
                    f"categorical feature {f!r} got bytes that are not UTF-8",
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
                f"categorical feature {f!r} got {_json_type(v)} {_short(v)}; "
                "send a string (or null for a missing value)",
                locate(i, f),
            )
        if v == "" or v == self._missing_category:
            if not nullable:
                raise RequestError(
                    422,
                    "missing_value",
                    f"categorical feature {f!r} is missing but the schema "
                    "does not declare it nullable; send one of its categories, or set "
                    "serve.validation.allow_missing=true",
                    locate(i, f),
                )
            return self._missing_category
        if known and v not in known and policy != "pass":
            if policy == "missing":
                return self._missing_category
            shown = ", ".join(sorted(known)[:20])
            raise RequestError(
                422,
                "unseen_category",
                f"categorical feature {f!r} got {_short(v)}, a value "
                f"never seen in training (known: {shown}); fix the value, or set "
                "serve.validation.unseen_category to missing or pass",
                locate(i, f),
            )
        return str(v)


def _check_unique(columns: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise RequestError(
                422, "duplicate_feature", f"feature {_short(c)} appears twice in {where}", where
            )
        seen.add(c)


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


def _dotted(where: str) -> Locate:
    return lambda i, f: f"{where}[{i}].{f}"


def _indexed(where: str, columns: Sequence[str]) -> Locate:
    return lambda i, f: f"{where}[{i}][{list(columns).index(f)}]"


def _tensor(where: str, features: Sequence[str]) -> Locate:
    return lambda i, f: f"{where}[{i}][{list(features).index(f)}] ({f})"


def _parse_number(text: str, field: str) -> float:
    if text == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise RequestError(
            422, "wrong_type", f"{field} is {_short(text)}, which is not a number", field
        ) from None


def _json_type(v: Any) -> str:
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


def _short(v: Any) -> str:
    text = _REPR.repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 60 else text[:57] + "..."
