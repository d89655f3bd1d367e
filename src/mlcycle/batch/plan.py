"""Check a scoring job before any row is read, and decide what to read and write.

Both engines start here, so a missing file, an unknown format, a missing feature or an
existing output fails the same way, quickly, before Ray starts or a bar is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from mlcycle.batch.files import check_input, check_output, file_format
from mlcycle.batch.options import ScoreOptions
from mlcycle.batch.readers import column_names
from mlcycle.batch.scoring import check_features, csv_column_types, resolve_id_columns
from mlcycle.bundle import Bundle
from mlcycle.exceptions import ConfigError

__all__ = ["Plan", "make_plan", "output_metadata"]


@dataclass(frozen=True)
class Plan:
    """What a checked scoring job reads and writes."""

    # Format of the input file ("csv" or "parquet").
    input_format: str
    # Format of the output file.
    output_format: str
    # Id columns copied to the output, in order.
    id_columns: tuple[str, ...]
    # Columns read from the input: id columns, then the model's features.
    read_columns: tuple[str, ...]
    # Types of the CSV columns the model reads (numeric: float64, categorical: string).
    csv_types: dict[str, pa.DataType]


def make_plan(bundle: Bundle, options: ScoreOptions) -> Plan:
    """Check ``options`` against the file system, the input's columns and ``bundle``.

    Parameters
    ----------
    bundle
        The model to score with.
    options
        The job.

    Returns
    -------
    Plan
        Formats, id columns and the columns to read.

    Raises
    ------
    ConfigError
        An unknown format, or ``chunk_rows`` below 1.
    DataError
        The input is missing or unreadable, or the output exists (without
        ``overwrite``) or its folder is missing.
    SchemaError
        A feature or requested id column is not in the input.
    """
    if options.chunk_rows < 1:
        raise ConfigError(f"--chunk-rows must be at least 1; got {options.chunk_rows}")
    input_format = file_format(options.input, options.input_format, flag="--input-format")
    output_format = file_format(options.output, options.output_format, flag="--output-format")
    check_input(options.input)
    check_output(options.output, options.input, overwrite=options.overwrite)
    names = column_names(options.input, input_format)
    check_features(names, bundle, options.input)
    ids = resolve_id_columns(options.id_columns, names, bundle, options.input)
    features = [f for f in bundle.feature_names_used if f not in ids]
    return Plan(
        input_format=input_format,
        output_format=output_format,
        id_columns=ids,
        read_columns=(*ids, *features),
        csv_types=csv_column_types(bundle),
    )


def output_metadata(bundle: Bundle, model_version: str) -> dict[str, str]:
    """Parquet key-value metadata naming the model that wrote the predictions."""
    return {"mlcycle.model_name": bundle.model_name, "mlcycle.model_version": model_version}
