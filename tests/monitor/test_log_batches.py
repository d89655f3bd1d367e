"""The prediction log's packed batches: round trip, expansion exactly once,
``mlcycle monitor expand``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from mlcycle.monitor.log_batches import (
    BatchModel,
    backlog,
    decode_batch,
    expand_batches,
    pack_batch,
)
from mlcycle.monitor.prediction_log import PredictionLog
from mlcycle.monitor.store import (
    PREDICTION_BATCHES,
    PREDICTIONS,
    LogBatch,
    PredictionEvent,
    StoreError,
    connect,
)

MODEL = BatchModel("iris", "3", "", ["a", "b"], ["colour"], ["no", "yes"])


def batch(
    ids: list[str],
    counts: list[int],
    *,
    start: float = 1000.0,
    keep: list[bool] | None = None,
    proba: np.ndarray[Any, Any] | None = None,
    model: BatchModel = MODEL,
) -> LogBatch:
    rows = sum(counts)
    if proba is None:
        proba = np.tile(np.array([[0.3, 0.7]], dtype=np.float32), (rows, 1))
    return pack_batch(
        model,
        times=[start + i for i in range(len(ids))],
        request_ids=ids,
        latency_s=[0.002] * len(ids),
        errors=[None if n else "422: missing_feature: a is missing" for n in counts],
        arms=["champion"] * len(ids),
        pipeline_ids=[None] * len(ids),
        counts=np.array(counts),
        keep=np.array(keep if keep is not None else [True] * rows),
        numeric=np.arange(rows * 2, dtype=np.float64).reshape(rows, 2) + 0.5,
        categorical=np.array([[f"c{i}"] for i in range(rows)], dtype=object).reshape(rows, 1),
        proba=proba,
    )


def table_rows(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = sa.select(PREDICTIONS).order_by(PREDICTIONS.c.id)
        return [dict(r) for r in conn.execute(query).mappings()]


def test_a_batch_expands_to_the_rows_the_table_always_had(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    proba = np.array([[0.3, 0.7], [0.9, 0.1], [np.nan, 0.5]], dtype=np.float32)
    packed = batch(["r1", "r2", "r3"], [2, 0, 1], keep=[True, False, True], proba=proba)
    assert packed.rows == 4  # the failed request is a row too
    with engine.begin() as conn:
        conn.execute(PREDICTION_BATCHES.insert(), [packed.values()])
    assert backlog(engine) == 4
    assert expand_batches(engine) == 4
    assert backlog(engine) == 0
    rows = table_rows(engine)
    got = [(r["request_id"], r["row"], r["label"], r["error"]) for r in rows]
    assert got == [
        ("r1", 0, "yes", None),
        ("r1", 1, "no", None),
        ("r2", 0, None, "422: missing_feature: a is missing"),
        ("r3", 0, None, "no finite probability"),
    ]
    assert json.loads(rows[0]["features"]) == {"a": 0.5, "b": 1.5, "colour": "c0"}
    assert rows[1]["features"] is None  # not kept
    assert json.loads(rows[3]["features"]) == {"a": 4.5, "b": 5.5, "colour": "c2"}
    assert rows[0]["confidence"] == pytest.approx(0.7)
    assert json.loads(rows[0]["probabilities"]) == {"no": 0.3, "yes": 0.7}
    assert rows[0]["latency_ms"] == pytest.approx(2.0)
    assert [r["time"] for r in rows] == [1000.0, 1000.0, 1001.0, 1002.0]
    assert {(r["model_name"], r["model_version"], r["arm"]) for r in rows} == {
        ("iris", "3", "champion")
    }


def test_only_batches_older_than_asked_are_expanded(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    with engine.begin() as conn:
        conn.execute(
            PREDICTION_BATCHES.insert(),
            [batch(["old"], [1], start=100.0).values(), batch(["new"], [1], start=500.0).values()],
        )
    assert expand_batches(engine, older_than=200.0) == 1
    assert [r["request_id"] for r in table_rows(engine)] == ["old"]
    assert backlog(engine) == 1


def test_concurrent_expanders_write_every_row_exactly_once(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    with engine.begin() as conn:
        conn.execute(
            PREDICTION_BATCHES.insert(),
            [batch([f"b{b}-{i}" for i in range(50)], [1] * 50).values() for b in range(40)],
        )
    totals: list[int] = []
    threads = [
        threading.Thread(target=lambda: totals.append(expand_batches(connect(tmp_path / "m.db"))))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(totals) == 2000
    ids = [r["request_id"] for r in table_rows(engine)]
    assert len(ids) == len(set(ids)) == 2000


def test_a_damaged_batch_is_named_and_nothing_is_lost(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    good = batch(["r1"], [1]).values()
    damaged = good | {"payload": good["payload"][:40]}
    with engine.begin() as conn:
        conn.execute(PREDICTION_BATCHES.insert(), [damaged, good])
    with pytest.raises(StoreError, match=r"prediction batch 1 .*cannot be read.*Delete that row"):
        expand_batches(engine)
    assert backlog(engine) == 2  # the transaction was rolled back: both batches are there
    assert table_rows(engine) == []


def test_a_payload_holds_numeric_arrays_only(tmp_path: Path) -> None:
    packed = batch(["r1"], [1])
    payload = packed.payload
    assert b'"<f4"' in payload
    with pytest.raises(StoreError, match="unsupported type '\\|V4'"):
        decode_batch(payload.replace(b'"<f4"', b'"|V4"', 1), packed.request_ids, 7)


def test_the_log_counts_a_batch_as_its_rows_and_writes_it_as_one_row(tmp_path: Path) -> None:
    engine = connect(tmp_path / "m.db")
    plog = PredictionLog(engine, batch_size=10, flush_interval=0.01)
    plog.record([batch([f"r{i}" for i in range(30)], [1] * 30)])
    plog.record([PredictionEvent("single", "iris", "3")])
    assert plog.flush()
    plog.close()
    assert plog.written == 31
    with engine.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(PREDICTION_BATCHES)).scalar() == 1
        )
    assert [r["request_id"] for r in table_rows(engine)] == ["single"]
    assert backlog(engine) == 30


def test_a_full_log_drops_whole_batches_and_counts_their_rows(tmp_path: Path) -> None:
    plog = PredictionLog(connect(tmp_path / "m.db"), capacity=25)
    plog.close()  # the writer has stopped: what is recorded stays in the buffer
    plog.record([batch([f"a{i}" for i in range(10)], [1] * 10)])
    plog.record([batch([f"b{i}" for i in range(10)], [1] * 10)])
    plog.record([batch([f"c{i}" for i in range(10)], [1] * 10)])
    assert (plog.pending, plog.dropped) == (20, 10)


def test_a_batch_bigger_than_the_capacity_is_kept_when_it_is_all_the_log_holds(
    tmp_path: Path,
) -> None:
    plog = PredictionLog(connect(tmp_path / "m.db"), capacity=25)
    plog.close()
    plog.record([batch([f"a{i}" for i in range(10)], [1] * 10)])
    plog.record([batch([f"big{i}" for i in range(30)], [1] * 30)])  # the older one goes
    assert (plog.pending, plog.dropped) == (30, 10)


def test_mlcycle_monitor_expand_moves_every_batch_and_says_how_many(tmp_path: Path) -> None:
    store = tmp_path / "m.db"
    engine = connect(store)
    with engine.begin() as conn:
        conn.execute(
            PREDICTION_BATCHES.insert(),
            [batch(["r1", "r2"], [3, 0]).values(), batch(["r3"], [1]).values()],
        )
    done = subprocess.run(
        [sys.executable, "-m", "mlcycle", "monitor", "expand", "--store", str(store)],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("expanded 5 prediction row(s) into the predictions table")
    assert backlog(engine) == 0 and len(table_rows(engine)) == 5
    missing = subprocess.run(
        [sys.executable, "-m", "mlcycle", "monitor", "expand", "--store", str(tmp_path / "no.db")],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "no monitoring store at" in missing.stderr
