"""The live monitor: watches every prediction the server makes, off the request path.

The server calls :meth:`LiveMonitor.record` (or :meth:`LiveMonitor.record_error`) once
per request, after answering it; that only appends a reference to a bounded queue. A
background thread takes what is queued, in bulk, and

* writes one prediction event per row to the store (:class:`~mlcycle.monitor.store.
  PredictionLog`, itself buffered and written in batches);
* counts predicted classes and confidences for ``/metrics``;
* adds the rows and requests to sliding windows and, every ``window.every`` rows or
  ``window.every_seconds``, computes the window's input, output and software metrics and
  its data and prediction drift against the bundle's profile
  (:mod:`~mlcycle.monitor.window_stats`), sets them as gauges, stores them as metric
  points and hands them to the :class:`Watchers` (alarm rules, streaming detectors,
  online quality).

If the queue is full (the thread fell behind), the request is not recorded and the rows
are counted in ``mlcycle_monitor_events_dropped_total``; serving never waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson
import sqlalchemy as sa

from mlcycle.monitor.encode import RowEncoder
from mlcycle.monitor.images import image_stats
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.monitor.store import FEEDBACK, METRIC_POINTS, PREDICTIONS, PredictionLog
from mlcycle.monitor.window import RequestWindow, RowWindow
from mlcycle.monitor.window_stats import FeatureSpec, WindowResult, feature_specs, window_metrics

__all__ = ["Chunk", "LiveMonitor", "Meta", "ModelFacts", "Watchers"]

log = logging.getLogger("mlcycle.monitor")

#: How often the monitor looks for new feedback in the store (``POST /feedback`` also
#: asks it to look at once).
FEEDBACK_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class ModelFacts:
    """What the monitor needs to know of the served model."""

    name: str
    version: str
    classes: Sequence[str]
    #: Input blocks in the model's order: (block name, is numeric, feature names). An
    #: image block is numeric, with the features ``<image>.brightness`` and
    #: ``<image>.contrast`` (:mod:`mlcycle.monitor.images`).
    blocks: Sequence[tuple[str, bool, Sequence[str]]]
    missing_category: str
    profile: dict[str, Any]
    #: The test-split metrics of the bundle's evaluation (online quality is compared
    #: with them); ``None`` when the bundle has none.
    offline_quality: dict[str, Any] | None = None


class Watchers(Protocol):
    """What looks at each window and each labelled prediction (alarms, detectors)."""

    def on_window(self, result: WindowResult) -> None:
        """A window was evaluated."""

    def on_rows(self, confidence: np.ndarray[Any, Any], latency_ms: float) -> None:
        """Rows were predicted (for streaming detectors)."""

    def on_feedback(self, pairs: Sequence[tuple[str, str]], now: float) -> None:
        """Labelled predictions arrived: ``(predicted, true)`` pairs."""

    def close(self) -> None:
        """Stop (flush sinks)."""


#: One request's facts: (time, request id, latency s, status, error, arm, pipeline id,
#: seconds since the pipeline started).
Meta = tuple[float, str, float, int, "str | None", str, "str | None", "float | None"]


@dataclass
class Chunk:
    """Requests handed over together: their facts, and their arrays joined.

    ``rows[i]`` is request ``i``'s number of predicted rows (0 for a failed request);
    ``inputs`` (per model input) and ``proba`` hold the rows of the answered requests,
    in order.
    """

    meta: list[Meta]
    rows: list[int]
    inputs: dict[str, np.ndarray[Any, Any]]
    proba: np.ndarray[Any, Any] | None

    @property
    def row_count(self) -> int:
        """Predicted rows in the chunk."""
        return sum(self.rows)


def _weight(chunk: Chunk) -> int:
    """What a chunk counts against the queue's capacity: its rows (a failed request: 1)."""
    return sum(r or 1 for r in chunk.rows)


class LiveMonitor:
    """Watches a served model; see the module docstring.

    Parameters
    ----------
    settings
        The ``serve.monitor`` settings.
    model
        The served model's name, version, classes, inputs and profile.
    metrics
        Where the gauges and counters go (:class:`~mlcycle.monitor.live_metrics.
        MonitorMetrics`).
    engine
        The store; ``None`` keeps nothing (metrics and alarms only).
    watchers
        Alarm rules, detectors and quality, called from the monitor thread.
    clock
        Unix time source (tests pass their own).
    """

    def __init__(
        self,
        settings: MonitorSettings,
        model: ModelFacts,
        metrics: Any,
        *,
        engine: sa.Engine | None = None,
        watchers: Watchers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.model = model
        self.metrics = metrics
        self.engine = engine
        self.watchers = watchers
        self.clock = clock
        self.capacity = settings.buffer_capacity
        self.log = (
            PredictionLog(
                engine,
                capacity=settings.buffer_capacity,
                batch_size=settings.write_batch,
                flush_interval=settings.flush_interval,
            )
            if engine is not None
            else None
        )
        self.numeric_names = [f for _, num, fs in model.blocks if num for f in fs]
        self.categorical_names = [f for _, num, fs in model.blocks if not num for f in fs]
        self.feature_names = self.numeric_names + self.categorical_names
        self.specs: dict[str, FeatureSpec] = feature_specs(model.profile, self.feature_names)
        predictions = model.profile.get("predictions") or {}
        self.reference_predictions: dict[str, int] | None = predictions.get("class_counts")
        w = settings.window
        self.rows = RowWindow(
            w.size, numeric=len(self.numeric_names), categorical=len(self.categorical_names)
        )
        self.requests = RequestWindow(w.size)
        self.drift_settings = settings.drift
        self.last: WindowResult | None = None
        self.dropped = 0
        self.evaluations = 0
        self._queue: deque[Chunk] = deque()
        self._queued = 0
        self._rows_since = 0
        self._last_eval = clock()
        self._logged_dropped = 0
        self._logged_written = 0
        self._rng = np.random.default_rng()
        self._encoder = RowEncoder(self.numeric_names, self.categorical_names, model.classes)
        self._eval_lock = threading.Lock()
        self._feedback_seen = 0
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlcycle-monitor", daemon=True)
        self._thread.start()

    # -- the request path -------------------------------------------------------------

    def record(
        self,
        request_id: str,
        inputs: dict[str, np.ndarray[Any, Any]],
        proba: np.ndarray[Any, Any],
        latency: float,
        *,
        arm: str = "champion",
        pipeline_id: str | None = None,
        pipeline_latency: float | None = None,
        at: float | None = None,
    ) -> None:
        """Queue an answered request: its model inputs, probabilities and latency (s).

        ``pipeline_latency`` is the time since its pipeline started (a pipeline stage);
        ``at`` is when it was answered (unix seconds; default now).
        """
        t = self.clock() if at is None else at
        meta: Meta = (t, request_id, latency, 200, None, arm, pipeline_id, pipeline_latency)
        self.record_chunk(Chunk([meta], [len(proba)], dict(inputs), proba))

    def record_error(
        self,
        request_id: str,
        status: int,
        error: str,
        latency: float,
        *,
        arm: str = "champion",
        pipeline_id: str | None = None,
        pipeline_latency: float | None = None,
        at: float | None = None,
    ) -> None:
        """Queue a failed request (no prediction): its status, error and latency (s)."""
        t = self.clock() if at is None else at
        meta: Meta = (t, request_id, latency, status, error, arm, pipeline_id, pipeline_latency)
        self.record_chunk(Chunk([meta], [0], {}, None))

    def record_chunk(self, chunk: Chunk) -> None:
        """Queue many requests at once (what a server worker hands over)."""
        if self._queued >= self.capacity:
            self.dropped += max(chunk.row_count, len(chunk.meta))
            return
        self._queued += _weight(chunk)
        self._queue.append(chunk)

    # -- control ------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued is processed and written; ``True`` if it was."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.005)
        self._idle.clear()
        while not self._idle.wait(0.01) and time.monotonic() < deadline:
            pass
        ok = not self._queue
        if self.log is not None:
            ok = self.log.flush(max(0.0, deadline - time.monotonic())) and ok
        return ok

    def evaluate_now(self) -> WindowResult:
        """Process what is queued and evaluate the window at once (tests, reports)."""
        self.flush()
        with self._eval_lock:
            return self._evaluate(self.clock())

    def close(self, timeout: float = 10.0) -> None:
        """Process what is queued, evaluate the last window, write it all, then stop."""
        self.flush(timeout)
        self._stop.set()
        self._thread.join(timeout)
        if self._rows_since > 0:
            try:
                self._evaluate(self.clock())
            except Exception:
                log.exception("monitor: evaluating the last window failed")
        if self.watchers is not None:
            self.watchers.close()
        if self.log is not None:
            self.log.close(timeout)

    def poll_feedback(self) -> int:
        """Hand feedback stored since the last poll to the watchers; the number of pairs.

        Feedback joins the logged prediction of this model version by request id and row.
        The first poll reads the latest ``window.size`` labelled predictions.
        """
        if self.engine is None:
            return 0
        f, p = FEEDBACK, PREDICTIONS
        query = (
            sa.select(f.c.id, p.c.label, f.c.label)
            .join(p, sa.and_(p.c.request_id == f.c.request_id, p.c.row == f.c.row))
            .where(p.c.model_version == self.model.version, f.c.id > self._feedback_seen)
            .order_by(f.c.id.desc())
            .limit(self.settings.window.size)
        )
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except Exception as exc:
            log.warning("monitor: reading feedback failed: %s", exc)
            return 0
        if not rows:
            return 0
        self._feedback_seen = max(r[0] for r in rows)
        pairs = [(str(pred), str(true)) for _, pred, true in reversed(rows) if pred is not None]
        self.metrics.feedback.inc(len(pairs))
        if self.watchers is not None and pairs:
            with self._eval_lock:
                self.watchers.on_feedback(pairs, self.clock())
        return len(pairs)

    # -- the monitor thread --------------------------------------------------------------

    def _run(self) -> None:
        w = self.settings.window
        last_process = last_feedback = 0.0
        while not self._stop.is_set():
            items = [self._queue.popleft() for _ in range(len(self._queue))]
            self._queued -= sum(_weight(c) for c in items)
            now = self.clock()
            try:
                if items:
                    self._process(items)
                with self._eval_lock:
                    since = now - self._last_eval
                    due = (self._rows_since >= w.every and since >= w.min_seconds) or (
                        self._rows_since > 0 and since >= w.every_seconds
                    )
                    if due:
                        self._evaluate(now)
                if now - last_process >= 1.0:
                    last_process = now
                    self._export_counters()
                if now - last_feedback >= FEEDBACK_POLL_SECONDS:
                    last_feedback = now
                    self.poll_feedback()
            except Exception:  # the monitor must never stop serving, nor itself
                log.exception("monitor: processing %d requests failed", len(items))
            if not items:
                self._idle.set()
                self._stop.wait(0.1)

    def _process(self, chunks: list[Chunk]) -> None:
        meta = [m for c in chunks for m in c.meta]
        counts = np.array([r for c in chunks for r in c.rows], dtype=np.int64)
        times, _, latency, status, _, _, _, since = zip(*meta, strict=True)
        self.requests.add(
            np.array(times, dtype=np.float64),
            np.array(latency, dtype=np.float64),
            np.array(status) >= 400,
            np.array([np.nan if x is None else x for x in since], dtype=np.float64),
        )
        answered = [c for c in chunks if c.proba is not None and len(c.proba)]
        failed = [self._error_row(meta[i]) for i in np.flatnonzero(counts == 0).tolist()]
        if answered:
            self._answered(answered, meta, counts, times, latency)
        if self.log is not None and failed:
            self.log.record(failed)

    def _answered(
        self,
        answered: list[Chunk],
        meta: list[Meta],
        counts: np.ndarray[Any, Any],
        times: tuple[float, ...],
        latency: tuple[float, ...],
    ) -> None:
        proba = np.concatenate([c.proba for c in answered if c.proba is not None])
        numeric, categorical = self._columns(answered, len(proba))
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(proba).all(axis=1)
            predicted = np.where(finite, np.nan_to_num(proba).argmax(axis=1), 0)
            confidence = np.where(finite, proba.max(axis=1, initial=0.0), np.nan)
        owner = np.repeat(np.arange(len(meta)), counts)  # the request of every row
        row_times = np.asarray(times, dtype=np.float64)[owner]
        self.rows.add(row_times, numeric, categorical, predicted, confidence)
        self._rows_since += len(proba)
        shares = np.bincount(predicted[finite], minlength=len(self.model.classes))
        self.metrics.count_classes(
            {c: n for c, n in zip(self.model.classes, shares.tolist(), strict=True) if n}
        )
        if self.watchers is not None:
            ok_latency = np.asarray(latency)[counts > 0]
            self.watchers.on_rows(confidence, float(ok_latency.mean()) * 1000)
        if self.log is not None:
            self.log.record(
                self._rows(meta, counts, owner, numeric, categorical, proba, predicted, confidence)
            )

    def _columns(
        self, chunks: list[Chunk], rows: int
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        num: list[np.ndarray[Any, Any]] = []
        cat: list[np.ndarray[Any, Any]] = []
        for block, numeric, _ in self.model.blocks:
            parts = [c.inputs[block] for c in chunks]
            joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
            if joined.ndim > 2:  # images: their brightness and contrast, not their pixels
                joined = image_stats(joined)
            (num if numeric else cat).append(joined.reshape(rows, -1))
        return (
            np.hstack(num).astype(np.float64) if num else np.empty((rows, 0), np.float64),
            np.hstack(cat).astype(object) if cat else np.empty((rows, 0), object),
        )

    def _rows(
        self,
        meta: list[Meta],
        counts: np.ndarray[Any, Any],
        owner: np.ndarray[Any, Any],
        numeric: np.ndarray[Any, Any],
        categorical: np.ndarray[Any, Any],
        proba: np.ndarray[Any, Any],
        predicted: np.ndarray[Any, Any],
        confidence: np.ndarray[Any, Any],
    ) -> list[tuple[Any, ...]]:
        s, m = self.settings, self.model
        n = len(proba)
        if s.log_features == "all":
            keep = np.ones(n, bool)
        elif s.log_features == "sample":
            keep = self._rng.random(n) < s.feature_sample
        else:
            keep = np.zeros(n, bool)
        features = self._encoder.features(numeric, categorical, keep)
        probabilities = self._encoder.probabilities(proba)
        classes = m.classes
        conf = [None if c != c else c for c in confidence.tolist()]  # NaN: no prediction
        labels = [
            None if c is None else classes[k] for c, k in zip(conf, predicted.tolist(), strict=True)
        ]
        starts = np.cumsum(counts) - counts
        row_in_request = (np.arange(n) - starts[owner]).tolist()
        who = [meta[i] for i in owner.tolist()]
        stage, name, version = s.stage, m.name, m.version
        return [
            (
                w[1], r, w[0], name, version, w[5], stage, w[6], f, label, c, pr, w[2] * 1000.0,
                None if c is not None else "no finite probability",
            )
            for w, r, f, label, c, pr in zip(
                who, row_in_request, features, labels, conf, probabilities, strict=True
            )
        ]  # fmt: skip

    def _error_row(self, m: Meta) -> tuple[Any, ...]:
        t, rid, latency, status, error, arm, pipeline_id, _ = m
        return (
            rid, 0, t, self.model.name, self.model.version, arm, self.settings.stage,
            pipeline_id, None, None, None, None, latency * 1000.0, f"{status}: {error}",
        )  # fmt: skip

    def _evaluate(self, now: float) -> WindowResult:
        w = self.settings.window
        since = now - w.seconds if w.kind == "time" else None
        result = window_metrics(
            self.rows.view(since),
            self.requests.view(since),
            numeric_names=self.numeric_names,
            categorical_names=self.categorical_names,
            classes=self.model.classes,
            specs=self.specs,
            missing_category=self.model.missing_category,
            low_confidence=self.settings.low_confidence,
            drift=self.drift_settings,
            min_rows=w.min_rows,
            reference_predictions=self.reference_predictions,
            now=now,
        )
        self._rows_since = 0
        self._last_eval = now
        self.evaluations += 1
        self.last = result
        for v in result.metrics:
            self.metrics.set_window_value(v.name, v.value, v.labels)
        self._store_points(result)
        if self.watchers is not None:
            self.watchers.on_window(result)
        return result

    def _store_points(self, result: WindowResult) -> None:
        if self.engine is None or not result.metrics:
            return
        rows = [
            {
                "time": result.time,
                "name": v.name,
                "stage": self.settings.stage,
                "model_version": self.model.version,
                "labels": orjson.dumps(v.labels, option=orjson.OPT_SORT_KEYS).decode()
                if v.labels
                else "",
                "value": v.value,
            }
            for v in result.metrics
            if np.isfinite(v.value)
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(METRIC_POINTS.insert(), rows)
        except Exception as exc:  # the store is down: the gauges still have the values
            log.warning("monitor: storing %d metric points failed: %s", len(rows), exc)

    def _export_counters(self) -> None:
        self.metrics.update_process()
        dropped = self.dropped + (self.log.dropped if self.log is not None else 0)
        if dropped > self._logged_dropped:
            self.metrics.dropped.inc(dropped - self._logged_dropped)
            self._logged_dropped = dropped
        written = self.log.written if self.log is not None else 0
        if written > self._logged_written:
            self.metrics.written.inc(written - self._logged_written)
            self._logged_written = written
