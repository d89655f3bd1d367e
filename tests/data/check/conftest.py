"""Fixtures of the data-check tests: datasets built in memory, with known defects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from tests._datasets import make_dataset


def flip_labels(
    y: np.ndarray[Any, Any], rate: float, seed: int
) -> tuple[np.ndarray[Any, Any], set[int]]:
    """``y`` with ``rate`` of its labels changed to another class at random (seeded)."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(y.tolist()))
    rows = rng.choice(len(y), size=round(rate * len(y)), replace=False)
    noisy = y.copy()
    for i in rows:
        noisy[i] = rng.choice([c for c in classes if c != y[i]])
    return noisy, {int(i) for i in rows}


@pytest.fixture()
def with_labels() -> Callable[[Dataset, np.ndarray[Any, Any]], Dataset]:
    """Factory: the same dataset with other labels."""

    def make(data: Dataset, y: np.ndarray[Any, Any]) -> Dataset:
        return make_dataset(data.frame, y, data.schema)

    return make


@pytest.fixture()
def table() -> Callable[..., Dataset]:
    """Factory: a Dataset from columns ``{name: values}`` (numbers are numeric features,
    strings categorical) and labels."""

    def make(columns: dict[str, list[Any]], y: list[str]) -> Dataset:
        specs = []
        data: dict[str, Any] = {}
        for name, values in columns.items():
            if all(isinstance(v, str) for v in values):
                specs.append(FeatureSpec(name, "categorical"))
                data[name] = pd.Series(values, dtype=str)
            else:
                specs.append(FeatureSpec(name, "numeric"))
                data[name] = pd.Series(values, dtype="float32")
        schema = Schema("y", sorted(set(y)), specs)
        return make_dataset(pd.DataFrame(data), np.array(y), schema)

    return make
