"""Every train.augment parameter is checked, and the message names it and its range."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlcycle.config.structured import (
    AugmentConfig,
    ImageAugmentConfig,
    NoiseConfig,
    RebalanceConfig,
)
from mlcycle.data.augment import check_augment_config, targets
from mlcycle.exceptions import ConfigError

BAD: list[tuple[str, dict[str, Any], str]] = [
    (
        "method",
        {"rebalance": RebalanceConfig(method="adasyn")},
        r"rebalance\.method must be one of none, random, smote; got 'adasyn'",
    ),
    (
        "ratio zero",
        {"rebalance": RebalanceConfig(ratio=0.0)},
        r"rebalance\.ratio must be a number in \(0, 1\]",
    ),
    (
        "ratio above 1",
        {"rebalance": RebalanceConfig(ratio=1.5)},
        r"rebalance\.ratio must be a number in \(0, 1\]",
    ),
    (
        "k_neighbors",
        {"rebalance": RebalanceConfig(k_neighbors=0)},
        r"rebalance\.k_neighbors must be an integer >= 1",
    ),
    ("snr zero", {"noise": NoiseConfig(snr_db=0.0)}, r"noise\.snr_db must be a number > 0"),
    ("snr negative", {"noise": NoiseConfig(snr_db=-5.0)}, r"noise\.snr_db must be a number > 0"),
    (
        "noise copies",
        {"noise": NoiseConfig(snr_db=20.0, copies=0)},
        r"noise\.copies must be an integer >= 1",
    ),
    ("factor", {"factor": 0.5}, r"train\.augment\.factor must be a number in \[1, 100\]"),
    ("seed", {"seed": "x"}, r"train\.augment\.seed must be an integer or null"),
    (
        "rotation",
        {"image": ImageAugmentConfig(rotation_deg=60)},
        r"image\.rotation_deg must be a number in \[0, 45\]",
    ),
    (
        "noise_std",
        {"image": ImageAugmentConfig(noise_std=0.8)},
        r"image\.noise_std must be a number in \[0, 0\.5\]",
    ),
    ("shift", {"image": ImageAugmentConfig(shift_px=-1)}, r"image\.shift_px must be a number >= 0"),
    (
        "brightness",
        {"image": ImageAugmentConfig(brightness=1.0)},
        r"image\.brightness must be a number in \[0, 1\)",
    ),
    (
        "contrast",
        {"image": ImageAugmentConfig(contrast=-0.1)},
        r"image\.contrast must be a number in \[0, 1\)",
    ),
    (
        "image copies",
        {"image": ImageAugmentConfig(copies=0)},
        r"image\.copies must be an integer >= 1",
    ),
    ("target entry", {"target_slices": [3]}, r"target_slices must be a list of slice names"),
]


@pytest.mark.parametrize(("case", "fields", "message"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_parameter_is_a_config_error_naming_it_and_its_range(
    case: str, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        check_augment_config(dataclasses.replace(AugmentConfig(), **fields))


def test_the_defaults_are_valid() -> None:
    check_augment_config(AugmentConfig())


def test_a_target_slice_missing_from_analyze_slices_is_named_with_the_declared_ones() -> None:
    cfg = AugmentConfig(
        target_slices=["huge"], slices=[{"name": "big", "where": {"x": {"min": 3}}}]
    )
    with pytest.raises(ConfigError, match=r"'huge', which is not in analyze\.slices.*'big'"):
        targets(cfg)


def test_targets_resolve_names_and_accept_inline_slices_in_order() -> None:
    cfg = AugmentConfig(
        target_slices=[{"name": "low", "where": {"x": {"max": 0}}}, "big"],
        slices=[{"name": "big", "where": {"x": {"min": 3}}}],
    )
    assert [(s.name, s.describe()) for s in targets(cfg)] == [("low", "x < 0"), ("big", "x >= 3")]


def test_the_same_slice_targeted_twice_is_refused() -> None:
    cfg = AugmentConfig(
        target_slices=["big", "big"], slices=[{"name": "big", "where": {"x": {"min": 3}}}]
    )
    with pytest.raises(ConfigError, match=r"each slice once; repeated: \['big'\]"):
        targets(cfg)
