"""Is the data sized appropriately? A learning curve, and what doubling the data would buy.

:func:`learning_curve` trains the project's pipeline on growing parts of each training
fold (scikit-learn's ``learning_curve``, stratified seeded folds) and scores the held-out
fold with the check's metric. :func:`assess_curve` then fits a saturating power law,

    score(n) = a - b * (n / N) ** (-c),        b >= 0, c > 0,

to the mean held-out scores (N is the largest size; weighted by the spread between
folds), and extrapolates the gain from doubling the data, ``score(2N) - score(N) =
b * (1 - 2 ** -c)``. When the fit is not possible (fewer than four sizes, no
convergence, a non-finite result) it falls back to the slope of the last two points per
doubling of the data. The verdict compares that gain with the spread between folds at
the largest size (and ``min_gain``): a gain larger than the noise of the measurement
means "more data would likely help"; otherwise "the curve has flattened".

Scores are reported in the metric's own sign (a loss falls as it improves); the gain is
always an improvement, positive when more data helps.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlcycle._optional import require
from mlcycle.config.structured import ModelConfig, PreprocessConfig
from mlcycle.data.check.cv import fit_notes, stratified_folds
from mlcycle.data.check.scoring import CurveMetric
from mlcycle.data.dataset import Dataset

__all__ = [
    "FLATTENED",
    "MORE_DATA_HELPS",
    "NOT_MEASURED",
    "CurveFit",
    "LearningCurve",
    "assess_curve",
    "fit_saturation",
    "learning_curve",
]

#: The verdicts.
MORE_DATA_HELPS = "more data would likely help"
FLATTENED = "the curve has flattened"
NOT_MEASURED = "not measured"

_MIN_FIT_POINTS = 4
_SIGMA_FLOOR = 1e-3
_C_MIN = 1e-3  # lower bound of the exponent


@dataclass(frozen=True)
class CurveFit:
    """How the gain from doubling the data was estimated."""

    #: ``power_law``, ``last_slope`` or ``none``.
    method: str
    #: ``a``, ``b``, ``c`` of the power law (sizes scaled by the largest), or
    #: ``slope_per_doubling`` of the fallback.
    params: dict[str, float]
    #: Expected improvement of the score from doubling the data (higher-is-better units).
    gain_if_doubled: float
    #: Why the power law was not used, when it was not.
    reason: str = ""


@dataclass
class LearningCurve:
    """The learning curve and its verdict."""

    metric: str
    higher_is_better: bool
    #: Training rows at each point.
    sizes: list[int]
    train_mean: list[float]
    train_std: list[float]
    test_mean: list[float]
    test_std: list[float]
    fit: CurveFit
    #: Standard deviation of the held-out score between folds at the largest size.
    spread: float
    #: The gain a doubling must beat: max(spread, min_gain).
    threshold: float
    more_data_helps: bool
    verdict: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "sizes": self.sizes,
            "train_mean": _rounded(self.train_mean),
            "train_std": _rounded(self.train_std),
            "test_mean": _rounded(self.test_mean),
            "test_std": _rounded(self.test_std),
            "fit": {
                "method": self.fit.method,
                "params": {k: round(v, 6) for k, v in self.fit.params.items()},
                "reason": self.fit.reason,
            },
            "gain_if_doubled": round(self.fit.gain_if_doubled, 6),
            "spread": round(self.spread, 6),
            "threshold": round(self.threshold, 6),
            "more_data_helps": self.more_data_helps,
            "verdict": self.verdict,
            "notes": list(self.notes),
        }


def _rounded(values: list[float]) -> list[float]:
    return [round(v, 6) for v in values]


def _last_slope(sizes: np.ndarray[Any, Any], scores: np.ndarray[Any, Any], reason: str) -> CurveFit:
    doublings = math.log2(float(sizes[-1]) / float(sizes[-2]))
    slope = float(scores[-1] - scores[-2]) / doublings if doublings > 0 else 0.0
    return CurveFit(
        method="last_slope",
        params={"slope_per_doubling": slope},
        gain_if_doubled=max(slope, 0.0),
        reason=reason,
    )


def fit_saturation(
    sizes: np.ndarray[Any, Any] | list[int],
    scores: np.ndarray[Any, Any] | list[float],
    stds: np.ndarray[Any, Any] | list[float] | None = None,
) -> CurveFit:
    """Fit ``score = a - b * (n / N) ** -c`` and estimate the gain of doubling the data.

    Parameters
    ----------
    sizes
        Training sizes, increasing.
    scores
        Mean held-out score at each size, higher is better.
    stds
        Spread between folds at each size (weights of the fit); None: equal weights.

    Returns
    -------
    CurveFit
        The power law when it can be fitted, else the last two points' slope per doubling
        (``reason`` says why); with a single point, no estimate (gain 0).

    Examples
    --------
    >>> n = np.array([50, 100, 200, 400, 800])
    >>> fit = fit_saturation(n, 0.9 - 0.5 * (n / 800.0) ** -0.5)
    >>> fit.method, round(fit.gain_if_doubled, 3)
    ('power_law', 0.146)
    >>> last = fit_saturation([100, 200], [0.8, 0.84])
    >>> last.method, round(last.gain_if_doubled, 6)
    ('last_slope', 0.04)
    """
    x = np.asarray(sizes, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if x.size < 2:
        return CurveFit(method="none", params={}, gain_if_doubled=0.0, reason="one size only")
    if x.size < _MIN_FIT_POINTS:
        return _last_slope(x, s, f"fewer than {_MIN_FIT_POINTS} sizes")
    optimize = require("scipy.optimize", "train")
    scale = x / x[-1]
    sigma = None if stds is None else np.maximum(np.asarray(stds, dtype=np.float64), _SIGMA_FLOOR)

    def model(z: np.ndarray[Any, Any], a: float, b: float, c: float) -> np.ndarray[Any, Any]:
        out: np.ndarray[Any, Any] = a - b * np.power(z, -c)
        return out

    b0 = max(float(s[-1] - s[0]), 1e-3) / max(float(scale[0] ** -0.5 - 1.0), 1e-3)
    p0 = [float(s[-1]) + b0, b0, 0.5]
    try:
        with warnings.catch_warnings():
            # The covariance of the parameters is not used; its warning says nothing here.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            params, _ = optimize.curve_fit(
                model,
                scale,
                s,
                p0=p0,
                sigma=sigma,
                bounds=([-np.inf, 0.0, _C_MIN], [np.inf, np.inf, 5.0]),
                maxfev=20000,
            )
    except (RuntimeError, ValueError) as exc:
        return _last_slope(x, s, f"the power law did not fit ({str(exc).splitlines()[0]})")
    a, b, c = (float(v) for v in params)
    gain = b * (1.0 - 2.0**-c)
    if not all(math.isfinite(v) for v in (a, b, c, gain)):
        return _last_slope(x, s, "the power law fit is not finite")
    reason = ""
    if c <= _C_MIN * 1.01:
        # c at its bound: a - b * z**-c ~ (a - b) + b * c * ln z, a straight line in log n.
        reason = "no saturation within the measured sizes: the fit is a log-linear trend"
    params = {"a": a, "b": b, "c": c}
    return CurveFit(method="power_law", params=params, gain_if_doubled=gain, reason=reason)


def assess_curve(
    sizes: list[int],
    test_mean: list[float],
    test_std: list[float],
    *,
    min_gain: float,
    ceiling: float | None = None,
) -> tuple[CurveFit, float, float, bool, str]:
    """The fit and the verdict of a learning curve (scores higher-is-better).

    Parameters
    ----------
    sizes, test_mean, test_std
        The curve: training sizes, mean and spread of the held-out score.
    min_gain
        The smallest gain that counts, whatever the spread.
    ceiling
        The best score there is (1 for accuracy or F1, 0 for a negated loss); the gain
        is capped at the headroom left above the last point. None: no cap.

    Returns
    -------
    fit : CurveFit
    spread : float
        The spread at the largest size.
    threshold : float
        ``max(spread, min_gain)``.
    more_data_helps : bool
        The doubling gain exceeds the threshold.
    verdict : str
        :data:`MORE_DATA_HELPS`, :data:`FLATTENED` or :data:`NOT_MEASURED`.

    Examples
    --------
    >>> flat = assess_curve([100, 200, 300, 400], [0.95] * 4, [0.01] * 4, min_gain=0.005)
    >>> flat[3], flat[4]
    (False, 'the curve has flattened')
    """
    if len(sizes) < 2:
        fit = CurveFit(method="none", params={}, gain_if_doubled=0.0, reason="one size only")
        return fit, 0.0, min_gain, False, NOT_MEASURED
    fit = fit_saturation(sizes, test_mean, test_std)
    if ceiling is not None and fit.gain_if_doubled > ceiling - test_mean[-1]:
        headroom = max(ceiling - test_mean[-1], 0.0)
        why = "; ".join(
            r for r in (fit.reason, "gain capped at the headroom to a perfect score") if r
        )
        fit = dataclasses.replace(fit, gain_if_doubled=headroom, reason=why)
    spread = float(test_std[-1])
    threshold = max(spread, min_gain)
    helps = fit.gain_if_doubled > threshold
    return fit, spread, threshold, helps, MORE_DATA_HELPS if helps else FLATTENED


def _train_sizes(fractions: list[float], n_max: int, n_classes: int) -> np.ndarray[Any, Any]:
    smallest = min(n_max, max(10, 5 * n_classes))
    sizes = {min(n_max, max(smallest, round(float(f) * n_max))) for f in fractions}
    return np.array(sorted(sizes), dtype=np.intp)


def learning_curve(
    data: Dataset,
    model_cfg: ModelConfig,
    preprocess: PreprocessConfig,
    metric: CurveMetric,
    *,
    folds: int,
    seed: int,
    fractions: list[float],
    min_gain: float,
) -> LearningCurve:
    """Measure the learning curve of the project's pipeline on ``data`` and judge it.

    Parameters
    ----------
    data
        The dataset.
    model_cfg, preprocess
        The model and preprocessing, as ``mlcycle train`` builds them.
    metric
        The score (:func:`~mlcycle.data.check.scoring.curve_metric`).
    folds, seed
        Stratified, seeded folds.
    fractions
        Training sizes as fractions of a training fold; sizes below ``max(10, 5 x
        classes)`` rows are raised to it, duplicates merged.
    min_gain
        See :func:`assess_curve`.

    Returns
    -------
    LearningCurve
        Sizes where a fit failed in some fold are left out (with a note).

    Raises
    ------
    DataError
        A class has fewer rows than ``folds``.
    """
    model_selection = require("sklearn.model_selection", "train")
    from mlcycle.train.pipeline import build_pipeline, model_frame

    cv = stratified_folds(data.y, folds, seed)
    frame = model_frame(data, data.schema)
    n_max = min(len(train) for train, _ in cv.split(frame, data.y))
    sizes = _train_sizes(fractions, n_max, len(set(data.y.tolist())))
    pipeline = build_pipeline(data.schema, model_cfg, preprocess, seed)
    notes: list[str] = []
    with fit_notes(notes, "learning curve"):
        used, train_scores, test_scores = model_selection.learning_curve(
            pipeline,
            frame,
            data.y,
            train_sizes=sizes,
            cv=cv,
            scoring=metric.scorer,
            shuffle=True,
            random_state=seed,
            error_score=np.nan,
        )
    keep = ~(np.isnan(test_scores).any(axis=1) | np.isnan(train_scores).any(axis=1))
    for n in np.asarray(used)[~keep].tolist():
        notes.append(f"learning curve: size {n} left out: a fit or score failed in some fold")
    used = np.asarray(used)[keep]
    train_scores, test_scores = train_scores[keep], test_scores[keep]
    test_mean = test_scores.mean(axis=1).tolist()
    test_std = test_scores.std(axis=1).tolist()
    fit, spread, threshold, helps, verdict = assess_curve(
        [int(n) for n in used],
        test_mean,
        test_std,
        min_gain=min_gain,
        ceiling=1.0 if metric.higher_is_better else 0.0,  # scorer units: a loss is negated
    )
    sign = metric.sign
    return LearningCurve(
        metric=metric.name,
        higher_is_better=metric.higher_is_better,
        sizes=[int(n) for n in used],
        train_mean=(sign * train_scores.mean(axis=1)).tolist(),
        train_std=train_scores.std(axis=1).tolist(),
        test_mean=[sign * v for v in test_mean],
        test_std=test_std,
        fit=fit,
        spread=spread,
        threshold=threshold,
        more_data_helps=helps,
        verdict=verdict,
        notes=notes,
    )
