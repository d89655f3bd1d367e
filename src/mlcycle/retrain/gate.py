"""The gate a retrained model passes before it becomes the challenger.

Pure functions of the metrics of both models (as
:func:`~mlcycle.evaluate.report.evaluate_predictions` returns them) on each evaluation
set: ``holdout`` (the fixed test split of the training data) and ``recent`` (the newest
labelled traffic, which neither model trained on). Three checks, all must pass:

``improvement``
    The candidate beats the champion by at least ``gate.margin`` on the gate metric, on
    recent traffic when it has ``gate.min_recent_labels`` labels, else on the holdout.
``slices``
    On each judged set, the metric and the recall of every class with at least
    ``gate.min_slice_rows`` rows there are not worse than the champion's by more than
    ``gate.slice_tolerance`` (a recall measured on fewer rows moves by more than the
    tolerance with one row: it is reported, not judged). A class's recall fails only when
    its drop is also more than chance: a one-sided two-proportion z-test gives
    p < ``gate.alpha`` (the same test as the rollout analysis; both models are judged on
    the same rows, which this unpaired test treats conservatively).
``baselines``
    Every fixed baseline (``evaluate.baselines`` entries with a ``value``) is met on the
    holdout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlcycle.config.structured import BaselineConfig
from mlcycle.evaluate.baselines import compare_to_baselines
from mlcycle.evaluate.metrics import higher_is_better, numeric_metric_keys
from mlcycle.exceptions import ConfigError
from mlcycle.retrain.config import GateConfig
from mlcycle.rollout.analysis import proportions_z_test

__all__ = ["EVALUATION_SETS", "GateCheck", "GateVerdict", "judge"]

#: The sets both models are evaluated on, in the order they are reported.
EVALUATION_SETS = ("holdout", "recent")
# Differences this small are float noise (0.9 - 0.8 is 0.09999999999999998).
_EPS = 1e-9

Metrics = Mapping[str, Any]


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate: its verdict, the numbers behind it and a sentence."""

    name: str
    passed: bool
    values: dict[str, Any] = field(default_factory=dict)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``gate.json`` and the ``retrains`` table)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "values": self.values,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class GateVerdict:
    """The gate's checks; it passes when every check does."""

    metric: str
    checks: list[GateCheck]

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def reason(self) -> str:
        """The failed checks' details, or ``""`` when it passed."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.passed)

    def check(self, name: str) -> GateCheck:
        """The check called ``name``."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``gate.json``)."""
        return {
            "passed": self.passed,
            "metric": self.metric,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
        }


def _rows(metrics: Metrics | None) -> int:
    return 0 if metrics is None else int(metrics.get("n_samples") or 0)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return None if f != f else f


def _judged_sets(
    candidate: Mapping[str, Metrics], champion: Mapping[str, Metrics], gate: GateConfig
) -> list[str]:
    """The holdout, and recent traffic when both have enough labels there."""
    recent = candidate.get("recent")
    enough = champion.get("recent") is not None and _rows(recent) >= gate.min_recent_labels
    return ["holdout", "recent"] if enough else ["holdout"]


def _improvement(
    candidate: Mapping[str, Metrics],
    champion: Mapping[str, Metrics],
    gate: GateConfig,
    metric: str,
) -> GateCheck:
    recent_rows = _rows(candidate.get("recent"))
    on = "recent" if "recent" in _judged_sets(candidate, champion, gate) else "holdout"
    why_holdout = (
        ""
        if on == "recent"
        else (
            f" (only {recent_rows} recent labels, fewer than gate.min_recent_labels="
            f"{gate.min_recent_labels}: judged on the holdout)"
        )
    )
    cand, champ = _num(candidate[on].get(metric)), _num(champion[on].get(metric))
    values: dict[str, Any] = {
        "set": on,
        "metric": metric,
        "candidate": cand,
        "champion": champ,
        "margin": gate.margin,
        "recent_rows": recent_rows,
    }
    if cand is None or champ is None:
        who = "the candidate's" if cand is None else "the champion's"
        return GateCheck(
            "improvement", False, values, f"{who} {metric} is undefined on {on}{why_holdout}"
        )
    gain = cand - champ if higher_is_better(metric) else champ - cand
    values["gain"] = gain
    passed = gain >= gate.margin - _EPS
    detail = (
        f"{metric} on {on}: candidate {cand:.4f} vs champion {champ:.4f}, a gain of "
        f"{gain:+.4f} ({'at least' if passed else 'less than'} gate.margin={gate.margin:g})"
        f"{why_holdout}"
    )
    return GateCheck("improvement", passed, values, detail)


def _slices(
    candidate: Mapping[str, Metrics],
    champion: Mapping[str, Metrics],
    gate: GateConfig,
    metric: str,
) -> GateCheck:
    tolerance = gate.slice_tolerance
    slices: dict[str, dict[str, float]] = {}
    worse: list[str] = []
    thin: list[str] = []  # class slices too small to tell a real drop from chance
    counts: dict[str, int] = {}  # rows of each class slice (both models see the same rows)
    chance: list[str] = []  # drops beyond the tolerance that chance explains
    sets = _judged_sets(candidate, champion, gate)
    for name in sets:
        cand, champ = candidate[name], champion[name]
        pairs: list[tuple[str, str, Any, Any, bool]] = [
            (f"{name}.{metric}", f"{name} {metric}", cand.get(metric), champ.get(metric),
             higher_is_better(metric)),
        ]  # fmt: skip
        cand_classes = cand.get("per_class") or {}
        champ_classes = champ.get("per_class") or {}
        for cls in sorted(set(cand_classes) & set(champ_classes)):
            support = int(cand_classes[cls].get("support") or 0)
            if support < gate.min_slice_rows:
                thin.append(f"{name} recall of {cls!r} ({support} rows)")
                continue
            counts[f"{name}.recall.{cls}"] = support
            pairs.append(
                (
                    f"{name}.recall.{cls}",
                    f"{name} recall of {cls!r}",
                    cand_classes[cls].get("recall"),
                    champ_classes[cls].get("recall"),
                    True,
                )
            )
        for key, label, cand_value, champ_value, higher in pairs:
            c, p = _num(cand_value), _num(champ_value)
            if c is None or p is None:
                continue  # e.g. a class absent from this set: nothing to compare
            drop = p - c if higher else c - p
            slices[key] = {"candidate": c, "champion": p, "drop": drop}
            if drop <= tolerance + _EPS:
                continue
            n = counts.get(key)
            if n is not None:  # a recall: is the drop more than chance on n rows?
                _, p_value = proportions_z_test(round(p * n), n, round(c * n), n)
                slices[key]["p_value"] = p_value
                if p_value >= gate.alpha:
                    chance.append(f"{label} {c:.4f} vs {p:.4f} on {n} rows, p={p_value:.2g}")
                    continue
            worse.append(f"{label} {c:.4f} vs {p:.4f} ({-drop:+.4f})")
    values: dict[str, Any] = {
        "tolerance": tolerance, "sets": sets, "slices": slices, "not_judged": thin,
        "within_chance": chance,
    }  # fmt: skip
    unjudged = (
        f"; not judged, fewer than gate.min_slice_rows={gate.min_slice_rows}: {', '.join(thin)}"
        if thin
        else ""
    )
    if chance:
        unjudged += (
            f"; lower but not significantly (one-sided z-test, p >= gate.alpha={gate.alpha:g}): "
            + ", ".join(chance)
        )
    if worse:
        detail = (
            f"worse than the champion by more than gate.slice_tolerance={tolerance:g} on: "
            + ", ".join(worse)
            + unjudged
        )
        return GateCheck("slices", False, values, detail)
    detail = (
        f"no slice worse than the champion's by more than {tolerance:g} "
        f"({len(slices)} slices on {' and '.join(sets)}){unjudged}"
    )
    return GateCheck("slices", True, values, detail)


def _baselines(holdout: Metrics, baselines: Sequence[BaselineConfig]) -> GateCheck:
    fixed = [b for b in baselines if b.value is not None]
    if not fixed:
        return GateCheck(
            "baselines", True, {"baselines": []}, "no fixed baselines (evaluate.baselines)"
        )
    results = compare_to_baselines(holdout, fixed, lambda _ref: None)
    missed = [r for r in results if r.beats_baseline is not True]
    values = {"baselines": [r.to_dict() for r in results]}
    if missed:
        parts = [
            f"{r.name} ({r.metric} {r.model_value:.4f} < {r.baseline_value:.4f})"
            if r.model_value is not None and r.baseline_value is not None
            else f"{r.name} ({r.note})"
            for r in missed
        ]
        return GateCheck("baselines", False, values, "missed on the holdout: " + ", ".join(parts))
    met = ", ".join(f"{r.name} {r.metric} {r.baseline_value:g}" for r in results)
    return GateCheck("baselines", True, values, f"met on the holdout: {met}")


def judge(
    candidate: Mapping[str, Metrics],
    champion: Mapping[str, Metrics],
    gate: GateConfig,
    *,
    primary_metric: str,
    baselines: Sequence[BaselineConfig] = (),
) -> GateVerdict:
    """Judge a retrained model against the champion.

    Parameters
    ----------
    candidate, champion
        Each model's metrics per evaluation set: ``holdout`` (required) and ``recent``
        (left out when there is no recent labelled traffic).
    gate
        ``retrain.gate``: metric, margin, slice tolerance, recent labels needed.
    primary_metric
        ``evaluate.primary_metric``, the metric when ``gate.metric`` is not set.
    baselines
        ``evaluate.baselines``; the ones with a ``value`` are checked.

    Returns
    -------
    GateVerdict
        ``improvement``, ``slices`` and ``baselines``, in that order.

    Raises
    ------
    ConfigError
        The gate metric is not a metric, or a baseline is malformed.

    Examples
    --------
    >>> champ = {"holdout": {"f1_macro": 0.90, "n_samples": 100}}
    >>> cand = {"holdout": {"f1_macro": 0.93, "n_samples": 100}}
    >>> v = judge(cand, champ, GateConfig(margin=0.02), primary_metric="f1_macro")
    >>> v.passed, v.check("improvement").values["set"]
    (True, 'holdout')
    >>> strict = judge(cand, champ, GateConfig(margin=0.05), primary_metric="f1_macro")
    >>> strict.passed, strict.reason.startswith("improvement: f1_macro on holdout")
    (False, True)
    """
    if "holdout" not in candidate or "holdout" not in champion:
        raise ValueError("both models need metrics on the holdout")
    metric = gate.metric or primary_metric
    keys = numeric_metric_keys(dict(candidate["holdout"]))
    if metric not in keys:
        raise ConfigError(
            f"retrain.gate.metric is {metric!r}, which is not a metric; use one of: "
            f"{', '.join(keys)} (or null for evaluate.primary_metric)"
        )
    return GateVerdict(
        metric=metric,
        checks=[
            _improvement(candidate, champion, gate, metric),
            _slices(candidate, champion, gate, metric),
            _baselines(candidate["holdout"], baselines),
        ],
    )
