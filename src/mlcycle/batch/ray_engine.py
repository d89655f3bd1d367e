"""The Ray engine: Ray Data reads the file and runs the chunk predictor in parallel.

``ray.data.read_csv`` / ``read_parquet`` read only the needed columns (CSV with the same
column types as the local engine), ``map_batches`` runs :class:`ChunkScorer` on pyarrow
batches in Ray tasks (the bundle is loaded once per worker process and cached), and the
driver iterates the scored batches in file order and writes them with the same
:class:`~mlcycle.batch.files.ChunkWriter` to a temporary file renamed at the end. So the
output is one file, like the local engine's, and is never left half-written; the price
is that writing happens on the driver.

The bundle folder and the input file must be readable at the same path by every Ray
worker (a single machine, or shared storage), and mlcycle must be installed on the
workers. With no address a local Ray instance is started (and shut down at the end); an
instance already running in this process is reused.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlcycle._optional import require
from mlcycle.batch.files import ChunkWriter, atomic_output
from mlcycle.batch.options import ScoreOptions, ScoreReport
from mlcycle.batch.plan import Plan, make_plan, output_metadata
from mlcycle.batch.progress import wants_progress
from mlcycle.batch.readers import ChunkSource, csv_convert_options, find_not_numeric
from mlcycle.batch.scoring import ChunkScorer
from mlcycle.bundle import Bundle
from mlcycle.exceptions import DataError, MlcycleError

__all__ = ["score_table", "score_with_ray"]


def score_with_ray(
    bundle: Bundle, options: ScoreOptions, *, model_version: str = ""
) -> ScoreReport:
    """Score ``options.input`` into ``options.output`` with Ray Data.

    Parameters
    ----------
    bundle
        The loaded model (the driver's copy; workers load ``bundle.path`` themselves).
    options
        The job; ``ray_address`` and ``ray_cpus`` choose the cluster.
    model_version
        Recorded in the report and in the Parquet output's metadata.

    Returns
    -------
    ScoreReport
        Rows, seconds (read -> predict -> write, without starting Ray) and rows/s.

    Raises
    ------
    MissingDependencyError
        Ray is not installed (``pip install 'mlcycle[ray]'``).
    MlcycleError
        The same input and output errors as the local engine.
    """
    require("ray.data", "ray")
    import ray

    plan = make_plan(bundle, options)
    started = _connect(ray, options)
    try:
        _configure(options)
        dataset = _scored(bundle, plan, options)
        start = time.perf_counter()
        with atomic_output(options.output) as tmp:
            tables = dataset.iter_batches(batch_format="pyarrow", batch_size=None)
            rows, chunks = _write(tables, tmp, plan, bundle, model_version, options)
        seconds = time.perf_counter() - start
    except Exception as exc:
        error = _user_error(exc, options, plan)
        if error is exc:
            raise
        raise error from None
    finally:
        if started:
            ray.shutdown()
    return ScoreReport(
        input=options.input,
        output=options.output,
        rows=rows,
        seconds=seconds,
        engine="ray",
        model_name=bundle.model_name,
        model_version=model_version,
        chunks=chunks,
    )


def score_table(table: pa.Table, *, bundle_path: str, id_columns: tuple[str, ...]) -> pa.Table:
    """Score one Ray Data batch (a pyarrow table): the ``map_batches`` function.

    Parameters
    ----------
    table
        Holds the model's features and ``id_columns``.
    bundle_path
        The bundle folder, loaded once per worker process.
    id_columns
        Columns copied to the output.

    Returns
    -------
    pyarrow.Table
        The id columns, ``prediction`` and ``proba_<class>``.
    """
    scorer = _scorer(bundle_path, id_columns)
    batches = table.combine_chunks().to_batches()
    batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
    return pa.Table.from_batches([scorer(batch, None)])


@functools.cache
def _scorer(bundle_path: str, id_columns: tuple[str, ...]) -> ChunkScorer:
    return ChunkScorer(Bundle.load(bundle_path, intra_op_threads=1), id_columns)


def _connect(ray: Any, options: ScoreOptions) -> bool:
    """Connect to Ray; return whether this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    if options.ray_address:
        ray.init(address=options.ray_address, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(
            num_cpus=options.ray_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    return True


def _configure(options: ScoreOptions) -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = wants_progress(options.progress)


def _scored(bundle: Bundle, plan: Plan, options: ScoreOptions) -> Any:
    """The (lazy) Ray dataset of the input's predictions."""
    import ray.data

    path = str(options.input.resolve())
    dataset: Any  # ray.data.Dataset; its map_batches type rejects keyword-only functions
    if plan.input_format == "parquet":
        dataset = ray.data.read_parquet(path, columns=list(plan.read_columns))
    else:
        convert = csv_convert_options(plan.read_columns, plan.csv_types)
        dataset = ray.data.read_csv(path, convert_options=convert)
    return dataset.map_batches(
        score_table,
        fn_kwargs={"bundle_path": str(bundle.path.resolve()), "id_columns": plan.id_columns},
        batch_format="pyarrow",
        batch_size=options.chunk_rows,
    )


def _write(
    tables: Iterable[pa.Table],
    tmp: Path,
    plan: Plan,
    bundle: Bundle,
    model_version: str,
    options: ScoreOptions,
) -> tuple[int, int]:
    """Write the scored ``tables`` to ``tmp``; return (rows, batches)."""
    writer: ChunkWriter | None = None
    chunks = 0
    try:
        for table in tables:
            if writer is None:
                writer = _writer(tmp, plan, table.schema, bundle, model_version)
            writer.write(table)
            chunks += 1
        if writer is None:  # an input without rows: write the header / schema only
            with ChunkSource(
                options.input, plan.input_format, plan.read_columns, plan.csv_types, 1
            ) as source:
                schema = ChunkScorer(bundle, plan.id_columns).output_schema(source.schema)
            writer = _writer(tmp, plan, schema, bundle, model_version)
    finally:
        if writer is not None:
            writer.close()
    return writer.rows, chunks


def _writer(
    tmp: Path, plan: Plan, schema: pa.Schema, bundle: Bundle, model_version: str
) -> ChunkWriter:
    return ChunkWriter(tmp, plan.output_format, schema, output_metadata(bundle, model_version))


def _user_error(exc: Exception, options: ScoreOptions, plan: Plan) -> Exception:
    """The mlcycle error behind Ray's wrapped ``exc``, or ``exc`` itself.

    Ray re-raises a worker's error as a ``RayTaskError`` whose ``cause`` is the original
    (an mlcycle error from :class:`ChunkScorer` comes back as itself). The pyarrow error
    of a CSV read does not survive Ray's wrapping, so a failed CSV read is checked
    again on the driver for text in a numeric column.
    """
    from ray.exceptions import RayError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MlcycleError) and not isinstance(seen, RayError):
            return type(seen)(*seen.args)
        if isinstance(seen, pa.ArrowInvalid):
            return DataError(f"cannot read {options.input}: {seen}")
        seen = getattr(seen, "cause", None) or seen.__cause__
    if plan.input_format == "csv":
        found = find_not_numeric(options.input, plan.csv_types)
        if found is not None:
            return found
    return exc
