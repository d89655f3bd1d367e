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
* **text** features take any string, with the same rules for missing values;
* an **image** feature takes one image per row, a nested list of numbers ``[C][H][W]``
  (``[H][W]`` for one channel) of the model's shape (:mod:`mlcycle.serve.images`); CSV
  bodies cannot carry images;
* every feature the model uses must be present, and a field that is no feature of the
  schema is refused unless ``unknown_feature`` is ``ignore``.

The common case (all numbers, no missing values) is checked with numpy in bulk; only a
batch that fails it is walked value by value, to name the first bad value's field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

from mlcycle.bundle import image_shape
from mlcycle.serve.errors import RequestError
from mlcycle.serve.images import image_block, image_tensor
from mlcycle.serve.settings import ValidationSettings
from mlcycle.serve.values import (
    Locate,
    categorical_block,
    json_type,
    numeric_block,
    parse_number,
    short,
)

__all__ = ["FeatureBatch", "Validator"]


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
    kind: str = "categorical"
    #: ``(C, H, W)`` of an image block (kind ``image``: float32 ``[N, C, H, W]``).
    shape: tuple[int, int, int] | None = None


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
        self.blocks = [_block(s, specs) for s in signature["inputs"]]
        self.features: list[str] = [f for b in self.blocks for f in b.features]
        #: Feature name to kind: ``numeric``, ``categorical``, ``text`` or ``image``.
        self.kinds = {f: b.kind for b in self.blocks for f in b.features}
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

    @property
    def missing_category(self) -> str:
        """The text that stands for a missing category."""
        return self._missing_category

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
                    f"pairs, not {json_type(record)}",
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
            if b.shape is not None:
                out[b.name] = image_tensor(arr, b.name, b.shape, f"{where}.{b.name}")
                if n >= 0 and len(arr) != n:
                    raise RequestError(
                        422,
                        "wrong_shape",
                        f"input {b.name!r} has {len(arr)} rows; the other inputs have {n}",
                        f"{where}.{b.name}",
                    )
                n = len(arr)
                self._check_count(n, where)
                continue
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
        images = [f for b in self.blocks if b.kind == "image" for f in b.features]
        if images:
            raise RequestError(
                415,
                "images_need_json",
                f"this model takes the image feature {images[0]!r}, which CSV cannot "
                "carry; send images as JSON (records, dataframe_split, instances or inputs: "
                "a nested list of numbers per image) or as Open Inference Protocol tensors",
                where,
            )
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
                        row[j] = parse_number(row[j], f"{where}[{i}].{f}")
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
                got = f"a list of {len(row)}" if type(row) is list else json_type(row)
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
                422, "wrong_type", f"{where} must be a list of rows, not {json_type(rows)}", where
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
        nullable = [self.nullable[f] for f in b.features]
        if b.shape is not None:
            return image_block(b.features[0], b.shape, raw, locate)
        if b.numeric:
            return numeric_block(b.features, nullable, raw, locate)
        return categorical_block(
            b.features,
            [self.categories[f] for f in b.features],
            nullable,
            raw,
            locate,
            policy=self.settings.unseen_category,
            missing=self._missing_category,
            kind=b.kind,
        )


def _block(spec: Mapping[str, Any], features: Mapping[str, Mapping[str, Any]]) -> _Block:
    """An input block of the signature; a string block's kind is its features' kind."""
    names = tuple(map(str, spec["features"]))
    shape = image_shape(spec)
    if shape is not None:
        return _Block(str(spec["name"]), True, names, "image", shape)
    if spec["dtype"] == "float32":
        return _Block(str(spec["name"]), True, names, "numeric")
    kinds = {str(features.get(f, {}).get("kind", "categorical")) for f in names}
    return _Block(str(spec["name"]), False, names, "text" if kinds == {"text"} else "categorical")


def _check_unique(columns: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for c in columns:
        if c in seen:
            raise RequestError(
                422, "duplicate_feature", f"feature {short(c)} appears twice in {where}", where
            )
        seen.add(c)


def _dotted(where: str) -> Locate:
    return lambda i, f: f"{where}[{i}].{f}"


def _indexed(where: str, columns: Sequence[str]) -> Locate:
    return lambda i, f: f"{where}[{i}][{list(columns).index(f)}]"


def _tensor(where: str, features: Sequence[str]) -> Locate:
    return lambda i, f: f"{where}[{i}][{list(features).index(f)}] ({f})"
