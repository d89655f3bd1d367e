"""Monitor settings: the ``monitor`` config section, standard library only.

The server reads them in every worker (they travel inside the serve settings' JSON), so
this module imports nothing heavy. Rules, detectors and sinks are kept as plain mappings
here and checked by :func:`check_monitor_settings` when the config is loaded, so a typo
fails ``mlcycle serve`` at start, not the first time an alarm would fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlcycle.exceptions import ConfigError

__all__ = [
    "FEATURE_LOGGING",
    "WINDOW_KINDS",
    "DriftSettings",
    "MonitorSettings",
    "WindowSettings",
    "check_monitor_settings",
]

#: Sliding windows hold the last ``size`` rows (count) or the last ``seconds`` (time).
WINDOW_KINDS = ("count", "time")
#: Which rows' input features the prediction log keeps.
FEATURE_LOGGING = ("all", "sample", "none")


@dataclass
class WindowSettings:
    """The sliding window live statistics and drift are computed over."""

    # count: the last `size` rows; time: the rows of the last `seconds` (at most `size`).
    kind: str = "count"
    size: int = 1000
    seconds: float = 3600.0
    # Evaluate (drift, window metrics, alarms) after this many new rows, but not more often
    # than every `min_seconds` (an evaluation costs about 0.2 s of CPU for 30 features) ...
    every: int = 1000
    min_seconds: float = 10.0
    # ... and at least every `every_seconds` while there is new traffic.
    every_seconds: float = 60.0
    # No drift verdict on fewer rows than this.
    min_rows: int = 100


@dataclass
class DriftSettings:
    """Thresholds of the drift tests (:mod:`mlcycle.monitor.drift`)."""

    # Current-window size up to which the statistical tests (KS, chi-square) are used.
    small_sample: int = 1000
    # p-value below which KS / chi-square say "drifted".
    alpha: float = 0.05
    # Wasserstein distance in reference standard deviations above which a number drifted.
    wasserstein_threshold: float = 0.1
    # Jensen-Shannon distance (base 2, 0..1) above which a category drifted.
    jensenshannon_threshold: float = 0.1
    # Bins of the numeric PSI (quantiles of the reference).
    psi_bins: int = 10
    # Share of drifted features at which the dataset drifted.
    dataset_share: float = 0.5


@dataclass
class MonitorSettings:
    """What the server watches, where it keeps it and whom it tells.

    Examples
    --------
    >>> MonitorSettings().window.size
    1000
    """

    enabled: bool = True
    # SQLAlchemy URL or SQLite file; empty: monitor.db in the project root.
    store: str = ""
    # Input features kept in the prediction log: all rows, a sample, or none.
    log_features: str = "all"
    # Share of rows whose features are kept when log_features is "sample".
    feature_sample: float = 0.1
    # Most rows held in memory at each step (hand-over to the monitor, its queue, the
    # store's buffer) while it is behind; more are dropped and counted.
    buffer_capacity: int = 20_000
    # Seconds between a worker's hand-overs to its monitor process (sooner when a quarter
    # of buffer_capacity rows wait). Each wakes the monitor, whose work evicts the
    # worker's data from the CPU caches: fewer, larger ones cost both processes less
    # (0.1 s cost 1.6 times the CPU of 1 s); metrics and alarms lag by up to this.
    handover_interval: float = 1.0
    write_batch: int = 500
    flush_interval: float = 0.5
    # The log is written as one packed row per hand-over (mlcycle's readers read it so).
    # For SQL of your own on the predictions table, the server can expand the batches into
    # it once they are expand_after seconds old (0: at once; null: never, the default:
    # `mlcycle monitor expand` does it on demand), or at once when more than
    # expand_backlog rows wait. Expanding costs ~3 times what the rest of monitoring does.
    expand_after: float | None = None
    expand_backlog: int = 100_000
    # Predictions with a top probability below this count as low-confidence.
    low_confidence: float = 0.6
    # Pipeline monitoring: the stage this model is (metrics and alarms carry it).
    stage: str = ""
    window: WindowSettings = field(default_factory=WindowSettings)
    drift: DriftSettings = field(default_factory=DriftSettings)
    # Alarm rules (mlcycle.monitor.alarms.AlarmRule fields); null: the default rules.
    alarms: list[dict[str, Any]] | None = None
    # Streaming detectors (mlcycle.monitor.detectors.DetectorSettings fields); null: default.
    detectors: list[dict[str, Any]] | None = None
    # Alarm sinks (mlcycle.monitor.sinks.SinkSettings fields).
    sinks: dict[str, Any] = field(default_factory=dict)


def check_monitor_settings(s: MonitorSettings, where: str = "monitor") -> list[str]:
    """Problems with ``s`` (empty when it is fine), each naming the setting.

    Parameters
    ----------
    s
        The settings to check.
    where
        The config path they came from, used in the messages.
    """
    problems: list[str] = []
    w = s.window
    if w.kind not in WINDOW_KINDS:
        problems.append(f"{where}.window.kind must be one of {WINDOW_KINDS}, not {w.kind!r}")
    for name in ("size", "every", "min_rows"):
        if getattr(w, name) < 1:
            problems.append(f"{where}.window.{name} must be at least 1, not {getattr(w, name)}")
    if w.min_seconds < 0:
        problems.append(f"{where}.window.min_seconds must be >= 0, not {w.min_seconds}")
    for name in ("seconds", "every_seconds"):
        if getattr(w, name) <= 0:
            problems.append(f"{where}.window.{name} must be positive, not {getattr(w, name)}")
    if s.log_features not in FEATURE_LOGGING:
        problems.append(
            f"{where}.log_features must be one of {FEATURE_LOGGING}, not {s.log_features!r}"
        )
    if not 0.0 <= s.feature_sample <= 1.0:
        problems.append(f"{where}.feature_sample must be in [0, 1], not {s.feature_sample}")
    if not 0.0 <= s.low_confidence <= 1.0:
        problems.append(f"{where}.low_confidence must be in [0, 1], not {s.low_confidence}")
    for name in ("buffer_capacity", "write_batch"):
        if getattr(s, name) < 1:
            problems.append(f"{where}.{name} must be at least 1, not {getattr(s, name)}")
    if s.expand_after is not None and s.expand_after < 0:
        problems.append(f"{where}.expand_after must be >= 0 seconds, not {s.expand_after}")
    if s.expand_backlog < 0:
        problems.append(f"{where}.expand_backlog must be >= 0 rows, not {s.expand_backlog}")
    if not s.handover_interval > 0:
        problems.append(
            f"{where}.handover_interval must be positive seconds, not {s.handover_interval}"
        )
    if s.flush_interval <= 0:
        problems.append(f"{where}.flush_interval must be positive, not {s.flush_interval}")
    d = s.drift
    if not 0.0 < d.alpha < 1.0:
        problems.append(f"{where}.drift.alpha must be in (0, 1), not {d.alpha}")
    if not 0.0 < d.dataset_share <= 1.0:
        problems.append(f"{where}.drift.dataset_share must be in (0, 1], not {d.dataset_share}")
    if d.psi_bins < 2:
        problems.append(f"{where}.drift.psi_bins must be at least 2, not {d.psi_bins}")
    return problems


def raise_on_problems(s: MonitorSettings, where: str = "monitor") -> None:
    """Raise :class:`ConfigError` listing every problem of ``s``."""
    problems = check_monitor_settings(s, where)
    if problems:
        raise ConfigError("; ".join(problems))
