"""Rollout settings: the ``serve.rollout`` config section, standard library only.

They travel inside the serve settings' JSON to every worker, so nothing heavy is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AFTER_SHADOW",
    "MODES",
    "AnalysisSettings",
    "BakeSettings",
    "RolloutSettings",
    "check_rollout_settings",
    "rollout_settings_from",
]

#: How a challenger replaces the champion.
MODES = ("shadow", "bluegreen", "canary")
#: What follows a shadow rollout that passed its analysis.
AFTER_SHADOW = ("canary", "bluegreen", "stop")


@dataclass
class BakeSettings:
    """How long a step is held before it may be promoted (both must be reached)."""

    # Requests answered by the challenger (shadow: mirrored) since the step began.
    min_requests: int = 200
    min_seconds: float = 30.0


@dataclass
class AnalysisSettings:
    """Thresholds of the challenger-vs-champion checks (:mod:`mlcycle.rollout.analysis`)."""

    # Significance level of every test (one-sided: "is the challenger worse?").
    alpha: float = 0.05
    # Error rate: roll back when the challenger's is significantly higher and higher by
    # more than this (absolute, 0.01 = one percentage point).
    max_error_rate_increase: float = 0.01
    # Latency: roll back when the challenger's p99 is above this multiple of the
    # champion's, higher by more than min_latency_p99_increase_ms, and a rank test says
    # it is slower. The absolute floor keeps scheduler noise on a busy machine (a p99 of
    # 5 ms against 3 ms) from rolling back a model that is not slower.
    max_latency_p99_ratio: float = 1.5
    min_latency_p99_increase_ms: float = 5.0
    # Shadow: most label disagreement with the champion, and mean absolute difference of
    # the probabilities (of the champion's predicted class).
    max_disagreement: float = 0.1
    max_probability_difference: float = 0.1
    # Output distribution: largest PSI of the predicted-class mix against the champion's.
    max_psi: float = 0.25
    # Labelled quality: roll back when the challenger's accuracy is significantly lower and
    # lower by more than this (absolute); only with min_labels labels on each arm.
    max_accuracy_drop: float = 0.02
    min_labels: int = 30
    # Fewest requests on each arm before a check may fail (a few early errors prove
    # nothing).
    min_requests: int = 30
    # The champion's side of the comparison: its requests since the rollout started and
    # up to this many seconds before (a blue/green switch or a canary's last step leaves
    # it no live traffic to compare with).
    baseline_seconds: float = 3600.0


@dataclass
class RolloutSettings:
    """How rollouts run on this server.

    Examples
    --------
    >>> RolloutSettings().steps
    [5.0, 25.0, 50.0, 100.0]
    """

    # Canary: the challenger's share of traffic (percent) at each step.
    steps: list[float] = field(default_factory=lambda: [5.0, 25.0, 50.0, 100.0])
    # Shadow: the share of requests mirrored to the challenger (percent, up to 100).
    shadow_percent: float = 100.0
    # After a shadow rollout passes: go on with a canary, a blue/green switch, or stop.
    after_shadow: str = "canary"
    bake: BakeSettings = field(default_factory=BakeSettings)
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    # Sticky routing key: "header:<name>" or "feature:<name>"; empty: every request is
    # routed on its own (by its request id).
    key: str = ""
    # Analyse and move steps automatically; false: only by hand (promote / rollback).
    auto: bool = True
    # Seconds between looks at the shared rollout state (and analyses).
    interval: float = 1.0


def check_rollout_settings(s: RolloutSettings, where: str = "serve.rollout") -> list[str]:
    """Problems with ``s`` (empty when it is fine), each naming the setting."""
    problems: list[str] = []
    if not s.steps:
        problems.append(f"{where}.steps must list at least one percentage, e.g. [5, 25, 50, 100]")
    elif any(not 0 < p <= 100 for p in s.steps) or list(s.steps) != sorted(s.steps):
        problems.append(
            f"{where}.steps must be increasing percentages in (0, 100], not {list(s.steps)}"
        )
    elif s.steps[-1] != 100:
        problems.append(f"{where}.steps must end at 100 (the challenger takes all), not {s.steps}")
    if not 0 < s.shadow_percent <= 100:
        problems.append(f"{where}.shadow_percent must be in (0, 100], not {s.shadow_percent}")
    if s.after_shadow not in AFTER_SHADOW:
        problems.append(
            f"{where}.after_shadow must be one of {AFTER_SHADOW}, not {s.after_shadow!r}"
        )
    if s.bake.min_requests < 1 or s.bake.min_seconds < 0:
        problems.append(f"{where}.bake.min_requests must be >= 1 and bake.min_seconds >= 0")
    kind, _, name = s.key.partition(":")
    if s.key and (kind not in ("header", "feature") or not name):
        problems.append(
            f"{where}.key must be header:<name> or feature:<name> (or empty), not {s.key!r}"
        )
    a = s.analysis
    if not 0 < a.alpha < 1:
        problems.append(f"{where}.analysis.alpha must be in (0, 1), not {a.alpha}")
    for name in ("max_error_rate_increase", "max_disagreement", "max_probability_difference",
                 "max_accuracy_drop"):  # fmt: skip
        value = getattr(a, name)
        if not 0 <= value <= 1:
            problems.append(f"{where}.analysis.{name} must be in [0, 1], not {value}")
    if a.max_latency_p99_ratio < 1:
        problems.append(
            f"{where}.analysis.max_latency_p99_ratio must be >= 1, not {a.max_latency_p99_ratio}"
        )
    if a.min_latency_p99_increase_ms < 0:
        problems.append(
            f"{where}.analysis.min_latency_p99_increase_ms must be >= 0, not "
            f"{a.min_latency_p99_increase_ms}"
        )
    if a.max_psi <= 0:
        problems.append(f"{where}.analysis.max_psi must be positive, not {a.max_psi}")
    if a.baseline_seconds < 0:
        problems.append(f"{where}.analysis.baseline_seconds must be >= 0, not {a.baseline_seconds}")
    if a.min_labels < 1 or a.min_requests < 1:
        problems.append(f"{where}.analysis.min_labels and min_requests must be at least 1")
    if s.interval <= 0:
        problems.append(f"{where}.interval must be positive, not {s.interval}")
    return problems


def rollout_settings_from(data: Mapping[str, Any]) -> RolloutSettings:
    """Settings from ``dataclasses.asdict`` output (the snapshot a rollout keeps).

    Raises
    ------
    TypeError
        An unknown key.
    """
    d = dict(data)
    bake = BakeSettings(**d.pop("bake", {}))
    analysis = AnalysisSettings(**d.pop("analysis", {}))
    return RolloutSettings(**d, bake=bake, analysis=analysis)
