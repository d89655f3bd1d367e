"""Batch scoring of CSV and Parquet files of any size: ``mlcycle predict``.

Files are read, scored and written in chunks of ``chunk_rows`` rows with pyarrow, so
memory stays flat; ``--engine ray`` runs the same chunk predictor in Ray Data's
``map_batches``. Needs the ``batch`` extra (pyarrow, rich) and, for Ray, the ``ray``
extra. Importing this package imports neither.

Modules
-------
``command``     the CLI's flags (:func:`add_arguments`) and body (:func:`run`)
``options``     :class:`ScoreOptions` (the job) and :class:`ScoreReport` (the result)
``plan``        checks a job before any row is read
``readers``     streaming CSV / Parquet readers, cut into fixed-size chunks
``scoring``     :class:`~mlcycle.batch.scoring.ChunkScorer`: Arrow batch -> predictions
``files``       formats, path checks and the all-or-nothing writer
``progress``    the rich progress bar
``local``       the local engine (:func:`~mlcycle.batch.local.score_file`)
``ray_engine``  the Ray engine (:func:`~mlcycle.batch.ray_engine.score_with_ray`)
"""

from __future__ import annotations

from mlcycle.batch.command import add_arguments, run
from mlcycle.batch.options import ScoreOptions, ScoreReport

__all__ = ["ScoreOptions", "ScoreReport", "add_arguments", "run"]
