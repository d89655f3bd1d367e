"""Prometheus families for what the live monitor measures.

Window values (:mod:`mlcycle.monitor.window_stats`) become gauges named after them:
``input.missing_rate`` is ``mlcycle_input_missing_rate{feature=...}``, ``drift.score`` is
``mlcycle_drift_score{feature=...}``, ``latency_p99_ms`` is ``mlcycle_window_latency_p99_ms``.
Every family carries ``model_version`` and ``stage`` (the pipeline stage, empty when the
model is not part of one). Families are made the first time a metric is seen, with that
metric's label names; with several workers the gauges keep the most recent value.
"""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

__all__ = ["MonitorMetrics", "family_name"]

_CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
_SOFTWARE = {"latency_p50_ms", "latency_p99_ms", "error_rate", "throughput_rps"}


def family_name(metric: str) -> str:
    """The Prometheus family of a window metric.

    Examples
    --------
    >>> family_name("input.missing_rate"), family_name("error_rate")
    ('mlcycle_input_missing_rate', 'mlcycle_window_error_rate')
    """
    if metric in _SOFTWARE:
        return f"mlcycle_window_{metric}"
    return "mlcycle_" + metric.replace(".", "_")


class MonitorMetrics:
    """The monitor's metrics, in the server's registry.

    Parameters
    ----------
    registry
        The server's registry (``None`` in multiprocess mode, where samples go to files).
    model_version, stage
        Labels on every sample.
    """

    def __init__(
        self, registry: Any, model_version: str, stage: str, *, server_pid: int | None = None
    ) -> None:
        self._registry = registry
        self._base = {"model_version": model_version, "stage": stage}
        self._lock = threading.Lock()
        self._gauges: dict[str, tuple[Gauge, tuple[str, ...]]] = {}
        labels = ["model_version", "stage"]
        self.confidence = Histogram(
            "mlcycle_prediction_confidence",
            "Top class probability of each predicted row.",
            labels,
            buckets=_CONFIDENCE_BUCKETS,
            registry=registry,
        ).labels(model_version, stage)
        self._classes = Counter(
            "mlcycle_predicted_class",
            "Rows predicted as each class.",
            [*labels, "class"],
            registry=registry,
        )
        self._class_children: dict[str, Any] = {}
        self.dropped = Counter(
            "mlcycle_monitor_events_dropped",
            "Prediction events not logged because the monitor or the store fell behind.",
            labels,
            registry=registry,
        ).labels(model_version, stage)
        self.written = Counter(
            "mlcycle_monitor_events_written",
            "Prediction events written to the store.",
            labels,
            registry=registry,
        ).labels(model_version, stage)
        self.feedback = Counter(
            "mlcycle_feedback",
            "Labelled predictions the monitor has seen (ground truth from feedback).",
            labels,
            registry=registry,
        ).labels(model_version, stage)
        self.alarms = Counter(
            "mlcycle_alarms",
            "Alarms raised, by rule name and severity.",
            [*labels, "name", "severity"],
            registry=registry,
        )
        memory = Gauge(
            "mlcycle_process_resident_memory_bytes",
            "Resident memory of the server worker and of its monitor process.",
            ["role", "pid"],
            registry=registry,
            multiprocess_mode="all",
        )
        cpu = Gauge(
            "mlcycle_process_cpu_seconds",
            "CPU time (user + system) used by the server worker and its monitor process.",
            ["role", "pid"],
            registry=registry,
            multiprocess_mode="all",
        )
        pids = {"monitor": os.getpid()}
        if server_pid is not None:
            pids["server"] = server_pid
        self._processes = [
            (pid, memory.labels(role, str(pid)), cpu.labels(role, str(pid)))
            for role, pid in pids.items()
        ]

    def count_classes(self, counts: Mapping[str, int]) -> None:
        """Add predicted-class counts."""
        for name, n in counts.items():
            child = self._class_children.get(name)
            if child is None:
                child = self._classes.labels(*self._base.values(), name)
                self._class_children[name] = child
            child.inc(n)

    def set_window_value(self, metric: str, value: float, labels: Mapping[str, str]) -> None:
        """Set the gauge of a window metric (made on first use)."""
        with self._lock:
            entry = self._gauges.get(metric)
            if entry is None:
                names = tuple(sorted(labels))
                gauge = Gauge(
                    family_name(metric),
                    f"Monitor window value {metric!r} (see mlcycle.monitor.window_stats).",
                    ["model_version", "stage", *names],
                    registry=self._registry,
                    multiprocess_mode="mostrecent",
                )
                entry = (gauge, names)
                self._gauges[metric] = entry
        gauge, names = entry
        if tuple(sorted(labels)) != names:
            return  # a metric always comes with the same label names; ignore a stray one
        gauge.labels(*self._base.values(), *(labels[k] for k in names)).set(value)

    def update_process(self) -> None:
        """Refresh the memory and CPU gauges of the server worker and the monitor."""
        page = os.sysconf("SC_PAGE_SIZE")
        ticks = os.sysconf("SC_CLK_TCK")
        for pid, memory, cpu in self._processes:
            try:  # Linux: /proc; elsewhere only this process's own usage is known
                with open(f"/proc/{pid}/statm", encoding="ascii") as f:
                    memory.set(int(f.read().split()[1]) * page)
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu.set((int(fields[11]) + int(fields[12])) / ticks)
            except (OSError, ValueError, IndexError):
                if pid == os.getpid():
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    memory.set(usage.ru_maxrss * 1024)
                    cpu.set(usage.ru_utime + usage.ru_stime)
