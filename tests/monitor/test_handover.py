"""The hand-over to the monitor: queued requests become columns and back, losslessly."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np

from mlcycle.monitor.handover import chunk_of, join_chunks, message_of


def answered(rid: str, rows: int, t: float = 1.0, **extra: Any) -> tuple[Any, ...]:
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) + t
    p = np.full((rows, 2), 0.5, np.float32)
    return (t, rid, 0.01, 200, None, extra.get("arm", "champion"), extra.get("pipeline"),
            extra.get("since"), {"x": x, "c": np.array([["a"]] * rows, object)}, p)  # fmt: skip


def failed(rid: str, t: float = 2.0) -> tuple[Any, ...]:
    return (t, rid, 0.02, 422, "missing_feature: x", "champion", None, None, None, None)


def test_a_message_pickles_and_turns_back_into_the_same_requests() -> None:
    requests = [answered("a", 2), failed("b"), answered("c", 1, t=3.0, arm="challenger",
                                                       pipeline="p1", since=0.5)]  # fmt: skip
    chunk = chunk_of(pickle.loads(pickle.dumps(message_of(requests, ["x", "c"]))))
    assert len(chunk) == 3 and chunk.row_count == 3 and chunk.weight == 4
    assert chunk.request_ids == ["a", "b", "c"]
    assert chunk.times.tolist() == [1.0, 2.0, 3.0]
    assert chunk.status.tolist() == [200, 422, 200]
    assert chunk.errors == [None, "missing_feature: x", None]
    assert chunk.arms == ["champion", "champion", "challenger"]
    assert chunk.pipeline_ids == [None, None, "p1"]
    assert np.isnan(chunk.pipeline_latency[:2]).all() and chunk.pipeline_latency[2] == 0.5
    assert chunk.rows.tolist() == [2, 0, 1]
    assert chunk.inputs["x"].shape == (3, 3) and chunk.inputs["x"][2, 0] == 3.0
    assert chunk.inputs["c"].tolist() == [["a"], ["a"], ["a"]]
    assert chunk.proba is not None and chunk.proba.shape == (3, 2)


def test_shared_values_are_sent_once() -> None:
    message = message_of([answered(f"r{i}", 1) for i in range(50)], ["x", "c"])
    assert message["arms"] == "champion"
    assert message["errors"] is None and message["pipeline_ids"] is None
    assert message["pipeline_latency"] is None


def test_chunks_join_in_order_and_a_chunk_of_failures_has_no_rows() -> None:
    only_failed = chunk_of(message_of([failed("f1"), failed("f2")], ["x", "c"]))
    assert only_failed.proba is None and only_failed.inputs == {} and only_failed.weight == 2
    first = chunk_of(message_of([answered("a", 2)], ["x", "c"]))
    last = chunk_of(message_of([answered("b", 1, t=5.0)], ["x", "c"]))
    joined = join_chunks([first, only_failed, last])
    assert joined.request_ids == ["a", "f1", "f2", "b"]
    assert joined.rows.tolist() == [2, 0, 0, 1]
    assert joined.inputs["x"][:, 0].tolist() == [1.0, 4.0, 5.0]
    assert joined.proba is not None and len(joined.proba) == 3
    assert join_chunks([first]) is first
