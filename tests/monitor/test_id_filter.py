"""The prediction log's per-batch request-id filters and the stores made before them."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pytest

from mlcycle.monitor.id_filter import _hashes, id_filter, may_hold
from mlcycle.monitor.log_read import logged_labels
from mlcycle.monitor.store import connect
from tests.monitor.test_log_batches import batch


@pytest.mark.parametrize("size", [1, 7, 200, 3000])
def test_a_filter_never_misses_an_id_it_holds(size: int) -> None:
    random = [uuid.uuid4().hex for _ in range(size)]
    sequential = [f"order-{i:07d}" for i in range(size)]
    for ids in (random, sequential):
        f = id_filter(ids)
        assert len(f) >= 8 and len(f) & (len(f) - 1) == 0  # a power of two bytes
        assert all(may_hold([f], [rid])[0] for rid in ids)


def test_a_filter_rarely_lets_an_absent_id_through() -> None:
    filters = [id_filter([uuid.uuid4().hex for _ in range(200)]) for _ in range(300)]
    absent = [uuid.uuid4().hex for _ in range(50)]
    share = np.mean([may_hold(filters, [rid]).mean() for rid in absent])
    assert share < 0.02  # about 1 % at 10 bits an id
    neighbours = id_filter([f"order-{i:07d}" for i in range(200)])
    after = [f"order-{i:07d}" for i in range(200, 2200)]
    assert np.mean([may_hold([neighbours], [rid])[0] for rid in after]) < 0.02


def test_an_id_hashes_the_same_alone_or_among_ids_of_other_lengths() -> None:
    same_length = [uuid.uuid4().hex for _ in range(50)] + ["Ünïcode-ïd-of-32-bytes-ok"]
    mixed = [*same_length, "short", "a-much-longer-request-id-" * 6]
    assert _hashes(same_length[:50]).tolist() == _hashes(mixed)[:50].tolist()
    assert _hashes(mixed[-3:]).tolist() == _hashes(mixed)[-3:].tolist()
    assert len(set(_hashes([f"r{i}" for i in range(10_000)]).tolist())) > 9_980


def test_a_missing_or_malformed_filter_may_hold_anything() -> None:
    assert may_hold([None, b"\x00" * 12, b""], ["x"]).tolist() == [True, True, True]
    assert may_hold([id_filter(["a"])], []).tolist() == [False]


def test_a_store_made_before_the_filters_gets_the_column_and_still_finds_ids(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    packed = batch(["r1", "r2"], [1, 1]).values()
    with sqlite3.connect(path) as db:  # prediction_batches as the previous version made it
        db.execute(
            "CREATE TABLE prediction_batches (id INTEGER PRIMARY KEY, time_min FLOAT NOT NULL, "
            "time_max FLOAT NOT NULL, model_name VARCHAR(200) NOT NULL, model_version "
            "VARCHAR(100) NOT NULL, stage VARCHAR(100) NOT NULL, rows INTEGER NOT NULL, "
            "request_ids TEXT NOT NULL, payload BLOB NOT NULL)"
        )
        columns = ("time_min", "time_max", "model_name", "model_version", "stage", "rows",
                   "request_ids", "payload")  # fmt: skip
        db.execute(
            f"INSERT INTO prediction_batches ({', '.join(columns)}) VALUES (?,?,?,?,?,?,?,?)",
            [packed[c] for c in columns],
        )
    engine = connect(path)
    connect(path).dispose()  # a second opening finds the column there
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO prediction_batches (time_min, time_max, model_name, model_version, "
            "stage, rows, request_ids, payload, id_filter) VALUES (?,?,?,?,?,?,?,?,?)",
            tuple(batch(["r3"], [1]).values().values()),
        )
    with engine.connect() as conn:
        assert logged_labels(conn, ["r2", "r3", "zz"]) == {("r2", 0): "yes", ("r3", 0): "yes"}
