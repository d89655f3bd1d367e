"""Rebalancing, oversampling and noisy copies of tabular rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.data.augment.tabular import noisy_copies, oversample, rebalance
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import ConfigError
from tests._datasets import make_dataset


def _imbalanced(n_major: int = 200, n_minor: int = 20, seed: int = 0) -> Dataset:
    """Two numeric features (one with missing values) and a categorical one."""
    rng = np.random.default_rng(seed)
    n = n_major + n_minor
    y = np.array(["major"] * n_major + ["minor"] * n_minor)
    x0 = np.where(y == "minor", 3.0, 0.0) + rng.normal(size=n)
    x1 = 100 + 50 * rng.normal(size=n)
    x1[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {
            "x0": x0.astype(np.float32),
            "c": pd.Series(rng.choice(["u", "v", ""], size=n), dtype=object),
            "x1": x1.astype(np.float32),
        }
    )
    schema = Schema(
        "y",
        ["major", "minor"],
        [
            FeatureSpec("x0", "numeric"),
            FeatureSpec("c", "categorical", categories=["u", "v"], nullable=True),
            FeatureSpec("x1", "numeric", nullable=True),
        ],
    )
    return make_dataset(frame, y, schema)


@pytest.mark.parametrize("method", ["random", "smote"])
@pytest.mark.parametrize("ratio", [0.5, 1.0])
def test_rebalancing_grows_the_minority_class_to_the_ratio(method: str, ratio: float) -> None:
    ds = _imbalanced()
    source = np.arange(len(ds))
    new = rebalance(
        ds.frame, ds.y, source, ds.schema, method=method, ratio=ratio, k_neighbors=5, seed=0
    )
    assert set(new.y.tolist()) == {"minor"}
    assert 20 + len(new) == int(np.ceil(ratio * 200))
    assert list(new.frame.columns) == list(ds.frame.columns)


@pytest.mark.parametrize("method", ["random", "smote"])
def test_targeted_rebalancing_draws_only_from_the_targeted_rows(method: str) -> None:
    ds = _imbalanced()
    # the targeted rows: 60 majors and the minors with an odd position; the other minors
    # lie far away, so a row drawn from them would show
    source = np.concatenate([np.arange(0, 60), np.arange(201, 220, 2)]).astype(np.intp)
    ds.frame.loc[np.arange(200, 220, 2), "x0"] = 50.0
    new = rebalance(
        ds.frame, ds.y, source, ds.schema, method=method, ratio=1.0, k_neighbors=3, seed=1
    )
    assert len(new) == 60 - 10  # the ratio is reached among the targeted rows
    assert set(new.origin.tolist()) <= set(source.tolist())
    minors = ds.frame.iloc[source[source >= 200]]
    lo, hi = minors["x0"].min(), minors["x0"].max()
    # SMOTE's rows lie between targeted rows of the class, so inside their range
    assert new.frame["x0"].between(lo, hi).all()


def test_smote_copies_categories_and_keeps_missing_values_of_its_origin_row() -> None:
    ds = _imbalanced()
    new = rebalance(
        ds.frame, ds.y, np.arange(len(ds)), ds.schema,
        method="smote", ratio=1.0, k_neighbors=5, seed=0,
    )  # fmt: skip
    origin = ds.frame.iloc[new.origin].reset_index(drop=True)
    assert (new.frame["c"] == origin["c"]).all()
    np.testing.assert_array_equal(new.frame["x1"].isna(), origin["x1"].isna())
    # and the numeric values are new: not copies of their origin
    assert (new.frame["x0"] != origin["x0"]).mean() > 0.9
    assert new.frame["x0"].dtype == np.float32


def test_smote_with_too_few_rows_of_a_class_names_k_neighbors_and_the_class() -> None:
    ds = _imbalanced(n_minor=4)
    with pytest.raises(ConfigError, match=r"k_neighbors=5 needs more than 5 rows.*'minor' has 4"):
        rebalance(
            ds.frame, ds.y, np.arange(len(ds)), ds.schema,
            method="smote", ratio=1.0, k_neighbors=5, seed=0,
        )  # fmt: skip


def test_rebalancing_a_balanced_set_adds_nothing() -> None:
    ds = _imbalanced(n_major=30, n_minor=30)
    new = rebalance(
        ds.frame, ds.y, np.arange(len(ds)), ds.schema,
        method="smote", ratio=1.0, k_neighbors=5, seed=0,
    )  # fmt: skip
    assert len(new) == 0


def test_oversampling_reaches_the_factor_and_repeats_rows_evenly() -> None:
    ds = _imbalanced()
    source = np.arange(10, 30).astype(np.intp)
    new = oversample(ds.frame, ds.y, source, factor=2.5, seed=0)
    assert len(new) == 30
    counts = np.bincount(new.origin, minlength=len(ds))[source]
    assert set(counts.tolist()) <= {1, 2} and counts.sum() == 30
    pd.testing.assert_frame_equal(new.frame, ds.frame.iloc[new.origin].reset_index(drop=True))


def test_noisy_copies_have_the_target_snr_per_feature_and_keep_categories() -> None:
    ds = _imbalanced(n_major=2000, n_minor=2000)
    source = np.arange(len(ds)).astype(np.intp)
    new, measured = noisy_copies(
        ds.frame, ds.y, source, ds.schema, snr=10.0, copies=2, clip=False, seed=0
    )
    assert len(new) == 2 * len(ds)
    origin = ds.frame.iloc[new.origin].reset_index(drop=True)
    for feature in ("x0", "x1"):
        power = np.nanvar(ds.frame[feature].to_numpy(np.float64))
        noise = new.frame[feature].to_numpy(np.float64) - origin[feature].to_numpy(np.float64)
        assert 10 * np.log10(power / np.nanmean(noise**2)) == pytest.approx(10.0, abs=0.15)
    assert measured == pytest.approx(10.0, abs=0.15)
    assert (new.frame["c"] == origin["c"]).all()
    np.testing.assert_array_equal(new.frame["x1"].isna(), origin["x1"].isna())


def test_clipped_noise_stays_inside_each_features_training_range() -> None:
    ds = _imbalanced()
    new, _ = noisy_copies(
        ds.frame, ds.y, np.arange(len(ds)).astype(np.intp), ds.schema,
        snr=3.0, copies=3, clip=True, seed=0,
    )  # fmt: skip
    for feature in ("x0", "x1"):
        values = new.frame[feature].dropna()
        assert values.min() >= ds.frame[feature].min()
        assert values.max() <= ds.frame[feature].max()


def test_noise_on_data_without_numeric_features_is_a_config_error() -> None:
    schema = Schema("y", ["a", "b"], [FeatureSpec("c", "categorical")])
    ds = make_dataset(pd.DataFrame({"c": ["u", "v"] * 5}), np.array(["a", "b"] * 5), schema)
    with pytest.raises(ConfigError, match=r"noise adds noise to numeric features"):
        noisy_copies(
            ds.frame, ds.y, np.arange(10).astype(np.intp), schema,
            snr=20.0, copies=1, clip=True, seed=0,
        )  # fmt: skip
