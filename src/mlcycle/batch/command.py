"""``mlcycle predict INPUT --output OUTPUT``: the batch-scoring command's flags and body.

The CLI adds these flags to its ``predict`` parser with :func:`add_arguments`, resolves
which bundle to use, and calls :func:`run`. Nothing here imports pyarrow, rich or Ray at
module level, so ``mlcycle --help`` stays quick and works without the ``batch`` extra.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mlcycle._optional import require
from mlcycle.batch.options import DEFAULT_CHUNK_ROWS, ENGINES, FORMATS, ScoreOptions, ScoreReport
from mlcycle.exceptions import ConfigError

__all__ = ["add_arguments", "default_threads", "options_from_namespace", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the batch-scoring arguments to ``parser``.

    Parameters
    ----------
    parser
        The ``predict`` command's parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_arguments(parser)
    >>> ns = parser.parse_args(["in.csv", "-o", "out.parquet", "--id-columns", "a,b"])
    >>> options_from_namespace(ns).id_columns
    ('a', 'b')
    """
    parser.add_argument("input", type=Path, metavar="INPUT", help="CSV or Parquet file to score")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="OUTPUT",
        help="file to write (.csv or .parquet); its folder must exist",
    )
    parser.add_argument(
        "--id-columns",
        metavar="A,B",
        help="input columns copied to the output (comma-separated; '' for none). "
        "Default: columns named 'id' or ending in '_id'",
    )
    parser.add_argument(
        "--chunk-rows",
        type=_positive,
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows read, scored and written at a time (default {DEFAULT_CHUNK_ROWS:,})",
    )
    parser.add_argument("--input-format", choices=FORMATS, help="default: from INPUT's suffix")
    parser.add_argument("--output-format", choices=FORMATS, help="default: from OUTPUT's suffix")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--threads",
        type=_positive,
        metavar="N",
        help="onnxruntime threads (default: all CPUs but one, left to reading and writing)",
    )
    _add_engine_arguments(parser.add_argument_group("engine"))


def _add_engine_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this process (default); ray: Ray Data map_batches",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to use (default: start a local Ray instance)",
    )
    group.add_argument(
        "--ray-cpus",
        type=_positive,
        default=2,
        metavar="N",
        help="CPUs of the local Ray instance (default 2)",
    )


def options_from_namespace(ns: argparse.Namespace) -> ScoreOptions:
    """The :class:`ScoreOptions` of parsed arguments (see :func:`add_arguments`)."""
    ids = None
    if ns.id_columns is not None:
        ids = tuple(c.strip() for c in ns.id_columns.split(",") if c.strip())
    return ScoreOptions(
        input=ns.input,
        output=ns.output,
        input_format=ns.input_format,
        output_format=ns.output_format,
        id_columns=ids,
        chunk_rows=ns.chunk_rows,
        overwrite=ns.overwrite,
        progress=not ns.no_progress,
        engine=ns.engine,
        ray_address=ns.ray_address,
        ray_cpus=ns.ray_cpus,
        threads=ns.threads,
    )


def run(ns: argparse.Namespace, bundle_path: Path, model_version: str) -> ScoreReport:
    """Score ``ns.input`` with the bundle at ``bundle_path``; print and return the report.

    Parameters
    ----------
    ns
        Arguments parsed by a parser set up with :func:`add_arguments`.
    bundle_path
        The bundle folder to score with.
    model_version
        The model version the caller resolved; shown in the report and stored in the
        Parquet output's metadata.

    Returns
    -------
    ScoreReport
        Rows, seconds and rows/s; its :meth:`~ScoreReport.summary` line is printed to
        stdout.

    Raises
    ------
    MissingDependencyError
        The ``batch`` extra (or ``ray`` for ``--engine ray``) is not installed.
    MlcycleError
        Bad input or output (see :func:`mlcycle.batch.local.score_file`).
    """
    options = options_from_namespace(ns)
    require("pyarrow", "batch")
    require("rich", "batch")
    from mlcycle.bundle import Bundle

    bundle = Bundle.load(bundle_path, intra_op_threads=options.threads or default_threads())
    if options.engine == "ray":
        from mlcycle.batch.ray_engine import score_with_ray

        report = score_with_ray(bundle, options, model_version=model_version)
    elif options.engine == "local":
        from mlcycle.batch.local import score_file

        report = score_file(bundle, options, model_version=model_version)
    else:
        raise ConfigError(f"--engine {options.engine!r} is not an engine; use one of {ENGINES}")
    print(report.summary())
    return report


def default_threads() -> int:
    """onnxruntime threads for batch scoring: all CPUs this process may use but one.

    The last CPU reads the next chunk and writes the previous one while the model
    predicts; an onnxruntime pool on every CPU would fight those threads for it.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value
