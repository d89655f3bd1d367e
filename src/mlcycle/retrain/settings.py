"""When a running server starts a retraining by itself: ``serve.retrain``, stdlib only."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlcycle.rollout.settings import MODES as ROLLOUT_MODES

__all__ = ["RetrainTriggerSettings", "check_retrain_trigger"]


@dataclass
class RetrainTriggerSettings:
    """Alarms that start ``mlcycle retrain`` on the server's project, off the request path.

    Examples
    --------
    >>> RetrainTriggerSettings().on_alarms
    []
    """

    # Names (or metrics) of the alarms that start a retraining; empty: only by hand.
    on_alarms: list[str] = field(default_factory=list)
    # After a retraining ends, alarms are ignored for this long (they still get recorded).
    cooldown_seconds: float = 600.0
    # How often the server looks for new alarms.
    interval: float = 2.0
    # The rollout the server starts for a challenger that passed the gate (shadow,
    # bluegreen, canary; serve.rollout's settings), or "none" to leave it to a person.
    rollout: str = "canary"
    # Export the feedback dataset (`mlcycle data feedback`) before retraining.
    export_feedback: bool = True


def check_retrain_trigger(s: RetrainTriggerSettings, where: str = "serve.retrain") -> list[str]:
    """Problems with ``s`` (empty when it is fine), each naming the setting."""
    problems: list[str] = []
    if s.cooldown_seconds < 0:
        problems.append(f"{where}.cooldown_seconds must be >= 0, not {s.cooldown_seconds}")
    if s.interval <= 0:
        problems.append(f"{where}.interval must be positive, not {s.interval}")
    if s.rollout not in (*ROLLOUT_MODES, "none"):
        problems.append(
            f"{where}.rollout must be one of {(*ROLLOUT_MODES, 'none')}, not {s.rollout!r}"
        )
    if any(not isinstance(a, str) or not a for a in s.on_alarms):
        problems.append(f"{where}.on_alarms must be alarm names, not {s.on_alarms!r}")
    return problems
