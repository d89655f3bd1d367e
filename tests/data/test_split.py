"""Train / validation / test splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.config.structured import SplitConfig
from mlcycle.data import Dataset, DataVersion, FeatureSpec, Schema, split_dataset
from mlcycle.exceptions import ConfigError, DataError


def _dataset(counts: dict[str, int]) -> Dataset:
    y = np.array([c for c, n in counts.items() for _ in range(n)], dtype=str)
    frame = pd.DataFrame({"row": np.arange(len(y), dtype="float32")})
    schema = Schema("y", sorted(counts), [FeatureSpec("row", "numeric")])
    return Dataset(frame, y, schema, DataVersion("0" * 32, "d.csv", False, 0), Path("d.csv"))


def _rows(ds: Dataset) -> list[int]:
    return [int(v) for v in ds.frame["row"]]


def test_split_same_seed_gives_same_rows_and_other_seed_differs() -> None:
    ds = _dataset({"a": 60, "b": 40})
    one, two = split_dataset(ds, SplitConfig(seed=7)), split_dataset(ds, SplitConfig(seed=7))
    other = split_dataset(ds, SplitConfig(seed=8))
    for name in ("train", "val", "test"):
        assert _rows(getattr(one, name)) == _rows(getattr(two, name))
    assert _rows(one.test) != _rows(other.test)


def test_split_is_disjoint_covers_every_row_and_has_expected_sizes() -> None:
    ds = _dataset({"a": 60, "b": 40})
    splits = split_dataset(ds, SplitConfig(test_fraction=0.2, val_fraction=0.1))
    assert splits.sizes() == {"train": 70, "val": 10, "test": 20}
    rows = [set(_rows(part)) for _, part in splits.items()]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert set.union(*rows) == set(range(100))
    for _, part in splits.items():
        assert (ds.y[_rows(part)] == part.y).all()
        assert part.schema is ds.schema and part.version is ds.version


def test_split_stratified_keeps_class_proportions() -> None:
    ds = _dataset({"a": 150, "b": 100, "c": 50})
    splits = split_dataset(ds, SplitConfig(test_fraction=0.2, val_fraction=0.2))
    for _, part in splits.items():
        shares = {c: n / len(part) for c, n in Counter(part.y.tolist()).items()}
        assert shares == pytest.approx({"a": 0.5, "b": 1 / 3, "c": 1 / 6}, abs=0.02)


@pytest.mark.parametrize(
    ("test_fraction", "val_fraction", "key"),
    [
        (0.0, 0.2, "data.split.test_fraction"),
        (1.2, 0.2, "data.split.test_fraction"),
        (0.2, -0.1, "data.split.val_fraction"),
        (0.2, 1.0, "data.split.val_fraction"),
        (0.5, 0.5, "data.split.test_fraction \\+ data.split.val_fraction"),
    ],
)
def test_split_rejects_bad_fractions_naming_the_key(
    test_fraction: float, val_fraction: float, key: str
) -> None:
    cfg = SplitConfig(test_fraction=test_fraction, val_fraction=val_fraction)
    with pytest.raises(ConfigError, match=key):
        split_dataset(_dataset({"a": 10, "b": 10}), cfg)


def test_split_small_class_names_class_count_and_fix() -> None:
    ds = _dataset({"a": 50, "rare": 2})
    with pytest.raises(
        DataError, match=r"class 'rare' has 2 row\(s\).*data\.split\.stratify=false"
    ):
        split_dataset(ds, SplitConfig())


def test_split_without_stratify_accepts_small_class() -> None:
    ds = _dataset({"a": 50, "rare": 2})
    assert sum(split_dataset(ds, SplitConfig(stratify=False)).sizes().values()) == 52


def test_split_too_few_rows_for_the_fractions_is_a_data_error() -> None:
    with pytest.raises(DataError, match="cannot split"):
        split_dataset(_dataset({"a": 3, "b": 3}), SplitConfig(test_fraction=0.1, val_fraction=0.1))
