"""mlcycle.monitor.store: events reach SQLite (WAL) in batches off the request path; a
locked store neither blocks recording nor loses more than the buffer cannot hold."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa

from mlcycle.monitor.prediction_log import PredictionLog
from mlcycle.monitor.store import PREDICTIONS, PredictionEvent, connect


def events(n: int, start: int = 0) -> list[PredictionEvent]:
    return [
        PredictionEvent(
            request_id=f"r{i}",
            model_name="m",
            model_version="3",
            features={"age": i, "color": "red"},
            label="yes" if i % 2 else "no",
            probabilities={"no": 0.25, "yes": 0.75},
            latency_ms=1.5,
        )
        for i in range(start, start + n)
    ]


def rows(engine: sa.Engine) -> list[sa.Row]:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return list(conn.execute(sa.select(PREDICTIONS).order_by(PREDICTIONS.c.id)))


def test_events_are_written_in_batches_to_sqlite_in_wal_mode(tmp_path: Path) -> None:
    engine = connect(tmp_path / "log.db")
    plog = PredictionLog(engine, batch_size=40, flush_interval=0.05)
    plog.record(events(100))
    assert plog.flush(10)
    plog.close()
    got = rows(engine)
    assert [r.request_id for r in got] == [f"r{i}" for i in range(100)]
    first = got[1]
    assert json.loads(first.features) == {"age": 1, "color": "red"}
    assert first.confidence == 0.75 and first.label == "yes" and first.model_version == "3"
    assert plog.written == 100 and plog.dropped == 0
    mode = sqlite3.connect(tmp_path / "log.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_a_locked_store_does_not_block_recording_and_drops_only_the_overflow(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    engine = connect(path, busy_timeout_ms=20)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    plog = PredictionLog(engine, capacity=50, batch_size=10, flush_interval=0.01, max_attempts=1000)
    start = time.perf_counter()
    for i in range(20):
        plog.record(events(10, start=i * 10))
    assert time.perf_counter() - start < 0.5  # recording never waited on the database
    deadline = time.monotonic() + 10
    while plog.failures == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert plog.failures > 0 and plog.written == 0
    # Every event is pending, dropped and counted, or in the one batch of 10 the writer
    # holds while it retries (each retry puts it back, which may drop 10 more when the
    # buffer is full: how many depends on how fast the loop above ran).
    assert plog.pending <= 50 and 190 <= plog.pending + plog.dropped <= 200
    assert plog.dropped >= 140
    blocker.execute("ROLLBACK")
    blocker.close()
    assert plog.flush(15)
    plog.close()
    got = [r.request_id for r in rows(engine)]
    assert len(got) in (50, 60) and plog.written + plog.dropped == 200
    assert got == [f"r{i}" for i in range(200 - len(got), 200)]  # the newest are kept


def test_a_batch_that_keeps_failing_is_dropped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    engine = connect(path, busy_timeout_ms=10)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    plog = PredictionLog(engine, batch_size=5, flush_interval=0.01, max_attempts=2)
    plog.record(events(5))
    deadline = time.monotonic() + 10
    while plog.dropped < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    blocker.execute("ROLLBACK")
    blocker.close()
    plog.record(events(3, start=5))
    assert plog.flush(10)
    plog.close()
    assert plog.dropped == 5
    assert [r.request_id for r in rows(engine)] == ["r5", "r6", "r7"]
