"""Additive noise at a target SNR: the measured SNR is the target, per signal."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.data.augment import add_noise_at_snr, noise_std, snr_db
from mlcycle.exceptions import ConfigError


@pytest.mark.parametrize("target", [3.0, 10.0, 20.0, 40.0])
def test_measured_snr_of_added_noise_is_within_a_tenth_of_a_db_of_the_target(
    target: float,
) -> None:
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, 20000)
    # three signals of very different power: each gets noise for its own power
    clean = np.stack([np.sin(2 * np.pi * 50 * t), 10 * np.sin(2 * np.pi * 7 * t), 0.01 * t])
    noisy = add_noise_at_snr(clean, target, rng)
    measured = snr_db(clean, noisy - clean)
    np.testing.assert_allclose(measured, target, atol=0.1)


def test_float32_signals_stay_float32_and_the_shape_is_kept() -> None:
    x = np.ones((4, 3, 100), dtype=np.float32)
    out = add_noise_at_snr(x, 20.0, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == x.shape


def test_a_silent_signal_gets_no_noise_and_nan_samples_stay_nan() -> None:
    x = np.zeros((2, 50))
    x[1] = 1.0
    x[1, 3] = np.nan
    out = add_noise_at_snr(x, 10.0, np.random.default_rng(0))
    assert np.all(out[0] == 0.0)
    assert np.isnan(out[1, 3]) and np.isfinite(np.delete(out[1], 3)).all()


def test_the_same_seed_gives_the_same_noise() -> None:
    x = np.random.default_rng(5).normal(size=(3, 64))
    a = add_noise_at_snr(x, 15.0, np.random.default_rng(9))
    b = add_noise_at_snr(x, 15.0, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [0, -3.0, float("nan"), True])
def test_snr_must_be_a_positive_number(bad: float) -> None:
    with pytest.raises(ConfigError, match="snr_db must be a number > 0"):
        noise_std(1.0, bad)
