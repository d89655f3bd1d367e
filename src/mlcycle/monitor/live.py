"""The live monitor: watches every prediction the server makes, off the request path.

The server calls :meth:`LiveMonitor.record` (or :meth:`LiveMonitor.record_error`) once
per request, after answering it; that only appends a reference to a bounded queue. A
background thread takes what is queued, in bulk, and

* writes what it took as one packed batch of the prediction log
  (:class:`~mlcycle.monitor.prediction_log.PredictionLog`, itself buffered and written
  by a thread of its own);
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

from mlcycle.monitor.handover import ANSWERED, Chunk, chunk_of, join_chunks, message_of
from mlcycle.monitor.images import image_stats
from mlcycle.monitor.log_batches import (
    BatchModel,
    backlog,
    expand_batches,
    pack_batch,
    predicted_labels,
)
from mlcycle.monitor.log_read import logged_labels
from mlcycle.monitor.prediction_log import PredictionLog
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.monitor.store import FEEDBACK, METRIC_POINTS
from mlcycle.monitor.window import RequestWindow, RowWindow
from mlcycle.monitor.window_stats import FeatureSpec, WindowResult, feature_specs, window_metrics

__all__ = ["Chunk", "LiveMonitor", "ModelFacts", "Watchers"]

log = logging.getLogger("mlcycle.monitor")

#: How often the monitor expands old batches of the prediction log, and how many rows at
#: most each time (so that a long backlog never holds up the requests coming in).
EXPAND_EVERY = 0.25
EXPAND_ROWS = 5000
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
        self._batch_model = BatchModel(
            model.name,
            model.version,
            settings.stage,
            self.numeric_names,
            self.categorical_names,
            [str(c) for c in model.classes],
        )
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
        if self._queued >= self.capacity:  # full: a count, not a message built and dropped
            self.dropped += len(proba)
            return
        t = self.clock() if at is None else at
        request = (t, request_id, latency, ANSWERED, None, arm, pipeline_id, pipeline_latency,
                   inputs, proba)  # fmt: skip
        self.record_chunk(chunk_of(message_of([request], list(inputs))))

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
        if self._queued >= self.capacity:
            self.dropped += 1
            return
        t = self.clock() if at is None else at
        request = (t, request_id, latency, status, error, arm, pipeline_id, pipeline_latency,
                   None, None)  # fmt: skip
        self.record_chunk(chunk_of(message_of([request], [])))

    def record_chunk(self, chunk: Chunk) -> None:
        """Queue many requests at once (what a server worker hands over)."""
        if self._queued >= self.capacity:
            self.dropped += chunk.weight
            return
        self._queued += chunk.weight
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
        try:
            with self.engine.connect() as conn:
                newest, rows = self._new_feedback(conn)
        except Exception as exc:
            log.warning("monitor: reading feedback failed: %s", exc)
            return 0
        if newest is None:
            return 0
        self._feedback_seen = newest
        pairs = [(str(pred), str(true)) for pred, true in reversed(rows) if pred is not None]
        self.metrics.feedback.inc(len(pairs))
        if self.watchers is not None and pairs:
            with self._eval_lock:
                self.watchers.on_feedback(pairs, self.clock())
        return len(pairs)

    def _new_feedback(self, conn: sa.Connection) -> tuple[int | None, list[tuple[Any, str]]]:
        """The newest feedback id, and up to ``window.size`` ``(predicted, true)`` pairs of
        this model version's predictions among the feedback since the last poll, newest
        first."""
        f, size = FEEDBACK, self.settings.window.size
        newest: int | None = None
        pairs: list[tuple[Any, str]] = []
        before: int | None = None
        while len(pairs) < size:
            query = sa.select(f.c.id, f.c.request_id, f.c.row, f.c.label).where(
                f.c.id > self._feedback_seen
            )
            if before is not None:
                query = query.where(f.c.id < before)
            page = conn.execute(query.order_by(f.c.id.desc()).limit(1000)).all()
            if not page:
                break
            newest = page[0][0] if newest is None else newest
            before = page[-1][0]
            ids = {rid for _, rid, _, _ in page}
            predicted = logged_labels(conn, ids, model_version=self.model.version)
            pairs += [
                (predicted[(rid, row)], str(true))
                for _, rid, row, true in page
                if (rid, row) in predicted
            ]
        return newest, pairs[:size]

    # -- the monitor thread --------------------------------------------------------------

    def _run(self) -> None:
        w = self.settings.window
        last_process = last_feedback = last_expand = 0.0
        while not self._stop.is_set():
            items = [self._queue.popleft() for _ in range(len(self._queue))]
            self._queued -= sum(c.weight for c in items)
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
                if time.monotonic() - last_expand >= EXPAND_EVERY:
                    last_expand = time.monotonic()
                    self._expand(now)
            except Exception:  # the monitor must never stop serving, nor itself
                log.exception("monitor: processing %d requests failed", len(items))
            if not items:
                self._idle.set()
                self._stop.wait(0.1)

    def _process(self, chunks: list[Chunk]) -> None:
        c = join_chunks(chunks)
        self.requests.add(c.times, c.latency, c.status >= 400, c.pipeline_latency)
        rows = c.row_count
        if c.proba is not None and rows:
            proba = c.proba
            numeric, categorical = self._columns(c.inputs, rows)
            self._answered(proba, numeric, categorical, c.rows, c.times, c.latency)
        else:
            proba = np.empty((0, len(self.model.classes)), np.float32)
            numeric = np.empty((0, len(self.numeric_names)), np.float64)
            categorical = np.empty((0, len(self.categorical_names)), object)
        if self.log is None:
            return
        errors: list[str | None] = [None] * len(c)
        for i in np.flatnonzero(c.rows == 0).tolist():
            errors[i] = f"{c.status[i]}: {c.errors[i]}"
        self.log.record([
            pack_batch(
                self._batch_model, times=c.times, request_ids=c.request_ids,
                latency_s=c.latency, errors=errors, arms=c.arms, pipeline_ids=c.pipeline_ids,
                counts=c.rows, keep=self._keep(rows), numeric=numeric,
                categorical=categorical, proba=proba,
            )
        ])  # fmt: skip

    def _answered(
        self,
        proba: np.ndarray[Any, Any],
        numeric: np.ndarray[Any, Any],
        categorical: np.ndarray[Any, Any],
        counts: np.ndarray[Any, Any],
        times: np.ndarray[Any, Any],
        latency: np.ndarray[Any, Any],
    ) -> None:
        finite, predicted, confidence = predicted_labels(proba)
        owner = np.repeat(np.arange(len(counts)), counts)  # the request of every row
        self.rows.add(times[owner], numeric, categorical, predicted, confidence)
        self._rows_since += len(proba)
        shares = np.bincount(predicted[finite], minlength=len(self.model.classes))
        self.metrics.count_classes(
            {c: n for c, n in zip(self.model.classes, shares.tolist(), strict=True) if n}
        )
        if self.watchers is not None:
            self.watchers.on_rows(confidence, float(latency[counts > 0].mean()) * 1000)

    def _columns(
        self, inputs: dict[str, np.ndarray[Any, Any]], rows: int
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        num: list[np.ndarray[Any, Any]] = []
        cat: list[np.ndarray[Any, Any]] = []
        for block, numeric, _ in self.model.blocks:
            joined = inputs[block]
            if joined.ndim > 2:  # images: their brightness and contrast, not their pixels
                joined = image_stats(joined)
            (num if numeric else cat).append(joined.reshape(rows, -1))
        return (
            np.hstack(num).astype(np.float64) if num else np.empty((rows, 0), np.float64),
            np.hstack(cat).astype(object) if cat else np.empty((rows, 0), object),
        )

    def _keep(self, rows: int) -> np.ndarray[Any, Any]:
        """Which rows' features the log keeps (``log_features``)."""
        s = self.settings
        if s.log_features == "all":
            return np.ones(rows, bool)
        if s.log_features == "sample":
            return np.asarray(self._rng.random(rows) < s.feature_sample)
        return np.zeros(rows, bool)

    def _expand(self, now: float) -> None:
        """Expand the log's batches once they are old enough or too many wait (for SQL of
        your own: mlcycle's readers read the batches as they are)."""
        s = self.settings
        if self.engine is None or s.expand_after is None:
            return
        try:
            if s.expand_after <= 0 or backlog(self.engine) > s.expand_backlog:
                expand_batches(self.engine, max_rows=EXPAND_ROWS)
            else:
                expand_batches(self.engine, older_than=now - s.expand_after, max_rows=EXPAND_ROWS)
        except Exception as exc:  # the store is down or busy: the batches wait
            log.warning("monitor: expanding the prediction log failed: %s", exc)

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
