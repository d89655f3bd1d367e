"""augment_training_set and the fitting hook: targeted, recorded, training split only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle.config.structured import (
    AugmentConfig,
    ImageAugmentConfig,
    LogRegConfig,
    NoiseConfig,
    RebalanceConfig,
    SplitConfig,
    TrainConfig,
)
from mlcycle.data.augment import augment_training_set
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.data.split import split_dataset
from mlcycle.exceptions import ConfigError
from mlcycle.train.fit import fit_model
from tests._datasets import make_dataset, sklearn_dataset

BIG = {"name": "big", "where": {"worst radius": {"min": 17}}}


@pytest.fixture(scope="module")
def cancer() -> Dataset:
    return sklearn_dataset(load_breast_cancer)


def _cfg(**fields: object) -> AugmentConfig:
    return dataclasses.replace(AugmentConfig(enabled=True, slices=[BIG]), **fields)


def test_disabled_augmentation_returns_the_split_itself_and_no_record(cancer: Dataset) -> None:
    out, record = augment_training_set(cancer, AugmentConfig(), seed=0)
    assert out is cancer and record is None


def test_targeted_noise_copies_only_the_slice_rows_and_records_them(cancer: Dataset) -> None:
    cfg = _cfg(target_slices=["big"], noise=NoiseConfig(snr_db=20.0, copies=2))
    out, record = augment_training_set(cancer, cfg, seed=0)
    in_slice = int((cancer.frame["worst radius"] >= 17).sum())
    assert record is not None
    assert len(out) == len(cancer) + 2 * in_slice
    pd.testing.assert_frame_equal(out.frame.iloc[: len(cancer)], cancer.frame)
    new = out.frame.iloc[len(cancer) :]
    # noise at 20 dB cannot move a radius of >= 17 below ~15 (its spread is about 0.5)
    assert (new["worst radius"] > 14).all()
    assert record["target_slices"] == [
        {"name": "big", "where": "worst radius >= 17", "rows": in_slice, "added": 2 * in_slice}
    ]
    (step,) = record["steps"]
    assert step["method"] == "noise" and step["snr_db"] == 20.0 and step["added"] == 2 * in_slice
    assert step["measured_snr_db"] == pytest.approx(20.0, abs=1.5)
    assert record["rows_before"] == len(cancer) and record["rows_after"] == len(out)
    assert sum(record["class_counts_after"].values()) == len(out)


def test_every_step_runs_in_order_and_each_is_recorded(cancer: Dataset) -> None:
    cfg = _cfg(
        rebalance=RebalanceConfig(method="smote", ratio=1.0),
        factor=2.0,
        noise=NoiseConfig(snr_db=30.0),
    )
    out, record = augment_training_set(cancer, cfg, seed=0)
    assert record is not None
    assert [s["method"] for s in record["steps"]] == ["smote", "oversample", "noise"]
    counts = record["class_counts_before"]
    smote = record["steps"][0]
    assert smote["added"] == max(counts.values()) - min(counts.values())
    assert record["steps"][1]["added"] == len(cancer)
    assert record["steps"][2]["added"] == len(cancer)
    assert len(out) == len(cancer) + sum(s["added"] for s in record["steps"])


def test_the_same_seed_gives_the_same_rows_and_another_seed_others(cancer: Dataset) -> None:
    cfg = _cfg(rebalance=RebalanceConfig(method="smote"), noise=NoiseConfig(snr_db=20.0))
    a, _ = augment_training_set(cancer, cfg, seed=1)
    b, _ = augment_training_set(cancer, cfg, seed=1)
    c, _ = augment_training_set(cancer, dataclasses.replace(cfg, seed=2), seed=1)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert not a.frame.equals(c.frame)


def test_a_target_slice_that_matches_no_training_row_is_a_config_error(cancer: Dataset) -> None:
    cfg = _cfg(
        target_slices=[{"name": "giant", "where": {"worst radius": {"min": 1000}}}],
        factor=2.0,
    )
    with pytest.raises(ConfigError, match=r"slice 'giant' \(worst radius >= 1000\) matches none"):
        augment_training_set(cancer, cfg, seed=0)


def test_enabled_without_any_augmentation_says_what_to_set(cancer: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"no augmentation is set: set train\.augment\.rebal"):
        augment_training_set(cancer, _cfg(), seed=0)


def test_image_transforms_on_data_without_images_are_refused(cancer: Dataset) -> None:
    cfg = _cfg(factor=2.0, image=ImageAugmentConfig(rotation_deg=10))
    with pytest.raises(ConfigError, match=r"image transforms images and this data has no image"):
        augment_training_set(cancer, cfg, seed=0)


def test_an_image_feature_gets_transformed_copies_within_the_schemas_pixel_range() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(12, 1, 8, 8)).astype(np.float32)
    frame = pd.DataFrame({"img": pd.Series(list(pixels), dtype=object)})
    schema = Schema("y", ["a", "b"], [FeatureSpec("img", "image", min=0.0, max=255.0)])
    ds = make_dataset(frame, np.array(["a", "b"] * 6), schema)
    image = ImageAugmentConfig(rotation_deg=20, brightness=0.3, noise_std=0.1, copies=2)
    out, record = augment_training_set(ds, AugmentConfig(enabled=True, image=image), seed=0)
    assert len(out) == 36 and out.y[12:].tolist() == ds.y.tolist() * 2
    new = np.stack(out.frame["img"].to_numpy()[12:])
    assert new.shape == (24, 1, 8, 8) and new.dtype == np.float32
    assert new.min() >= 0.0 and new.max() <= 255.0 and new.max() > 1.0
    assert not np.array_equal(new[:12], pixels)
    assert record is not None
    (step,) = record["steps"]
    assert step["method"] == "image" and step["features"] == ["img"] and step["added"] == 24


def test_fitting_augments_the_training_split_only_and_keeps_the_record(cancer: Dataset) -> None:
    splits = split_dataset(cancer, SplitConfig())
    val, test = splits.val.frame.copy(), splits.test.frame.copy()
    train_cfg = TrainConfig(
        augment=_cfg(target_slices=["big"], rebalance=RebalanceConfig(method="random"))
    )
    trained = fit_model(splits.train, LogRegConfig(), train_cfg)
    pd.testing.assert_frame_equal(splits.val.frame, val)
    pd.testing.assert_frame_equal(splits.test.frame, test)
    record = trained.augmentation
    assert record is not None and record["rows_before"] == len(splits.train)
    assert record["target_slices"][0]["rows"] == int(
        (splits.train.frame["worst radius"] >= 17).sum()
    )
    plain = fit_model(splits.train, LogRegConfig(), TrainConfig())
    assert plain.augmentation is None
    assert not np.array_equal(plain.predict_proba(splits.val), trained.predict_proba(splits.val))


def test_the_sanity_check_does_not_augment(cancer: Dataset) -> None:
    from mlcycle.train.sanity import sanity_check

    # a slice no 32-row sample can be sure to hit would fail if the check augmented
    train_cfg = TrainConfig(
        augment=_cfg(
            target_slices=[{"name": "one", "where": {"worst radius": {"min": 36}}}], factor=2.0
        )
    )
    assert sanity_check(cancer, LogRegConfig(C=100.0), train_cfg).passed


def test_mixed_data_with_missing_values_trains_with_every_step() -> None:
    from tests._datasets import mixed_dataset

    ds = mixed_dataset()
    cfg = AugmentConfig(
        enabled=True,
        target_slices=[{"name": "red", "where": {"color": ["red"]}}],
        rebalance=RebalanceConfig(method="smote", k_neighbors=3),
        factor=1.5,
        noise=NoiseConfig(snr_db=20.0),
    )
    trained = fit_model(ds, LogRegConfig(), TrainConfig(augment=cfg))
    record = trained.augmentation
    assert record is not None and record["target_slices"][0]["added"] > 0
    out, _ = augment_training_set(ds, cfg, seed=42)
    new = out.frame.iloc[len(ds) :]
    assert (new["color"] == "red").all()  # categorical copied from the slice's rows
    assert new["x0"].isna().any() and new["x0"].dtype == np.float32  # missing stays missing
