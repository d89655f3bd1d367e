"""mlcycle.monitor.detectors: the pure-Python ADWIN and Page-Hinkley flag drift at exactly
the indices river's do, on the same seeded streams; the settings reject bad config."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.detectors import (
    ADWIN,
    DetectorSettings,
    PageHinkley,
    make_detector,
)

river_drift = pytest.importorskip("river.drift")


def detections(detector: Any, stream: Sequence[float]) -> list[int]:
    found = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            found.append(i)
    return found


def stationary(rng: random.Random) -> list[float]:
    return [rng.gauss(0, 1) for _ in range(20_000)]


def abrupt_mean_shift(rng: random.Random) -> list[float]:
    return [rng.gauss(0, 1) for _ in range(5000)] + [rng.gauss(1, 1) for _ in range(5000)]


def gradual_shift(rng: random.Random) -> list[float]:
    return [rng.gauss(2 * min(max((i - 3000) / 4000, 0), 1), 1) for i in range(10_000)]


def error_rate_change(rng: random.Random) -> list[float]:
    before = [float(rng.random() < 0.05) for _ in range(8000)]
    return before + [float(rng.random() < 0.15) for _ in range(8000)]


def repeated_shifts(rng: random.Random) -> list[float]:
    low: list[float] = [0.0, 1.0]
    high: list[float] = [4.0, 5.0, 6.0, 7.0]
    return (
        rng.choices(low, k=1000)
        + rng.choices(high, k=1000)
        + rng.choices(low, k=1000)
        + rng.choices(high, k=1000)
    )


def skewed_latencies(rng: random.Random) -> list[float]:
    return [rng.lognormvariate(3, 0.5) for _ in range(10_000)]


STREAMS: list[Callable[[random.Random], list[float]]] = [
    stationary,
    abrupt_mean_shift,
    gradual_shift,
    error_rate_change,
    repeated_shifts,
    skewed_latencies,
]

ADWIN_PARAMS: list[dict[str, Any]] = [
    {},
    {"clock": 1},
    {"delta": 0.1, "min_window_length": 1, "grace_period": 0},
    {"delta": 0.0001, "max_buckets": 2, "clock": 7},
]

PH_PARAMS: list[dict[str, Any]] = [
    {},
    {"mode": "up"},
    {"mode": "down", "threshold": 10.0, "delta": 0.05},
    {"alpha": 1.0, "min_instances": 1, "threshold": 20.0},
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("make_stream", STREAMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("params", ADWIN_PARAMS, ids=str)
def test_adwin_flags_drift_at_the_same_indices_as_river(
    make_stream: Callable[[random.Random], list[float]], seed: int, params: dict[str, Any]
) -> None:
    stream = make_stream(random.Random(seed))
    ours, theirs = ADWIN(**params), river_drift.ADWIN(**params)
    assert detections(ours, stream) == detections(theirs, stream)
    assert ours.width == theirs.width
    assert ours.total == theirs.total
    assert ours.variance == theirs.variance
    assert ours.estimation == theirs.estimation


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("make_stream", STREAMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("params", PH_PARAMS, ids=str)
def test_page_hinkley_flags_drift_at_the_same_indices_as_river(
    make_stream: Callable[[random.Random], list[float]], seed: int, params: dict[str, Any]
) -> None:
    stream = make_stream(random.Random(seed))
    ours, theirs = PageHinkley(**params), river_drift.PageHinkley(**params)
    assert detections(ours, stream) == detections(theirs, stream)


def test_adwin_finds_the_shift_of_river_s_own_example() -> None:
    rng = random.Random(12345)
    stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    assert detections(ADWIN(), stream) == [1023]
    rng = random.Random(42)
    assert detections(ADWIN(), repeated_shifts(rng)) == [1023, 2015, 3007]


def test_a_detector_that_flagged_drift_starts_afresh_on_the_next_value() -> None:
    adwin = ADWIN(clock=1)
    stream = [0.0] * 500 + [100.0] * 500
    found = detections(adwin, stream)
    assert found
    adwin = ADWIN(clock=1)
    for x in stream[: found[0] + 1]:
        adwin.update(x)
    assert adwin.drift_detected and adwin.n_detections == 1
    adwin.update(50.0)
    assert not adwin.drift_detected
    assert adwin.width == 1 and adwin.estimation == 50.0 and adwin.n_detections == 0


def test_river_s_page_hinkley_defaults_raise_false_alarms_on_a_stationary_stream() -> None:
    """river's defaults (threshold 50 in the stream's units) are noisy for N(0, 1) data:
    we match river there, and our DetectorSettings defaults stay quiet instead."""
    stream = stationary(random.Random(7))
    ours, theirs = detections(PageHinkley(), stream), detections(river_drift.PageHinkley(), stream)
    assert ours == theirs
    assert len(ours) >= 5
    assert detections(ADWIN(), stream) == []


def test_our_default_detectors_stay_quiet_on_stationary_error_streams() -> None:
    rng = random.Random(3)
    for rate in (0.01, 0.05, 0.2):
        stream = [float(rng.random() < rate) for _ in range(50_000)]
        for method in ("adwin", "page_hinkley"):
            detector = make_detector(DetectorSettings(metric="error", method=method))
            assert detections(detector, stream) == [], (rate, method)


def test_our_default_detectors_catch_an_error_rate_rise_of_ten_points() -> None:
    stream = error_rate_change(random.Random(5))
    for method in ("adwin", "page_hinkley"):
        found = detections(make_detector(DetectorSettings(metric="error", method=method)), stream)
        assert found and 8000 <= found[0] < 8000 + 2000, (method, found)


def test_settings_from_a_mapping_build_the_named_detector() -> None:
    settings = DetectorSettings.from_mapping(
        {"metric": "latency_ms", "method": "page_hinkley", "delta": 1, "threshold": 500}
    )
    detector = make_detector(settings)
    assert isinstance(detector, PageHinkley)
    assert (detector.delta, detector.threshold, detector.mode) == (1.0, 500.0, "up")
    assert settings.name == "page_hinkley:latency_ms"
    adwin = make_detector(DetectorSettings.from_mapping({"metric": "error", "clock": 1}))
    assert isinstance(adwin, ADWIN) and adwin.delta == 0.002 and adwin.clock == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"metric": "error", "method": "kswin"}, "method must be one of"),
        ({"metric": "error", "windw": 3}, "unknown setting(s) ['windw']"),
        ({"metric": "error", "clock": "32"}, "monitor.detectors[1].clock must be a int"),
        ({"metric": "error", "clock": True}, "monitor.detectors[1].clock must be a int"),
        ({"metric": "error", "delta": "small"}, "delta must be a float or null"),
        ({"metric": "error", "mode": "sideways"}, "mode must be one of"),
        ({"method": "adwin"}, "metric"),
        ({"metric": ""}, "needs a metric"),
        (["metric"], "must be a mapping"),
    ],
)
def test_bad_detector_settings_are_config_errors_naming_the_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DetectorSettings.from_mapping(data, "monitor.detectors[1]")
    assert message in str(info.value)
    assert "monitor.detectors[1]" in str(info.value)


def test_out_of_range_detector_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="delta must be in"):
        ADWIN(delta=1.5)
    with pytest.raises(ConfigError, match="clock >= 1"):
        ADWIN(clock=0)
    with pytest.raises(ConfigError, match="mode must be one of"):
        PageHinkley(mode="sideways")


def test_adwin_is_fast_enough_for_the_monitor_thread() -> None:
    stream = stationary(random.Random(11)) * 5
    adwin = ADWIN()
    start = time.perf_counter()
    for x in stream:
        adwin.update(x)
    rate = len(stream) / (time.perf_counter() - start)
    # ~350k/s on a laptop core; keep a wide margin for slow CI machines and tracing.
    assert rate > (10_000 if sys.gettrace() else 50_000), rate


def test_detectors_alarms_and_sinks_do_not_import_pandas_or_sklearn() -> None:
    """They run in the server, which must start fast and stay small."""
    import subprocess

    code = (
        "import sys, mlcycle.monitor.detectors, mlcycle.monitor.alarms, mlcycle.monitor.sinks;"
        "bad = [m for m in ('pandas', 'sklearn', 'river', 'torch', 'mlflow') if m in sys.modules];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
