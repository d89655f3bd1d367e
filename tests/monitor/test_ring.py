"""The ring a worker copies its rows into, and how they reach the monitor process."""

from __future__ import annotations

import json
import pickle
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.monitor import service
from mlcycle.monitor.handover import chunk_of, message_of, pack
from mlcycle.monitor.log_read import snapshot, window_rows
from mlcycle.monitor.ring import PROBA, RingRows, RowRing, receive_views, send_views
from mlcycle.monitor.service import MonitorClient
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.monitor.store import connect
from mlcycle.serve.app import monitor_facts
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ServeSettings


def _request(rid: str, inputs: dict[str, Any] | None, proba: Any, status: int = 200) -> tuple:
    error = None if status == 200 else "bad"
    return (1.0, rid, 0.01, status, error, "champion", None, None, inputs, proba)


def _rows(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    c = np.array([f"c{seed}-{i}" for i in range(n)], dtype=object).reshape(n, 1)
    p = rng.random((n, 2)).astype(np.float32)
    return {"x": x, "c": c}, p


def test_a_request_that_would_wrap_starts_again_at_row_zero_once_that_is_sent() -> None:
    inputs, proba = _rows(3, 0)
    ring = RowRing(5, inputs, proba)
    assert set(ring.blocks) == {"x"}  # text stays with the request
    first = ring.put(inputs, proba)
    assert first == RingRows(0, 3, 3)
    assert ring.put(inputs, proba) is None  # rows 3-4 are too few, rows 0-2 not sent yet
    ring.release(first.end)
    again = ring.put(*_rows(3, 1))
    assert again == RingRows(0, 3, 8)  # rows 3-4 skipped
    assert np.array_equal(ring.view("x", 0, 3), _rows(3, 1)[0]["x"])
    assert np.array_equal(ring.view(PROBA, 0, 3), _rows(3, 1)[1])


def test_rows_of_another_dtype_or_shape_are_not_taken() -> None:
    inputs, proba = _rows(2, 0)
    ring = RowRing(10, inputs, proba)
    assert ring.put({**inputs, "x": inputs["x"].astype(np.float64)}, proba) is None
    assert ring.put({**inputs, "x": np.ones((2, 4), np.float32)}, proba) is None
    assert ring.put({"c": inputs["c"]}, proba) is None
    assert ring.put(inputs, proba) == RingRows(0, 2, 2)  # nothing was half-taken


def test_views_arrive_whole_and_in_order_past_the_socket_buffer_and_iov_max() -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # partial sends
    arrays = [np.arange(k, dtype=np.float64) * 0.5 for k in (1000, 3000, 0, 20, 5000)]
    parts = [(f"p{i}", "<f8", (), len(x)) for i, x in enumerate(arrays)]
    got: dict[str, np.ndarray] = {}
    reader = threading.Thread(target=lambda: got.update(receive_views(b, parts)))
    reader.start()
    # one view per number: 9,020 of them, more than one sendmsg takes (1,024)
    send_views(a, [x[i : i + 1].data.cast("B") for x in arrays for i in range(len(x))])
    reader.join(30)
    a.close()
    b.close()
    assert not reader.is_alive()
    for i, x in enumerate(arrays):
        assert np.array_equal(got[f"p{i}"], x)


def test_the_other_end_closing_mid_message_is_an_eof() -> None:
    a, b = socket.socketpair()
    a.sendall(b"\0" * 8)
    a.close()
    with pytest.raises(EOFError):
        receive_views(b, [("x", "<f8", (3,), 2)])
    b.close()


def test_a_packed_message_with_its_raw_rows_is_the_message_of_the_same_requests() -> None:
    plain, in_ring = [], []
    first_inputs, first_proba = _rows(2, 0)
    ring = RowRing(8, first_inputs, first_proba)
    for i, n in enumerate((2, 1, 3, 0)):
        if n == 0:
            plain.append(_request(f"e{i}", None, None, status=422))
            in_ring.append(plain[-1])
            continue
        inputs, proba = _rows(n, i)
        plain.append(_request(f"r{i}", inputs, proba))
        rows = ring.put(inputs, proba)
        assert rows is not None
        in_ring.append(_request(f"r{i}", {"c": inputs["c"]}, rows))
    message, views, end = pack(in_ring, ["x", "c"], ring)
    assert end == 6 and message["proba"] is None and "x" not in message["inputs"]
    assert len(views) == 2  # x and the probabilities: one run of rows each
    arrived = _arrived(message, views)
    expected, got = chunk_of(message_of(plain, ["x", "c"])), chunk_of(arrived)
    assert got.request_ids == expected.request_ids and got.errors == expected.errors
    assert np.array_equal(got.rows, expected.rows)
    assert np.array_equal(got.proba, expected.proba)
    assert np.array_equal(got.inputs["x"], expected.inputs["x"])
    assert np.array_equal(got.inputs["c"], expected.inputs["c"])


def _arrived(message: dict[str, Any], views: list[memoryview]) -> dict[str, Any]:
    """``message`` as the monitor process has it once its raw rows are read."""
    a, b = socket.socketpair()
    reader_got: dict[str, np.ndarray] = {}
    arrived = pickle.loads(pickle.dumps(message))
    parts = arrived.pop("raw", None)
    reader = threading.Thread(target=lambda: reader_got.update(receive_views(b, parts or [])))
    reader.start()
    send_views(a, views)
    reader.join(30)
    a.close()
    b.close()
    if parts:
        arrived["proba"] = reader_got.pop(PROBA)
        arrived["inputs"].update(reader_got)
    return arrived


def test_requests_in_the_ring_and_with_their_own_arrays_go_together_in_order() -> None:
    inputs, proba = _rows(2, 0)
    ring = RowRing(8, inputs, proba)
    small_inputs, small_proba = _rows(1, 1)  # (small requests keep their own arrays)
    late_inputs, late_proba = _rows(3, 2)
    first, last = ring.put(inputs, proba), ring.put(late_inputs, late_proba)
    assert first is not None and last is not None
    requests = [
        _request("a", {"c": inputs["c"]}, first),
        _request("b", small_inputs, small_proba),
        _request("e", None, None, status=500),
        _request("c", {"c": late_inputs["c"]}, last),
    ]
    message, views, end = pack(requests, ["x", "c"], ring)
    assert end == last.end and "raw" in message and len(views) == 6  # 3 pieces, 2 arrays
    got = chunk_of(_arrived(message, views))
    assert got.rows.tolist() == [2, 1, 0, 3]
    assert np.array_equal(got.inputs["x"], np.vstack([inputs["x"], small_inputs["x"],
                                                      late_inputs["x"]]))  # fmt: skip
    assert np.array_equal(got.proba, np.vstack([proba, small_proba, late_proba]))
    assert got.inputs["c"].ravel().tolist() == [
        *inputs["c"].ravel(),
        *small_inputs["c"].ravel(),
        *late_inputs["c"].ravel(),
    ]


def test_own_arrays_unlike_the_ring_send_the_hand_over_joined_as_before() -> None:
    inputs, proba = _rows(2, 0)
    ring = RowRing(4, inputs, proba)
    rows = ring.put(inputs, proba)
    assert rows is not None
    odd_inputs, odd_proba = _rows(3, 1)
    odd_inputs["x"] = odd_inputs["x"].astype(np.float64)  # not the ring's dtype
    requests = [_request("a", {"c": inputs["c"]}, rows), _request("b", odd_inputs, odd_proba)]
    message, views, end = pack(requests, ["x", "c"], ring)
    assert views == [] and end == rows.end and "raw" not in message
    assert np.array_equal(message["inputs"]["x"], np.vstack([inputs["x"], odd_inputs["x"]]))
    assert np.array_equal(message["proba"], np.vstack([proba, odd_proba]))


def test_what_the_monitor_logs_is_what_was_recorded_while_the_ring_wraps(
    mixed_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RING_MIN_ROWS", 3)  # requests of 1-2 rows keep theirs
    served = ServedModel.load(ServeSettings(bundle=str(mixed_bundle)))
    store = tmp_path / "monitor.db"
    # A 24-row ring: requests of 1-9 rows wrap it again and again. (The monitor holds
    # 24 rows at each step too: a flush every two requests keeps it from dropping any.)
    settings = MonitorSettings(store=str(store), buffer_capacity=24, handover_interval=600.0)
    client = MonitorClient(settings, monitor_facts(served))
    colors, sizes = ["red", "green", "blue"], ["S", "M", "L"]
    expected: dict[tuple[str, int], tuple[dict[str, Any], list[float]]] = {}
    try:
        for i in range(60):
            n = 1 + (i * 7) % 9
            records = [
                {"x0": i + r / 10, "color": colors[(i + r) % 3], "x1": float(r),
                 "size": sizes[i % 3], "x2": -i / 7}
                for r in range(n)
            ]  # fmt: skip
            batch = served.validator.records(records)
            _, proba = served.predict(batch.inputs)
            client.record(f"r{i}", batch.inputs, proba, 0.001)
            if i % 11 == 0:
                client.record_error(f"e{i}", 422, "invalid", 0.001)
            for r in range(n):
                expected[(f"r{i}", r)] = (records[r], proba[r].tolist())
            if i % 2:
                assert client.flush(timeout=30)
        assert client._ring is not None and client._ring._head > 5 * 24  # it wrapped
        assert client.flush(timeout=60)
        assert client.dropped == 0
    finally:
        client.close(timeout=60)
    engine = connect(str(store))
    try:
        with snapshot(engine) as conn:
            everything = window_rows(conn)
            logged = [r for r in everything if r.error is None]
    finally:
        engine.dispose()
    assert len(logged) == len(expected), (len(everything), everything[:2])
    for row in logged:
        record, proba = expected[(row.request_id, row.row)]
        features = json.loads(row.features or "{}")
        assert features["color"] == record["color"] and features["size"] == record["size"]
        assert features["x0"] == pytest.approx(record["x0"], rel=1e-6)
        assert features["x2"] == pytest.approx(record["x2"], rel=1e-6)
        assert list(json.loads(row.probabilities or "{}").values()) == pytest.approx(proba)


def test_the_ring_holds_fewer_rows_when_they_are_wide(
    mixed_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "RING_MAX_BYTES", 1000)
    served = ServedModel.load(ServeSettings(bundle=str(mixed_bundle)))
    settings = MonitorSettings(store=str(tmp_path / "monitor.db"), buffer_capacity=5000)
    client = MonitorClient(settings, monitor_facts(served))
    try:
        row = {"x0": 1.0, "color": "red", "x1": 2.0, "size": "M", "x2": 0.5}
        batch = served.validator.records([row])
        _, proba = served.predict(batch.inputs)
        client.record("r", batch.inputs, proba, 0.001)
        assert client._ring is not None
        assert client._ring.size == 4 * service.RING_MIN_ROWS  # not 5,000 rows
    finally:
        client.close()
