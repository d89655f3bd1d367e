"""Watchers: windows reach the alarm rules, feedback makes quality and concept drift alarms."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.live import ModelFacts
from mlcycle.monitor.live_metrics import MonitorMetrics
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.monitor.watch import (
    CONCEPT_DRIFT,
    MonitorWatchers,
    build_watchers,
    check_watch_settings,
)
from mlcycle.monitor.window_stats import MetricValue, WindowResult

CLASSES = ["no", "yes"]


def facts(offline: dict[str, float] | None = None) -> ModelFacts:
    return ModelFacts("churn", "3", CLASSES, [("numeric", True, ["a"])], "", {}, offline)


def watchers(settings: MonitorSettings, offline: dict[str, float] | None = None):
    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry, "3", "")
    w = build_watchers(settings, facts(offline), None, metrics)
    assert isinstance(w, MonitorWatchers)
    return w, registry


def test_a_window_metric_over_its_rule_raises_an_alarm() -> None:
    settings = MonitorSettings(
        alarms=[{"name": "drifting", "metric": "drift.share", "threshold": 0.3, "min_samples": 10}]
    )
    w, registry = watchers(settings)
    w.on_window(WindowResult(100.0, 50, 50, [MetricValue("drift.share", 0.1, 50)]))
    assert w.alarms == []
    w.on_window(WindowResult(200.0, 50, 50, [MetricValue("drift.share", 0.6, 50)]))
    assert [(a.name, a.state) for a in w.alarms] == [("drifting", "firing")]
    assert (
        'mlcycle_alarms_total{model_version="3",name="drifting"'
        in generate_latest(registry).decode()
    )


def test_a_rise_in_the_error_stream_raises_a_concept_drift_alarm() -> None:
    w, _ = watchers(MonitorSettings())
    rng = np.random.default_rng(0)
    right = [("yes", "yes") if rng.random() < 0.95 else ("no", "yes") for _ in range(3000)]
    for i in range(0, 3000, 100):
        w.on_feedback(right[i : i + 100], now=float(i))
    assert not [a for a in w.alarms if a.name == CONCEPT_DRIFT]
    wrong = [("yes", "yes") if rng.random() < 0.6 else ("no", "yes") for _ in range(2000)]
    for i in range(0, 2000, 100):
        w.on_feedback(wrong[i : i + 100], now=4000.0 + i)
    concept = [a for a in w.alarms if a.name == CONCEPT_DRIFT]
    assert concept and concept[0].severity == "critical"
    assert "concept drift" in concept[0].message


def test_a_row_stream_detector_sees_a_sample_within_its_rate_and_still_detects_a_change() -> None:
    detectors = [{"metric": "confidence", "max_rate": 100.0, "severity": "info"}]
    w, _ = watchers(MonitorSettings(detectors=detectors))
    now = [0.0]
    w.clock = lambda: now[0]
    adwin = w.detectors[0][1]
    rng = np.random.default_rng(1)
    for _ in range(10):  # 5,000 rows a second for 1 s, handed over every 0.1 s
        w.on_rows(rng.normal(0.9, 0.03, 500), latency_ms=2.0)
        now[0] += 0.1
    # A second's budget at first, then 100 a second (less a rounding of the clock).
    assert 189 <= adwin.width <= 190
    assert not w.alarms
    for _ in range(30):  # confidence falls from 0.9 to 0.7
        w.on_rows(rng.normal(0.7, 0.03, 500), latency_ms=2.0)
        now[0] += 0.1
    assert [a.name for a in w.alarms] == ["adwin:confidence"]
    every, _ = watchers(MonitorSettings(detectors=[{"metric": "confidence", "max_rate": 0}]))
    every.on_rows(rng.normal(0.9, 0.03, 500), latency_ms=2.0)
    assert every.detectors[0][1].width == 500


def test_online_quality_is_compared_with_the_offline_evaluation() -> None:
    offline = {"accuracy": 0.95, "precision_macro": 0.94, "recall_macro": 0.94, "f1_macro": 0.94}
    w, registry = watchers(MonitorSettings(), offline)
    rng = np.random.default_rng(1)
    pairs = [("yes", "yes") if rng.random() < 0.8 else ("no", "yes") for _ in range(400)]
    w.on_feedback(pairs, now=10.0)
    text = generate_latest(registry).decode()
    assert "mlcycle_quality_accuracy{" in text and "mlcycle_quality_accuracy_drop{" in text
    below = [a for a in w.alarms if a.name == "accuracy_below_offline"]
    assert below and below[0].value == pytest.approx(0.95 - w.quality.metrics()["accuracy"])


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"detectors": [{"metric": "temperature"}]}, "serve.monitor.detectors[0].metric"),
        ({"detectors": [{"metric": "error", "method": "kswin"}]}, "method"),
        ({"alarms": [{"name": "x", "metric": "error_rate", "kind": "magic"}]}, "alarms[0].kind"),
        ({"sinks": {"webhook": "http://x"}}, "serve.monitor.sinks"),
    ],
)
def test_bad_rules_detectors_and_sinks_are_clear_config_errors(
    changes: dict[str, object], needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        check_watch_settings(MonitorSettings(**changes))  # type: ignore[arg-type]
