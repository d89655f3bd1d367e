"""A small synthetic table of drink orders, and derived features declared on it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from tests._datasets import make_dataset

DRINKS = ["tea", "coffee", "juice", "water"]

#: One derived feature of each kind (and each date part the model uses).
DERIVED: list[dict[str, Any]] = [
    {"name": "unit_price", "kind": "ratio", "numerator": "amount", "denominator": "items"},
    {"name": "amount_band", "kind": "bins", "feature": "amount", "edges": [5, 10, 20]},
    {"name": "order_month", "kind": "date_part", "feature": "ordered_at", "part": "month"},
    {"name": "order_weekday", "kind": "date_part", "feature": "ordered_at", "part": "weekday"},
    {"name": "order_hour", "kind": "date_part", "feature": "ordered_at", "part": "hour"},
    {
        "name": "tea_or_coffee_only",
        "kind": "flag",
        "any": [{"feature": "drink", "in": ["tea", "coffee"]}],
    },
    {
        "name": "big_hot_order",
        "kind": "flag",
        "all": [
            {"feature": "drink", "not_in": ["juice", "water"]},
            {"feature": "amount", "min": 10},
        ],
    },
]


def drinks_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """Orders: drink (with missing), amount (with missing), items (with zeros), ordered_at
    (Unix seconds in 2023-2024), and the label ``tip`` that depends on derived features."""
    rng = np.random.default_rng(seed)
    drink = rng.choice([*DRINKS, None], size=n, p=[0.3, 0.3, 0.15, 0.15, 0.1])
    items = rng.integers(0, 6, size=n)
    amount = np.round(rng.gamma(2.0, 6.0, size=n), 2)
    amount[rng.random(n) < 0.05] = np.nan
    ordered_at = rng.integers(1_672_531_200, 1_735_689_600, size=n)  # 2023-01-01 .. 2025-01-01
    hour = (ordered_at % 86400) // 3600
    unit = np.where(items > 0, amount / np.maximum(items, 1), 0.0)
    hot = np.isin(drink.astype(str), ["tea", "coffee"])
    score = 1.2 * hot + 0.15 * np.nan_to_num(unit) + 1.0 * (hour >= 18) + rng.normal(0, 0.4, n)
    tip = np.where(score > 1.8, "yes", "no")
    return pd.DataFrame(
        {"drink": drink, "amount": amount, "items": items, "ordered_at": ordered_at, "tip": tip}
    )


def drinks_schema() -> Schema:
    return Schema(
        "tip",
        ["no", "yes"],
        [
            FeatureSpec("drink", "categorical", "string", categories=DRINKS, nullable=True),
            FeatureSpec("amount", "numeric", nullable=True),
            FeatureSpec("items", "numeric", "int64"),
            FeatureSpec("ordered_at", "numeric", "int64"),
        ],
    )


def drinks_dataset(n: int = 500, seed: int = 0) -> Dataset:
    frame = drinks_frame(n, seed)
    features = frame.drop(columns=["tip"])
    features["drink"] = features["drink"].fillna("").astype(str).astype(object)
    for c in ("amount", "items", "ordered_at"):
        features[c] = features[c].astype(np.float32)
    return make_dataset(features, frame["tip"].to_numpy(), drinks_schema())
