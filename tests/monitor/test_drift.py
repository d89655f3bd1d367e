"""mlcycle.monitor.drift: scipy's statistics, tests chosen by kind and sample size, PSI,
the dataset verdict, and drift against a real bundle's profile."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlcycle.exceptions import DataError
from mlcycle.monitor.drift import (
    KS_EXACT_BELOW,
    DriftSettings,
    categorical_drift,
    dataset_drift,
    drift_from_profile,
    numeric_drift,
    psi,
)
from tests._bundles import build_bundle

RNG = np.random.default_rng(7)
REF = RNG.normal(0, 1, 2000)


def test_small_numeric_windows_use_scipys_kolmogorov_smirnov() -> None:
    cur = RNG.normal(0.5, 1, 300)
    got = numeric_drift("x", REF, cur)
    want = stats.ks_2samp(REF, cur)
    assert got.test == "ks"
    assert got.statistic == pytest.approx(want.statistic, abs=0, rel=1e-12)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-12)
    assert got.drifted and got.p_value < 0.05


def test_large_numeric_windows_use_scipys_wasserstein_in_reference_sds() -> None:
    cur = RNG.normal(0.3, 1, 5000)
    got = numeric_drift("x", REF, cur)
    assert got.test == "wasserstein" and got.p_value is None
    assert got.statistic == pytest.approx(stats.wasserstein_distance(REF, cur) / np.std(REF))
    assert got.drifted
    same = numeric_drift("x", REF, RNG.normal(0, 1, 5000))
    assert not same.drifted and same.statistic < 0.1


def test_missing_values_are_left_out_of_the_numeric_test() -> None:
    cur = [*RNG.normal(0, 1, 200).tolist(), None, math.nan]
    got = numeric_drift("x", REF, cur)
    assert got.n_current == 200
    clean = [v for v in cur if v is not None and not math.isnan(v)]
    assert got.p_value == pytest.approx(stats.ks_2samp(REF, clean).pvalue, rel=1e-12)


def test_live_windows_take_the_ks_p_value_as_r_does_exact_only_for_small_samples() -> None:
    ref, cur = RNG.normal(0, 1, 60), RNG.normal(0.4, 1, 40)  # 2,400 < 10,000: exact
    exact = stats.ks_2samp(ref, cur, method="exact").pvalue
    small = numeric_drift("x", ref, cur, ks_exact_below=KS_EXACT_BELOW)
    assert small.p_value == pytest.approx(exact, rel=1e-12)
    big = RNG.normal(0.05, 1, 1000)  # 2,000,000: asymptotic, within 1e-3 of exact here
    got = numeric_drift("x", REF, big, ks_exact_below=KS_EXACT_BELOW).p_value
    assert got == pytest.approx(stats.ks_2samp(REF, big, method="asymp").pvalue, rel=1e-12)
    assert got == pytest.approx(stats.ks_2samp(REF, big).pvalue, abs=1e-3)  # scipy's exact


def test_small_categorical_windows_use_scipys_chi_square_on_the_contingency_table() -> None:
    ref = {"red": 500, "green": 300, "blue": 200}
    cur = ["red"] * 30 + ["green"] * 30 + ["blue"] * 40 + ["purple"] * 5 + [None, ""]
    got = categorical_drift("color", ref, cur)
    table = np.array([[200, 300, 0, 500], [40, 30, 5, 30]])  # blue, green, purple, red
    want = stats.chi2_contingency(table)
    assert got.test == "chi2" and got.n_current == 105
    assert got.statistic == pytest.approx(want.statistic, rel=1e-12)
    assert got.p_value == pytest.approx(want.pvalue, rel=1e-12)
    assert got.drifted


def test_large_categorical_windows_use_scipys_jensen_shannon_distance() -> None:
    ref = {"a": 600, "b": 400}
    cur = ["a"] * 1500 + ["b"] * 1500
    got = categorical_drift("c", ref, cur)
    want = jensenshannon([0.6, 0.4], [0.5, 0.5], base=2)
    assert got.test == "jensenshannon"
    assert got.statistic == pytest.approx(want, rel=1e-12)
    assert got.drifted == (want > 0.1)


def test_psi_matches_its_formula_and_grows_with_the_shift() -> None:
    e, a = [0.25, 0.25, 0.5], [0.2, 0.3, 0.5]
    by_hand = sum((y - x) * math.log(y / x) for x, y in zip(e, a, strict=True))
    assert psi(e, a) == pytest.approx(by_hand)
    small = numeric_drift("x", REF, RNG.normal(0.1, 1, 3000)).psi
    large = numeric_drift("x", REF, RNG.normal(1.0, 1, 3000)).psi
    assert 0 <= small < 0.1 < 0.2 < large


def test_the_dataset_drifts_when_enough_features_drift() -> None:
    settings = DriftSettings(dataset_share=0.5)
    moved = numeric_drift("a", REF, RNG.normal(2, 1, 500))
    still = numeric_drift("b", REF, RNG.normal(0, 1, 500))
    assert dataset_drift([moved, still], settings).drifted
    verdict = dataset_drift([moved, still, numeric_drift("c", REF, REF[:500])], settings)
    assert not verdict.drifted and verdict.drifted_features == ["a"]
    assert verdict.share == pytest.approx(1 / 3)


def test_a_window_with_nothing_but_missing_values_is_a_clear_error() -> None:
    with pytest.raises(DataError, match=r"'x'.*current window has no non-missing value"):
        numeric_drift("x", REF, [None, math.nan])
    with pytest.raises(DataError, match="'c'"):
        categorical_drift("c", {"a": 3}, [None, ""])


def test_drift_against_a_bundles_reference_profile(tmp_path: Path) -> None:
    bundle = build_bundle("mixed", tmp_path / "b")
    profile = json.loads((bundle / "profile.json").read_text())
    ref_x0 = profile["features"]["x0"]["sample"]
    rng = np.random.default_rng(1)
    steady = {
        "x0": rng.choice(ref_x0, 400).tolist(),
        "color": rng.choice(["red", "green", "blue"], 400, p=[0.39, 0.34, 0.27]).tolist(),
    }
    assert not drift_from_profile(profile, steady).drifted
    shifted = {
        "x0": (np.asarray(steady["x0"]) + 3).tolist(),
        "color": ["red"] * 400,
    }
    verdict = drift_from_profile(profile, shifted)
    assert verdict.drifted and set(verdict.drifted_features) == {"x0", "color"}
