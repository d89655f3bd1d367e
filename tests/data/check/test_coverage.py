"""Coverage: class balance, rare categories, small slices, constant and missing features."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mlcycle.data.check.coverage import (
    class_balance,
    feature_health,
    rare_categories,
    small_slices,
)
from mlcycle.data.dataset import Dataset


def test_class_balance_flags_a_rare_class_and_the_imbalance_ratio() -> None:
    y = np.array(["common"] * 95 + ["rare"] * 5)
    balance = class_balance(y, rare_class_share=0.1)
    assert balance["counts"] == {"common": 95, "rare": 5}
    assert balance["shares"] == {"common": 0.95, "rare": 0.05}
    assert balance["imbalance_ratio"] == 19.0
    assert balance["rare"] == ["rare"]
    assert class_balance(y, rare_class_share=0.01)["rare"] == []


def test_detects_constant_features_and_missing_rates(table: Callable[..., Dataset]) -> None:
    data = table(
        {
            "flat": [3.0] * 10,
            "holes": [1.0, np.nan, 2.0, np.nan, np.nan, 5.0, 6.0, 7.0, 8.0, 9.0],
            "region": ["n", "s", "", "", "n", "s", "n", "s", "n", "s"],
            "one_value": ["x", "", "x", "x", "x", "x", "x", "x", "x", "x"],
        },
        ["a", "b"] * 5,
    )
    health = {h["name"]: h for h in feature_health(data.frame, data.schema, max_missing_rate=0.25)}
    assert health["flat"]["constant"] and health["flat"]["distinct"] == 1
    assert health["holes"]["missing"] == 3
    assert health["holes"]["missing_rate"] == 0.3
    assert health["holes"]["too_many_missing"] and not health["holes"]["constant"]
    assert health["region"]["missing_rate"] == 0.2 and not health["region"]["too_many_missing"]
    # missing does not count as a value: one present value is constant
    assert health["one_value"]["constant"]
    assert list(health) == ["flat", "holes", "region", "one_value"]  # schema order


def test_rare_categories_are_values_in_fewer_rows_than_rare_count(
    table: Callable[..., Dataset],
) -> None:
    plan = ["basic"] * 20 + ["pro"] * 5 + ["gold"] * 2 + [""] * 3
    data = table({"plan": plan}, ["a", "b"] * 15)
    rare = rare_categories(data.frame, data.schema, rare_count=5)
    assert rare == [{"feature": "plan", "value": "gold", "rows": 2}]  # "" is missing, not rare
    assert [r["value"] for r in rare_categories(data.frame, data.schema, rare_count=6)] == [
        "gold",
        "pro",
    ]


def test_small_slices_cover_categorical_values_and_numeric_bins(
    table: Callable[..., Dataset],
) -> None:
    rng = np.random.default_rng(0)
    data = table(
        {
            "age": rng.normal(40, 10, 200).tolist(),
            "region": ["north"] * 190 + ["south"] * 10,
            "flag": [0.0] * 195 + [1.0] * 5,
        },
        ["a", "b"] * 100,
    )
    slices = small_slices(data.frame, data.schema, min_rows=30, bins=4)
    assert {(s["feature"], s["slice"], s["rows"]) for s in slices} == {
        ("flag", "= 1", 5),
        ("region", "south", 10),
    }
    # Each of age's four quantile bins holds about 50 rows; with 60 they are all small.
    bins = [
        s
        for s in small_slices(data.frame, data.schema, min_rows=60, bins=4)
        if s["feature"] == "age"
    ]
    assert len(bins) == 4 and sum(s["rows"] for s in bins) == 200
    assert bins[0]["slice"].startswith(("[", "("))
    assert [s["rows"] for s in slices] == sorted(s["rows"] for s in slices)  # smallest first
