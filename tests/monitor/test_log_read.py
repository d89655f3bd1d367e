"""Reading the prediction log from the table and the batches at once (monitor/log_read)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from mlcycle.monitor.log_batches import expand_batches
from mlcycle.monitor.log_read import (
    log_extent,
    logged_labels,
    predicted_classes,
    rows_of_requests,
    snapshot,
    window_rows,
    with_feedback,
)
from mlcycle.monitor.store import (
    FEEDBACK,
    PREDICTION_BATCHES,
    PREDICTIONS,
    PredictionEvent,
    connect,
)
from tests.monitor.test_log_batches import MODEL, batch


def store(tmp_path: Path) -> sa.Engine:
    """Batches r1 (2 rows, t=1000), r2 (failed, t=1001), r3 (t=1002) and q1 (t=2000,
    version 4, shadow arm); table rows t1 (t=1000.5, version 2) and t2 (t=5000)."""
    engine = connect(tmp_path / "m.db")
    proba = np.array([[0.3, 0.7], [0.9, 0.1], [0.6, 0.4]], dtype=np.float32)
    shadow = batch(["q1"], [1], start=2000.0, model=MODEL.__class__(
        "iris", "4", "", ["a", "b"], ["colour"], ["no", "yes"]))  # fmt: skip
    shadow_values = shadow.values()
    with engine.begin() as conn:
        conn.execute(
            PREDICTION_BATCHES.insert(),
            [batch(["r1", "r2", "r3"], [2, 0, 1], proba=proba).values(), shadow_values],
        )
        conn.execute(PREDICTIONS.insert(), [
            PredictionEvent("t1", "iris", "2", time=1000.5, label="no",
                            probabilities={"no": 0.8, "yes": 0.2}).to_row(),
            PredictionEvent("t2", "wine", "1", time=5000.0, label="red").to_row(),
        ])  # fmt: skip
    return engine


def test_a_window_merges_table_and_batch_rows_oldest_first(tmp_path: Path) -> None:
    engine = store(tmp_path)
    with snapshot(engine) as conn:
        rows = window_rows(conn, since=1000.0, until=1002.0)
        keys = [(r.request_id, r.row, r.label, r.error) for r in rows]
        assert keys == [
            ("r1", 0, "yes", None),
            ("r1", 1, "no", None),
            ("t1", 0, "no", None),
            ("r2", 0, None, "422: missing_feature: a is missing"),
        ]
        assert json.loads(rows[0].features or "") == {"a": 0.5, "b": 1.5, "colour": "c0"}
        assert rows[0].latency_ms is not None and abs(rows[0].latency_ms - 2.0) < 1e-9
        assert window_rows(conn, since=1000.0, until=1002.0, features=False)[0].features is None
        assert [r.request_id for r in window_rows(conn, model_version="2")] == ["t1"]
        assert [r.request_id for r in window_rows(conn, model_name="wine")] == ["t2"]
        assert [r.request_id for r in window_rows(conn, since=1500)] == ["q1", "t2"]
        assert window_rows(conn, arms=["shadow"]) == []
        assert window_rows(conn, pipeline_only=True) == []


def test_feedback_is_joined_to_table_and_batch_rows(tmp_path: Path) -> None:
    engine = store(tmp_path)
    with engine.begin() as conn:
        conn.execute(FEEDBACK.insert(), [
            {"request_id": "r1", "row": 1, "time": 3000.0, "label": "yes"},
            {"request_id": "t1", "row": 0, "time": 3000.0, "label": "no"},
        ])  # fmt: skip
    with snapshot(engine) as conn:
        rows = with_feedback(conn, window_rows(conn, until=1001.0))
    assert [(r.request_id, r.row, r.true_label) for r in rows] == [
        ("r1", 0, None), ("r1", 1, "yes"), ("t1", 0, "no"),
    ]  # fmt: skip


def test_look_ups_find_rows_in_batches_and_in_the_table(tmp_path: Path) -> None:
    engine = store(tmp_path)
    with engine.connect() as conn:
        assert logged_labels(conn, ["r1", "r2", "t1", "zz"]) == {
            ("r1", 0): "yes", ("r1", 1): "no", ("r2", 0): None, ("t1", 0): "no",
        }  # fmt: skip
        assert logged_labels(conn, ["r1", "t1"], model_version="2") == {("t1", 0): "no"}
        found = rows_of_requests(conn, ["t1", "r3"], features=False)
        assert [(r.request_id, r.label, r.time) for r in found] == [
            ("t1", "no", 1000.5), ("r3", "no", 1002.0),
        ]  # fmt: skip


def test_extent_and_classes_count_both_places(tmp_path: Path) -> None:
    engine = store(tmp_path)
    with snapshot(engine) as conn:
        assert log_extent(conn) == (7, 1000.0, 5000.0)
        assert log_extent(conn, model_name="iris") == (6, 1000.0, 2000.0)
        assert log_extent(conn, stage="nowhere") == (0, None, None)
        assert predicted_classes(conn) == ["no", "red", "yes"]


def test_a_reader_sees_each_row_once_while_batches_are_expanded(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    packs = [batch([f"b{i}-{k}" for k in range(50)], [1] * 50, start=1000.0 + i).values()
             for i in range(40)]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(PREDICTION_BATCHES.insert(), packs)
    counts: list[int] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            with snapshot(engine) as conn:
                counts.append(len(window_rows(conn, features=False)))

    reader = threading.Thread(target=read)
    reader.start()
    while expand_batches(engine, max_rows=100):
        pass
    stop.set()
    reader.join()
    with snapshot(engine) as conn:
        counts.append(len(window_rows(conn, features=False)))
    assert counts and set(counts) == {2000}
