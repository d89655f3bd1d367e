"""The monitoring store on a real PostgreSQL server (tests/_postgres.py): the prediction
log's batches land, a server that is down, locked or restarted never blocks recording
and loses only what is counted, and feedback and alarms work there as on SQLite."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from mlcycle.monitor.feedback import (
    FeedbackError,
    FeedbackItem,
    labelled_predictions,
    record_feedback,
)
from mlcycle.monitor.prediction_log import PredictionLog
from mlcycle.monitor.store import (
    ALARMS,
    FEEDBACK,
    METRIC_POINTS,
    PREDICTIONS,
    PredictionEvent,
    connect,
)
from tests._postgres import PostgresServer, new_server
from tests.conftest import free_port

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (extra: postgres)")


def events(n: int, start: int = 0) -> list[PredictionEvent]:
    return [
        PredictionEvent(
            request_id=f"r{i}",
            model_name="m",
            model_version="3",
            time=1000.0 + i,
            features={"age": i, "color": "red"},
            label="yes" if i % 2 else "no",
            probabilities={"no": 0.25, "yes": 0.75},
            latency_ms=1.5,
        )
        for i in range(start, start + n)
    ]


def request_ids(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        query = sa.select(PREDICTIONS.c.request_id).order_by(PREDICTIONS.c.id)
        return list(conn.execute(query).scalars())


def wait_for(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture()
def engine(postgres_server: PostgresServer) -> Iterator[sa.Engine]:
    """The store's tables in a new database of the session's server."""
    engine = connect(postgres_server.create_database())
    yield engine
    engine.dispose()


def test_the_prediction_log_writes_its_batches_to_postgres(
    engine: sa.Engine, postgres_url: str
) -> None:
    assert engine.dialect.name == "postgresql" and postgres_url.startswith("postgresql+psycopg")
    plog = PredictionLog(engine, batch_size=40, flush_interval=0.05)
    plog.record(events(100))
    assert plog.flush(15)
    plog.close()
    assert request_ids(engine) == [f"r{i}" for i in range(100)]
    assert (plog.written, plog.dropped, plog.failures) == (100, 0, 0)
    with engine.connect() as conn:
        row = conn.execute(sa.select(PREDICTIONS).where(PREDICTIONS.c.request_id == "r1")).one()
    assert json.loads(row.features) == {"age": 1, "color": "red"}
    assert (row.label, row.confidence, row.time) == ("yes", 0.75, 1001.0)


def test_a_server_that_is_down_drops_and_counts_without_blocking_recording() -> None:
    # nothing listens on this port: every write fails at once (connection refused)
    down = sa.create_engine(
        f"postgresql+psycopg://mlcycle@127.0.0.1:{free_port()}/mlcycle", pool_pre_ping=True
    )
    plog = PredictionLog(down, capacity=20, batch_size=10, flush_interval=0.01, max_attempts=2)
    start = time.perf_counter()
    for i in range(20):
        plog.record(events(10, start=i * 10))
    assert time.perf_counter() - start < 0.5  # recording never waited on the database
    assert plog.pending <= 20 and plog.dropped >= 170  # the overflow, dropped at once
    wait_for(lambda: plog.dropped == 200, timeout=30)  # each batch after its 2 tries
    plog.close(timeout=1)
    assert (plog.written, plog.dropped, plog.pending) == (0, 200, 0)
    assert plog.failures >= 4
    down.dispose()


def test_a_locked_table_holds_the_writer_but_not_recording(engine: sa.Engine) -> None:
    plog = PredictionLog(engine, capacity=1000, batch_size=10, flush_interval=0.01)
    blocker = engine.connect()
    tx = blocker.begin()
    blocker.execute(sa.text("LOCK TABLE predictions IN ACCESS EXCLUSIVE MODE"))
    try:
        plog.record(events(10))
        wait_for(lambda: plog.pending == 0)  # the writer took the batch and waits on the lock
        start = time.perf_counter()
        for i in range(1, 50):
            plog.record(events(10, start=i * 10))
        assert time.perf_counter() - start < 0.5
        assert plog.written == 0 and plog.pending >= 480
    finally:
        tx.rollback()
        blocker.close()
    assert plog.flush(30)
    plog.close()
    assert (plog.written, plog.dropped) == (500, 0)
    assert request_ids(engine) == [f"r{i}" for i in range(500)]


def test_events_recorded_while_the_server_restarts_land_when_it_is_back(
    postgres_server: PostgresServer,
) -> None:
    server = new_server(postgres_server.bindir, postgres_server.user)
    try:
        server.start()
        engine = connect(server.create_database("outage"))
        plog = PredictionLog(engine, batch_size=20, flush_interval=0.01, max_attempts=10_000)
        plog.record(events(20))
        assert plog.flush(15)
        server.stop()
        plog.record(events(30, start=20))
        wait_for(lambda: plog.failures >= 2)
        assert plog.failures >= 2 and plog.written == 20
        server.start(port=server.port)
        assert plog.flush(60)
        plog.close()
        assert (plog.written, plog.dropped) == (50, 0)
        assert request_ids(engine) == [f"r{i}" for i in range(50)]
        engine.dispose()
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


def log_predictions(engine: sa.Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(PREDICTIONS.insert(), [e.to_row() for e in events(n)])


def feedback_rows(engine: sa.Engine) -> dict[str, tuple[str, str | None]]:
    with engine.connect() as conn:
        return {
            r.request_id: (r.label, r.previous_label) for r in conn.execute(sa.select(FEEDBACK))
        }


def test_feedback_is_stored_checked_and_joined_on_postgres(engine: sa.Engine) -> None:
    log_predictions(engine, 6)
    classes = ["no", "yes"]
    items = [FeedbackItem(f"r{i}", "yes") for i in range(4)]
    assert record_feedback(engine, items, classes=classes).stored == 4
    assert record_feedback(engine, items, classes=classes).unchanged == 4
    with pytest.raises(FeedbackError) as info:
        record_feedback(
            engine, [FeedbackItem("r0", "no"), FeedbackItem("r9", "no")], classes=classes
        )
    assert info.value.status == 404
    assert [p["code"] for p in info.value.problems] == ["duplicate", "unknown_prediction"]
    result = record_feedback(engine, [FeedbackItem("r0", "no")], classes=classes, overwrite=True)
    assert result.replaced == 1
    assert feedback_rows(engine)["r0"] == ("no", "yes")
    assert labelled_predictions(engine, since=1001.0, until=1003.0) == [
        ("yes", "yes", 1001.0),
        ("no", "yes", 1002.0),
    ]


def test_a_label_stored_by_another_client_meanwhile_is_a_409(
    engine: sa.Engine, postgres_server: PostgresServer
) -> None:
    log_predictions(engine, 2)
    other = psycopg.connect(engine.url.set(drivername="postgresql").render_as_string(False))
    other.execute(
        "INSERT INTO feedback (request_id, row, time, label, source) VALUES ('r1', 0, 0, 'no', 'x')"
    )  # not committed yet: our insert waits on the unique index
    errors: list[FeedbackError] = []

    def send() -> None:
        try:
            record_feedback(engine, [FeedbackItem("r1", "yes")], classes=["no", "yes"])
        except FeedbackError as exc:
            errors.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    time.sleep(0.5)
    other.commit()
    other.close()
    thread.join(15)
    assert [e.status for e in errors] == [409]
    assert feedback_rows(engine) == {"r1": ("no", None)}


def test_alarms_and_metric_points_are_stored_on_postgres(engine: sa.Engine) -> None:
    alarm = {
        "time": 10.0,
        "name": "accuracy_drop",
        "metric": "accuracy",
        "value": 0.7,
        "threshold": 0.8,
        "message": "accuracy 0.70 below 0.80",
        "details": json.dumps({"window": 500}),
    }
    with engine.begin() as conn:
        alarm_id = conn.execute(ALARMS.insert().returning(ALARMS.c.id), [alarm]).scalar_one()
        conn.execute(
            METRIC_POINTS.insert(),
            [{"time": float(t), "name": "accuracy", "value": 0.9 - t / 100} for t in range(5)],
        )
        conn.execute(
            ALARMS.update()
            .where(ALARMS.c.id == alarm_id)
            .values(acknowledged_at=11.0, acknowledged_by="oncall")
        )
    with engine.connect() as conn:
        row = conn.execute(sa.select(ALARMS)).one()
        points = conn.execute(sa.select(METRIC_POINTS.c.value).order_by(METRIC_POINTS.c.time))
        values = list(points.scalars())
    assert (row.state, row.severity, row.acknowledged_by) == ("firing", "warning", "oncall")
    assert json.loads(row.details) == {"window": 500}
    assert values == pytest.approx([0.9, 0.89, 0.88, 0.87, 0.86])


def test_packed_batches_are_read_and_found_by_id_on_postgres(
    engine: sa.Engine, postgres_server: PostgresServer
) -> None:
    from mlcycle.monitor.log_read import logged_labels, snapshot, window_rows
    from tests.monitor.test_log_batches import batch

    plog = PredictionLog(engine, batch_size=40, flush_interval=0.05)
    plog.record([batch([f"b{i}" for i in range(30)], [1] * 30, start=2000.0), *events(5)])
    assert plog.flush(15)
    plog.close()
    with snapshot(engine) as conn:
        rows = window_rows(conn, since=1000.0, until=2010.0)
        assert [r.request_id for r in rows] == [f"r{i}" for i in range(5)] + [
            f"b{i}" for i in range(10)
        ]
        assert logged_labels(conn, ["b3", "r2", "nope"]) == {("b3", 0): "yes", ("r2", 0): "no"}
    # A store whose batches table predates the id filters gets the column on opening.
    url = postgres_server.create_database()
    old = sa.create_engine(url)
    with old.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE prediction_batches (id SERIAL PRIMARY KEY, time_min FLOAT NOT NULL, "
            "time_max FLOAT NOT NULL, model_name VARCHAR(200) NOT NULL, model_version "
            "VARCHAR(100) NOT NULL, stage VARCHAR(100) NOT NULL, rows INTEGER NOT NULL, "
            "request_ids TEXT NOT NULL, payload BYTEA NOT NULL)"
        )
    old.dispose()
    upgraded = connect(url)
    columns = {c["name"] for c in sa.inspect(upgraded).get_columns("prediction_batches")}
    upgraded.dispose()
    assert "id_filter" in columns
