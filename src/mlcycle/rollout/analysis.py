"""Challenger against champion: one check per risk, one decision.

Every check asks, one-sided, "is the challenger worse?" and ends ``pass``, ``fail`` or
``wait`` (not enough evidence for it yet):

* ``error_rate`` fails when a pooled two-proportion z-test gives p < ``alpha`` and the
  challenger's error rate is higher by more than ``max_error_rate_increase``;
* ``latency`` fails when the p99 ratio (challenger / champion) is above
  ``max_latency_p99_ratio``, the p99 is higher by more than
  ``min_latency_p99_increase_ms``, and a Mann-Whitney U test (challenger greater) gives
  p < ``alpha``;
* in shadow mode only, ``disagreement`` fails when the share of shadowed rows with
  another label than the champion's is above ``max_disagreement``, and
  ``probability_difference`` when the mean absolute difference of the probability of the
  champion's class is above ``max_probability_difference``;
* ``output_psi`` fails when the PSI of the predicted-class mix is above ``max_psi``,
  unless the accuracy check passed with the challenger at least as accurate (then the
  mix moved toward the truth: the champion was wrong, e.g. on drifted traffic); while
  labels are coming in on both arms but are still too few, it waits for them instead
  (and holds the rollout);
* ``accuracy`` (rows with feedback) fails when a z-test on correct / labelled gives
  p < ``alpha`` and the challenger's accuracy is lower by more than
  ``max_accuracy_drop``.

A check waits below ``min_requests`` requests (latency: latencies; shadow checks: pairs;
output_psi: predicted rows) on an arm, accuracy below ``min_labels`` labels on an arm.

The decision: any failed check rolls back at once (also before the bake window is over);
otherwise the rollout holds until the bake window is over and error_rate and latency have
their evidence, then promotes. Labels are optional: a waiting accuracy check (or any other
waiting check than those two) never holds a rollout.

numpy, scipy and the standard library only: the server imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from mlcycle.monitor.drift import psi
from mlcycle.monitor.quality import quality_metrics
from mlcycle.rollout.evidence import ArmSample, Evidence
from mlcycle.rollout.settings import AnalysisSettings

__all__ = [
    "ACTIONS",
    "CHECKS",
    "PSI_EPSILON",
    "Check",
    "Decision",
    "analyse",
    "macro_f1",
    "output_psi",
    "proportions_z_test",
]

#: The checks, in the order they are reported.
CHECKS = (
    "error_rate",
    "latency",
    "disagreement",
    "probability_difference",
    "output_psi",
    "accuracy",
)
#: What a decision does.
ACTIONS = ("promote", "hold", "rollback")
#: Smallest class share in the PSI (an absent class would otherwise weigh infinitely).
PSI_EPSILON = 1e-4
#: The checks that must have their evidence before a promotion.
_NEEDED = ("error_rate", "latency")


@dataclass(frozen=True)
class Check:
    """One check's outcome."""

    name: str
    #: ``pass``, ``fail`` or ``wait`` (not enough evidence for this check yet).
    status: str
    value: float | None
    threshold: float | None
    p_value: float | None
    #: One sentence with the numbers.
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (non-finite numbers become ``None``)."""
        return {
            "name": self.name,
            "status": self.status,
            "value": _finite(self.value),
            "threshold": _finite(self.threshold),
            "p_value": _finite(self.p_value),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Decision:
    """What to do with the challenger, why, and the checks behind it."""

    #: ``promote``, ``hold`` or ``rollback``.
    action: str
    reason: str
    checks: tuple[Check, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "action": self.action,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
        }

    def check(self, name: str) -> Check | None:
        """The check called ``name``, if it ran."""
        return next((c for c in self.checks if c.name == name), None)


def analyse(
    evidence: Evidence,
    settings: AnalysisSettings,
    *,
    bake_reached: bool,
    bake_detail: str = "",
) -> Decision:
    """Run every check that applies and decide.

    Parameters
    ----------
    evidence
        From :func:`mlcycle.rollout.evidence.gather`.
    settings
        The thresholds.
    bake_reached
        Whether the step has been baked long enough (time and requests) to be promoted.
    bake_detail
        Why not, when it has not (the reason of the ``hold``).

    Returns
    -------
    Decision
        ``rollback`` when any check fails (naming each with its numbers); else ``hold``
        before the bake window is over or while error_rate or latency waits; else
        ``promote``.
    """
    s = settings
    champion, challenger = evidence.champion, evidence.challenger
    checks = [_error_rate(champion, challenger, s), _latency(champion, challenger, s)]
    if evidence.shadow is not None:
        sh = evidence.shadow
        checks.append(
            _threshold(
                "disagreement",
                sh.disagreement_rate if sh.pairs else None,
                s.max_disagreement,
                sh.pairs,
                s.min_requests,
                "pairs",
                f"{_pct(sh.disagreement_rate)} of {sh.pairs} shadowed rows "
                f"({sh.disagreements}) got another label than the champion's",
            )
        )
        diff = sh.probability_difference
        diff_detail = (
            "no shadowed row has the champion's probability yet"
            if math.isnan(diff)
            else f"the shadow's probability of the champion's class differs by {diff:.3f} "
            f"on average over {sh.pairs} rows"
        )
        checks.append(
            _threshold(
                "probability_difference",
                None if math.isnan(diff) else diff,
                s.max_probability_difference,
                sh.pairs,
                s.min_requests,
                "pairs",
                diff_detail,
            )
        )
    accuracy = _accuracy(champion, challenger, s)
    checks.append(_output_psi(champion, challenger, s, accuracy))
    checks.append(accuracy)

    failed = [c for c in checks if c.status == "fail"]
    if failed:
        reason = "; ".join(f"{c.name} failed: {c.detail}" for c in failed)
        return Decision("rollback", reason, tuple(checks))
    if not bake_reached:
        return Decision("hold", bake_detail or "the bake window is not over", tuple(checks))
    waiting = [c for c in checks if c.status == "wait" and _needed(c, s)]
    if waiting:
        reason = "waiting for evidence: " + "; ".join(f"{c.name}: {c.detail}" for c in waiting)
        return Decision("hold", reason, tuple(checks))
    reason = "passed: " + ", ".join(c.name for c in checks if c.status == "pass")
    waits = [c.name for c in checks if c.status == "wait"]
    if waits:
        reason += f"; not enough evidence yet (not required) for {', '.join(waits)}"
    return Decision("promote", reason, tuple(checks))


def proportions_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test, one-sided: is ``x1 / n1`` greater than ``x2 / n2``?

    ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with the pooled ``p = (x1 + x2) /
    (n1 + n2)``, and ``p_value = P(Z > z)`` (statsmodels' ``proportions_ztest`` with
    ``alternative="larger"``). When every outcome is the same (both rates 0, or both 1)
    there is no evidence of a difference: ``z = 0`` and ``p_value = 1``.

    Examples
    --------
    >>> z, p = proportions_z_test(20, 100, 10, 100)
    >>> round(z, 3), round(p, 4)
    (1.98, 0.0238)
    >>> proportions_z_test(0, 50, 0, 80)
    (0.0, 1.0)
    """
    if n1 < 1 or n2 < 1:
        raise ValueError(f"both samples need at least one trial, got n1={n1}, n2={n2}")
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return float(z), float(stats.norm.sf(z))


def output_psi(champion: dict[str, int], challenger: dict[str, int]) -> float:
    """PSI of the challenger's predicted-class mix against the champion's.

    Over the union of the classes, with shares below :data:`PSI_EPSILON` raised to it
    (:func:`mlcycle.monitor.drift.psi`); 0.0 when an arm predicted nothing.

    Examples
    --------
    >>> output_psi({"a": 50, "b": 50}, {"a": 50, "b": 50})
    0.0
    >>> round(output_psi({"a": 50, "b": 50}, {"a": 90, "b": 10}), 4)
    0.8789
    """
    classes = sorted(set(champion) | set(challenger))
    expected = np.array([champion.get(c, 0) for c in classes], dtype=np.float64)
    actual = np.array([challenger.get(c, 0) for c in classes], dtype=np.float64)
    if expected.sum() <= 0 or actual.sum() <= 0:
        return 0.0
    return psi(expected / expected.sum(), actual / actual.sum(), eps=PSI_EPSILON)


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float | None:
    """Macro F1 over the classes present among the true labels (scikit-learn's
    ``f1_score(average="macro", labels=present, zero_division=0)``); ``None`` without
    labels.

    Examples
    --------
    >>> round(macro_f1(["a", "a", "b"], ["a", "b", "b"]), 4)
    0.6667
    """
    classes = sorted(set(y_true) | set(y_pred))
    f1: float | None = quality_metrics(zip(y_pred, y_true, strict=True), classes)["f1_macro"]
    return f1


# -- the checks -----------------------------------------------------------------------------


def _error_rate(champion: ArmSample, challenger: ArmSample, s: AnalysisSettings) -> Check:
    n1, n2 = challenger.requests, champion.requests
    x1, x2 = challenger.errors, champion.errors
    detail = (
        f"challenger {_pct(challenger.error_rate)} errors ({x1}/{n1}) vs champion "
        f"{_pct(champion.error_rate)} ({x2}/{n2})"
    )
    if not n1 or not n2:
        return Check("error_rate", "wait", None, s.max_error_rate_increase, None, detail)
    increase = challenger.error_rate - champion.error_rate
    _, p = proportions_z_test(x1, n1, x2, n2)
    detail += f", p={p:.2g}"
    if min(n1, n2) < s.min_requests:
        status = "wait"
        detail += f" (fewer than {s.min_requests} requests on an arm)"
    else:
        status = "fail" if p < s.alpha and increase > s.max_error_rate_increase else "pass"
    return Check("error_rate", status, increase, s.max_error_rate_increase, p, detail)


def _latency(champion: ArmSample, challenger: ArmSample, s: AnalysisSettings) -> Check:
    a, b = challenger.latency_ms, champion.latency_ms
    if not a.size or not b.size:
        detail = f"latency of {a.size} challenger and {b.size} champion requests"
        return Check("latency", "wait", None, s.max_latency_p99_ratio, None, detail)
    p99_a = float(np.percentile(a, 99))
    p99_b = float(np.percentile(b, 99))
    ratio = p99_a / p99_b if p99_b > 0 else (math.inf if p99_a > 0 else 1.0)
    p = float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)
    detail = (
        f"challenger p99 {p99_a:.1f} ms vs champion {p99_b:.1f} ms (x{ratio:.2f}), "
        f"Mann-Whitney p={p:.2g} over {a.size} and {b.size} requests"
    )
    if min(a.size, b.size) < s.min_requests:
        status = "wait"
        detail += f" (fewer than {s.min_requests} requests on an arm)"
    else:
        slower = p99_a - p99_b > s.min_latency_p99_increase_ms
        status = "fail" if ratio > s.max_latency_p99_ratio and slower and p < s.alpha else "pass"
    return Check("latency", status, ratio, s.max_latency_p99_ratio, p, detail)


def _needed(check: Check, s: AnalysisSettings) -> bool:
    """Whether a waiting ``check`` holds the rollout: error rate and latency always; a
    class mix beyond ``max_psi`` while the labels that could excuse it come in."""
    if check.name in _NEEDED:
        return True
    return check.name == "output_psi" and check.value is not None and check.value > s.max_psi


def _threshold(
    name: str,
    value: float | None,
    threshold: float,
    n: int,
    needed: int,
    unit: str,
    detail: str,
) -> Check:
    """A check that fails above ``threshold``; it waits without a value or while ``n``
    (of ``unit``) is below ``needed``."""
    if value is None or n < needed:
        detail = f"{detail} (fewer than {needed} {unit})" if n < needed else detail
        return Check(name, "wait", value, threshold, None, detail)
    return Check(name, "fail" if value > threshold else "pass", value, threshold, None, detail)


def _output_psi(
    champion: ArmSample, challenger: ArmSample, s: AnalysisSettings, accuracy: Check
) -> Check:
    """PSI of the class mix: a stand-in for quality while labels are scarce.

    When the labels already show the challenger at least as accurate (``accuracy`` passed
    with no drop), a changed mix is a change toward the truth (the champion was wrong,
    e.g. on drifted traffic), so it does not fail.
    """
    value = output_psi(champion.class_counts, challenger.class_counts)
    n = min(champion.rows, challenger.rows)
    detail = (
        f"PSI {value:.3f} of the predicted classes, challenger {_mix(challenger.class_counts)}"
        f" vs champion {_mix(champion.class_counts)}"
    )
    check = _threshold(
        "output_psi", value if n else None, s.max_psi, n, s.min_requests, "rows on an arm", detail
    )
    if check.status != "fail":
        return check
    if accuracy.status == "pass" and accuracy.value is not None and accuracy.value <= 0:
        detail += (
            f"; above {s.max_psi:g}, but the labels show the challenger at least as accurate "
            "(see accuracy), so the mix moved toward the truth"
        )
        return Check("output_psi", "pass", value, s.max_psi, None, detail)
    if accuracy.status == "wait" and champion.labelled and challenger.labelled:
        detail += (
            f"; above {s.max_psi:g}, but labels are coming in: waiting for {s.min_labels} on "
            "each arm to tell a better model from a worse one"
        )
        return Check("output_psi", "wait", value, s.max_psi, None, detail)
    return check


def _accuracy(champion: ArmSample, challenger: ArmSample, s: AnalysisSettings) -> Check:
    n1, n2 = champion.labelled, challenger.labelled
    if not n1 or not n2:
        detail = f"{n2} challenger and {n1} champion predictions have labels"
        if min(n1, n2) < s.min_labels:
            detail += f" (fewer than {s.min_labels})"
        return Check("accuracy", "wait", None, s.max_accuracy_drop, None, detail)
    x1, x2 = champion.correct, challenger.correct
    drop = x1 / n1 - x2 / n2
    _, p = proportions_z_test(x1, n1, x2, n2)
    f1_a = macro_f1(challenger.y_true, challenger.y_pred)
    f1_b = macro_f1(champion.y_true, champion.y_pred)
    detail = (
        f"challenger accuracy {_pct(x2 / n2)} ({x2}/{n2}, macro F1 {_num(f1_a)}) vs champion "
        f"{_pct(x1 / n1)} ({x1}/{n1}, macro F1 {_num(f1_b)}), p={p:.2g}"
    )
    if min(n1, n2) < s.min_labels:
        status = "wait"
        detail += f" (fewer than {s.min_labels} labels on an arm)"
    else:
        status = "fail" if p < s.alpha and drop > s.max_accuracy_drop else "pass"
    return Check("accuracy", status, drop, s.max_accuracy_drop, p, detail)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _mix(counts: dict[str, int], shown: int = 3) -> str:
    """The most predicted classes with their shares, e.g. ``a 60.0%, b 40.0%``."""
    total = sum(counts.values())
    if not total:
        return "(no predictions)"
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{label} {_pct(n / total)}" for label, n in top[:shown])
    return text + (f" (+{len(top) - shown} more)" if len(top) > shown else "")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
