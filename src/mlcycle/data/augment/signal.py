"""Additive Gaussian noise at a target signal-to-noise ratio, for any numeric signal.

The SNR in decibels is ``10 log10(P_signal / P_noise)``; noise of power ``P_noise =
P_signal / 10**(snr_db / 10)`` is Gaussian with standard deviation ``sqrt(P_noise)``.
For audio and other signals (:func:`add_noise_at_snr`), a signal's power is the mean of
its squared samples, each signal on its own; for tabular features (the callers in
:mod:`mlcycle.data.augment.tabular`), a feature's power is its variance over the
training rows, so a constant offset does not make the noise larger.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = np.linspace(0, 1, 16000)
>>> clean = np.sin(2 * np.pi * 440 * t)[None, :]
>>> noisy = add_noise_at_snr(clean, 20.0, rng)
>>> round(float(snr_db(clean, noisy - clean)[0]), 1)
20.0
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from mlcycle.exceptions import ConfigError

__all__ = ["add_noise_at_snr", "noise_std", "snr_db"]


def noise_std(power: npt.ArrayLike, snr: float) -> npt.NDArray[np.float64]:
    """Standard deviation of Gaussian noise that sits ``snr`` dB below ``power``.

    Parameters
    ----------
    power
        Signal power(s) (mean square, or variance for features).
    snr
        Target signal-to-noise ratio in dB (> 0).

    Returns
    -------
    numpy.ndarray
        ``sqrt(power / 10**(snr / 10))``, the shape of ``power``.

    Examples
    --------
    >>> noise_std([1.0, 4.0], 20.0).tolist()
    [0.1, 0.2]
    """
    if isinstance(snr, bool) or not isinstance(snr, int | float) or not snr > 0:
        raise ConfigError(f"snr_db must be a number > 0 (decibels); got {snr!r}")
    p = np.asarray(power, dtype=np.float64)
    return np.asarray(np.sqrt(np.maximum(p, 0.0) / 10.0 ** (snr / 10.0)), dtype=np.float64)


def add_noise_at_snr(
    signals: npt.ArrayLike, snr: float, rng: np.random.Generator, *, axis: int = -1
) -> npt.NDArray[Any]:
    """Add white Gaussian noise to each signal at ``snr`` dB.

    Parameters
    ----------
    signals
        A signal ``[T]`` or signals ``[N, ..., T]`` (float). Each signal along ``axis``
        gets noise for its own power (mean of its squared samples); a silent signal gets
        none. NaN samples stay NaN.
    snr
        Target signal-to-noise ratio in dB (> 0).
    rng
        The random generator (a seed gives the same noise).
    axis
        The time axis.

    Returns
    -------
    numpy.ndarray
        Noisy signals, same shape; float32 input stays float32, anything else is float64.

    Raises
    ------
    ConfigError
        ``snr`` is not a number > 0.
    """
    x = np.asarray(signals)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    x64 = x.astype(np.float64)
    power = np.nanmean(x64**2, axis=axis, keepdims=True) if x64.size else x64
    std = noise_std(np.nan_to_num(power), snr)
    noise = rng.standard_normal(x64.shape) * std
    return np.asarray(x64 + noise, dtype=dtype)


def snr_db(signal: npt.ArrayLike, noise: npt.ArrayLike, *, axis: int = -1) -> npt.NDArray[Any]:
    """Measured SNR in dB of ``signal`` against ``noise`` (mean squares along ``axis``).

    Examples
    --------
    >>> snr_db([[1.0, -1.0]], [[0.1, -0.1]]).round(6).tolist()
    [20.0]
    """
    s = np.asarray(signal, dtype=np.float64)
    n = np.asarray(noise, dtype=np.float64)
    return np.asarray(
        10.0 * np.log10(np.nanmean(s**2, axis=axis) / np.nanmean(n**2, axis=axis)),
        dtype=np.float64,
    )
