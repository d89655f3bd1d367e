"""Stream a CSV or Parquet file as record batches of a fixed number of rows.

CSV is read with :func:`pyarrow.csv.open_csv` (a block at a time, numeric features as
float64, categorical features as strings, the usual null markers such as ``""``,
``NA`` and ``null`` as missing); Parquet with
:meth:`pyarrow.parquet.ParquetFile.iter_batches`. Only the columns the scoring needs
are read, and both are cut into batches of exactly ``chunk_rows`` rows (the last may
be shorter), so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mlcycle.exceptions import DataError

__all__ = [
    "ChunkSource",
    "NotNumericError",
    "column_names",
    "csv_convert_options",
    "csv_error",
    "find_not_numeric",
    "first_unparsable",
    "not_numeric",
    "rechunk",
]

_MIN_BLOCK = 1 << 20
_MAX_BLOCK = 64 << 20
_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


class NotNumericError(DataError):
    """A numeric feature column holds text that is not a number."""


def column_names(path: Path, fmt: str) -> list[str]:
    """The column names of the file at ``path``.

    Parameters
    ----------
    path
        A CSV or Parquet file.
    fmt
        ``"csv"`` or ``"parquet"``.

    Returns
    -------
    list of str
        Column names in file order.

    Raises
    ------
    DataError
        The file cannot be read as ``fmt``.
    """
    try:
        if fmt == "parquet":
            return list(pq.ParquetFile(path).schema_arrow.names)
        options = pa_csv.ReadOptions(block_size=_MIN_BLOCK)
        with pa_csv.open_csv(path, read_options=options) as reader:
            return list(reader.schema.names)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"cannot read {path} as {fmt.upper()} ({exc}); pass --input-format if the "
            "suffix is misleading, or fix the file"
        ) from None


class ChunkSource:
    """The batches of one file, of ``chunk_rows`` rows, with a progress position.

    Parameters
    ----------
    path
        The input file.
    fmt
        ``"csv"`` or ``"parquet"``.
    columns
        The columns to read.
    csv_types
        Column types for the CSV reader (ignored for Parquet).
    chunk_rows
        Rows per batch.

    Notes
    -----
    Progress is counted in rows for Parquet (``total`` from the file's metadata) and in
    bytes read for CSV (``total`` is the file size).
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        columns: Sequence[str],
        csv_types: Mapping[str, pa.DataType],
        chunk_rows: int,
    ) -> None:
        self.path = path
        self.chunk_rows = chunk_rows
        self._csv_types = dict(csv_types)
        self._columns = list(columns)
        self._rows = 0
        self._file: Any = None
        self._parquet: pq.ParquetFile | None = None
        #: Progress units in all: rows (Parquet) or bytes (CSV).
        self.total: int
        #: The schema of the batches.
        self.schema: pa.Schema
        if fmt == "parquet":
            self._open_parquet()
        else:
            self._open_csv()

    def _open_parquet(self) -> None:
        # No pre-buffering: its cache keeps every row group read (memory grows with the
        # file); a 1 MiB buffered stream keeps it flat.
        self._parquet = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
        self.total = self._parquet.metadata.num_rows
        self.schema = pa.schema([self._parquet.schema_arrow.field(c) for c in self._columns])

    def _open_csv(self) -> None:
        self.total = self.path.stat().st_size
        self._file = pa.OSFile(str(self.path))
        try:
            self._reader = pa_csv.open_csv(
                self._file,
                read_options=pa_csv.ReadOptions(block_size=_block_size(self.path, self.chunk_rows)),
                convert_options=csv_convert_options(self._columns, self._csv_types),
            )
        except pa.ArrowInvalid as exc:
            self._file.close()
            raise csv_error(self.path, str(exc), self._csv_types) from None
        self.schema = self._reader.schema

    def position(self) -> int:
        """Progress so far: rows (Parquet) or bytes read (CSV)."""
        return self._rows if self._parquet is not None else int(self._file.tell())

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self._parquet is not None:
            raw = self._parquet.iter_batches(batch_size=self.chunk_rows, columns=self._columns)
        else:
            raw = self._csv_batches()
        for batch in rechunk(raw, self.chunk_rows):
            self._rows += batch.num_rows
            yield batch

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._reader
        except pa.ArrowInvalid as exc:
            raise csv_error(self.path, str(exc), self._csv_types) from None

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
        if self._parquet is not None:
            self._parquet.close()

    def __enter__(self) -> ChunkSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def csv_error(path: Path, message: str, csv_types: Mapping[str, pa.DataType]) -> DataError:
    """The error for pyarrow's CSV failure ``message`` on ``path``.

    A conversion error in a numeric column becomes a :class:`NotNumericError` naming
    the column, the value and its row (found by a second, string-typed pass over that
    column); anything else a :class:`DataError` quoting pyarrow.
    """
    if "conversion error" not in message:
        return DataError(f"cannot parse {path} as CSV: {message}")
    match = _CSV_COLUMN.search(message)
    names = column_names(path, "csv") if match else []
    index = int(match.group(1)) if match else len(names)
    found = find_not_numeric(path, csv_types, first=names[index] if index < len(names) else "")
    return found or DataError(f"cannot read {path}: {message}")


def find_not_numeric(
    path: Path, csv_types: Mapping[str, pa.DataType], first: str = ""
) -> NotNumericError | None:
    """The error for the first non-number in a numeric column of CSV ``path``, if any.

    Parameters
    ----------
    path
        The CSV file.
    csv_types
        Column types; the floating ones are checked, ``first`` first.
    first
        The column most likely at fault (e.g. named by pyarrow's message).
    """
    numeric = [c for c, t in csv_types.items() if pa.types.is_floating(t)]
    for column in sorted(numeric, key=lambda c: c != first):
        found = _find_in_csv(path, column)
        if found is not None:
            return not_numeric(column, found[1], found[0], path)
    return None


def csv_convert_options(
    columns: Sequence[str], csv_types: Mapping[str, pa.DataType]
) -> pa_csv.ConvertOptions:
    """The CSV convert options that read ``columns`` with ``csv_types``, nulls as missing."""
    return pa_csv.ConvertOptions(
        column_types=dict(csv_types), include_columns=list(columns), strings_can_be_null=True
    )


def rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Re-cut ``batches`` into batches of exactly ``rows`` rows (the last may be shorter).

    Examples
    --------
    >>> b = pa.record_batch({"x": list(range(5))})
    >>> [c.num_rows for c in rechunk(iter([b, b]), 4)]
    [4, 4, 2]
    """
    pending: list[pa.RecordBatch] = []
    have = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - have, batch.num_rows)
            pending.append(batch.slice(0, take))
            have += take
            batch = batch.slice(take)
            if have == rows:
                yield _concat(pending)
                pending, have = [], 0
    if have:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    table = pa.Table.from_batches(batches).combine_chunks()
    (batch,) = table.to_batches()
    return batch


def first_unparsable(values: pa.Array) -> int | None:
    """Index of the first value of a string array that does not parse as a float.

    A binary search over casts of slices, so it costs ``log2(len)`` casts.

    Examples
    --------
    >>> first_unparsable(pa.array(["1", None, "2.5", "x", "y"]))
    3
    >>> first_unparsable(pa.array(["1", "2"])) is None
    True
    """
    if _parses(values):
        return None
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _parses(values.slice(lo, mid - lo)):
            lo = mid
        else:
            hi = mid
    return lo


def _parses(values: pa.Array) -> bool:
    try:
        values.cast(pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def not_numeric(column: str, value: Any, row: int | None, path: Path | None) -> NotNumericError:
    """The error for ``value`` at 0-based ``row`` (None: unknown) of numeric ``column``."""
    where = f" in row {row + 1:,} (counting data rows from 1)" if row is not None else ""
    source = f" of {path}" if path is not None else ""
    return NotNumericError(
        f"numeric feature column '{column}'{source} holds {value!r}{where}, which is not a "
        "number; fix the value, or leave it empty (or NA) for a missing value"
    )


def _find_in_csv(path: Path, column: str) -> tuple[int, str] | None:
    """(0-based row, value) of the first non-number in CSV ``column``, or None."""
    options = pa_csv.ConvertOptions(
        column_types={column: pa.string()}, include_columns=[column], strings_can_be_null=True
    )
    offset = 0
    with pa_csv.open_csv(path, convert_options=options) as reader:
        for batch in reader:
            values = batch.column(0)
            index = first_unparsable(values)
            if index is not None:
                return offset + index, str(values[index].as_py())
            offset += batch.num_rows
    return None


def _block_size(path: Path, chunk_rows: int) -> int:
    """A CSV block of about ``chunk_rows`` rows, from the first 64 KiB's line length."""
    with path.open("rb") as fh:
        head = fh.read(1 << 16)
    per_row = len(head) / max(head.count(b"\n"), 1)
    return int(min(max(per_row * chunk_rows, _MIN_BLOCK), _MAX_BLOCK))
