"""The chunk predictor: a pyarrow record batch in, a record batch of predictions out.

The model's inputs are built straight from the Arrow columns, without pandas: numeric
features as float32 (nulls as NaN), categorical features as object arrays of ``str``
(nulls as the signature's ``missing_category``, usually ``""``). The output holds the
id columns, then ``prediction`` (the label, a string) and one float32 ``proba_<class>``
column per class, in :attr:`~mlcycle.bundle.Bundle.classes` order.

The same :class:`ChunkScorer` runs in the local engine and in Ray's ``map_batches``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcycle.batch.readers import first_unparsable, not_numeric
from mlcycle.bundle import Bundle, image_shape
from mlcycle.exceptions import SchemaError

__all__ = [
    "PREDICTION",
    "PROBA_PREFIX",
    "ChunkScorer",
    "csv_column_types",
    "default_id_columns",
    "resolve_id_columns",
]

#: Name of the output column holding the predicted label.
PREDICTION = "prediction"
#: Prefix of the output columns holding class probabilities (``proba_<class>``).
PROBA_PREFIX = "proba_"


def default_id_columns(names: Sequence[str], features: Sequence[str]) -> tuple[str, ...]:
    """The id columns carried to the output when none are named.

    Every column called ``id`` or ending in ``_id`` (case-insensitive) that is not a
    model feature, in file order; none if there is no such column.

    Examples
    --------
    >>> default_id_columns(["order_id", "x", "ID", "paid"], ["x"])
    ('order_id', 'ID')
    """
    used = set(features)
    return tuple(
        n for n in names if n not in used and (n.lower() == "id" or n.lower().endswith("_id"))
    )


def resolve_id_columns(
    requested: Sequence[str] | None,
    names: Sequence[str],
    bundle: Bundle,
    path: Path,
) -> tuple[str, ...]:
    """The id columns to carry: ``requested`` if given, else :func:`default_id_columns`.

    Raises
    ------
    SchemaError
        A requested column is not in the file, or a column name clashes with an output
        column (``prediction``, ``proba_<class>``).
    """
    if requested is None:
        chosen = default_id_columns(names, bundle.feature_names_used)
    else:
        chosen = tuple(dict.fromkeys(requested))
        absent = [c for c in chosen if c not in names]
        if absent:
            raise SchemaError(
                f"id column(s) {absent} are not in {path}; the file has {list(names)}. "
                "Fix --id-columns (comma-separated, empty for none)"
            )
    clash = sorted(set(chosen) & set(output_names(bundle)))
    if clash:
        raise SchemaError(
            f"id column(s) {clash} clash with the output columns {output_names(bundle)}; "
            "leave them out of --id-columns"
        )
    return chosen


def refuse_images(bundle: Bundle, where: str) -> None:
    """Raise :class:`SchemaError` when the model takes an image (not batch-scorable)."""
    images = [str(s["features"][0]) for s in bundle.signature["inputs"] if image_shape(s)]
    if images:
        raise SchemaError(
            f"the model takes the image feature {images[0]!r}, and batch scoring reads "
            f"CSV or Parquet columns ({where}), which cannot hold images; score images "
            "with the server (POST /predict with JSON, or /v2 tensors) or Bundle.predict"
        )


def check_features(names: Sequence[str], bundle: Bundle, path: Path) -> None:
    """Raise :class:`SchemaError` naming the model features missing from ``names`` (or the
    image feature of an image model: files of columns cannot hold images)."""
    refuse_images(bundle, str(path))
    missing = [f for f in bundle.feature_names_used if f not in names]
    if missing:
        raise SchemaError(
            f"feature column(s) {missing} are missing from {path}; the model needs "
            f"{bundle.feature_names_used} and the file has {list(names)}"
        )


def output_names(bundle: Bundle) -> list[str]:
    """The prediction columns of the output: ``prediction``, then ``proba_<class>``."""
    return [PREDICTION, *(f"{PROBA_PREFIX}{c}" for c in bundle.classes)]


def csv_column_types(bundle: Bundle) -> dict[str, pa.DataType]:
    """CSV column types: numeric features as float64, categorical ones as strings.

    Numbers are parsed as float64 and rounded to float32 afterwards, as the training
    data was.
    """
    kinds = {f["name"]: f.get("kind") for f in bundle.signature["features"]}
    return {
        name: pa.string() if kinds.get(name) == "categorical" else pa.float64()
        for name in bundle.feature_names_used
    }


class ChunkScorer:
    """Score record batches with a bundle.

    Parameters
    ----------
    bundle
        The loaded model.
    id_columns
        Input columns copied to the output, in this order.
    """

    def __init__(self, bundle: Bundle, id_columns: Sequence[str]) -> None:
        refuse_images(bundle, "the batch")
        self.bundle = bundle
        self.id_columns = tuple(id_columns)
        self._missing = str(bundle.signature.get("missing_category", ""))
        self._inputs = [
            (str(s["name"]), s["dtype"] == "float32", [str(f) for f in s["features"]])
            for s in bundle.signature["inputs"]
        ]
        classes = np.array(bundle.classes, dtype=str)
        self._order = np.argsort(classes)
        self._sorted = classes[self._order]
        self._classes = pa.array(bundle.classes, type=pa.string())

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """The output schema for batches of ``input_schema``."""
        ids = [input_schema.field(c) for c in self.id_columns]
        probas = [pa.field(n, pa.float32()) for n in output_names(self.bundle)[1:]]
        return pa.schema([*ids, pa.field(PREDICTION, pa.string()), *probas])

    def inputs(self, batch: pa.RecordBatch, row_offset: int | None = 0) -> dict[str, Any]:
        """The model's inputs for ``batch``.

        Parameters
        ----------
        batch
            Holds every feature the model uses.
        row_offset
            Row number of the batch's first row in the file, for error messages; None
            if unknown.

        Raises
        ------
        NotNumericError
            A numeric feature holds text that is not a number.
        """
        out: dict[str, Any] = {}
        for name, numeric, features in self._inputs:
            if numeric:
                out[name] = self._numeric(batch, features, row_offset)
            else:
                out[name] = self._categorical(batch, features)
        return out

    def __call__(self, batch: pa.RecordBatch, row_offset: int | None = 0) -> pa.RecordBatch:
        """Predictions for ``batch``, with its id columns (see :meth:`output_schema`)."""
        return self.score(batch, self.inputs(batch, row_offset))

    def score(self, batch: pa.RecordBatch, inputs: dict[str, Any]) -> pa.RecordBatch:
        """Predictions for ``batch`` from its :meth:`inputs`, with its id columns."""
        labels, proba = self.bundle.predict(inputs)
        by_class = np.ascontiguousarray(proba.T, dtype=np.float32)
        arrays = [
            *(batch.column(c) for c in self.id_columns),
            self._labels(labels),
            *(pa.array(col) for col in by_class),
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.output_schema(batch.schema))

    def _labels(self, labels: np.ndarray[Any, Any]) -> pa.Array:
        """``labels`` as an Arrow string array, taken from the class names (fast)."""
        pos = np.searchsorted(self._sorted, labels).clip(0, len(self._sorted) - 1)
        if not np.array_equal(self._sorted[pos], labels):  # a label that is not a class
            return pa.array(labels, type=pa.string())
        return self._classes.take(self._order[pos])

    def _numeric(
        self, batch: pa.RecordBatch, features: list[str], row_offset: int | None
    ) -> np.ndarray[Any, Any]:
        out = np.empty((batch.num_rows, len(features)), dtype=np.float32)
        for j, name in enumerate(features):
            column = batch.column(name)
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                # Numbers stored as text (Parquet): parse them, "" as missing.
                empty = pc.equal(column, "")
                column = pc.if_else(empty, pa.scalar(None, column.type), column)
                index = first_unparsable(column)
                if index is not None:
                    row = None if row_offset is None else row_offset + index
                    raise not_numeric(name, column[index].as_py(), row, None)
            try:
                as_float = column.cast(pa.float64(), safe=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise SchemaError(
                    f"numeric feature column '{name}' has type {column.type}, which is not "
                    "a number type; write it as numbers"
                ) from None
            out[:, j] = as_float.to_numpy(zero_copy_only=False)
        return out

    def _categorical(self, batch: pa.RecordBatch, features: list[str]) -> np.ndarray[Any, Any]:
        """Object arrays of ``str``, nulls as the missing category.

        Dictionary-encoded first, so each distinct value becomes one Python string,
        shared by its rows: twice as fast as one string per row, and less memory.
        """
        out = np.empty((batch.num_rows, len(features)), dtype=object)
        for j, name in enumerate(features):
            column = batch.column(name)
            if not pa.types.is_string(column.type):
                column = column.cast(pa.string())
            encoded = pc.dictionary_encode(column)
            values = np.append(encoded.dictionary.to_numpy(zero_copy_only=False), self._missing)
            out[:, j] = values[encoded.indices.fill_null(len(values) - 1).to_numpy()]
        return out
