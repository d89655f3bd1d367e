"""The learning curve, the saturating power law, and the verdict on more data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from mlcycle.config.structured import LogRegConfig, PreprocessConfig
from mlcycle.data.check.learning_curve import (
    FLATTENED,
    MORE_DATA_HELPS,
    NOT_MEASURED,
    assess_curve,
    fit_saturation,
    learning_curve,
)
from mlcycle.data.check.scoring import curve_metric
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from tests._datasets import make_dataset

FRACTIONS = [0.1, 0.2, 0.35, 0.5, 0.75, 1.0]


def linear_data(rows: int, features: int, noise: float, seed: int = 0) -> Dataset:
    """A noisy linear boundary in many dimensions: a linear model keeps learning."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    y = np.where(x @ rng.normal(size=features) + rng.normal(0, noise, rows) > 0, "b", "a")
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"f{i}" for i in range(features)])
    schema = Schema("y", ["a", "b"], [FeatureSpec(c, "numeric") for c in frame.columns])
    return make_dataset(frame, y, schema)


def test_fit_recovers_a_saturating_power_law_and_the_doubling_gain() -> None:
    n = np.array([40, 80, 160, 320, 640])
    scores = 0.9 - 0.3 * (n / 640.0) ** -0.7
    fit = fit_saturation(n, scores, np.full(5, 0.01))
    assert fit.method == "power_law"
    assert fit.params["a"] == pytest.approx(0.9, abs=1e-3)
    assert fit.params["b"] == pytest.approx(0.3, abs=1e-3)
    assert fit.params["c"] == pytest.approx(0.7, abs=1e-2)
    assert fit.gain_if_doubled == pytest.approx(0.3 * (1 - 2**-0.7), abs=1e-3)


def test_fit_falls_back_to_the_last_slope_with_too_few_sizes() -> None:
    fit = fit_saturation([100, 200, 400], [0.70, 0.76, 0.80])
    assert fit.method == "last_slope"
    assert "fewer than 4 sizes" in fit.reason
    assert fit.gain_if_doubled == pytest.approx(0.04)  # one doubling from 200 to 400


def test_fit_falls_back_when_the_power_law_does_not_converge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import scipy.optimize

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Optimal parameters not found: maxfev exceeded")

    monkeypatch.setattr(scipy.optimize, "curve_fit", fail)
    fit = fit_saturation([50, 100, 200, 400], [0.6, 0.7, 0.75, 0.77])
    assert fit.method == "last_slope"
    assert "did not fit" in fit.reason and "maxfev" in fit.reason
    assert fit.gain_if_doubled == pytest.approx(0.02)


def test_a_curve_without_saturation_is_a_log_linear_trend() -> None:
    n = np.array([50, 100, 200, 400, 800])
    scores = 0.6 + 0.03 * np.log2(n / 50)  # +0.03 per doubling, no bend
    fit = fit_saturation(n, scores)
    assert fit.method == "power_law" and "log-linear" in fit.reason
    assert fit.gain_if_doubled == pytest.approx(0.03, abs=2e-3)


def test_the_gain_is_capped_at_the_headroom_to_a_perfect_score() -> None:
    sizes = [50, 100, 200, 400]
    steep = [0.6, 0.8, 0.9, 0.99]
    fit, *_ = assess_curve(sizes, steep, [0.001] * 4, min_gain=0.005)
    assert fit.gain_if_doubled > 0.01
    capped, _, _, helps, _ = assess_curve(sizes, steep, [0.001] * 4, min_gain=0.005, ceiling=1.0)
    assert capped.gain_if_doubled == pytest.approx(0.01)
    assert "headroom" in capped.reason and helps


def test_a_falling_curve_gains_nothing_from_more_data() -> None:
    fit = fit_saturation([50, 100, 200, 400, 800], [0.8, 0.79, 0.78, 0.78, 0.77])
    assert fit.gain_if_doubled == pytest.approx(0.0, abs=1e-3)


def test_verdict_compares_the_doubling_gain_with_the_fold_spread() -> None:
    sizes = [50, 100, 200, 400, 800]
    rising = [0.9 - 0.4 * (n / 800) ** -0.5 for n in sizes]
    _, spread, threshold, helps, verdict = assess_curve(sizes, rising, [0.02] * 5, min_gain=0.005)
    assert (spread, threshold, helps, verdict) == (0.02, 0.02, True, MORE_DATA_HELPS)
    # The same gain inside a wide fold spread is not evidence.
    _, _, _, helps, verdict = assess_curve(sizes, rising, [0.5] * 5, min_gain=0.005)
    assert (helps, verdict) == (False, FLATTENED)
    # min_gain is the floor when the folds agree exactly.
    flat = [0.95, 0.951, 0.952, 0.952, 0.952]
    _, _, threshold, helps, verdict = assess_curve(sizes, flat, [0.0] * 5, min_gain=0.005)
    assert (threshold, helps, verdict) == (0.005, False, FLATTENED)
    assert assess_curve([100], [0.9], [0.0], min_gain=0.005)[4] == NOT_MEASURED


def test_more_data_clearly_helps_a_linear_model_on_many_noisy_features() -> None:
    data = linear_data(rows=600, features=150, noise=2.0)
    metric = curve_metric("accuracy", 2, setting="data.check.metric")
    curve = learning_curve(
        data,
        LogRegConfig(),
        PreprocessConfig(),
        metric,
        folds=5,
        seed=0,
        fractions=FRACTIONS,
        min_gain=0.005,
    )
    assert curve.sizes == sorted(curve.sizes) and curve.sizes[-1] == 480
    assert curve.test_mean[-1] > curve.test_mean[0] + 0.1
    assert curve.fit.method == "power_law"
    assert curve.more_data_helps and curve.verdict == MORE_DATA_HELPS
    assert curve.fit.gain_if_doubled > curve.spread


def test_a_saturated_curve_has_flattened(table: Callable[..., Dataset]) -> None:
    rng = np.random.default_rng(0)
    y = ["a"] * 150 + ["b"] * 150
    signal = [float(v == "b") + rng.normal(0, 0.05) for v in y]
    data = table({"signal": signal, "noise": rng.normal(size=300).tolist()}, y)
    metric = curve_metric("f1_macro", 2, setting="evaluate.primary_metric")
    curve = learning_curve(
        data,
        LogRegConfig(),
        PreprocessConfig(),
        metric,
        folds=5,
        seed=0,
        fractions=FRACTIONS,
        min_gain=0.005,
    )
    assert curve.test_mean == pytest.approx([1.0] * len(curve.sizes))
    assert not curve.more_data_helps and curve.verdict == FLATTENED
    assert curve.fit.gain_if_doubled < 0.005


def test_a_loss_is_reported_in_its_own_sign(breast_cancer: Dataset) -> None:
    metric = curve_metric("log_loss", 2, setting="data.check.metric")
    curve = learning_curve(
        breast_cancer,
        LogRegConfig(),
        PreprocessConfig(),
        metric,
        folds=3,
        seed=0,
        fractions=[0.2, 0.5, 1.0],
        min_gain=0.005,
    )
    assert not curve.higher_is_better
    assert all(v > 0 for v in curve.test_mean)  # a log loss, not its negation
    assert curve.test_mean[0] > curve.test_mean[-1]  # it falls with more data
    assert curve.fit.method == "last_slope" and curve.fit.gain_if_doubled > 0


def test_tiny_sizes_are_raised_to_a_floor_so_every_fit_sees_enough_rows(
    breast_cancer: Dataset,
) -> None:
    metric = curve_metric("accuracy", 2, setting="data.check.metric")
    curve = learning_curve(
        breast_cancer,
        LogRegConfig(),
        PreprocessConfig(),
        metric,
        folds=5,
        seed=0,
        fractions=[0.001, 0.002, 1.0],
        min_gain=0.005,
    )
    assert curve.sizes == [10, 455]
    assert curve.to_dict()["sizes"] == [10, 455]
