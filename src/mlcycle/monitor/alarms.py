"""Alarm rules and the state machine that fires and resolves them.

A rule watches one metric of the monitor's windows (``error_rate``, ``latency_p99_ms``,
``input.missing_rate``, ``drift.share``, ``quality.accuracy``, ...) and fires when a
value crosses its threshold:

* ``static``: a fixed ``threshold``.
* ``adaptive``: learned from a baseline, the first ``baseline_points`` observations (of
  each label set), then frozen: neither an incident nor a slow creep becomes the new
  normal; the baseline is learned again when the server restarts (as it does for a new
  model version). ``sigma``: baseline mean +/- ``k`` standard deviations; ``quantile``:
  a quantile of the baseline (by default 0.99 for ``above`` rules, 0.01 for ``below``).
  ``min_change`` keeps the threshold at least that fraction of the mean away from the
  baseline mean, and ``threshold``, when given, bounds it (never below it for ``above``
  rules, never above it for ``below`` rules), so a baseline with no spread (always 0 %
  missing values) does not fire on the first blip.

State is kept per rule and label set (e.g. one per feature): ``ok`` -> ``firing`` when
a value crosses the threshold (``value > threshold`` for ``above``), unless the rule
fired for these labels less than ``cooldown_seconds`` ago; ``firing`` -> ``ok``
(a ``resolved`` alarm) when the value is back inside the threshold by the
``hysteresis`` margin (relative to the threshold), so a value oscillating around the
threshold does not flap. Observations made from fewer than ``min_samples`` samples
(and NaN values) are ignored.

:class:`AlarmManager` sends every :class:`Alarm` to its sinks
(:mod:`mlcycle.monitor.sinks`); a failing sink is logged, never raised.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Self

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.detectors import settings_kwargs

__all__ = [
    "ADAPTIVE_METHODS",
    "DIRECTIONS",
    "KINDS",
    "SEVERITIES",
    "Alarm",
    "AlarmManager",
    "AlarmRule",
    "AlarmSink",
    "default_rules",
    "rules_from_config",
]

log = logging.getLogger("mlcycle.monitor.alarms")

SEVERITIES = ("info", "warning", "critical")
DIRECTIONS = ("above", "below")
KINDS = ("static", "adaptive")
ADAPTIVE_METHODS = ("sigma", "quantile")

Labels = Mapping[str, str]
_StateKey = tuple[str, tuple[tuple[str, str], ...]]


class _RuleError(ConfigError):
    """A bad rule field; ``key`` names it, for a message with the config key path."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key} {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class AlarmRule:
    """When to raise an alarm on one metric.

    Examples
    --------
    >>> rule = AlarmRule(name="errors", metric="error_rate", threshold=0.05)
    >>> rule.crosses(0.06, 0.05), rule.recovered(0.046, 0.05), rule.recovered(0.044, 0.05)
    (True, False, True)
    """

    name: str
    metric: str
    direction: str = "above"
    kind: str = "static"
    # static: the threshold; adaptive: an optional bound on the learned threshold.
    threshold: float | None = None
    # adaptive: sigma (mean +/- k std) or quantile of the baseline.
    method: str = "sigma"
    k: float = 4.0
    # adaptive quantile; None: 0.99 for "above", 0.01 for "below".
    quantile: float | None = None
    # adaptive: the learned threshold is at least this fraction of the mean away from it.
    min_change: float = 0.0
    # adaptive: observations that learn the baseline before the rule can fire.
    baseline_points: int = 30
    # An observation made from fewer samples (requests, rows) is ignored.
    min_samples: int = 1
    # No new alarm for the same rule and labels within this many seconds of the last.
    cooldown_seconds: float = 300.0
    # A firing alarm resolves when the value is inside the threshold by this fraction.
    hysteresis: float = 0.1
    severity: str = "warning"

    def __post_init__(self) -> None:
        checks: list[tuple[bool, str, str]] = [
            (bool(self.name), "name", "must not be empty"),
            (bool(self.metric), "metric", "must not be empty"),
            (self.direction in DIRECTIONS, "direction", f"must be one of {DIRECTIONS}"),
            (self.kind in KINDS, "kind", f"must be one of {KINDS}"),
            (self.method in ADAPTIVE_METHODS, "method", f"must be one of {ADAPTIVE_METHODS}"),
            (self.severity in SEVERITIES, "severity", f"must be one of {SEVERITIES}"),
            (
                self.kind != "static" or self.threshold is not None,
                "threshold",
                "is required for a static rule",
            ),
            (self.k > 0, "k", "must be positive"),
            (
                self.quantile is None or 0.0 < self.quantile < 1.0,
                "quantile",
                "must be between 0 and 1",
            ),
            (self.min_change >= 0, "min_change", "must be >= 0"),
            (
                self.baseline_points >= (2 if self.kind == "adaptive" else 0),
                "baseline_points",
                "must be at least 2 for an adaptive rule",
            ),
            (self.min_samples >= 0, "min_samples", "must be >= 0"),
            (self.cooldown_seconds >= 0, "cooldown_seconds", "must be >= 0"),
            (0.0 <= self.hysteresis < 1.0, "hysteresis", "must be in [0, 1)"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise _RuleError(key, f"{problem}, not {getattr(self, key)!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "monitor.alarms[0]") -> Self:
        """A rule from a config mapping.

        Parameters
        ----------
        data
            E.g. ``{"name": "errors", "metric": "error_rate", "threshold": 0.05}``.
        where
            The mapping's key path, named in errors (``monitor.alarms[2].kind ...``).

        Raises
        ------
        ConfigError
            Not a mapping, an unknown key, a value of the wrong type or not allowed.
        """
        kwargs = settings_kwargs(cls, data, where)
        missing = [key for key in ("name", "metric") if key not in kwargs]
        if missing:
            raise ConfigError(f"{where}.{missing[0]} is required")
        try:
            return cls(**kwargs)
        except _RuleError as exc:
            raise ConfigError(f"{where}.{exc.key} {exc.problem}") from None

    def crosses(self, value: float, threshold: float) -> bool:
        """Whether ``value`` is beyond ``threshold`` (fires)."""
        return value > threshold if self.direction == "above" else value < threshold

    def recovery_bound(self, threshold: float) -> float:
        """The value a firing alarm must get back to (inclusive) to resolve."""
        margin = self.hysteresis * abs(threshold)
        return threshold - margin if self.direction == "above" else threshold + margin

    def recovered(self, value: float, threshold: float) -> bool:
        """Whether a firing alarm resolves at ``value``."""
        bound = self.recovery_bound(threshold)
        return value <= bound if self.direction == "above" else value >= bound


@dataclass
class Alarm:
    """An alarm that fired or resolved."""

    name: str
    metric: str
    value: float
    threshold: float | None
    message: str
    state: str = "firing"
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    stage: str = ""
    model_name: str = ""
    model_version: str = ""
    time: float = field(default_factory=time.time)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (the webhook's body)."""
        return asdict(self)


class AlarmSink(Protocol):
    """Where alarms go: a log, a webhook, the store."""

    def send(self, alarm: Alarm) -> None:
        """Deliver (or queue) one alarm."""

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds) and release resources."""


@dataclass
class _State:
    baseline: list[float] = field(default_factory=list)
    # The adaptive threshold and its basis, once the baseline is complete.
    learned: tuple[float, dict[str, Any]] | None = None
    firing: Alarm | None = None
    last_fired: float = -math.inf


def _label_text(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def _quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class AlarmManager:
    """Evaluates rules on observed metric values and sends the alarms to sinks.

    Parameters
    ----------
    rules
        The rules; names must be unique.
    sinks
        Where alarms go (see :mod:`mlcycle.monitor.sinks`).
    stage, model_name, model_version
        Stamped on every alarm.
    clock
        Seconds since the epoch (``time.time``); tests pass their own.
    event_cooldown_seconds
        Cooldown of :meth:`trigger` alarms whose name is not a rule's.

    Examples
    --------
    >>> manager = AlarmManager([AlarmRule(name="errors", metric="error_rate", threshold=0.05)])
    >>> [a.state for a in manager.observe("error_rate", 0.2, samples=100, now=0)]
    ['firing']
    >>> manager.observe("error_rate", 0.3, samples=100, now=60)
    []
    >>> [a.state for a in manager.observe("error_rate", 0.01, samples=100, now=120)]
    ['resolved']
    """

    def __init__(
        self,
        rules: Iterable[AlarmRule],
        sinks: Iterable[AlarmSink] = (),
        *,
        stage: str = "",
        model_name: str = "",
        model_version: str = "",
        clock: Callable[[], float] = time.time,
        event_cooldown_seconds: float = 900.0,
    ) -> None:
        self.rules = list(rules)
        names = [r.name for r in self.rules]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(f"alarm rule names must be unique; repeated: {duplicated}")
        self.sinks = list(sinks)
        self.stage = stage
        self.model_name = model_name
        self.model_version = model_version
        self.clock = clock
        self.event_cooldown_seconds = event_cooldown_seconds
        self._by_metric: dict[str, list[AlarmRule]] = {}
        for rule in self.rules:
            self._by_metric.setdefault(rule.metric, []).append(rule)
        self._by_name = {rule.name: rule for rule in self.rules}
        self._states: dict[_StateKey, _State] = {}
        self._lock = threading.RLock()
        #: Alarms a sink failed to take, by all sinks together.
        self.sink_failures = 0

    # -- public API ------------------------------------------------------------------------

    def observe(
        self,
        metric: str,
        value: float,
        *,
        samples: int,
        labels: Labels | None = None,
        now: float | None = None,
    ) -> list[Alarm]:
        """Evaluate every rule on ``metric`` for a new value; send what fires or resolves.

        Parameters
        ----------
        metric
            The metric's name, e.g. ``error_rate``.
        value
            Its value over the window.
        samples
            How many samples (requests, rows, labels) the value was computed from.
        labels
            E.g. ``{"feature": "age"}``; each label set has its own state.
        now
            The observation's time (default: the manager's clock).

        Returns
        -------
        list of Alarm
            The alarms that fired or resolved (already sent to the sinks).
        """
        rules = self._by_metric.get(metric)
        if not rules:
            return []
        label_map = {str(k): str(v) for k, v in (labels or {}).items()}
        when = self.clock() if now is None else float(now)
        value = float(value)
        alarms: list[Alarm] = []
        with self._lock:
            for rule in rules:
                alarm = self._evaluate(rule, value, samples, label_map, when)
                if alarm is not None:
                    alarms.append(alarm)
        for alarm in alarms:
            self._send(alarm)
        return alarms

    def trigger(
        self,
        name: str,
        metric: str,
        value: float,
        message: str,
        *,
        labels: Labels | None = None,
        severity: str = "warning",
        threshold: float | None = None,
        details: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> Alarm | None:
        """Raise an event alarm (e.g. a drift detector fired), unless in its cooldown.

        Event alarms fire and never resolve. The cooldown is the rule's of the same
        name when there is one, else ``event_cooldown_seconds``.

        Parameters
        ----------
        name
            The alarm's name, e.g. ``adwin:error``.
        metric
            What was watched.
        value
            The value that triggered it.
        message
            A sentence for people.
        labels
            Label set; the cooldown is per name and labels.
        severity
            ``info``, ``warning`` or ``critical``.
        threshold
            The bound it crossed, if any.
        details
            Extra JSON-ready facts.
        now
            The time (default: the manager's clock).

        Returns
        -------
        Alarm or None
            The alarm, or ``None`` within the cooldown.
        """
        if severity not in SEVERITIES:
            raise ConfigError(f"severity must be one of {SEVERITIES}, not {severity!r}")
        label_map = {str(k): str(v) for k, v in (labels or {}).items()}
        when = self.clock() if now is None else float(now)
        rule = self._by_name.get(name)
        cooldown = rule.cooldown_seconds if rule else self.event_cooldown_seconds
        with self._lock:
            state = self._state(name, label_map)
            if when - state.last_fired < cooldown:
                return None
            state.last_fired = when
            alarm = self._alarm(
                name=name,
                metric=metric,
                value=float(value),
                threshold=threshold,
                message=message,
                severity=severity,
                labels=label_map,
                when=when,
                details={"labels": label_map, "event": True, **(details or {})},
            )
        self._send(alarm)
        return alarm

    def firing(self) -> list[Alarm]:
        """The rule alarms firing now."""
        with self._lock:
            return [s.firing for s in self._states.values() if s.firing is not None]

    def close(self, timeout: float = 5.0) -> None:
        """Close every sink (each gets up to ``timeout`` seconds to deliver)."""
        for sink in self.sinks:
            try:
                sink.close(timeout)
            except Exception:
                log.exception("closing alarm sink %r failed", sink)

    # -- the state machine -------------------------------------------------------------------

    def _state(self, name: str, labels: Labels) -> _State:
        key = (name, tuple(sorted(labels.items())))
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        return state

    def _evaluate(
        self, rule: AlarmRule, value: float, samples: int, labels: dict[str, str], now: float
    ) -> Alarm | None:
        if samples < rule.min_samples or math.isnan(value):
            return None
        state = self._state(rule.name, labels)
        learned = self._threshold(rule, state)
        if learned is None:  # still learning the baseline
            state.baseline.append(value)
            return None
        threshold, basis = learned
        if state.firing is not None:
            if not rule.recovered(value, threshold):
                return None
            state.firing = None
            return self._resolved(rule, value, threshold, samples, labels, now, basis)
        if not rule.crosses(value, threshold):
            return None
        if now - state.last_fired < rule.cooldown_seconds:
            return None
        state.last_fired = now
        alarm = self._fired(rule, value, threshold, samples, labels, now, basis)
        state.firing = alarm
        return alarm

    @staticmethod
    def _threshold(rule: AlarmRule, state: _State) -> tuple[float, dict[str, Any]] | None:
        if rule.kind == "static":
            assert rule.threshold is not None
            return rule.threshold, {}
        if state.learned is not None:
            return state.learned
        points = state.baseline
        if len(points) < rule.baseline_points:
            return None
        n = len(points)
        mean = math.fsum(points) / n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in points) / (n - 1))
        above = rule.direction == "above"
        if rule.method == "sigma":
            learned = mean + rule.k * std if above else mean - rule.k * std
        else:
            q = rule.quantile if rule.quantile is not None else (0.99 if above else 0.01)
            learned = _quantile(points, q)
        change = rule.min_change * abs(mean)
        learned = max(learned, mean + change) if above else min(learned, mean - change)
        if rule.threshold is not None:
            learned = max(learned, rule.threshold) if above else min(learned, rule.threshold)
        basis = {"baseline_mean": mean, "baseline_std": std, "baseline_points": n}
        state.learned = (learned, basis)
        state.baseline = []
        return state.learned

    def _describe_threshold(self, rule: AlarmRule, threshold: float, basis: dict[str, Any]) -> str:
        if rule.kind == "static":
            return f"the threshold {threshold:.4g}"
        how = (
            f"baseline mean {basis['baseline_mean']:.4g} "
            f"{'+' if rule.direction == 'above' else '-'} {rule.k:g} x std "
            f"{basis['baseline_std']:.4g}"
            if rule.method == "sigma"
            else f"quantile {rule.quantile or (0.99 if rule.direction == 'above' else 0.01):g}"
        )
        return (
            f"the adaptive threshold {threshold:.4g} ({how} "
            f"of {basis['baseline_points']} baseline windows)"
        )

    def _subject(self, metric: str, labels: Labels) -> str:
        model = ""
        if self.model_name:
            version = f" v{self.model_version}" if self.model_version else ""
            stage = f", stage {self.stage}" if self.stage else ""
            model = f" for model {self.model_name}{version}{stage}"
        return f"{metric}{_label_text(labels)}{model}"

    def _fired(
        self,
        rule: AlarmRule,
        value: float,
        threshold: float,
        samples: int,
        labels: dict[str, str],
        now: float,
        basis: dict[str, Any],
    ) -> Alarm:
        message = (
            f"{self._subject(rule.metric, labels)} is {value:.4g}, {rule.direction} "
            f"{self._describe_threshold(rule, threshold, basis)}; window of {samples} samples"
        )
        return self._alarm(
            name=rule.name,
            metric=rule.metric,
            value=value,
            threshold=threshold,
            message=message,
            severity=rule.severity,
            labels=labels,
            when=now,
            details=self._details(rule, labels, samples, basis),
        )

    def _resolved(
        self,
        rule: AlarmRule,
        value: float,
        threshold: float,
        samples: int,
        labels: dict[str, str],
        now: float,
        basis: dict[str, Any],
    ) -> Alarm:
        bound = rule.recovery_bound(threshold)
        side = "below" if rule.direction == "above" else "above"
        message = (
            f"{self._subject(rule.metric, labels)} is back to {value:.4g}, {side} "
            f"{bound:.4g} (threshold {threshold:.4g} with {rule.hysteresis:.0%} hysteresis); "
            f"window of {samples} samples"
        )
        return self._alarm(
            name=rule.name,
            metric=rule.metric,
            value=value,
            threshold=threshold,
            message=message,
            severity=rule.severity,
            labels=labels,
            when=now,
            state="resolved",
            details=self._details(rule, labels, samples, basis),
        )

    @staticmethod
    def _details(
        rule: AlarmRule, labels: dict[str, str], samples: int, basis: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "labels": labels,
            "samples": samples,
            "direction": rule.direction,
            "kind": rule.kind,
            "hysteresis": rule.hysteresis,
            **basis,
        }

    def _alarm(
        self,
        *,
        name: str,
        metric: str,
        value: float,
        threshold: float | None,
        message: str,
        severity: str,
        labels: dict[str, str],
        when: float,
        details: dict[str, Any],
        state: str = "firing",
    ) -> Alarm:
        return Alarm(
            name=name,
            metric=metric,
            value=value,
            threshold=threshold,
            message=message,
            state=state,
            severity=severity,
            labels=dict(labels),
            stage=self.stage,
            model_name=self.model_name,
            model_version=self.model_version,
            time=when,
            details=details,
        )

    def _send(self, alarm: Alarm) -> None:
        for sink in self.sinks:
            try:
                sink.send(alarm)
            except Exception:
                self.sink_failures += 1
                log.exception("alarm sink %r failed to take alarm %r", sink, alarm.name)


def default_rules() -> list[AlarmRule]:
    """Rules for a served classifier, quiet on stationary traffic.

    ========================  ====================================================
    rule                      fires when
    ========================  ====================================================
    ``high_error_rate``       ``error_rate`` above 0.05 (static; >= 50 requests;
                              resolves at 0.04; cooldown 15 minutes)
    ``latency_p99_spike``     ``latency_p99_ms`` above baseline mean + 4 std and at
                              least double the mean (adaptive; 60 windows learn it;
                              >= 100 requests)
    ``input_missing_rate``    ``input.missing_rate`` per feature above mean + 4 std,
                              at least 1.5 x the mean and above 0.05 (adaptive;
                              30 windows; >= 100 rows)
    ``dataset_drift``         ``drift.share`` above 0.5 (static; >= 200 rows;
                              resolves at 0.4; cooldown one hour)
    ``accuracy_drop``         ``quality.accuracy`` below mean - 4 std and at least
                              10 % below the mean (adaptive; 20 windows;
                              >= 200 labelled rows; critical)
    ========================  ====================================================

    The adaptive rules' ``min_change`` (latency: x2, missing values: x1.5, accuracy:
    -10 %) guards against baselines learned from few windows (their std is uncertain)
    and against heavy tails (p99 latencies): a 4-std excursion alone fired about once in
    a few thousand windows of such metrics in simulation; with it, none in 20 x 2,000
    simulated stationary windows. ``high_error_rate`` and ``accuracy_drop`` are
    ``critical``, the others ``warning``.

    Returns
    -------
    list of AlarmRule
        Fresh rule objects.
    """
    return [
        AlarmRule(
            name="high_error_rate",
            metric="error_rate",
            threshold=0.05,
            min_samples=50,
            cooldown_seconds=900.0,
            hysteresis=0.2,
            severity="critical",
        ),
        AlarmRule(
            name="latency_p99_spike",
            metric="latency_p99_ms",
            kind="adaptive",
            method="sigma",
            k=4.0,
            min_change=1.0,
            baseline_points=60,
            min_samples=100,
            cooldown_seconds=900.0,
            hysteresis=0.1,
        ),
        AlarmRule(
            name="input_missing_rate",
            metric="input.missing_rate",
            kind="adaptive",
            method="sigma",
            k=4.0,
            min_change=0.5,
            threshold=0.05,
            baseline_points=30,
            min_samples=100,
            cooldown_seconds=1800.0,
            hysteresis=0.2,
        ),
        AlarmRule(
            name="dataset_drift",
            metric="drift.share",
            threshold=0.5,
            min_samples=200,
            cooldown_seconds=3600.0,
            hysteresis=0.2,
        ),
        AlarmRule(
            name="accuracy_drop",
            metric="quality.accuracy",
            direction="below",
            kind="adaptive",
            method="sigma",
            k=4.0,
            min_change=0.1,
            baseline_points=20,
            min_samples=200,
            cooldown_seconds=3600.0,
            hysteresis=0.02,
            severity="critical",
        ),
    ]


def rules_from_config(
    items: Sequence[Mapping[str, Any]], where: str = "monitor.alarms"
) -> list[AlarmRule]:
    """Rules from the ``monitor.alarms`` config list.

    Parameters
    ----------
    items
        One mapping per rule (see :meth:`AlarmRule.from_mapping`).
    where
        The list's key path, for errors (``monitor.alarms[2].kind ...``).

    Raises
    ------
    ConfigError
        Not a list, a bad rule, or two rules with the same name.
    """
    if isinstance(items, str | bytes) or not isinstance(items, Sequence):
        raise ConfigError(f"{where} must be a list of alarm rules, not {type(items).__name__}")
    rules = [AlarmRule.from_mapping(item, f"{where}[{i}]") for i, item in enumerate(items)]
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.name in seen:
            raise ConfigError(f"{where}[{i}].name {rule.name!r} is used by an earlier rule")
        seen.add(rule.name)
    return rules
