"""The data.check settings are checked before anything is fitted."""

from __future__ import annotations

from typing import Any

import pytest

from mlcycle.config.structured import DataCheckConfig
from mlcycle.data.check.settings import check_settings
from mlcycle.exceptions import ConfigError


def test_the_defaults_are_valid() -> None:
    check_settings(DataCheckConfig())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("folds", 1, r"data.check.folds \(or --folds\) is 1; it must be a whole number >= 2"),
        ("folds", 2.5, r"data.check.folds .* is 2.5"),
        ("max_issues", -1, r"data.check.max_issues \(or --max-issues\) is -1; .* >= 0"),
        ("rare_count", 0, r"data.check.rare_count is 0"),
        ("min_slice_rows", 0, r"data.check.min_slice_rows is 0"),
        ("slice_bins", 1, r"data.check.slice_bins is 1; .* >= 2"),
        ("seed", -3, r"data.check.seed is -3"),
        ("rare_class_share", 1.0, r"data.check.rare_class_share is 1.0; .* \[0.0, 1.0\)"),
        ("max_missing_rate", 1.5, r"data.check.max_missing_rate is 1.5"),
        ("min_gain", float("nan"), r"data.check.min_gain is nan"),
        ("max_age_days", 0, r"data.check.max_age_days is 0; .* \(0.0, inf\)"),
        ("curve_sizes", [0.5], r"data.check.curve_sizes is \[0.5\]; give at least two"),
        ("curve_sizes", [0.5, 1.5], r"data.check.curve_sizes"),
        ("curve_sizes", [1.0, 1], r"data.check.curve_sizes"),
    ],
)
def test_a_value_out_of_range_names_the_setting_and_the_range(
    key: str, value: Any, message: str
) -> None:
    cfg = DataCheckConfig()
    setattr(cfg, key, value)
    with pytest.raises(ConfigError, match=message):
        check_settings(cfg)
