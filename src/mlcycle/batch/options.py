"""What a batch-scoring run is asked to do (:class:`ScoreOptions`) and what it did
(:class:`ScoreReport`).

Plain dataclasses, free of pyarrow and Ray, so the CLI can build them before any heavy
import.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["DEFAULT_CHUNK_ROWS", "ENGINES", "FORMATS", "Engine", "ScoreOptions", "ScoreReport"]

#: Rows read, scored and written at a time when ``chunk_rows`` is not given.
DEFAULT_CHUNK_ROWS = 65_536
#: File formats read and written, by name.
FORMATS: tuple[str, ...] = ("csv", "parquet")
#: Where the scoring runs: this process, or a Ray cluster.
ENGINES: tuple[str, ...] = ("local", "ray")

Engine = Literal["local", "ray"]


@dataclass(frozen=True)
class ScoreOptions:
    """How to score one input file into one output file.

    Examples
    --------
    >>> ScoreOptions(Path("in.csv"), Path("out.parquet")).chunk_rows
    65536
    """

    # The file to score (CSV or Parquet).
    input: Path
    # Where to write the predictions; its folder must exist.
    output: Path
    # "csv" or "parquet"; None: from the input's suffix.
    input_format: str | None = None
    # "csv" or "parquet"; None: from the output's suffix.
    output_format: str | None = None
    # Input columns copied to the output, in this order; None: the default id columns
    # (see mlcycle.batch.scoring.default_id_columns); () for none.
    id_columns: tuple[str, ...] | None = None
    # Rows read, scored and written at a time (the memory bound).
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    # Replace an existing output file instead of refusing.
    overwrite: bool = False
    # Show a progress bar on stderr (only when stderr is a terminal).
    progress: bool = True
    # "local" (this process) or "ray" (Ray Data map_batches).
    engine: Engine = "local"
    # Ray cluster address; None: start a local Ray instance.
    ray_address: str | None = None
    # CPUs of the local Ray instance (ignored when ray_address is given).
    ray_cpus: int = 2
    # onnxruntime intra-op threads; None: the caller's default (the command uses all
    # CPUs but one, see mlcycle.batch.command.default_threads).
    threads: int | None = None


@dataclass(frozen=True)
class ScoreReport:
    """What a scoring run did.

    Examples
    --------
    >>> r = ScoreReport(Path("in.csv"), Path("out.csv"), rows=1000, seconds=0.5,
    ...                 engine="local", model_name="m", model_version="3")
    >>> r.rows_per_second
    2000.0
    >>> r.summary()
    'scored 1,000 rows in 0.50 s (2,000 rows/s) with m v3 [local] -> out.csv'
    >>> ScoreReport(Path("a"), Path("b"), 0, 0.0, "ray", "m", "").summary()
    'scored 0 rows in 0.00 s (0 rows/s) with m [ray] -> b'
    """

    # The scored file.
    input: Path
    # The written predictions.
    output: Path
    # Rows scored (and written).
    rows: int
    # Wall time of read -> predict -> write, without loading the bundle.
    seconds: float
    # "local" or "ray".
    engine: str
    # The bundle's model name.
    model_name: str
    # The model version the caller resolved (e.g. a registry version).
    model_version: str
    # Chunks scored (local engine; Ray: batches written).
    chunks: int = 0

    @property
    def rows_per_second(self) -> float:
        """Rows scored per second of wall time (0 when no time passed)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """The one-line report the command prints."""
        model = self.model_name
        if self.model_version:
            model += f" v{self.model_version}"
        return (
            f"scored {self.rows:,} rows in {self.seconds:.2f} s "
            f"({self.rows_per_second:,.0f} rows/s) with {model} [{self.engine}] -> {self.output}"
        )
