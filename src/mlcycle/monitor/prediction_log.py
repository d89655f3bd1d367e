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

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from mlcycle.monitor.store import (
    PREDICTION_BATCHES,
    PREDICTION_COLUMNS,
    PREDICTIONS,
    LogBatch,
    PredictionEvent,
    Row,
)

__all__ = ["Item", "PredictionLog", "insert_rows"]

log = logging.getLogger("mlcycle.monitor.store")

#: What the log buffers: one row (an event, a mapping, a tuple) or a packed batch.
Item = PredictionEvent | dict[str, Any] | Row | LogBatch


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
        """Drop the oldest items while more than ``capacity`` rows are held (lock held).

        The newest stays, even alone over ``capacity`` (a hand-over bigger than the log's
        capacity is written, not dropped whole).
        """
        while self._held > self.capacity and len(self._buffer) > 1:
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
