"""When a running server starts a retraining by itself: ``serve.retrain``, stdlib only."""

from __future__ import annotations

from dataclasses import dataclass, field

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


def check_retrain_trigger(s: RetrainTriggerSettings, where: str = "serve.retrain") -> list[str]:
    """Problems with ``s`` (empty when it is fine), each naming the setting."""
    problems: list[str] = []
    if s.cooldown_seconds < 0:
        problems.append(f"{where}.cooldown_seconds must be >= 0, not {s.cooldown_seconds}")
    if s.interval <= 0:
        problems.append(f"{where}.interval must be positive, not {s.interval}")
    if any(not isinstance(a, str) or not a for a in s.on_alarms):
        problems.append(f"{where}.on_alarms must be alarm names, not {s.on_alarms!r}")
    return problems
