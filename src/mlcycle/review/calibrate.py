"""Pick the confidence threshold of the ``partial`` automation mode from labelled data.

In ``partial`` mode a row whose top probability is at or above
``serve.automation.threshold`` is answered by the model; the others wait for a person.
:func:`choose_threshold` finds, on rows the model was not trained on, the *smallest*
threshold whose automatically answered rows reach a target precision (the share of
them whose top class is the truth), so that as many rows as possible are automated.

Precision measured on few rows is weak evidence: 20 of 20 correct is a point estimate
of 1.0 but, one-sided at 95%, only shows a precision above 0.86. Every point therefore
also carries the one-sided Clopper-Pearson (exact binomial) lower confidence bound, and
``confidence_bound=True`` chooses on that bound instead of the point estimate.

Choosing the smallest threshold among many candidates favours thresholds that were
lucky on these rows; the bound (and more validation rows) is the honest answer to that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np

from mlcycle.exceptions import ConfigError, DataError

__all__ = [
    "TABLE_THRESHOLDS",
    "Calibration",
    "CurvePoint",
    "UnreachableTargetError",
    "choose_threshold",
    "curve_at",
    "lower_bound",
    "precision_curve",
    "setting_value",
]

#: Thresholds shown in the curve table of ``mlcycle automation calibrate``.
TABLE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class CurvePoint:
    """The rows a model would answer at one threshold, and how often it would be right.

    Parameters
    ----------
    threshold
        Rows whose top probability is at or above this are answered automatically.
    automated
        How many rows that is.
    correct
        How many of them have the true label as their top class.
    rows
        All rows of the data.
    level
        Confidence level of ``lower_bound``.
    """

    threshold: float
    automated: int
    correct: int
    rows: int
    level: float = 0.95

    @property
    def automation_rate(self) -> float:
        """Share of all rows answered automatically."""
        return self.automated / self.rows if self.rows else 0.0

    @property
    def precision(self) -> float:
        """Share of the automated rows answered correctly (NaN when none is automated)."""
        return self.correct / self.automated if self.automated else math.nan

    @property
    def lower_bound(self) -> float:
        """One-sided Clopper-Pearson lower bound of the precision at :attr:`level`."""
        return lower_bound(self.correct, self.automated, self.level)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with the derived rates (NaN as ``None``, for JSON)."""
        out = asdict(self)
        for key in ("automation_rate", "precision", "lower_bound"):
            value = getattr(self, key)
            out[key] = None if math.isnan(value) else value
        return out


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and what it gives on the calibration rows.

    Parameters
    ----------
    threshold
        The value to set as ``serve.automation.threshold``: the shortest decimal that
        selects exactly the same rows as ``point.threshold`` (see :func:`setting_value`).
    point
        The curve point chosen: automated rows, correct ones, precision, lower bound.
    target
        The precision asked for.
    on_bound
        Whether the choice was made on the lower confidence bound rather than the
        point estimate.
    curve
        Every distinct threshold of the data, highest first.
    """

    threshold: float
    point: CurvePoint
    target: float
    on_bound: bool
    curve: list[CurvePoint] = field(repr=False)

    @property
    def automation_rate(self) -> float:
        """Expected share of rows answered automatically."""
        return self.point.automation_rate

    @property
    def precision(self) -> float:
        """Precision of the automated rows (point estimate)."""
        return self.point.precision

    @property
    def lower_bound(self) -> float:
        """One-sided lower confidence bound of :attr:`precision`."""
        return self.point.lower_bound

    def to_dict(self, thresholds: Sequence[float] = TABLE_THRESHOLDS) -> dict[str, Any]:
        """Plain data for ``--json``: the choice, and the curve at ``thresholds``."""
        return {
            "threshold": self.threshold,
            "target_precision": self.target,
            "chosen_on": "lower_bound" if self.on_bound else "precision",
            "confidence_level": self.point.level,
            "rows": self.point.rows,
            "automated": self.point.automated,
            "correct": self.point.correct,
            "automation_rate": self.automation_rate,
            "precision": self.precision,
            "lower_bound": self.lower_bound,
            "lowest_automated_confidence": self.point.threshold,
            "curve": [p.to_dict() for p in curve_at(self.curve, thresholds)],
        }


class UnreachableTargetError(ConfigError):
    """No threshold reaches the target precision on the calibration rows.

    ``best`` is the curve point with the highest precision (or lower bound).
    """

    def __init__(self, message: str, *, best: CurvePoint, target: float) -> None:
        super().__init__(message)
        self.best = best
        self.target = target


def lower_bound(correct: int, n: int, level: float = 0.95) -> float:
    """One-sided Clopper-Pearson lower confidence bound of a proportion.

    The true proportion is at least this with probability ``level`` (exact, so
    conservative: the coverage is at least ``level`` for every proportion).

    Parameters
    ----------
    correct
        Successes.
    n
        Trials; 0 gives NaN.
    level
        Confidence level, in (0, 1).

    Returns
    -------
    float
        The bound, 0.0 when ``correct`` is 0.

    Examples
    --------
    >>> round(lower_bound(20, 20), 4)  # 20 of 20: only above 0.05 ** (1 / 20)
    0.8609
    >>> round(lower_bound(990, 1000), 4)
    0.9831
    """
    if n == 0:
        return math.nan
    if correct == 0:
        return 0.0
    from scipy.stats import beta

    return float(beta.ppf(1.0 - level, correct, n - correct + 1))


def _checked(
    proba: np.ndarray[Any, Any],
    y_true: Sequence[Any] | np.ndarray[Any, Any],
    classes: Sequence[str],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Top probability and correctness of each row, after checking the inputs."""
    p = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true).astype(str)
    names = [str(c) for c in classes]
    if p.ndim != 2 or p.shape[1] != len(names):
        raise DataError(
            f"probabilities have shape {p.shape}; expected (rows, {len(names)}), one column "
            f"per class of {names}"
        )
    if p.shape[0] != len(y):
        raise DataError(f"{p.shape[0]} rows of probabilities but {len(y)} true labels")
    if len(y) == 0:
        raise DataError("no labelled rows to calibrate on; the split is empty")
    if not np.isfinite(p).all():
        raise DataError("probabilities hold NaN or infinite values; check the model's outputs")
    unknown = sorted(set(y.tolist()) - set(names))
    if unknown:
        raise DataError(
            f"true labels {unknown[:5]} are not among the model's classes {names}; "
            "calibrate on data with the classes the model was trained on"
        )
    top = p.argmax(axis=1)
    correct = np.asarray(names, dtype=object)[top] == y.astype(object)
    return p.max(axis=1), np.asarray(correct, dtype=bool)


def precision_curve(
    proba: np.ndarray[Any, Any],
    y_true: Sequence[Any] | np.ndarray[Any, Any],
    classes: Sequence[str],
    *,
    level: float = 0.95,
) -> list[CurvePoint]:
    """Automation rate and precision at every distinct top probability, highest first.

    A threshold between two consecutive points selects the rows of the upper one, so
    these points are all the different outcomes a threshold can have on this data. Rows
    tied at a threshold are all automated or all not.

    Parameters
    ----------
    proba
        Class probabilities, ``(rows, classes)``.
    y_true
        The true label of each row.
    classes
        The class of each probability column.
    level
        Confidence level of the lower bounds.

    Returns
    -------
    list of CurvePoint
        One point per distinct top probability.

    Raises
    ------
    DataError
        Shapes that do not match, no rows, non-finite values, unknown labels.

    Examples
    --------
    >>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    >>> [(p.threshold, p.automated, p.correct) for p in
    ...  precision_curve(proba, ["a", "b", "a", "a"], ["a", "b"])]
    [(0.9, 1, 1), (0.8, 2, 2), (0.7, 3, 3), (0.6, 4, 3)]
    """
    conf, correct = _checked(proba, y_true, classes)
    order = np.argsort(-conf, kind="stable")
    c, ok = conf[order], correct[order]
    cum = np.cumsum(ok)
    ends = np.flatnonzero(np.append(c[1:] != c[:-1], True))
    n = len(c)
    return [CurvePoint(float(c[i]), int(i + 1), int(cum[i]), n, level) for i in ends.tolist()]


def curve_at(curve: Sequence[CurvePoint], thresholds: Sequence[float]) -> list[CurvePoint]:
    """The curve at chosen thresholds (e.g. a round grid for a table).

    Parameters
    ----------
    curve
        From :func:`precision_curve` (highest threshold first).
    thresholds
        Where to read it.

    Returns
    -------
    list of CurvePoint
        One point per threshold, with that ``threshold`` and the rows at or above it.

    Examples
    --------
    >>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    >>> curve = precision_curve(proba, ["a", "b", "a", "a"], ["a", "b"])
    >>> [(p.threshold, p.automated) for p in curve_at(curve, [0.5, 0.75, 0.95])]
    [(0.5, 4), (0.75, 2), (0.95, 0)]
    """
    if not curve:
        return []
    rows, level = curve[0].rows, curve[0].level
    out: list[CurvePoint] = []
    for t in thresholds:
        at = [p for p in curve if p.threshold >= t]
        last = at[-1] if at else None
        out.append(
            CurvePoint(
                float(t),
                last.automated if last else 0,
                last.correct if last else 0,
                rows,
                level,
            )
        )
    return out


def setting_value(low: float, high: float) -> float:
    """The shortest decimal in ``(low, high]``, as close to ``high`` as that allows.

    Any threshold in ``(low, high]`` automates the same calibration rows (``high`` is
    the lowest top probability automated, ``low`` the next lower one), so the setting
    can be written short (``0.87``) without changing the result; rounding the other way
    would let in rows the precision was not measured on.

    Examples
    --------
    >>> setting_value(0.8612, 0.8734)
    0.87
    >>> setting_value(0.87312, 0.87345)
    0.8734
    >>> setting_value(0.0, 0.5123)
    0.5
    """
    exact = Decimal(repr(float(high)))  # the shortest text that reads back as high
    for digits in range(1, 18):
        step = Decimal(1).scaleb(-digits)
        value = float(exact.quantize(step, rounding=ROUND_FLOOR))
        if low < value <= high:
            return value
    return float(high)


def choose_threshold(
    proba: np.ndarray[Any, Any],
    y_true: Sequence[Any] | np.ndarray[Any, Any],
    classes: Sequence[str],
    target: float,
    *,
    confidence_bound: bool = False,
    level: float = 0.95,
) -> Calibration:
    """The smallest confidence threshold whose automated rows reach ``target`` precision.

    Parameters
    ----------
    proba
        Class probabilities of rows the model was not trained on, ``(rows, classes)``.
    y_true
        Their true labels.
    classes
        The class of each probability column.
    target
        The precision the automatically answered rows must reach, in (0, 1].
    confidence_bound
        Choose on the one-sided lower confidence bound of the precision instead of the
        point estimate: the threshold then holds with probability ``level`` even when
        it rests on few rows.
    level
        Confidence level of the bound, in (0, 1).

    Returns
    -------
    Calibration
        The threshold to set, its automation rate, precision and lower bound, and the
        whole curve.

    Raises
    ------
    ConfigError
        ``target`` or ``level`` out of range.
    UnreachableTargetError
        No threshold reaches ``target``; the message names the best precision (or
        bound) reachable and a target that would be.
    DataError
        Bad inputs (see :func:`precision_curve`).

    Examples
    --------
    >>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    >>> c = choose_threshold(proba, ["a", "b", "a", "a"], ["a", "b"], 1.0)
    >>> c.threshold, c.automation_rate, c.precision
    (0.7, 0.75, 1.0)
    """
    if not 0.0 < target <= 1.0:
        raise ConfigError(
            f"target precision {target} is not in (0, 1]; give e.g. --target-precision 0.99"
        )
    if not 0.0 < level < 1.0:
        raise ConfigError(f"confidence level {level} is not in (0, 1); give e.g. 0.95")
    curve = precision_curve(proba, y_true, classes, level=level)
    score = [p.lower_bound if confidence_bound else p.precision for p in curve]
    ok = [i for i, s in enumerate(score) if s >= target]
    if not ok:
        raise _unreachable(curve, score, target, confidence_bound, level)
    i = ok[-1]  # lowest threshold that reaches the target: the most rows automated
    low = curve[i + 1].threshold if i + 1 < len(curve) else 0.0
    return Calibration(
        threshold=setting_value(low, curve[i].threshold),
        point=curve[i],
        target=target,
        on_bound=confidence_bound,
        curve=curve,
    )


def _unreachable(
    curve: list[CurvePoint], score: list[float], target: float, on_bound: bool, level: float
) -> UnreachableTargetError:
    best_i = max(range(len(curve)), key=lambda i: (score[i], i))
    best, value = curve[best_i], score[best_i]
    what = f" ({level:.0%} lower confidence bound)" if on_bound else ""
    found = (
        f"no confidence threshold reaches a precision of {target:g}{what} on these "
        f"{best.rows} rows: "
        f"the best is {value:.4f} ({best.correct} of {best.automated} rows correct at "
        f"threshold {best.threshold:.4g}, automating {best.automation_rate:.1%})"
    )
    if on_bound and target >= 1.0:
        fix = (
            "; a lower bound stays below 1 for any number of rows, so give a target below 1 "
            "(e.g. --target-precision 0.99) or leave out --confidence-bound"
        )
    elif value <= 0.0:
        fix = "; the model's top class is never right here: check the model and the data"
    else:
        suggestion = math.floor(value * 100) / 100 or math.floor(value * 1000) / 1000
        fix = f"; lower --target-precision to {suggestion:g} or less"
        fix += (
            ", leave out --confidence-bound, or calibrate on more rows (the bound tightens "
            "as rows grow)"
            if on_bound
            else ", or improve the model"
        )
    return UnreachableTargetError(found + fix, best=best, target=target)
