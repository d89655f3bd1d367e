"""Streaming drift detectors: ADWIN and Page-Hinkley, in pure Python.

Ports of river 0.26's ``drift.ADWIN`` (its Rust ``AdaptiveWindowing`` helper, itself a
port of the Cython ``adwin_c.pyx``) and ``drift.PageHinkley``: same parameters, same
defaults, same ``update(x)`` / ``drift_detected`` semantics, and the same floating-point
operations in the same order, so both flag drift at exactly the same indices as river's
(the tests check this against river itself). They live here because importing
``river.drift`` pulls in pandas and scikit-learn, which the serving path must not load.

Like river's, a detector that flagged drift starts afresh (empty window, zeroed sums)
on the next :meth:`update`.

:class:`DetectorSettings` is the ``monitor.detectors[i]`` config entry and
:func:`make_detector` builds the detector it names.
"""

# ADWIN and PageHinkley are adapted from river (https://github.com/online-ml/river),
# Copyright (c) 2020, the river developers, BSD 3-Clause License.

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

from mlcycle.exceptions import ConfigError

__all__ = [
    "ADWIN",
    "DETECTOR_METHODS",
    "PAGE_HINKLEY_MODES",
    "DetectorSettings",
    "DriftDetector",
    "PageHinkley",
    "make_detector",
]

#: Detector names accepted by :class:`DetectorSettings`.
DETECTOR_METHODS = ("adwin", "page_hinkley")
#: Directions Page-Hinkley watches: increases, decreases or both.
PAGE_HINKLEY_MODES = ("up", "down", "both")

# Bucket sizes 2**row as floats (a window never holds 2**64 values).
_SIZES = tuple(float(2**i) for i in range(64))


class DriftDetector(Protocol):
    """What the monitor needs of a detector."""

    def update(self, x: float) -> None:
        """Feed one value."""

    @property
    def drift_detected(self) -> bool:
        """Whether the last :meth:`update` detected a drift."""


class ADWIN:
    """ADaptive WINdowing drift detector (Bifet and Gavalda, 2007).

    Keeps a window of recent values, compressed in exponential buckets, and drops its
    oldest part whenever two sub-windows have means further apart than the Hoeffding
    bound ``epsilon_cut`` allows at confidence ``delta``. Scale-free: the bound uses the
    window's own variance.

    Parameters
    ----------
    delta
        Significance value, in (0, 1); smaller: fewer false alarms, later detection.
    clock
        Check for a change every ``clock`` values (1: every value).
    max_buckets
        Buckets of each size kept before two are merged.
    min_window_length
        Smallest sub-window a cut may leave on either side.
    grace_period
        Values seen before any check.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(12345)
    >>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> adwin = ADWIN()
    >>> [i for i, x in enumerate(stream) if (adwin.update(x), adwin.drift_detected)[1]]
    [1023]
    """

    __slots__ = (
        "_drift_detected",
        "_mwl",
        "_n_detections",
        "_tick",
        "_total",
        "_totals",
        "_variance",
        "_variances",
        "_width",
        "clock",
        "delta",
        "grace_period",
        "max_buckets",
        "min_window_length",
    )

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not 0.0 < delta < 1.0:
            raise ConfigError(f"ADWIN delta must be in (0, 1), not {delta!r}")
        if clock < 1 or max_buckets < 2 or min_window_length < 1 or grace_period < 0:
            raise ConfigError(
                "ADWIN needs clock >= 1, max_buckets >= 2, min_window_length >= 1 and "
                f"grace_period >= 0, not {clock}, {max_buckets}, {min_window_length}, "
                f"{grace_period}"
            )
        self.delta = float(delta)
        self.clock = int(clock)
        self.max_buckets = int(max_buckets)
        self.min_window_length = int(min_window_length)
        self.grace_period = int(grace_period)
        self._mwl = float(min_window_length)
        self._reset()

    def _reset(self) -> None:
        self._drift_detected = False
        # Row i holds up to max_buckets + 1 buckets of 2**i values each, oldest first:
        # their totals and their sums of squared deviations.
        self._totals: list[list[float]] = [[]]
        self._variances: list[list[float]] = [[]]
        self._total = 0.0
        self._variance = 0.0
        self._width = 0.0
        self._tick = 0
        self._n_detections = 0

    @property
    def drift_detected(self) -> bool:
        """Whether the last :meth:`update` detected a drift."""
        return self._drift_detected

    @property
    def width(self) -> int:
        """Number of values in the window."""
        return int(self._width)

    @property
    def n_detections(self) -> int:
        """Changes detected since the last reset (as river, 0 or 1)."""
        return self._n_detections

    @property
    def variance(self) -> float:
        """Sum of squared deviations from the mean within the window."""
        return self._variance

    @property
    def total(self) -> float:
        """Sum of the values in the window."""
        return self._total

    @property
    def estimation(self) -> float:
        """Mean of the window (0 when empty)."""
        return self._total / self._width if self._width else 0.0

    def update(self, x: float) -> None:
        """Add one value to the window and check for a change (every ``clock`` values).

        Parameters
        ----------
        x
            The value (e.g. 1.0 for a wrong prediction, 0.0 for a right one).
        """
        if self._drift_detected:
            self._reset()
        value = float(x)
        # Insert; the order of operations is river's, for identical rounding.
        width = self._width + 1.0
        if width > 1.0:
            dev = value - self._total / (width - 1.0)
            self._variance += (width - 1.0) * dev * dev / width
        self._width = width
        self._total += value
        totals = self._totals
        row = totals[0]
        row.append(value)
        self._variances[0].append(0.0)
        if len(row) > self.max_buckets:
            self._compress()
        self._tick += 1
        if self._tick % self.clock == 0 and width > self.grace_period:
            detected = False
            while self._cut():
                detected = True
            if detected:
                self._n_detections += 1
                self._drift_detected = True

    def _compress(self) -> None:
        totals, variances, limit = self._totals, self._variances, self.max_buckets
        idx = 0
        while True:
            row_t, row_v = totals[idx], variances[idx]
            if len(row_t) != limit + 1:
                return
            size = _SIZES[idx]
            t0, t1 = row_t[0], row_t[1]
            d = t0 / size - t1 / size
            v12 = row_v[0] + row_v[1] + size * 0.5 * d * d
            del row_t[:2], row_v[:2]
            if idx + 1 == len(totals):
                totals.append([])
                variances.append([])
            nxt = totals[idx + 1]
            nxt.append(t0 + t1)
            variances[idx + 1].append(v12)
            if len(nxt) <= limit:
                return
            idx += 1

    def _cut(self) -> bool:
        """One pass over the cut points; drop the oldest bucket at the first change."""
        width = self._width
        var_in_window = self._variance / width
        # A negative (rounding) or NaN variance makes every bound NaN: no cut, as river.
        if not var_in_window >= 0.0:
            return False
        mwl = self._mwl
        delta_prime = math.log(2.0 * math.log(width) / self.delta)
        two_thirds_dp = 2.0 / 3.0 * delta_prime
        sqrt = math.sqrt
        n0 = 0.0
        n1 = width
        u0 = 0.0
        u1 = self._total
        totals = self._totals
        for idx in range(len(totals) - 1, -1, -1):
            size = _SIZES[idx]
            row = totals[idx]
            last = len(row) - 1
            for k in range(last + 1):
                t = row[k]
                n0 += size
                n1 -= size
                u0 += t
                u1 -= t
                if idx == 0 and k == last:
                    return False
                if n1 >= mwl and n0 >= mwl:
                    m_recip = 1.0 / (n0 - mwl + 1.0) + 1.0 / (n1 - mwl + 1.0)
                    epsilon = sqrt(2.0 * m_recip * var_in_window * delta_prime) + (
                        two_thirds_dp * m_recip
                    )
                    if abs(u0 / n0 - u1 / n1) > epsilon:
                        self._delete_oldest()
                        return True
        return False

    def _delete_oldest(self) -> None:
        last = len(self._totals) - 1
        n = _SIZES[last]
        row_t, row_v = self._totals[last], self._variances[last]
        u, v = row_t[0], row_v[0]
        mu = u / n
        self._width -= n
        self._total -= u
        width = self._width
        mu_window = self._total / width if width else math.nan
        self._variance -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
        del row_t[0], row_v[0]
        if not row_t:
            self._totals.pop()
            self._variances.pop()


class PageHinkley:
    """Page-Hinkley test: a change in the mean of a stream (CUSUM with forgetting).

    Not scale-free: ``delta`` and ``threshold`` are in the stream's units, so river's
    defaults suit streams of small variance (see :class:`DetectorSettings`).

    Parameters
    ----------
    min_instances
        Values seen before a change can be flagged.
    delta
        Magnitude of changes that are tolerated.
    threshold
        Cumulative deviation (lambda) above which a change is flagged.
    alpha
        Forgetting factor of the cumulative sums (1: none).
    mode
        ``up`` (increases), ``down`` (decreases) or ``both``.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(12345)
    >>> stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    >>> ph = PageHinkley()
    >>> [i for i, x in enumerate(stream) if (ph.update(x), ph.drift_detected)[1]][:1]
    [1006]
    """

    __slots__ = (
        "_drift_detected",
        "_max_decrease",
        "_mean",
        "_min_increase",
        "_n",
        "_sum_decrease",
        "_sum_increase",
        "_test_down",
        "_test_up",
        "alpha",
        "delta",
        "min_instances",
        "mode",
        "threshold",
    )

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        if mode not in PAGE_HINKLEY_MODES:
            raise ConfigError(
                f"Page-Hinkley mode must be one of {PAGE_HINKLEY_MODES}, not {mode!r}"
            )
        self.min_instances = min_instances
        self.delta = float(delta)
        self.threshold = float(threshold)
        self.alpha = float(alpha)
        self.mode = mode
        self._test_up = mode in ("up", "both")
        self._test_down = mode in ("down", "both")
        self._reset()

    def _reset(self) -> None:
        self._drift_detected = False
        self._n = 0.0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = math.inf
        self._max_decrease = -1.0

    @property
    def drift_detected(self) -> bool:
        """Whether the last :meth:`update` detected a drift."""
        return self._drift_detected

    @property
    def n(self) -> int:
        """Values seen since the last reset."""
        return int(self._n)

    @property
    def mean(self) -> float:
        """Running mean since the last reset."""
        return self._mean

    def update(self, x: float) -> None:
        """Feed one value and test for a change in the mean.

        Parameters
        ----------
        x
            The value.
        """
        if self._drift_detected:
            self._reset()
        value = float(x)
        self._n += 1.0
        self._mean += (1.0 / self._n) * (value - self._mean)
        dev = value - self._mean
        inc = self.alpha * self._sum_increase + dev - self.delta
        dec = self.alpha * self._sum_decrease + dev + self.delta
        self._sum_increase = inc
        self._sum_decrease = dec
        if inc < self._min_increase:
            self._min_increase = inc
        if dec > self._max_decrease:
            self._max_decrease = dec
        if self._n >= self.min_instances:
            threshold = self.threshold
            self._drift_detected = (self._test_up and inc - self._min_increase > threshold) or (
                self._test_down and self._max_decrease - dec > threshold
            )


@dataclass(frozen=True)
class DetectorSettings:
    """One streaming detector of the monitor: which metric it watches, and how.

    Our defaults differ from river's where river's would be noisy in production:

    * ``method`` is ``adwin``: its bound uses the window's own variance, so one setting
      works for error indicators, latencies and feature values alike.
    * ADWIN ``delta`` is 0.002 and ``clock`` 32 (river's): none to 3 false alarms in
      100,000 values of stationary normal, Bernoulli and log-normal streams.
    * Page-Hinkley is in the stream's units. river's ``threshold`` 50 with ``delta``
      0.005 and ``alpha`` 0.9999 flags drift every few thousand values of a stationary
      N(0, 1) stream (the forgetting sum wanders by about 70 standard deviations).
      Our defaults are meant for a 0/1 error stream (variance at most 0.25): ``mode``
      ``up`` (only more errors matter), ``delta`` 0.01 (ignore shifts of the error rate
      under one point) and ``threshold`` 100; then a rise of the error rate by 10
      points is flagged after about 1,000 requests, and a stationary error stream
      raises at most one false alarm in 100,000 requests.
      Scale ``delta`` and ``threshold`` with the stream's standard deviation for
      other metrics.
    * A detector of a per-row stream (``confidence``, ``low_confidence``) sees at most
      ``max_rate`` values a second, 1,000: beyond that a uniform random sample of the
      rows. A sample of an unchanged stream is as unchanged as the stream, and a change
      of its mean shows in the sample a few hundred values after it happens, so at a
      high request rate it is detected within a second or so all the same; feeding
      every row would cost more CPU than the rest of the monitor's per-row work.
    """

    # The metric fed to the detector, e.g. "error", "latency_ms", "input.age".
    metric: str
    method: str = "adwin"
    # ADWIN: significance; Page-Hinkley: tolerated change (None: the method's default).
    delta: float | None = None
    # ADWIN.
    clock: int = 32
    max_buckets: int = 5
    min_window_length: int = 5
    grace_period: int = 10
    # Page-Hinkley.
    min_instances: int = 30
    threshold: float = 100.0
    alpha: float = 1 - 0.0001
    mode: str = "up"
    # Severity of the alarm a detection raises.
    severity: str = "warning"
    # Per-row streams: most values a second the detector sees (a uniform sample beyond
    # that); 0: every row.
    max_rate: float = 1000.0

    def __post_init__(self) -> None:
        if not self.metric:
            raise ConfigError("a detector needs a metric (e.g. metric: error)")
        if not self.max_rate >= 0:
            raise ConfigError(
                f"detector max_rate must be >= 0 values a second (0: all), not {self.max_rate!r}"
            )
        if self.method not in DETECTOR_METHODS:
            raise ConfigError(
                f"detector method must be one of {DETECTOR_METHODS}, not {self.method!r}"
            )
        if self.mode not in PAGE_HINKLEY_MODES:
            raise ConfigError(
                f"detector mode must be one of {PAGE_HINKLEY_MODES}, not {self.mode!r}"
            )
        if self.severity not in ("info", "warning", "critical"):
            raise ConfigError(
                f"detector severity must be info, warning or critical, not {self.severity!r}"
            )

    @property
    def name(self) -> str:
        """The alarm name a detection raises, e.g. ``adwin:error``."""
        return f"{self.method}:{self.metric}"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "monitor.detectors") -> Self:
        """Settings from a config mapping.

        Parameters
        ----------
        data
            The entry, e.g. ``{"metric": "error", "method": "adwin", "delta": 0.001}``.
        where
            Its key path, for error messages (e.g. ``monitor.detectors[0]``).

        Raises
        ------
        ConfigError
            Not a mapping, an unknown key, a value of the wrong type, an unknown method.
        """
        kwargs = settings_kwargs(cls, data, where)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except TypeError as exc:  # a required field is missing
            raise ConfigError(f"{where}: {exc}") from None


def make_detector(settings: DetectorSettings) -> ADWIN | PageHinkley:
    """The detector ``settings`` describe.

    Parameters
    ----------
    settings
        From :meth:`DetectorSettings.from_mapping`.

    Returns
    -------
    ADWIN or PageHinkley
        A fresh detector.
    """
    if settings.method == "adwin":
        return ADWIN(
            delta=0.002 if settings.delta is None else settings.delta,
            clock=settings.clock,
            max_buckets=settings.max_buckets,
            min_window_length=settings.min_window_length,
            grace_period=settings.grace_period,
        )
    return PageHinkley(
        min_instances=settings.min_instances,
        delta=0.01 if settings.delta is None else settings.delta,
        threshold=settings.threshold,
        alpha=settings.alpha,
        mode=settings.mode,
    )


_TYPES: dict[str, tuple[type[Any], ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "float | None": (float, int, type(None)),
    "int | None": (int, type(None)),
    "dict[str, str]": (dict,),
}


def settings_kwargs(cls: type[Any], data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check a config mapping against a settings dataclass's fields.

    Parameters
    ----------
    cls
        A dataclass whose field types are written as ``int``, ``float``, ``str``,
        ``bool``, ``float | None``, ``int | None`` or ``dict[str, str]``.
    data
        The config mapping.
    where
        Its key path, for error messages.

    Returns
    -------
    dict
        Keyword arguments for ``cls`` (ints given for floats are converted).

    Raises
    ------
    ConfigError
        Not a mapping, an unknown key, or a value of the wrong type.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of settings, not {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} in {where}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        type_name = str(fields[key].type)
        allowed = _TYPES[type_name]
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            expected = type_name.replace(" | None", " or null")
            raise ConfigError(f"{where}.{key} must be a {expected}, not {value!r}")
        if float in allowed and isinstance(value, int) and not is_bool:
            value = float(value)
        kwargs[key] = value
    return kwargs
