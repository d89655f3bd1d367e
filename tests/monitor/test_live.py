"""The live monitor: events logged off the request path, window metrics, drift, limits."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from mlcycle.monitor.live import LiveMonitor, ModelFacts
from mlcycle.monitor.live_metrics import MonitorMetrics
from mlcycle.monitor.log_batches import backlog, expand_batches
from mlcycle.monitor.log_read import snapshot, window_rows
from mlcycle.monitor.settings import MonitorSettings, WindowSettings
from mlcycle.monitor.store import METRIC_POINTS, PREDICTIONS, connect
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ServeSettings, ValidationSettings
from mlcycle.serve.validation import FeatureBatch


@pytest.fixture(scope="module")
def served(mixed_bundle: Path) -> ServedModel:
    settings = ServeSettings(
        bundle=str(mixed_bundle),
        validation=ValidationSettings(unseen_category="pass"),
    )
    return ServedModel.load(settings)


def facts(model: ServedModel) -> ModelFacts:
    v = model.validator
    return ModelFacts(
        model.name,
        model.version,
        model.classes,
        [(b.name, b.numeric, b.features) for b in v.blocks],
        v.missing_category,
        model.bundle.profile,
    )


def make_monitor(
    model: ServedModel, tmp_path: Path, *, store: bool = True, **changes: Any
) -> tuple[LiveMonitor, CollectorRegistry, sa.Engine | None]:
    window = changes.pop("window", WindowSettings(size=500, every=100, min_rows=50))
    settings = MonitorSettings(window=window, **changes)
    registry = CollectorRegistry()
    engine = connect(tmp_path / "monitor.db") if store else None
    monitor = LiveMonitor(
        settings,
        facts(model),
        MonitorMetrics(registry, model.version, settings.stage),
        engine=engine,
    )
    return monitor, registry, engine


def records(n: int, seed: int = 0, shift: float = 0.0, color: str | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    colors = ["red", "green", "blue"]
    return [
        {
            "x0": float(rng.normal() + shift),
            "color": color or colors[i % 3],
            "x1": float(rng.normal()),
            "size": ["S", "M", "L"][i % 3],
            "x2": float(rng.normal()),
        }
        for i in range(n)
    ]


def predict(monitor: LiveMonitor, model: ServedModel, recs: list[dict], rid: str) -> None:
    batch: FeatureBatch = model.validator.records(recs)
    _, proba = model.predict(batch.inputs)
    monitor.record(rid, batch.inputs, proba, 0.002)


def test_every_row_is_logged_with_features_label_and_confidence(
    served: ServedModel, tmp_path: Path
) -> None:
    monitor, _, engine = make_monitor(served, tmp_path)
    predict(monitor, served, records(3), "req-1")
    monitor.record_error("req-2", 422, "missing_feature: x0 is missing", 0.001)
    monitor.close()
    assert engine is not None
    assert expand_batches(engine) == 4
    with engine.connect() as conn:
        rows = conn.execute(sa.select(PREDICTIONS).order_by(PREDICTIONS.c.id)).mappings().all()
    assert [(r["request_id"], r["row"]) for r in rows] == [
        ("req-1", 0), ("req-1", 1), ("req-1", 2), ("req-2", 0)
    ]  # fmt: skip
    first = rows[0]
    assert json.loads(first["features"]) == pytest.approx(records(3)[0])
    probs = json.loads(first["probabilities"])
    assert set(probs) == set(served.classes)
    assert first["label"] == max(probs, key=probs.get)
    assert first["confidence"] == pytest.approx(max(probs.values()))
    assert first["latency_ms"] == pytest.approx(2.0)
    assert rows[3]["error"].startswith("422: missing_feature") and rows[3]["label"] is None


def test_the_log_is_expanded_once_old_enough_or_when_too_much_waits(
    served: ServedModel, tmp_path: Path
) -> None:
    now = [1000.0]
    settings = MonitorSettings(expand_after=30.0, expand_backlog=8, flush_interval=0.05)
    engine = connect(tmp_path / "monitor.db")
    monitor = LiveMonitor(
        settings,
        facts(served),
        MonitorMetrics(CollectorRegistry(), served.version, ""),
        engine=engine,
        clock=lambda: now[0],
    )
    try:
        predict(monitor, served, records(5), "young")
        assert monitor.flush()
        time.sleep(0.6)  # two expansion rounds of the monitor thread
        assert backlog(engine) == 5  # younger than 30 s, and only 5 rows wait
        now[0] += 31.0
        assert _eventually(lambda: backlog(engine) == 0)
        predict(monitor, served, records(5), "a")
        predict(monitor, served, records(5), "b")  # 10 rows wait: more than 8
        assert monitor.flush()
        assert _eventually(lambda: backlog(engine) == 0)
    finally:
        monitor.close()
    with engine.connect() as conn:
        ids = conn.execute(sa.select(PREDICTIONS.c.request_id)).scalars().all()
    assert sorted(set(ids)) == ["a", "b", "young"] and len(ids) == 15


def test_by_default_the_log_stays_packed_and_is_read_as_it_is(
    served: ServedModel, tmp_path: Path
) -> None:
    monitor, _, engine = make_monitor(served, tmp_path)
    assert engine is not None and monitor.settings.expand_after is None
    try:
        predict(monitor, served, records(5), "packed")
        assert monitor.flush()
        time.sleep(0.6)  # two expansion rounds of the monitor thread, if it expanded
        assert backlog(engine) == 5
    finally:
        monitor.close()
    with snapshot(engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(PREDICTIONS)).scalar() == 0
        rows = window_rows(conn, features=False)
    assert [(r.request_id, r.row) for r in rows] == [("packed", i) for i in range(5)]


def _eventually(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_feature_logging_none_keeps_outputs_only(served: ServedModel, tmp_path: Path) -> None:
    monitor, _, engine = make_monitor(served, tmp_path, log_features="none")
    predict(monitor, served, records(5), "r")
    monitor.close()
    assert engine is not None
    expand_batches(engine)
    with engine.connect() as conn:
        got = conn.execute(sa.select(PREDICTIONS.c.features, PREDICTIONS.c.label)).all()
    assert len(got) == 5 and all(f is None and label for f, label in got)


def test_window_metrics_see_missing_out_of_range_and_unseen_values(
    served: ServedModel, tmp_path: Path
) -> None:
    monitor, registry, _ = make_monitor(served, tmp_path, store=False)
    recs = records(200)
    for i, r in enumerate(recs):
        if i % 4 == 0:
            r["x1"] = None  # 25 % missing
        if i % 10 == 0:
            r["x2"] = 1e6  # 10 % beyond the training maximum
        if i % 5 == 0:
            r["color"] = "purple"  # 20 % unseen (policy "pass")
    predict(monitor, served, recs, "r")
    result = monitor.evaluate_now()
    monitor.close()
    values = {(m.name, m.labels.get("feature")): m.value for m in result.metrics}
    assert values[("input.missing_rate", "x1")] == pytest.approx(0.25)
    assert values[("input.out_of_range_rate", "x2")] == pytest.approx(0.10)
    assert values[("input.unseen_category_rate", "color")] == pytest.approx(0.20)
    assert values[("input.missing_rate", "x0")] == 0.0
    shares = [m.value for m in result.metrics if m.name == "output.class_share"]
    assert sum(shares) == pytest.approx(1.0)
    text = generate_latest(registry).decode()
    assert 'mlcycle_input_missing_rate{feature="x1"' in text
    assert "mlcycle_prediction_confidence_bucket" in text


def test_drift_is_flagged_on_a_shifted_feature_and_not_on_training_like_data(
    served: ServedModel, tmp_path: Path
) -> None:
    monitor, _, _ = make_monitor(served, tmp_path, store=False)
    predict(monitor, served, records(400, seed=1), "calm")
    calm = monitor.evaluate_now()
    assert calm.drift is not None and "x0" not in calm.drift.drifted_features
    predict(monitor, served, records(500, seed=2, shift=3.0), "shifted")
    shifted = monitor.evaluate_now()
    monitor.close()
    assert shifted.drift is not None and "x0" in shifted.drift.drifted_features
    assert "x1" not in shifted.drift.drifted_features
    assert shifted.prediction_drift is not None


def test_window_metrics_are_stored_as_points(served: ServedModel, tmp_path: Path) -> None:
    monitor, _, engine = make_monitor(served, tmp_path)
    predict(monitor, served, records(150), "r")
    monitor.evaluate_now()
    monitor.close()
    assert engine is not None
    with engine.connect() as conn:
        names = {n for (n,) in conn.execute(sa.select(METRIC_POINTS.c.name))}
    assert {"input.missing_rate", "drift.share", "latency_p99_ms", "error_rate"} <= names


def test_a_time_window_forgets_rows_older_than_its_span(
    served: ServedModel, tmp_path: Path
) -> None:
    now = [1000.0]
    settings = MonitorSettings(
        window=WindowSettings(kind="time", seconds=60, size=1000, every=10_000, min_rows=1)
    )
    monitor = LiveMonitor(
        settings,
        facts(served),
        MonitorMetrics(CollectorRegistry(), served.version, ""),
        clock=lambda: now[0],
    )
    predict(monitor, served, records(30), "old")
    monitor.flush()
    now[0] += 120
    predict(monitor, served, records(10), "new")
    result = monitor.evaluate_now()
    monitor.close()
    assert result.rows == 10


def test_a_full_queue_drops_and_counts_without_blocking(
    served: ServedModel, tmp_path: Path
) -> None:
    monitor, registry, _ = make_monitor(served, tmp_path, store=False, buffer_capacity=5)
    monitor._stop.set()
    monitor._thread.join()
    batch = served.validator.records(records(1))
    _, proba = served.predict(batch.inputs)
    start = time.perf_counter()
    for i in range(20_000):
        monitor.record(f"r{i}", batch.inputs, proba, 0.001)
    elapsed = time.perf_counter() - start
    assert monitor.dropped == 20_000 - 5
    assert elapsed / 20_000 < 50e-6  # recording is an append or a count, never a wait
    monitor._export_counters()
    text = generate_latest(registry).decode()
    dropped = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("mlcycle_monitor_events_dropped_total")
    ]
    assert dropped == [20_000 - 5]


def _remove_folder(folder: Path) -> None:
    """Delete ``folder`` and its files; a monitor thread that opens the store meanwhile
    makes SQLite create a file again, so try until the folder is gone."""
    for _ in range(100):
        for f in folder.iterdir():
            f.unlink(missing_ok=True)
        try:
            folder.rmdir()
            return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"{folder} could not be removed")


def test_a_store_that_is_down_does_not_stop_the_monitor(
    served: ServedModel, tmp_path: Path
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    monitor, _, engine = make_monitor(served, folder)
    assert engine is not None and monitor.log is not None
    monitor.log.max_attempts = 1
    engine.dispose()
    _remove_folder(folder)  # the SQLite file and its folder are gone: every write fails
    predict(monitor, served, records(200), "r")
    result = monitor.evaluate_now()
    deadline = time.monotonic() + 20
    while monitor.log.dropped < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    monitor.close(timeout=5)
    assert result.rows == 200  # metrics and drift still computed
    assert monitor.log.failures >= 1 and monitor.log.dropped == 200
