"""mlcycle.monitor.alarms: static and adaptive rules fire and resolve once per incident,
per label set, within cooldowns and hysteresis; sinks that fail never reach the caller."""

from __future__ import annotations

import logging
import random
from typing import Any

import numpy as np
import pytest

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.alarms import (
    Alarm,
    AlarmManager,
    AlarmRule,
    default_rules,
    rules_from_config,
)


class ListSink:
    """Keeps what it is sent."""

    def __init__(self) -> None:
        self.alarms: list[Alarm] = []
        self.closed = False

    def send(self, alarm: Alarm) -> None:
        self.alarms.append(alarm)

    def close(self, timeout: float = 5.0) -> None:
        self.closed = True


class BrokenSink:
    def send(self, alarm: Alarm) -> None:
        raise RuntimeError("the pager is down")

    def close(self, timeout: float = 5.0) -> None:
        raise RuntimeError("still down")


def states(alarms: list[Alarm]) -> list[str]:
    return [a.state for a in alarms]


def feed(manager: AlarmManager, metric: str, values: list[float], **kw: Any) -> list[Alarm]:
    out: list[Alarm] = []
    for i, v in enumerate(values):
        out += manager.observe(metric, v, samples=kw.get("samples", 1000), now=i * 60.0)
    return out


def test_a_static_rule_fires_once_and_resolves_once_and_reaches_the_sinks() -> None:
    sink = ListSink()
    rule = AlarmRule(name="errors", metric="error_rate", threshold=0.05, cooldown_seconds=0)
    manager = AlarmManager(
        [rule], [sink], stage="scoring", model_name="churn", model_version="3", clock=lambda: 42.0
    )
    assert manager.observe("error_rate", 0.01, samples=500) == []
    fired = manager.observe("error_rate", 0.08, samples=500)
    assert states(fired) == ["firing"]
    alarm = fired[0]
    assert (alarm.name, alarm.metric, alarm.value, alarm.threshold) == (
        "errors",
        "error_rate",
        0.08,
        0.05,
    )
    assert (alarm.stage, alarm.model_name, alarm.model_version, alarm.time) == (
        "scoring",
        "churn",
        "3",
        42.0,
    )
    assert alarm.message == (
        "error_rate for model churn v3, stage scoring is 0.08, above the threshold 0.05; "
        "window of 500 samples"
    )
    assert manager.observe("error_rate", 0.09, samples=500) == []  # still firing: no repeat
    assert manager.firing() == [alarm]
    resolved = manager.observe("error_rate", 0.02, samples=500)
    assert states(resolved) == ["resolved"]
    assert "back to 0.02, below 0.045" in resolved[0].message
    assert manager.firing() == []
    assert states(sink.alarms) == ["firing", "resolved"]
    assert manager.observe("latency_p99_ms", 1e9, samples=500) == []  # no rule watches it


def test_a_below_rule_fires_when_the_value_drops() -> None:
    rule = AlarmRule(
        name="acc", metric="quality.accuracy", direction="below", threshold=0.8, hysteresis=0.05
    )
    manager = AlarmManager([rule])
    assert states(feed(manager, "quality.accuracy", [0.9, 0.79, 0.83, 0.85])) == [
        "firing",
        "resolved",
    ]


def test_a_value_oscillating_around_the_threshold_does_not_flap() -> None:
    rule = AlarmRule(
        name="errors", metric="error_rate", threshold=0.05, hysteresis=0.2, cooldown_seconds=0
    )
    manager = AlarmManager([rule])
    wobble = [0.049, 0.052, 0.047, 0.053, 0.044, 0.051, 0.048, 0.055] * 10
    assert states(feed(manager, "error_rate", wobble)) == ["firing"]
    # Back inside by the 20 % margin (0.04): resolved, once.
    assert states(feed(manager, "error_rate", [0.041, 0.039, 0.03])) == ["resolved"]


def test_without_hysteresis_the_same_wobble_would_flap() -> None:
    rule = AlarmRule(
        name="errors", metric="error_rate", threshold=0.05, hysteresis=0.0, cooldown_seconds=0
    )
    manager = AlarmManager([rule])
    flaps = feed(manager, "error_rate", [0.049, 0.052, 0.047, 0.053, 0.046])
    assert states(flaps) == ["firing", "resolved", "firing", "resolved"]


def test_the_cooldown_holds_back_a_second_incident_of_the_same_rule_and_labels() -> None:
    rule = AlarmRule(name="errors", metric="error_rate", threshold=0.05, cooldown_seconds=600)
    manager = AlarmManager([rule])
    assert states(manager.observe("error_rate", 0.1, samples=100, now=0)) == ["firing"]
    assert states(manager.observe("error_rate", 0.0, samples=100, now=60)) == ["resolved"]
    assert manager.observe("error_rate", 0.1, samples=100, now=120) == []  # within 600 s
    assert manager.observe("error_rate", 0.0, samples=100, now=180) == []  # nothing to resolve
    assert states(manager.observe("error_rate", 0.1, samples=100, now=600)) == ["firing"]


def test_observations_from_too_few_samples_and_nan_values_are_ignored() -> None:
    rule = AlarmRule(name="errors", metric="error_rate", threshold=0.05, min_samples=50)
    manager = AlarmManager([rule])
    assert manager.observe("error_rate", 1.0, samples=49, now=0) == []
    assert manager.observe("error_rate", float("nan"), samples=500, now=0) == []
    assert states(manager.observe("error_rate", 1.0, samples=50, now=0)) == ["firing"]
    assert manager.observe("error_rate", 0.0, samples=3, now=60) == []  # cannot resolve either
    assert manager.firing()


def test_each_label_set_has_its_own_state() -> None:
    rule = AlarmRule(name="missing", metric="input.missing_rate", threshold=0.2)
    manager = AlarmManager([rule])
    age, city = {"feature": "age"}, {"feature": "city"}
    fired = manager.observe("input.missing_rate", 0.5, samples=100, labels=age, now=0)
    assert states(fired) == ["firing"] and fired[0].labels == age
    assert "input.missing_rate{feature=age} is 0.5" in fired[0].message
    assert states(manager.observe("input.missing_rate", 0.6, samples=100, labels=city, now=1))
    assert manager.observe("input.missing_rate", 0.7, samples=100, labels=age, now=2) == []
    resolved = manager.observe("input.missing_rate", 0.0, samples=100, labels=age, now=3)
    assert states(resolved) == ["resolved"] and resolved[0].labels == age
    assert [a.labels for a in manager.firing()] == [city]


def test_an_adaptive_sigma_rule_learns_its_baseline_then_fires_on_a_spike() -> None:
    rng = random.Random(0)
    rule = AlarmRule(
        name="latency",
        metric="latency_p99_ms",
        kind="adaptive",
        method="sigma",
        k=4,
        baseline_points=30,
        cooldown_seconds=0,
    )
    manager = AlarmManager([rule])
    baseline = [rng.gauss(100, 5) for _ in range(30)]
    assert feed(manager, "latency_p99_ms", baseline) == []  # learning, even the tail
    mean = sum(baseline) / 30
    std = (sum((x - mean) ** 2 for x in baseline) / 29) ** 0.5
    assert feed(manager, "latency_p99_ms", [mean + 3.9 * std]) == []
    fired = manager.observe("latency_p99_ms", mean + 4.1 * std, samples=500, now=1e4)
    assert states(fired) == ["firing"]
    threshold = fired[0].threshold
    assert threshold is not None
    assert fired[0].details["baseline_points"] == 30
    assert "adaptive threshold" in fired[0].message and "4 x std" in fired[0].message
    assert manager.observe("latency_p99_ms", mean, samples=500, now=2e4)[0].state == "resolved"


def test_an_adaptive_rule_cannot_fire_while_it_learns() -> None:
    rule = AlarmRule(name="lat", metric="latency_p99_ms", kind="adaptive", baseline_points=5)
    manager = AlarmManager([rule])
    assert feed(manager, "latency_p99_ms", [10, 11, 10, 1000]) == []
    assert states(feed(manager, "latency_p99_ms", [12, 1e6])) == ["firing"]


def test_an_adaptive_quantile_rule_fires_beyond_the_baseline_quantile() -> None:
    rule = AlarmRule(
        name="low_confidence",
        metric="output.low_confidence_rate",
        kind="adaptive",
        method="quantile",
        quantile=0.9,
        baseline_points=11,
        hysteresis=0.0,
        cooldown_seconds=0,
    )
    manager = AlarmManager([rule])
    feed(
        manager,
        "output.low_confidence_rate",
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    )
    # The 0.9 quantile of 0, 0.1, ..., 1.0 is 0.9.
    assert manager.observe("output.low_confidence_rate", 0.9, samples=10, now=1e5) == []
    fired = manager.observe("output.low_confidence_rate", 0.95, samples=10, now=2e5)
    assert states(fired) == ["firing"] and fired[0].threshold == pytest.approx(0.9)


def test_a_below_quantile_rule_defaults_to_the_low_quantile() -> None:
    rule = AlarmRule(
        name="acc",
        metric="quality.accuracy",
        direction="below",
        kind="adaptive",
        method="quantile",
        baseline_points=101,
    )
    manager = AlarmManager([rule])
    feed(manager, "quality.accuracy", [0.8 + i / 1000 for i in range(101)])
    fired = manager.observe("quality.accuracy", 0.79, samples=100, now=1e6)
    assert fired[0].threshold == pytest.approx(0.801)


def test_a_baseline_without_spread_is_bounded_by_the_rule_s_threshold() -> None:
    """Always 0 % missing: mean + k * std is 0, so the static threshold is the floor."""
    rule = AlarmRule(
        name="missing",
        metric="input.missing_rate",
        kind="adaptive",
        threshold=0.05,
        baseline_points=10,
        cooldown_seconds=0,
    )
    manager = AlarmManager([rule])
    assert feed(manager, "input.missing_rate", [0.0] * 10 + [0.01, 0.04, 0.05]) == []
    assert states(feed(manager, "input.missing_rate", [0.06])) == ["firing"]


def test_min_change_keeps_the_adaptive_threshold_away_from_the_mean() -> None:
    rule = AlarmRule(
        name="lat",
        metric="latency_p99_ms",
        kind="adaptive",
        k=1,
        min_change=0.5,
        baseline_points=4,
    )
    manager = AlarmManager([rule])
    feed(manager, "latency_p99_ms", [10.0, 10.0, 10.0, 10.0])
    assert manager.observe("latency_p99_ms", 15.0, samples=1, now=1e6) == []
    assert manager.observe("latency_p99_ms", 15.1, samples=1, now=2e6)[0].threshold == 15.0


def test_values_of_an_incident_do_not_enter_the_adaptive_baseline() -> None:
    rule = AlarmRule(
        name="lat", metric="latency_p99_ms", kind="adaptive", baseline_points=5, cooldown_seconds=0
    )
    manager = AlarmManager([rule])
    feed(manager, "latency_p99_ms", [10, 11, 9, 10, 10])
    first = manager.observe("latency_p99_ms", 100, samples=1, now=1000)
    for t in range(20):  # a long incident: the threshold must not creep up to it
        assert manager.observe("latency_p99_ms", 100, samples=1, now=1001 + t) == []
    resolved = manager.observe("latency_p99_ms", 10, samples=1, now=2000)
    assert states(resolved) == ["resolved"] and resolved[0].threshold == first[0].threshold


def test_trigger_raises_event_alarms_within_the_cooldown_once() -> None:
    sink = ListSink()
    manager = AlarmManager([], [sink], event_cooldown_seconds=100, clock=lambda: 5.0)
    alarm = manager.trigger("adwin:error", "error", 1.0, "ADWIN saw the error rate change")
    assert alarm is not None and alarm.state == "firing" and alarm.time == 5.0
    assert alarm.details["event"] is True
    assert manager.trigger("adwin:error", "error", 1.0, "again", now=50) is None
    other = manager.trigger("adwin:error", "error", 1.0, "other", labels={"arm": "b"}, now=50)
    assert other is not None
    assert manager.trigger("adwin:error", "error", 1.0, "later", now=105) is not None
    assert [a.message for a in sink.alarms] == ["ADWIN saw the error rate change", "other", "later"]
    with pytest.raises(ConfigError, match="severity"):
        manager.trigger("x", "y", 1.0, "z", severity="page")


def test_a_failing_sink_is_logged_and_never_raises_into_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = ListSink()
    rule = AlarmRule(name="errors", metric="error_rate", threshold=0.05)
    manager = AlarmManager([rule], [BrokenSink(), good])
    with caplog.at_level(logging.ERROR, logger="mlcycle.monitor.alarms"):
        fired = manager.observe("error_rate", 0.5, samples=10, now=0)
        manager.close()
    assert states(fired) == ["firing"] and states(good.alarms) == ["firing"]
    assert manager.sink_failures == 1
    assert "the pager is down" in caplog.text and good.closed


def test_the_default_rules_stay_quiet_on_stationary_traffic() -> None:
    rng = np.random.default_rng(2024)
    manager = AlarmManager(default_rules())
    alarms: list[Alarm] = []
    for i in range(2000):
        now = i * 30.0
        latencies = rng.lognormal(3, 0.5, size=500)
        values: list[tuple[str, float, int, dict[str, str]]] = [
            ("error_rate", rng.binomial(1000, 0.01) / 1000, 1000, {}),
            ("latency_p99_ms", float(np.quantile(latencies, 0.99)), 500, {}),
            ("drift.share", float(rng.choice([0.0, 0.0, 0.25])), 1000, {}),
            ("quality.accuracy", rng.binomial(500, 0.9) / 500, 500, {}),
        ]
        for feature, rate in (("age", 0.0), ("city", 0.02), ("income", 0.2)):
            missing = rng.binomial(1000, rate) / 1000
            values.append(("input.missing_rate", missing, 1000, {"feature": feature}))
        for metric, value, samples, labels in values:
            alarms += manager.observe(metric, value, samples=samples, labels=labels, now=now)
    assert alarms == []


def test_the_default_rules_fire_on_real_incidents() -> None:
    manager = AlarmManager(default_rules())
    for i in range(60):
        manager.observe("latency_p99_ms", 50 + (i % 5), samples=500, now=i)
        manager.observe("quality.accuracy", 0.9 + (i % 3) / 100, samples=500, now=i)
    assert states(manager.observe("error_rate", 0.2, samples=1000, now=100)) == ["firing"]
    assert states(manager.observe("latency_p99_ms", 250, samples=500, now=100)) == ["firing"]
    assert states(manager.observe("quality.accuracy", 0.6, samples=500, now=100)) == ["firing"]
    assert states(manager.observe("drift.share", 0.75, samples=1000, now=100)) == ["firing"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "a", "metric": "m", "kind": "dynamic"}, "monitor.alarms[2].kind must be one of"),
        ({"name": "a", "metric": "m"}, "monitor.alarms[2].threshold is required for a static"),
        ({"name": "a", "metric": "m", "threshold": "high"}, "monitor.alarms[2].threshold must"),
        ({"name": "a", "metric": "m", "threshold": 1, "tresh": 1}, "unknown setting(s) ['tresh']"),
        ({"metric": "m", "threshold": 1}, "monitor.alarms[2].name is required"),
        ({"name": "a", "metric": "m", "threshold": 1, "direction": "up"}, "direction must be"),
        ({"name": "a", "metric": "m", "threshold": 1, "severity": "page"}, "severity must be"),
        ({"name": "a", "metric": "m", "threshold": 1, "hysteresis": 1.5}, "hysteresis must be"),
        ({"name": "a", "metric": "m", "kind": "adaptive", "quantile": 2}, "quantile must be"),
        (
            {"name": "a", "metric": "m", "kind": "adaptive", "baseline_points": 1},
            "monitor.alarms[2].baseline_points must be at least 2",
        ),
        ({"name": "a", "metric": "m", "threshold": 1, "min_samples": 1.5}, "min_samples must"),
        ("errors", "monitor.alarms[2] must be a mapping"),
    ],
)
def test_bad_rules_are_config_errors_naming_the_key_path(entry: Any, message: str) -> None:
    good = {"name": "ok", "metric": "error_rate", "threshold": 0.1}
    with pytest.raises(ConfigError) as info:
        rules_from_config([good, {**good, "name": "ok2"}, entry])
    assert message in str(info.value)


def test_rules_from_config_build_rules_and_reject_repeated_names() -> None:
    rules = rules_from_config(
        [
            {"name": "errors", "metric": "error_rate", "threshold": 1},
            {"name": "lat", "metric": "latency_p99_ms", "kind": "adaptive", "k": 3},
        ]
    )
    assert rules[0].threshold == 1.0 and isinstance(rules[0].threshold, float)
    assert (rules[1].kind, rules[1].k, rules[1].method) == ("adaptive", 3.0, "sigma")
    with pytest.raises(ConfigError, match=r"monitor.alarms\[1\].name 'errors' is used"):
        rules_from_config([{"name": "errors", "metric": "a", "threshold": 1}] * 2)
    with pytest.raises(ConfigError, match="must be a list"):
        rules_from_config("errors")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unique"):
        AlarmManager([rules[0], rules[0]])


def test_an_alarm_is_json_ready() -> None:
    import json

    rule = AlarmRule(name="errors", metric="error_rate", threshold=0.05)
    alarm = AlarmManager([rule]).observe(
        "error_rate", 0.1, samples=10, labels={"arm": "b"}, now=1.0
    )[0]
    data = json.loads(json.dumps(alarm.to_dict()))
    assert data["labels"] == {"arm": "b"} and data["details"]["samples"] == 10
    assert data["state"] == "firing" and data["severity"] == "warning"
