"""The prediction log: events buffered in memory, written in batches by a background thread.

The request path only appends to a bounded buffer (:meth:`PredictionLog.record` never
touches the database and never blocks). A writer thread takes up to ``batch_size`` events
at a time and inserts them with SQLAlchemy Core, into SQLite in WAL mode by default or
any database SQLAlchemy reaches by URL (e.g. ``postgresql+psycopg://...``). When the
store is slow or down, the buffer fills; then the oldest events are dropped and counted
(:attr:`PredictionLog.dropped`), and serving goes on. A failed batch is retried with
back-off, up to ``max_attempts`` times (then dropped and counted), so a store that is
down loses only what no longer fits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.exceptions import MlcycleError

__all__ = [
    "ALARMS",
    "DEFAULT_STORE_FILE",
    "FEEDBACK",
    "METRIC_POINTS",
    "PREDICTIONS",
    "PREDICTION_BATCHES",
    "PREDICTION_COLUMNS",
    "LogBatch",
    "PredictionEvent",
    "PredictionLog",
    "StoreError",
    "check_store",
    "connect",
    "insert_rows",
    "metadata",
    "resolve_store",
]

log = logging.getLogger("mlcycle.monitor.store")


class StoreError(MlcycleError):
    """The monitoring store cannot be opened or used."""


metadata = sa.MetaData()

#: One row per answered (or failed) prediction.
PREDICTIONS = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(200), nullable=False, index=True),
    sa.Column("row", sa.Integer, nullable=False, default=0),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("arm", sa.String(50), nullable=False, default="champion"),
    # Pipeline monitoring: the stage this model is, and the id shared by a pipeline run.
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("pipeline_id", sa.String(200), nullable=True),
    sa.Column("features", sa.Text, nullable=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("probabilities", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

#: Predictions not yet in ``predictions``: one row per hand-over of a server's monitor,
#: the rows packed in ``payload`` (:mod:`mlcycle.monitor.log_batches`), the request ids
#: one per line so they can be looked up before the batch is expanded.
PREDICTION_BATCHES = sa.Table(
    "prediction_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time_min", sa.Float, nullable=False),
    sa.Column("time_max", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("rows", sa.Integer, nullable=False),
    # A Bloom filter of the request ids (mlcycle.monitor.id_filter); null: not known. Ahead
    # of the long columns, so that SQLite reads it without walking their overflow pages.
    sa.Column("id_filter", sa.LargeBinary, nullable=True),
    sa.Column("request_ids", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

#: Ground truth for a logged prediction, by request id and row.
FEEDBACK = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("row", sa.Integer, nullable=False, default=0),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    # The label it replaced when sent again with overwrite; null for the first one.
    sa.Column("previous_label", sa.String(200), nullable=True),
    # Where it came from: api, import:<file>, review.
    sa.Column("source", sa.String(300), nullable=False, default="api"),
    sa.UniqueConstraint("request_id", "row", name="uq_feedback_request_row"),
)

#: Alarms raised by the monitor; acknowledged by a person.
ALARMS = sa.Table(
    "alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("model_name", sa.String(200), nullable=False, default=""),
    sa.Column("model_version", sa.String(100), nullable=False, default=""),
    sa.Column("severity", sa.String(20), nullable=False, default="warning"),
    # firing (crossed the threshold) or resolved (back inside it, past the hysteresis).
    sa.Column("state", sa.String(20), nullable=False, default="firing"),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("details", sa.Text, nullable=True),
    sa.Column("acknowledged_at", sa.Float, nullable=True),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
)

#: Time series of monitor values (window metrics, drift scores), for report timelines.
METRIC_POINTS = sa.Table(
    "metric_points",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("model_version", sa.String(100), nullable=False, default=""),
    # Extra labels (e.g. {"feature": "age"}) as JSON; "" when none.
    sa.Column("labels", sa.Text, nullable=False, default=""),
    sa.Column("value", sa.Float, nullable=False),
)


#: The columns of a prediction row given as a tuple, in this order.
PREDICTION_COLUMNS = tuple(c.name for c in PREDICTIONS.columns if c.name != "id")

Row = tuple[Any, ...]


@dataclass
class PredictionEvent:
    """What the log keeps of one predicted row (or one failed request)."""

    request_id: str
    model_name: str
    model_version: str
    row: int = 0
    time: float = field(default_factory=time.time)
    arm: str = "champion"
    stage: str = ""
    pipeline_id: str | None = None
    #: The features, as a mapping or already encoded as JSON text.
    features: Mapping[str, Any] | str | None = None
    label: str | None = None
    probabilities: Mapping[str, float] | None = None
    latency_ms: float | None = None
    error: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The event as a ``predictions`` table row."""
        probs = dict(self.probabilities) if self.probabilities else None
        features = self.features
        if features is not None and not isinstance(features, str):
            features = json.dumps(dict(features))
        return {
            "request_id": self.request_id,
            "row": self.row,
            "time": self.time,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "arm": self.arm,
            "stage": self.stage,
            "pipeline_id": self.pipeline_id,
            "features": features,
            "label": self.label,
            "confidence": max(probs.values()) if probs else None,
            "probabilities": None if probs is None else json.dumps(probs),
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class LogBatch:
    """One ``prediction_batches`` row, ready to insert (made by
    :func:`mlcycle.monitor.log_batches.pack_batch`)."""

    time_min: float
    time_max: float
    model_name: str
    model_version: str
    stage: str
    #: The ``predictions`` rows it expands to (a failed request is one row).
    rows: int
    request_ids: str
    payload: bytes
    id_filter: bytes | None = None

    def values(self) -> dict[str, Any]:
        """The row as a mapping of column names to values."""
        return {
            "time_min": self.time_min,
            "time_max": self.time_max,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "stage": self.stage,
            "rows": self.rows,
            "request_ids": self.request_ids,
            "payload": self.payload,
            "id_filter": self.id_filter,
        }


#: What the log buffers: one row (an event, a mapping, a tuple) or a packed batch.
Item = PredictionEvent | dict[str, Any] | Row | LogBatch


#: The store's file in a project (or the working folder outside one) when none is given.
DEFAULT_STORE_FILE = "monitor.db"


def resolve_store(value: str | Path | None = None) -> str:
    """The store to use: ``value`` when given, else ``monitor.db`` in the project root.

    Parameters
    ----------
    value
        A SQLAlchemy URL or SQLite file path (e.g. the ``--store`` flag or
        ``monitor.store`` setting); empty or ``None`` for the default.

    Returns
    -------
    str
        A URL or an absolute SQLite file path, for :func:`connect`.
    """
    if value:
        return str(value)
    from mlcycle.config.project import find_project_root

    return str(find_project_root() / DEFAULT_STORE_FILE)


def connect(url_or_path: str | Path, *, busy_timeout_ms: int = 5000) -> sa.Engine:
    """An engine with the log's tables created.

    Parameters
    ----------
    url_or_path
        A SQLAlchemy URL, or a file path for SQLite (opened in WAL mode, so readers do
        not block the writer).
    busy_timeout_ms
        SQLite: how long a write waits for another writer's lock before failing.
    """
    text = str(url_or_path)
    url = text if "://" in text else f"sqlite:///{Path(text).expanduser()}"
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot use the monitoring store {_redact(text)!r}: {exc}. Give a SQLite file "
            "path or a SQLAlchemy URL such as postgresql+psycopg://user@host/db (PostgreSQL "
            "needs the postgres extra: pip install 'mlcycle[postgres]')"
        ) from exc
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.close()

    try:
        metadata.create_all(engine)
        _add_missing_columns(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the monitoring store {_redact(text)!r}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}. Check that the database is running and reachable, "
            "or that the SQLite file's folder exists and is writable"
        ) from exc
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Add the nullable columns a store made by an earlier mlcycle lacks."""

    def have() -> set[str]:
        return {c["name"] for c in sa.inspect(engine).get_columns(PREDICTION_BATCHES.name)}

    if "id_filter" in have():
        return
    blob = PREDICTION_BATCHES.c.id_filter.type.compile(dialect=engine.dialect)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE prediction_batches ADD COLUMN id_filter {blob}")
    except sa.exc.SQLAlchemyError:
        if "id_filter" not in have():  # not another process adding it at the same time
            raise


def check_store(url_or_path: str | Path) -> None:
    """Open the store once (creating its tables), or raise a clear :class:`StoreError`."""
    connect(url_or_path).dispose()


def _redact(url: str) -> str:
    """``url`` without a password."""
    if "://" not in url or "@" not in url:
        return url
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


class PredictionLog:
    """Bounded in-memory buffer of events and the thread that writes them.

    Parameters
    ----------
    engine
        From :func:`connect`.
    capacity
        Most rows held while the store is behind; older ones are dropped beyond it.
    batch_size
        Most rows per insert (a packed batch is never split).
    flush_interval
        Seconds the writer waits for more events before writing a partial batch.
    max_attempts
        Tries per batch before it is dropped (and counted in :attr:`dropped`).
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        capacity: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_attempts: int = 5,
    ) -> None:
        self.engine = engine
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_attempts = max_attempts
        self._buffer: deque[Item] = deque()
        self._held = 0  # rows in the buffer
        self._lock = threading.Condition()
        self._stop = False
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self._thread = threading.Thread(
            target=self._run, name="mlcycle-prediction-log", daemon=True
        )
        self._thread.start()

    def record(self, events: Iterable[Item]) -> None:
        """Queue ``events`` for writing; never blocks.

        An event is a :class:`PredictionEvent`, a ``predictions`` row as a mapping, a
        tuple of values in :data:`PREDICTION_COLUMNS` order, or many rows packed as one
        :class:`LogBatch` (the cheapest, by far).
        """
        with self._lock:
            for event in events:
                self._buffer.append(event)
                self._held += _weight(event)
            self._drop_overflow()
            if self._held >= self.batch_size:
                self._lock.notify()

    @property
    def pending(self) -> int:
        """Rows waiting to be written."""
        with self._lock:
            return self._held

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the buffer is written (or ``timeout`` passes); ``True`` if empty."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._lock.notify()
        while time.monotonic() < deadline:
            if self.pending == 0 and not self._writing:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered (up to ``timeout``) and stop the writer."""
        self.flush(timeout)
        with self._lock:
            self._stop = True
            self._lock.notify()
        self._thread.join(timeout)

    # -- the writer ---------------------------------------------------------------------

    _writing = False

    def _drop_overflow(self) -> None:
        """Drop the oldest items while more than ``capacity`` rows are held (lock held)."""
        while self._held > self.capacity and self._buffer:
            weight = _weight(self._buffer.popleft())
            self._held -= weight
            self.dropped += weight

    def _take(self) -> list[Item]:
        """Up to ``batch_size`` rows' worth of items, oldest first (lock held)."""
        batch: list[Item] = []
        rows = 0
        while self._buffer and (not batch or rows + _weight(self._buffer[0]) <= self.batch_size):
            item = self._buffer.popleft()
            batch.append(item)
            rows += _weight(item)
        self._held -= rows
        return batch

    def _run(self) -> None:
        backoff = 0.05
        attempts = 0
        while True:
            with self._lock:
                if not self._buffer and not self._stop:
                    self._lock.wait(self.flush_interval)
                if self._stop and not self._buffer:
                    return
                batch = self._take()
                self._writing = bool(batch)
            if not batch:
                continue
            rows = sum(_weight(e) for e in batch)
            try:
                self._insert(batch)
            except Exception as exc:  # the store is down or slow: keep serving
                self.failures += 1
                attempts += 1
                log.warning("prediction log: writing %d rows failed: %s", rows, exc)
                if attempts >= self.max_attempts or self._stop:
                    with self._lock:
                        self.dropped += rows
                    attempts = 0
                else:
                    self._requeue(batch)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                self.written += rows
                attempts = 0
                backoff = 0.05
            finally:
                self._writing = False

    def _insert(self, batch: list[Item]) -> None:
        packed = [e.values() for e in batch if isinstance(e, LogBatch)]
        rows = [_as_tuple(e) for e in batch if not isinstance(e, LogBatch)]
        with self.engine.begin() as conn:
            if packed:
                conn.execute(PREDICTION_BATCHES.insert(), packed)
            insert_rows(conn, rows)

    def _requeue(self, batch: list[Item]) -> None:
        with self._lock:
            self._buffer.extendleft(reversed(batch))
            self._held += sum(_weight(e) for e in batch)
            self._drop_overflow()


def insert_rows(conn: sa.Connection, rows: Sequence[Row]) -> None:
    """Insert ``predictions`` rows given as tuples in :data:`PREDICTION_COLUMNS` order."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":  # straight to sqlite3's executemany
        conn.exec_driver_sql(_SQLITE_INSERT, list(rows))
    else:
        conn.execute(
            PREDICTIONS.insert(), [dict(zip(PREDICTION_COLUMNS, r, strict=True)) for r in rows]
        )


_SQLITE_INSERT = (
    f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in PREDICTION_COLUMNS)})"
)


def _weight(item: Item) -> int:
    """The rows an item stands for."""
    return item.rows if isinstance(item, LogBatch) else 1


def _as_tuple(event: PredictionEvent | dict[str, Any] | Row) -> Row:
    if isinstance(event, tuple):
        return event
    row = event if isinstance(event, dict) else event.to_row()
    defaults = {"row": 0, "arm": "champion", "stage": ""}
    return tuple(row.get(c, defaults.get(c)) for c in PREDICTION_COLUMNS)
