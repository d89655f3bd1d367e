"""``mlcycle drift REFERENCE CURRENT``: data drift between two files, no server needed.

Both files (CSV, TSV or Parquet) are read with :func:`mlcycle.data.load.read_table`;
numeric columns get the numeric tests and the others the categorical ones, as in
:mod:`mlcycle.monitor.drift`. The result prints as a table and can be written as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcycle.exceptions import DataError
from mlcycle.monitor.drift import (
    DatasetDrift,
    DriftSettings,
    FeatureDrift,
    categorical_drift_from_counts,
    dataset_drift,
    numeric_drift,
)

__all__ = ["drift_between_files", "render_drift", "report_document", "write_report"]


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
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    from mlcycle.data.load import read_table

    ref, cur = read_table(reference), read_table(current)
    if columns is None:
        if list(ref.columns) != list(cur.columns):
            only_ref = sorted(set(ref.columns) - set(cur.columns))
            only_cur = sorted(set(cur.columns) - set(ref.columns))
            raise DataError(
                f"{reference} and {current} have different columns (only in the reference: "
                f"{only_ref or 'none'}; only in the current file: {only_cur or 'none'}); "
                "pass --columns to compare the ones they share"
            )
        columns = [c for c in ref.columns if c not in set(exclude)]
    missing = [c for c in columns if c not in ref.columns or c not in cur.columns]
    if missing:
        raise DataError(f"column(s) {missing} are not in both {reference} and {current}")
    results: list[FeatureDrift] = []
    for name in columns:
        r, c = ref[name], cur[name]
        if is_numeric_dtype(r) and not is_bool_dtype(r) and is_numeric_dtype(c):
            results.append(numeric_drift(name, r.to_numpy(float), c.to_numpy(float), settings))
        else:
            ref_counts = _counts(r)
            results.append(categorical_drift_from_counts(name, ref_counts, _counts(c), settings))
    return dataset_drift(results, settings)


def _counts(column: Any) -> dict[str, int]:
    """Category → count, missing values (NaN, None, "") left out."""
    counts = column.value_counts(dropna=True)
    out: dict[str, int] = {}
    for key, n in counts.items():
        text = str(key)
        if text != "":
            out[text] = out.get(text, 0) + int(n)
    return out


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
