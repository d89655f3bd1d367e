"""What watches the live monitor's numbers: alarm rules, streaming detectors, quality.

:class:`MonitorWatchers` is called from the monitor thread:

* every evaluated window's metrics go to the alarm rules (:class:`~mlcycle.monitor.
  alarms.AlarmManager`);
* predicted rows feed the streaming detectors on ``confidence``, ``low_confidence``
  (1 when the top probability is below ``monitor.low_confidence``) and ``latency_ms``;
* labelled predictions (feedback joined to the log) feed the online quality window
  (accuracy, precision, recall, F1 over the last ``window.size`` labelled rows), the
  comparison with the offline evaluation in the bundle (``quality.<metric>_drop`` =
  offline minus online) and the detectors on ``error`` (1 when the prediction was
  wrong): **concept drift**, which raises an alarm of its own.

Detector alarms are named after the detector (``adwin:error``); the default error
detector's alarm is ``concept_drift``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.alarms import Alarm, AlarmManager, AlarmRule, default_rules, rules_from_config
from mlcycle.monitor.detectors import DetectorSettings, make_detector
from mlcycle.monitor.live import ModelFacts, Watchers
from mlcycle.monitor.quality import QUALITY_METRICS, QualityWindow, quality_drop
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.monitor.sinks import SinkSettings, make_sinks
from mlcycle.monitor.window_stats import WindowResult

__all__ = [
    "CONCEPT_DRIFT",
    "ROW_STREAMS",
    "MonitorWatchers",
    "build_watchers",
    "check_watch_settings",
    "default_detectors",
    "monitor_detectors",
    "monitor_rules",
]

log = logging.getLogger("mlcycle.monitor")

#: Streams a detector can watch: per predicted row, per request, per labelled row.
ROW_STREAMS = ("confidence", "low_confidence", "latency_ms", "error")

#: Alarm name of the default detector on the error stream.
CONCEPT_DRIFT = "concept_drift"


def default_detectors() -> list[DetectorSettings]:
    """ADWIN on the error stream (concept drift) and on the confidence stream."""
    return [
        DetectorSettings(metric="error", method="adwin", severity="critical"),
        DetectorSettings(metric="confidence", method="adwin", severity="info"),
    ]


def monitor_rules(settings: MonitorSettings) -> list[AlarmRule]:
    """The alarm rules of ``settings`` (the defaults when ``alarms`` is null).

    The defaults are :func:`~mlcycle.monitor.alarms.default_rules` plus one comparing
    online accuracy with the offline evaluation: ``quality.accuracy_drop`` above 0.05
    over at least 200 labelled predictions.
    """
    if settings.alarms is not None:
        return rules_from_config(settings.alarms, "serve.monitor.alarms")
    return [
        *default_rules(),
        AlarmRule(
            name="accuracy_below_offline",
            metric="quality.accuracy_drop",
            direction="above",
            threshold=0.05,
            min_samples=200,
            cooldown_seconds=3600.0,
            hysteresis=0.2,
            severity="critical",
        ),
    ]


def monitor_detectors(settings: MonitorSettings) -> list[DetectorSettings]:
    """The detectors of ``settings`` (the defaults when ``detectors`` is null)."""
    if settings.detectors is None:
        return default_detectors()
    out = []
    for i, item in enumerate(settings.detectors):
        d = DetectorSettings.from_mapping(item, f"serve.monitor.detectors[{i}]")
        if d.metric not in ROW_STREAMS:
            raise ConfigError(
                f"serve.monitor.detectors[{i}].metric must be one of {ROW_STREAMS}, "
                f"not {d.metric!r}"
            )
        out.append(d)
    return out


class MonitorWatchers:
    """Alarm rules, detectors and online quality for one served model.

    Parameters
    ----------
    manager
        Evaluates the rules and sends alarms to the sinks.
    detectors
        The streaming detectors' settings.
    model
        The served model (classes, offline evaluation).
    metrics
        Where quality gauges and alarm counts go (``MonitorMetrics``).
    settings
        The monitor settings (window size, low-confidence threshold).
    clock
        Seconds, for the detectors' rate limits (tests pass their own).
    """

    def __init__(
        self,
        manager: AlarmManager,
        detectors: Sequence[DetectorSettings],
        model: ModelFacts,
        metrics: Any,
        settings: MonitorSettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.manager = manager
        self.detectors = [(d, make_detector(d)) for d in detectors]
        self.model = model
        self.metrics = metrics
        self.low_confidence = settings.low_confidence
        self.quality = QualityWindow(settings.window.size, model.classes)
        self.offline = model.offline_quality
        self.alarms: list[Alarm] = []
        self.clock = clock
        self._budgets: dict[int, tuple[float, float]] = {}  # detector: (time, values left)
        self._rng = np.random.default_rng()

    def on_window(self, result: WindowResult) -> None:
        """Give every metric of the window to the alarm rules."""
        for m in result.metrics:
            if np.isfinite(m.value):
                self._count(
                    self.manager.observe(
                        m.name, m.value, samples=m.samples, labels=m.labels, now=result.time
                    )
                )

    def on_rows(self, confidence: np.ndarray[Any, Any], latency_ms: float) -> None:
        """Feed the row and request streams to their detectors (per-row streams sampled
        down to each detector's ``max_rate``)."""
        ok = confidence[np.isfinite(confidence)]
        for k, (d, detector) in enumerate(self.detectors):
            if d.metric == "confidence":
                values = self._sample(k, d, ok).tolist()
            elif d.metric == "low_confidence":
                values = (self._sample(k, d, ok) < self.low_confidence).astype(float).tolist()
            elif d.metric == "latency_ms":
                values = [latency_ms]
            else:
                continue
            self._feed(d, detector, values)

    def _sample(
        self, k: int, d: DetectorSettings, values: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """``values``, or a uniform random sample of them (in order) that keeps detector
        ``k`` within ``max_rate`` values a second (a budget of up to a second's worth)."""
        if d.max_rate <= 0:
            return values
        now = self.clock()
        last, budget = self._budgets.get(k, (now, d.max_rate))
        budget = min(d.max_rate, budget + (now - last) * d.max_rate)
        take = min(len(values), int(budget))
        self._budgets[k] = (now, budget - take)
        if take == len(values):
            return values
        return values[np.sort(self._rng.choice(len(values), take, replace=False))]

    def on_feedback(self, pairs: Sequence[tuple[str, str]], now: float) -> None:
        """Update online quality, compare it with the offline one, feed the error stream."""
        self.quality.extend(pairs)
        errors = [float(pred != true) for pred, true in pairs]
        for d, detector in self.detectors:
            if d.metric == "error":
                self._feed(d, detector, errors)
        q = self.quality.metrics()
        n = int(q["n_samples"])
        values: dict[str, float] = {
            f"quality.{k}": float(q[k]) for k in QUALITY_METRICS if q.get(k) is not None
        }
        if self.offline:
            for k, drop in quality_drop(q, self.offline).items():
                if drop is not None:
                    values[f"quality.{k}_drop"] = float(drop)
        for name, value in values.items():
            self.metrics.set_window_value(name, value, {})
            self._count(self.manager.observe(name, value, samples=n, now=now))

    def close(self) -> None:
        """Deliver pending alarms."""
        self.manager.close()

    def _feed(self, d: DetectorSettings, detector: Any, values: Sequence[float]) -> None:
        for x in values:
            detector.update(x)
            if detector.drift_detected:
                name = CONCEPT_DRIFT if d.metric == "error" else d.name
                what = "the error rate (concept drift)" if d.metric == "error" else d.metric
                estimate = getattr(detector, "estimation", getattr(detector, "mean", x))
                alarm = self.manager.trigger(
                    name,
                    d.metric,
                    float(estimate),
                    f"{d.method} detected a change in {what}; its recent mean is "
                    f"{float(estimate):.4g}",
                    severity=d.severity,
                    details={"detector": d.name},
                )
                self._count([alarm] if alarm is not None else [])

    def _count(self, alarms: Sequence[Alarm]) -> None:
        for a in alarms:
            self.alarms.append(a)
            if a.state == "firing":
                self.metrics.alarms.labels(self.model.version, a.stage, a.name, a.severity).inc()


def build_watchers(
    settings: MonitorSettings, model: ModelFacts, engine: sa.Engine | None, metrics: Any
) -> Watchers:
    """Rules, detectors, sinks and quality from ``settings``.

    Parameters
    ----------
    settings
        The ``serve.monitor`` settings.
    model
        The served model.
    engine
        The store (for the store sink); ``None`` drops that sink.
    metrics
        The monitor's metrics.
    """
    sink_settings = SinkSettings.from_mapping(settings.sinks, "serve.monitor.sinks")
    manager = AlarmManager(
        monitor_rules(settings),
        make_sinks(sink_settings, engine),
        stage=settings.stage,
        model_name=model.name,
        model_version=model.version,
    )
    return MonitorWatchers(manager, monitor_detectors(settings), model, metrics, settings)


def check_watch_settings(settings: MonitorSettings) -> None:
    """Raise a clear ``ConfigError`` now if rules, detectors or sinks are misconfigured."""
    monitor_rules(settings)
    monitor_detectors(settings)
    SinkSettings.from_mapping(settings.sinks, "serve.monitor.sinks")
