"""Prometheus metrics of the prediction server, correct across worker processes.

With several workers, prometheus-client's multiprocess mode is used: every process writes
its samples to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``GET /metrics`` (answered by
any worker) merges them. ``mlcycle serve`` sets that variable to a fresh folder before
the workers start, since prometheus-client reads it at import. Without it (one process, or
an app built in a test), each app gets a registry of its own.

Metrics (all prefixed ``mlcycle_``):

===============================  =========  ============================================
``requests_total``               counter    route, method, status, model_version
``request_duration_seconds``     histogram  route, model_version
``requests_in_flight``           gauge      (sum over workers)
``batch_rows``                   histogram  rows per onnxruntime call
``predicted_rows_total``         counter    model_version
``model_load_seconds``           gauge      model_version (max over workers)
``monitor_dropped_rows_total``   counter    rows the monitor never saw (its queue was full)
``automation_rows_total``        counter    outcome (automatic, review), mode
``review_decisions_total``       counter    action (label, skip, escalate)
``review_agreement_total``       counter    agree (true, false): labels vs the model's
                                            suggestion (precision = true / (true + false))
===============================  =========  ============================================

``automation_rows_total`` of mode ``full`` is counted by a background thread (about once
a second) from ``predicted_rows_total``, so the full-mode request path does no extra work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE_LATEST", "ServeMetrics", "multiprocess_dir"]

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536)


def multiprocess_dir() -> str | None:
    """The multiprocess folder prometheus-client uses, or ``None``."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


class ServeMetrics:
    """The server's metrics, and the ``/metrics`` exposition.

    Parameters
    ----------
    model_version
        Label value for the served model.
    """

    def __init__(self, model_version: str) -> None:
        self.multiprocess = multiprocess_dir() is not None
        # In multiprocess mode samples live in files; the registry is built per scrape.
        self._registry: CollectorRegistry | None = (
            None if self.multiprocess else CollectorRegistry()
        )
        reg: Any = self._registry
        self.model_version = model_version
        self.requests = Counter(
            "mlcycle_requests",
            "HTTP requests answered, by route template, method, status and model version.",
            ["route", "method", "status", "model_version"],
            registry=reg,
        )
        self.latency = Histogram(
            "mlcycle_request_duration_seconds",
            "Time from request received to response ready, by route template.",
            ["route", "model_version"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "mlcycle_requests_in_flight",
            "Requests being handled right now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        self.batch_rows = Histogram(
            "mlcycle_batch_rows",
            "Rows per onnxruntime call (micro-batches group concurrent requests).",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.rows = Counter(
            "mlcycle_predicted_rows",
            "Rows predicted, by model version.",
            ["model_version"],
            registry=reg,
        )
        self._rows = self.rows.labels(model_version)
        self.monitor_dropped = Counter(
            "mlcycle_monitor_dropped_rows",
            "Predicted rows not handed to the monitor because its queue was full.",
            registry=reg,
        )
        self.automation_rows = Counter(
            "mlcycle_automation_rows",
            "Rows answered automatically or sent to human review, by automation mode.",
            ["outcome", "mode"],
            registry=reg,
        )
        self.review_decisions = Counter(
            "mlcycle_review_decisions",
            "Review decisions taken, by action (label, skip, escalate).",
            ["action"],
            registry=reg,
        )
        self.review_agreement = Counter(
            "mlcycle_review_agreement",
            "Labelled reviews whose model suggestion equals the label (agree=true) or not.",
            ["agree"],
            registry=reg,
        )
        self._children: dict[tuple[str, str, int, str | None], tuple[Any, Any]] = {}
        self._rows_by_version: dict[str, Any] = {}
        self.load_seconds = Gauge(
            "mlcycle_model_load_seconds",
            "Seconds to verify and load the bundle and warm the model up.",
            ["model_version"],
            registry=reg,
            multiprocess_mode="max",
        )

    @property
    def registry(self) -> CollectorRegistry | None:
        """The registry (``None`` in multiprocess mode, where samples go to files)."""
        return self._registry

    def observe(
        self, route: str, method: str, status: int, seconds: float, version: str | None = None
    ) -> None:
        """Count one answered request and its latency (``version``: the model that
        answered, during a rollout; default the champion's)."""
        key = (route, method, status, version)
        children = self._children.get(key)
        if children is None:
            v = version or self.model_version
            children = (
                self.requests.labels(route, method, str(status), v),
                self.latency.labels(route, v),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_rows(self, rows: int, version: str | None = None) -> None:
        """Count predicted rows (of ``version``; default the champion's)."""
        if version is None or version == self.model_version:
            self._rows.inc(rows)
            return
        child = self._rows_by_version.get(version)
        if child is None:
            child = self._rows_by_version[version] = self.rows.labels(version)
        child.inc(rows)

    def predicted_rows(self) -> float:
        """Rows this process predicted so far, every version together."""
        return sum(
            s.value
            for family in self.rows.collect()
            for s in family.samples
            if s.name.endswith("_total")
        )

    def track_in_flight(self, current: Callable[[], int]) -> bool:
        """Read in-flight requests from ``current`` at scrape time (one process only).

        Returns ``False`` in multiprocess mode, where the caller must ``inc`` / ``dec``.
        """
        if self.multiprocess:
            return False
        self.in_flight.set_function(lambda: float(current()))
        return True

    def exposition(self) -> bytes:
        """The metrics in Prometheus text format, merged over workers if there are several."""
        if self._registry is not None:
            return generate_latest(self._registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exit(self) -> None:
        """Tell the multiprocess files this worker is gone (its live gauges drop out)."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
