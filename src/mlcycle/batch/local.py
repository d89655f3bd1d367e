"""The local engine: read, score and write one chunk at a time in this process.

Reading the next chunk, predicting this one and writing the previous one overlap in
three threads; memory holds a few chunks at most (the reader's read-ahead, the three
chunks in flight, the writer's buffer), whatever the file's size. The output appears
only when every row is written (see :func:`mlcycle.batch.files.atomic_output`).

Examples
--------
>>> from mlcycle.batch.options import ScoreOptions
>>> bundle = Bundle.load("bundle/")                                  # doctest: +SKIP
>>> score_file(bundle, ScoreOptions(Path("in.csv"), Path("out.parquet")))  # doctest: +SKIP
ScoreReport(input=..., rows=5000000, seconds=9.8, ...)
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from mlcycle.batch.files import ChunkWriter, atomic_output
from mlcycle.batch.options import ScoreOptions, ScoreReport
from mlcycle.batch.plan import Plan, make_plan, output_metadata
from mlcycle.batch.progress import Update, progress_bar, wants_progress
from mlcycle.batch.readers import ChunkSource
from mlcycle.batch.scoring import ChunkScorer
from mlcycle.bundle import Bundle

__all__ = ["score_file"]


def score_file(bundle: Bundle, options: ScoreOptions, *, model_version: str = "") -> ScoreReport:
    """Score ``options.input`` with ``bundle`` into ``options.output``, chunk by chunk.

    Parameters
    ----------
    bundle
        The loaded model.
    options
        Input, output, formats, id columns, chunk size, overwrite and progress.
    model_version
        Recorded in the report and in the Parquet output's metadata.

    Returns
    -------
    ScoreReport
        Rows, seconds (read -> predict -> write) and rows/s.

    Raises
    ------
    MlcycleError
        Any input or output problem (see :func:`mlcycle.batch.plan.make_plan`), or a
        numeric feature holding text (:class:`~mlcycle.batch.readers.NotNumericError`);
        no output file is left behind.
    """
    plan = make_plan(bundle, options)
    scorer = ChunkScorer(bundle, plan.id_columns)
    start = time.perf_counter()
    with (
        atomic_output(options.output) as tmp,
        ChunkSource(
            options.input,
            plan.input_format,
            plan.read_columns,
            plan.csv_types,
            options.chunk_rows,
        ) as source,
    ):
        rows, chunks = _stream(source, scorer, tmp, plan, bundle, model_version, options)
    return ScoreReport(
        input=options.input,
        output=options.output,
        rows=rows,
        seconds=time.perf_counter() - start,
        engine="local",
        model_name=bundle.model_name,
        model_version=model_version,
        chunks=chunks,
    )


def _stream(
    source: ChunkSource,
    scorer: ChunkScorer,
    tmp: Path,
    plan: Plan,
    bundle: Bundle,
    model_version: str,
    options: ScoreOptions,
) -> tuple[int, int]:
    """Score every chunk of ``source`` into ``tmp``; return (rows, chunks)."""
    schema = scorer.output_schema(source.schema)
    metadata = output_metadata(bundle, model_version)
    with (
        ChunkWriter(tmp, plan.output_format, schema, metadata) as writer,
        progress_bar(wants_progress(options.progress), source.total, source.path.name) as update,
    ):
        rows, chunks = _pipeline(source, scorer, writer, update)
    return rows, chunks


def _pipeline(
    source: ChunkSource, scorer: ChunkScorer, writer: ChunkWriter, update: Update
) -> tuple[int, int]:
    """Predict chunk ``i`` while chunk ``i + 1`` is read and chunk ``i - 1`` written.

    Two helper threads (reading and converting; writing), one task each at a time, so
    at most three chunks are in memory. pyarrow and onnxruntime release the GIL for
    their work, so the stages overlap; an error in any stage stops the loop.
    """
    batches = iter(source)
    done = [0]

    def prepare() -> tuple[pa.RecordBatch, dict[str, Any]] | None:
        batch = next(batches, None)
        return None if batch is None else (batch, scorer.inputs(batch, done[0]))

    rows = chunks = 0
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mlcycle-batch") as pool:
        ahead = pool.submit(prepare)
        written: Future[None] | None = None
        while (item := ahead.result()) is not None:
            batch, inputs = item
            done[0] += batch.num_rows
            ahead = pool.submit(prepare)
            scored = scorer.score(batch, inputs)
            if written is not None:
                written.result()
            written = pool.submit(writer.write, scored)
            rows, chunks = rows + batch.num_rows, chunks + 1
            update(source.position(), rows)
        if written is not None:
            written.result()
    return rows, chunks
