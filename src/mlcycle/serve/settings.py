"""Server settings: one frozen dataclass, from config, flags or the environment.

The CLI builds :class:`ServeSettings` from the ``serve`` section of the project config and
the command-line flags, then hands it to every worker process as JSON in the environment
variable ``MLCYCLE_SERVE_SETTINGS`` (workers are separate processes started by uvicorn).
This module imports only the standard library, so a worker starts fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlcycle.exceptions import ConfigError
from mlcycle.monitor.settings import (
    DriftSettings,
    MonitorSettings,
    WindowSettings,
    check_monitor_settings,
)
from mlcycle.retrain.settings import RetrainTriggerSettings, check_retrain_trigger
from mlcycle.review.settings import AutomationSettings, check_automation_settings
from mlcycle.rollout.settings import (
    AnalysisSettings,
    BakeSettings,
    RolloutSettings,
    check_rollout_settings,
)

__all__ = [
    "ENV_VAR",
    "GRAPH_OPTIMIZATION_LEVELS",
    "UNKNOWN_FEATURE_POLICIES",
    "UNSEEN_CATEGORY_POLICIES",
    "BatchingSettings",
    "OrtSettings",
    "ServeSettings",
    "ValidationSettings",
]

#: Environment variable carrying the settings to worker processes.
ENV_VAR = "MLCYCLE_SERVE_SETTINGS"

#: What to do with a categorical value never seen in training.
#: ``error``: 422; ``missing``: treat as missing; ``pass``: give it to the model as is.
UNSEEN_CATEGORY_POLICIES = ("error", "missing", "pass")
#: What to do with a field that is not a feature: ``error`` (422) or ``ignore``.
UNKNOWN_FEATURE_POLICIES = ("error", "ignore")
#: onnxruntime graph optimisation levels.
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass
class ValidationSettings:
    """How requests are checked against the bundle's signature."""

    # Categorical value not seen in training: error (422), missing, or pass (to the model).
    unseen_category: str = "error"
    # A field that is not a feature of the model: error (422) or ignore.
    unknown_feature: str = "error"
    # Accept a missing value (null / NaN) for features the schema declares not nullable.
    allow_missing: bool = False
    # Largest request body in bytes (413 above it).
    max_body_bytes: int = 10 * 1024 * 1024
    # Most rows in one request (422 above it).
    max_rows: int = 100_000


@dataclass
class BatchingSettings:
    """Adaptive micro-batching of concurrent requests into one onnxruntime call.

    Requests that arrive while a batch runs are grouped into the next one, up to
    ``max_batch_rows``. A lone request never waits; when other requests are already being
    read, the batcher waits up to ``max_wait_ms`` for them.
    """

    enabled: bool = True
    max_batch_rows: int = 256
    max_wait_ms: float = 1.0


@dataclass
class OrtSettings:
    """onnxruntime session options."""

    # Threads inside one operator; 1 leaves cores to the server and is as fast for small rows.
    intra_op_threads: int = 1
    # Threads across operators (used only in parallel execution mode).
    inter_op_threads: int = 1
    # Graph optimisation: disable, basic, extended or all.
    graph_optimization: str = "all"


@dataclass
class AdminSettings:
    """The admin API (rollouts, reload): who may use it."""

    # A file holding the bearer token; the MLCYCLE_ADMIN_TOKEN environment variable wins.
    # Neither set: the admin API is disabled.
    token_file: str = ""


@dataclass
class ServeSettings:
    """Everything the prediction server needs besides the bundle.

    Examples
    --------
    >>> s = ServeSettings(port=9000)
    >>> ServeSettings.from_json(s.to_json()) == s
    True
    """

    host: str = "127.0.0.1"
    port: int = 8080
    # Worker processes; each loads the bundle and serves on the same port.
    workers: int = 1
    # Served bundle folder (resolved from the registry by the CLI).
    bundle: str = ""
    # Model name and version shown in responses, headers and metrics.
    model_name: str = ""
    model_version: str = ""
    # Event loop and HTTP parser: auto (uvloop + httptools when installed), asyncio, uvloop.
    loop: str = "auto"
    http: str = "auto"
    # Folder for prometheus-client's multiprocess files; empty: a fresh temporary folder.
    metrics_dir: str = ""
    log_level: str = "warning"
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    batching: BatchingSettings = field(default_factory=BatchingSettings)
    ort: OrtSettings = field(default_factory=OrtSettings)
    # What the server watches and where it logs predictions (mlcycle.monitor.settings).
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    # How rollouts route, bake and analyse (mlcycle.rollout.settings).
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    # How far answers are left to the model, and human review (mlcycle.review.settings).
    automation: AutomationSettings = field(default_factory=AutomationSettings)
    # Alarms that start a retraining (mlcycle.retrain.settings).
    retrain: RetrainTriggerSettings = field(default_factory=RetrainTriggerSettings)

    def __post_init__(self) -> None:
        _check(self)

    def to_json(self) -> str:
        """The settings as a JSON document (see :meth:`from_json`)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        """Settings from :meth:`to_json`'s output."""
        return cls.from_mapping(json.loads(text))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ServeSettings:
        """Settings from a nested mapping (e.g. the ``serve`` config section).

        Raises
        ------
        ConfigError
            An unknown key, or a value of the wrong type or out of range.
        """
        settings: ServeSettings = _build(cls, data, "serve")
        return settings

    @classmethod
    def from_env(cls) -> ServeSettings:
        """Settings from ``MLCYCLE_SERVE_SETTINGS``, which the CLI sets for its workers."""
        text = os.environ.get(ENV_VAR)
        if not text:
            raise ConfigError(
                f"{ENV_VAR} is not set; start the server with `mlcycle serve`, which sets it"
            )
        return cls.from_json(text)

    def replace(self, **changes: Any) -> ServeSettings:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


_NESTED: dict[tuple[type[Any], str], type[Any]] = {
    (ServeSettings, "validation"): ValidationSettings,
    (ServeSettings, "batching"): BatchingSettings,
    (ServeSettings, "ort"): OrtSettings,
    (ServeSettings, "monitor"): MonitorSettings,
    (MonitorSettings, "window"): WindowSettings,
    (MonitorSettings, "drift"): DriftSettings,
    (ServeSettings, "rollout"): RolloutSettings,
    (RolloutSettings, "bake"): BakeSettings,
    (RolloutSettings, "analysis"): AnalysisSettings,
    (ServeSettings, "admin"): AdminSettings,
    (ServeSettings, "automation"): AutomationSettings,
    (ServeSettings, "retrain"): RetrainTriggerSettings,
}


def _build(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of settings, not {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} in {where}; allowed: {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        nested = _NESTED.get((cls, key))
        if nested is not None:
            kwargs[key] = _build(nested, value, f"{where}.{key}")
        else:
            kwargs[key] = _coerce(value, fields[key], f"{where}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, f: dataclasses.Field[Any], where: str) -> Any:
    kind_name = str(f.type)
    if kind_name.startswith(("list[", "dict[")):
        return _coerce_container(value, kind_name, where)
    if kind_name.endswith(" | None"):
        if value is None:
            return None
        kind_name = kind_name.removesuffix(" | None")
    kind = {"int": int, "float": float, "bool": bool, "str": str}[kind_name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be a {kind.__name__}, not {value!r}")
    return value


def _coerce_container(value: Any, kind_name: str, where: str) -> Any:
    if value is None and kind_name.endswith("| None"):
        return None
    if kind_name.startswith("dict["):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, not {value!r}")
        return dict(value)
    if kind_name == "list[float]":
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{where} must be a list of numbers, not {value!r}")
        return [float(v) for v in value]
    if kind_name == "list[str]":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings, not {value!r}")
        return list(value)
    if not isinstance(value, list | tuple):
        raise ConfigError(f"{where} must be a list of mappings (or null), not {value!r}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}[{i}] must be a mapping, not {item!r}")
    return [dict(item) for item in value]


def _check(s: ServeSettings) -> None:
    problems: list[str] = check_monitor_settings(s.monitor, "serve.monitor")
    problems += check_rollout_settings(s.rollout, "serve.rollout")
    problems += check_automation_settings(s.automation, "serve.automation")
    problems += check_retrain_trigger(s.retrain, "serve.retrain")
    if s.automation.mode != "full" and not s.monitor.enabled:
        problems.append(
            f"serve.automation.mode is {s.automation.mode!r}, which queues rows for human "
            "review in the monitoring store, but monitoring is off (--no-monitor or "
            "serve.monitor.enabled=false); turn monitoring on, or set serve.automation.mode=full"
        )
    if not 0 <= s.port <= 65535:
        problems.append(f"serve.port must be 0-65535, not {s.port}")
    if s.workers < 1:
        problems.append(f"serve.workers must be at least 1, not {s.workers}")
    v, b, o = s.validation, s.batching, s.ort
    if v.unseen_category not in UNSEEN_CATEGORY_POLICIES:
        problems.append(
            f"serve.validation.unseen_category must be one of {UNSEEN_CATEGORY_POLICIES}, "
            f"not {v.unseen_category!r}"
        )
    if v.unknown_feature not in UNKNOWN_FEATURE_POLICIES:
        problems.append(
            f"serve.validation.unknown_feature must be one of {UNKNOWN_FEATURE_POLICIES}, "
            f"not {v.unknown_feature!r}"
        )
    if v.max_body_bytes < 1024 or v.max_rows < 1:
        problems.append("serve.validation.max_body_bytes must be >= 1024 and max_rows >= 1")
    if b.max_batch_rows < 1 or b.max_wait_ms < 0:
        problems.append("serve.batching.max_batch_rows must be >= 1 and max_wait_ms >= 0")
    if o.intra_op_threads < 0 or o.inter_op_threads < 0:
        problems.append("serve.ort thread counts must be >= 0 (0: onnxruntime's default)")
    if o.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
        problems.append(
            f"serve.ort.graph_optimization must be one of {GRAPH_OPTIMIZATION_LEVELS}, "
            f"not {o.graph_optimization!r}"
        )
    if s.loop not in ("auto", "asyncio", "uvloop") or s.http not in ("auto", "h11", "httptools"):
        problems.append("serve.loop must be auto|asyncio|uvloop and serve.http auto|h11|httptools")
    if problems:
        raise ConfigError("; ".join(problems))
