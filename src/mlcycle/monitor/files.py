"""``mlcycle drift REFERENCE CURRENT``: data drift between two files, no server needed.

Both files (CSV, TSV or Parquet) are read with pyarrow, one column at a time for
Parquet: numeric columns become float64 numpy arrays (missing values as NaN) and the
others are reduced to category counts by Arrow, so no column of Python strings is ever
built and only one column pair is in memory at once. Numeric columns get the numeric
tests and the others the categorical ones, as in :mod:`mlcycle.monitor.drift`; columns
and types are read as pandas would (CSV: the same missing-value markers and booleans,
dates kept as text), so the statistics are the same. The result prints as a table, can
be written as JSON (``--output``) and as an HTML report with plots (``--html``, see
:mod:`mlcycle.monitor.report`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlcycle._optional import require
from mlcycle.exceptions import DataError
from mlcycle.monitor.drift import (
    DatasetDrift,
    DriftSettings,
    FeatureDrift,
    categorical_drift_from_counts,
    dataset_drift,
    numeric_drift,
)

__all__ = [
    "TableColumns",
    "compare_files",
    "drift_between_files",
    "render_drift",
    "report_document",
    "write_report",
]

_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
# pandas.read_csv's default missing-value markers, so a CSV column reads the same.
_PANDAS_NA = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


class TableColumns:
    """The columns of a CSV, TSV or Parquet file, read one at a time with pyarrow.

    Parameters
    ----------
    path
        The data file; its format comes from the suffix.

    Raises
    ------
    DataError
        The file is missing, a folder, of an unknown format, unreadable, empty or has
        no rows.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._pa = require("pyarrow", "train")
        self._pc = require("pyarrow.compute", "train")
        kind = _SUFFIXES.get(self.path.suffix.lower())
        if kind is None:
            raise DataError(
                f"cannot tell the format of {self.path} from its suffix "
                f"{self.path.suffix!r}; use a {', '.join(_SUFFIXES)} file"
            )
        if self.path.is_dir():
            raise DataError(f"{self.path} is a folder; give a CSV or Parquet file")
        if not self.path.is_file():
            raise DataError(f"data file {self.path} does not exist")
        self._table: Any = None
        self._parquet: Any = None
        try:
            if kind == "parquet":
                pq = require("pyarrow.parquet", "train")
                self._parquet = pq.ParquetFile(self.path)
                schema = self._parquet.schema_arrow
                rows = int(self._parquet.metadata.num_rows)
            else:
                self._table = self._read_csv("\t" if kind == "tsv" else ",")
                schema, rows = self._table.schema, self._table.num_rows
        except (OSError, ValueError, self._pa.lib.ArrowException) as exc:
            text = str(exc).strip()
            if kind != "parquet" and text.startswith("Empty CSV file"):
                raise DataError(
                    f"data file {self.path} is empty; it needs a header row and at least "
                    "one data row"
                ) from None
            first = text.splitlines()[0] if text else type(exc).__name__
            raise DataError(
                f"data file {self.path} could not be read as {kind.upper()}: {first}"
            ) from None
        self.names: list[str] = [str(n) for n in schema.names]
        self._types = {str(f.name): f.type for f in schema}
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise DataError(f"data file {self.path} has duplicate column names {dup}")
        if not self.names or rows == 0:
            raise DataError(f"data file {self.path} has no rows; it needs at least one data row")

    def _read_csv(self, delimiter: str) -> Any:
        csv = require("pyarrow.csv", "train")
        parse = csv.ParseOptions(delimiter=delimiter)

        def read(types: dict[str, Any]) -> Any:
            convert = csv.ConvertOptions(
                null_values=_PANDAS_NA,
                strings_can_be_null=True,
                true_values=["True", "TRUE", "true"],
                false_values=["False", "FALSE", "false"],
                column_types=types,
            )
            return csv.read_csv(self.path, parse_options=parse, convert_options=convert)

        table = read({})
        # pandas keeps dates and times as text: read those columns again as strings.
        temporal = {f.name: self._pa.string() for f in table.schema if _is_temporal(f.type)}
        return read(temporal) if temporal else table

    def is_numeric(self, name: str) -> bool:
        """Whether column ``name`` is numbers (integers or floats; not booleans)."""
        t = self._types[name]
        types = self._pa.types
        return bool(types.is_integer(t) or types.is_floating(t) or types.is_null(t))

    def _column(self, name: str) -> Any:
        if self._table is not None:
            return self._table.column(name)
        return self._parquet.read(columns=[name], use_threads=False).column(0)

    def values(self, name: str) -> np.ndarray[Any, Any]:
        """Column ``name`` as a float64 array, missing values as NaN."""
        column = self._column(name)
        if self._pa.types.is_null(column.type):
            return np.full(len(column), np.nan)
        if column.type != self._pa.float64():
            column = column.cast(self._pa.float64())
        out: np.ndarray[Any, Any] = column.to_numpy()
        return out.astype(np.float64, copy=False)

    def counts(self, name: str) -> dict[str, int]:
        """Category -> count of column ``name``; missing values (null, ``""``) left out."""
        column = self._column(name)
        if self._pa.types.is_null(column.type):
            return {}
        result = self._pc.value_counts(column)
        keys = result.field("values")
        if self._pa.types.is_dictionary(keys.type):
            keys = keys.cast(keys.type.value_type)
        out: dict[str, int] = {}
        for key, n in zip(keys.to_pylist(), result.field("counts").to_pylist(), strict=True):
            if key is None:
                continue
            text = str(key)
            if text != "":
                out[text] = out.get(text, 0) + int(n)
        return out


def _is_temporal(t: Any) -> bool:
    pa = require("pyarrow", "train")
    return bool(pa.types.is_temporal(t))


def compare_files(
    reference: Path,
    current: Path,
    *,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    settings: DriftSettings | None = None,
    plots: bool = False,
) -> tuple[DatasetDrift, dict[str, dict[str, Any]]]:
    """Drift of every shared column, and (with ``plots``) the histograms of each.

    Parameters
    ----------
    reference, current
        The two data files (CSV, TSV or Parquet).
    columns
        Columns to test (default: all, and then both files must have the same ones).
    exclude
        Columns to leave out of the default "all".
    settings
        Drift thresholds.
    plots
        Also build each column's reference-vs-current histogram
        (:func:`mlcycle.monitor.report.numeric_histogram` /
        :func:`~mlcycle.monitor.report.categorical_histogram`) while it is in memory.

    Returns
    -------
    tuple
        The :class:`DatasetDrift` and a dict feature -> histogram (empty without
        ``plots``).

    Raises
    ------
    DataError
        A file is missing or unreadable, the files have different columns, or a named
        column is absent.
    """
    ref, cur = TableColumns(reference), TableColumns(current)
    if columns is None:
        if ref.names != cur.names:
            only_ref = sorted(set(ref.names) - set(cur.names))
            only_cur = sorted(set(cur.names) - set(ref.names))
            raise DataError(
                f"{reference} and {current} have different columns (only in the reference: "
                f"{only_ref or 'none'}; only in the current file: {only_cur or 'none'}); "
                "pass --columns to compare the ones they share"
            )
        columns = [c for c in ref.names if c not in set(exclude)]
    missing = [c for c in columns if c not in ref.names or c not in cur.names]
    if missing:
        raise DataError(f"column(s) {missing} are not in both {reference} and {current}")
    if plots:
        from mlcycle.monitor.report import categorical_histogram, numeric_histogram
    results: list[FeatureDrift] = []
    histograms: dict[str, dict[str, Any]] = {}
    for name in columns:
        if ref.is_numeric(name) and cur.is_numeric(name):
            r, c = ref.values(name), cur.values(name)
            results.append(numeric_drift(name, r, c, settings))
            if plots:
                histograms[name] = numeric_histogram(r, c)
            del r, c
        else:
            rc, cc = ref.counts(name), cur.counts(name)
            results.append(categorical_drift_from_counts(name, rc, cc, settings))
            if plots:
                histograms[name] = categorical_histogram(rc, cc)
    return dataset_drift(results, settings), histograms


def drift_between_files(
    reference: Path,
    current: Path,
    *,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    settings: DriftSettings | None = None,
) -> DatasetDrift:
    """Drift of every shared column (or ``columns``) of ``current`` against ``reference``.

    Raises
    ------
    DataError
        A file is missing or unreadable, the files have different columns, or a named
        column is absent.
    """
    result, _ = compare_files(
        reference, current, columns=columns, exclude=exclude, settings=settings
    )
    return result


def report_document(result: DatasetDrift, reference: Path, current: Path) -> dict[str, Any]:
    """The drift result as a JSON-ready document."""
    return {
        "reference": str(reference),
        "current": str(current),
        "dataset": {
            "drifted": result.drifted,
            "share": result.share,
            "threshold": result.threshold,
            "drifted_features": result.drifted_features,
        },
        "features": [f.to_dict() for f in result.features],
    }


def render_drift(result: DatasetDrift) -> Any:
    """A rich table of the per-feature tests and the verdict."""
    from rich.table import Table

    verdict = "DRIFT" if result.drifted else "no drift"
    table = Table(
        title=f"data drift: {verdict} ({len(result.drifted_features)} of "
        f"{len(result.features)} features, share {result.share:.2f}, threshold "
        f"{result.threshold:.2f})"
    )
    for col in ("feature", "kind", "test", "statistic", "p-value", "threshold", "PSI", "drift"):
        table.add_column(col, justify="left" if col in ("feature", "kind", "test") else "right")
    for f in result.features:
        table.add_row(
            f.feature,
            f.kind,
            f.test,
            f"{f.statistic:.4g}",
            "-" if f.p_value is None else f"{f.p_value:.3g}",
            f"{f.threshold:g}",
            f"{f.psi:.3f}",
            "[red]yes[/red]" if f.drifted else "no",
        )
    return table


def write_report(result: DatasetDrift, reference: Path, current: Path, output: Path) -> None:
    """Write :func:`report_document` as JSON to ``output``."""
    output.write_text(json.dumps(report_document(result, reference, current), indent=2) + "\n")
