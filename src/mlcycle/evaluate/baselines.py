"""Gaps between the model and its baselines: fixed figures or other model versions.

A baseline is either a fixed figure (``value``, e.g. human-level performance) or a model
(``model``, e.g. ``@champion``) whose metrics on the same test set the caller provides
through ``resolve_model``. A model that does not exist yet (the first run has no
champion) is reported as skipped, never as an error; a malformed baseline is a
:class:`~mlcycle.exceptions.ConfigError` that names ``evaluate.baselines[i]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from mlcycle.config.structured import BaselineConfig
from mlcycle.evaluate.metrics import higher_is_better, numeric_metric_keys
from mlcycle.exceptions import ConfigError

__all__ = ["BaselineResult", "ModelResolver", "compare_to_baselines"]

# Returns a model's metrics on the same test set, or None when that model does not exist.
ModelResolver = Callable[[str], Mapping[str, Any] | None]


@dataclass(frozen=True)
class BaselineResult:
    """How the model compares with one baseline on one metric.

    Parameters
    ----------
    name
        The baseline's name from the config.
    metric
        The compared metric (a top-level key of the test metrics).
    baseline_value
        The baseline's figure; ``None`` when skipped.
    model_value
        The model's figure; ``None`` when the metric is undefined on this test set.
    gap
        ``model_value - baseline_value``; ``None`` when skipped. Positive is better for
        higher-is-better metrics, negative for losses (see ``higher_is_better``).
    status
        ``"ok"`` or ``"skipped"`` (the baseline model does not exist yet, or a value is
        undefined).
    note
        Why a baseline was skipped, else empty.
    source
        ``"value"`` for a fixed figure, else the model reference.
    higher_is_better
        Whether a larger value of ``metric`` is better.
    """

    name: str
    metric: str
    baseline_value: float | None
    model_value: float | None
    gap: float | None
    status: Literal["ok", "skipped"]
    note: str = ""
    source: str = "value"
    higher_is_better: bool = True

    @property
    def beats_baseline(self) -> bool | None:
        """True when the model is at least as good as the baseline; None when skipped."""
        if self.gap is None:
            return None
        return self.gap >= 0 if self.higher_is_better else self.gap <= 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for ``evaluation.json``; ``BaselineResult(**d)`` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaselineResult:
        """Read :meth:`to_dict` output back, ignoring keys that are not fields."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return None if f != f else f  # NaN is undefined


def _validate(i: int, b: BaselineConfig, metric_keys: Sequence[str]) -> None:
    where = f"evaluate.baselines[{i}] ({b.name!r})"
    has_value = b.value is not None
    has_model = b.model is not None and str(b.model).strip() != ""
    if has_value and has_model:
        raise ConfigError(
            f"{where} sets both `value` and `model`; keep one: `value` for a fixed figure "
            "(e.g. human-level performance) or `model` for a model to evaluate on the same "
            "test set (e.g. '@champion')"
        )
    if not has_value and not has_model:
        raise ConfigError(
            f"{where} sets neither `value` nor `model`; add `value: 0.9` for a fixed figure "
            "or `model: '@champion'` for a model to evaluate on the same test set"
        )
    if has_value and _number(b.value) is None:
        raise ConfigError(f"{where} has value {b.value!r}; it must be a number, e.g. 0.9")
    if b.metric not in metric_keys:
        raise ConfigError(
            f"{where} has metric {b.metric!r}, which is not a test metric; "
            f"use one of: {', '.join(metric_keys)}"
        )


def compare_to_baselines(
    metrics: Mapping[str, Any],
    baselines: Sequence[BaselineConfig],
    resolve_model: ModelResolver,
) -> list[BaselineResult]:
    """Compare the model's test metrics with each configured baseline.

    Every baseline is validated before any model is resolved, and each distinct model
    reference is resolved once.

    Parameters
    ----------
    metrics
        The model's test metrics (:func:`~mlcycle.evaluate.metrics.classification_metrics`).
    baselines
        ``evaluate.baselines`` from the config.
    resolve_model
        Called with a baseline's ``model`` reference; returns that model's metrics on the
        same test set, or ``None`` when the model does not exist (yet).

    Returns
    -------
    list[BaselineResult]
        One result per baseline, in config order.

    Raises
    ------
    ConfigError
        A baseline sets both or neither of ``value`` and ``model``, or names a metric that
        is not a top-level numeric test metric.

    Examples
    --------
    >>> from mlcycle.config.structured import BaselineConfig
    >>> [r] = compare_to_baselines({"f1_macro": 0.91},
    ...                            [BaselineConfig(name="human", value=0.88)], lambda ref: None)
    >>> r.status, round(r.gap, 2), r.beats_baseline
    ('ok', 0.03, True)
    """
    keys = numeric_metric_keys(dict(metrics))
    for i, b in enumerate(baselines):
        _validate(i, b, keys)

    resolved: dict[str, Mapping[str, Any] | None] = {}
    results: list[BaselineResult] = []
    for b in baselines:
        metric = str(b.metric)
        better = higher_is_better(metric)
        model_value = _number(metrics.get(metric))
        if b.value is not None:
            source = "value"
            baseline_value: float | None = float(b.value)
            missing = ""
        else:
            source = str(b.model).strip()
            if source not in resolved:
                resolved[source] = resolve_model(source)
            other = resolved[source]
            if other is None:
                baseline_value = None
                missing = f"no model at {source} yet"
            else:
                baseline_value = _number(other.get(metric))
                missing = (
                    ""
                    if baseline_value is not None
                    else (f"{metric} of the model at {source} is undefined on this test set")
                )
        if not missing and model_value is None:
            missing = f"the model's {metric} is undefined on this test set"
        if missing:
            results.append(
                BaselineResult(
                    name=str(b.name),
                    metric=metric,
                    baseline_value=baseline_value,
                    model_value=model_value,
                    gap=None,
                    status="skipped",
                    note=missing,
                    source=source,
                    higher_is_better=better,
                )
            )
            continue
        assert model_value is not None and baseline_value is not None
        results.append(
            BaselineResult(
                name=str(b.name),
                metric=metric,
                baseline_value=baseline_value,
                model_value=model_value,
                gap=model_value - baseline_value,
                status="ok",
                source=source,
                higher_is_better=better,
            )
        )
    return results
