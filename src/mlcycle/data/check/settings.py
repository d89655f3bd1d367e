"""Check the ``data.check`` settings before any model is fitted.

Every message names the setting, the value given, what is allowed and the command-line
flag that sets it, so a typo fails in a second instead of after the cross-validation.
"""

from __future__ import annotations

import math
from typing import Any

from mlcycle.config.structured import DataCheckConfig
from mlcycle.exceptions import ConfigError

__all__ = ["check_settings"]

# Setting -> the command-line flag that also sets it.
_FLAGS = {"folds": "--folds", "max_issues": "--max-issues"}


def _where(key: str) -> str:
    flag = _FLAGS.get(key)
    return f"data.check.{key}" + (f" (or {flag})" if flag else "")


def _int(cfg: DataCheckConfig, key: str, low: int) -> None:
    value: Any = getattr(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{_where(key)} is {value!r}; it must be a whole number >= {low}")


def _float(
    cfg: DataCheckConfig, key: str, low: float, high: float, *, open_low: bool, open_high: bool
) -> None:
    value: Any = getattr(cfg, key)
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    ok = number is not None and math.isfinite(number)
    if ok and number is not None:
        ok = (number > low if open_low else number >= low) and (
            number < high if open_high else number <= high
        )
    if not ok:
        left, right = "(" if open_low else "[", ")" if open_high else "]"
        raise ConfigError(
            f"{_where(key)} is {value!r}; it must be a number in {left}{low}, {high}{right}"
        )


def check_settings(cfg: DataCheckConfig) -> None:
    """Raise a :class:`ConfigError` for the first ``data.check`` value out of range.

    Parameters
    ----------
    cfg
        The ``data.check`` section (after the command-line flags are applied).

    Raises
    ------
    ConfigError
        A value out of range; the message names the setting, its flag and the range.

    Examples
    --------
    >>> check_settings(DataCheckConfig())
    >>> check_settings(DataCheckConfig(folds=1))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.ConfigError: data.check.folds (or --folds) is 1; it must be a whole ...
    """
    _int(cfg, "folds", 2)
    _int(cfg, "max_issues", 0)
    _int(cfg, "rare_count", 1)
    _int(cfg, "min_slice_rows", 1)
    _int(cfg, "slice_bins", 2)
    if cfg.seed is not None:
        _int(cfg, "seed", 0)
    _float(cfg, "rare_class_share", 0.0, 1.0, open_low=False, open_high=True)
    _float(cfg, "max_missing_rate", 0.0, 1.0, open_low=False, open_high=False)
    _float(cfg, "min_gain", 0.0, math.inf, open_low=False, open_high=True)
    _float(cfg, "max_age_days", 0.0, math.inf, open_low=True, open_high=True)
    sizes: Any = cfg.curve_sizes
    bad = not isinstance(sizes, list | tuple) or len(sizes) < 2
    if not bad:
        for s in sizes:
            number = float(s) if isinstance(s, int | float) and not isinstance(s, bool) else -1.0
            bad = bad or not 0.0 < number <= 1.0
    if bad or len({float(s) for s in sizes}) < 2:
        raise ConfigError(
            f"data.check.curve_sizes is {sizes!r}; give at least two different fractions of a "
            "training fold in (0, 1], e.g. [0.1, 0.25, 0.5, 0.75, 1.0]"
        )
