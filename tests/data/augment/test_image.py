"""Image transforms keep shape, dtype and range, follow the seed, and really transform."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.config.structured import ImageAugmentConfig
from mlcycle.data.augment import augment_images, transform_images
from mlcycle.exceptions import ConfigError, DataError

ALL = ImageAugmentConfig(
    noise_std=0.05, rotation_deg=15, shift_px=2, brightness=0.2, contrast=0.3, copies=2
)


def _images(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(0, 256, size=shape).astype(dtype)
    return rng.random(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(5, 16, 12), (5, 3, 16, 12)])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_transforms_keep_shape_dtype_and_value_range(shape: tuple[int, ...], dtype: str) -> None:
    images = _images(shape, dtype)
    out = augment_images(images, ALL, np.random.default_rng(1))
    assert out.shape == (2 * shape[0], *shape[1:])
    assert out.dtype == images.dtype
    if dtype == "float32":
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.array_equal(out[: shape[0]], images)


def test_the_same_seed_gives_the_same_images_and_another_seed_others() -> None:
    images = _images((4, 3, 10, 10), "uint8")
    a = augment_images(images, ALL, np.random.default_rng(7))
    b = augment_images(images, ALL, np.random.default_rng(7))
    c = augment_images(images, ALL, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_no_transform_returns_the_images_unchanged() -> None:
    images = _images((3, 8, 8), "float32")
    out = transform_images(images, np.random.default_rng(0))
    np.testing.assert_array_equal(out, images)


def test_a_shift_moves_a_bright_pixel_by_at_most_shift_px() -> None:
    image = np.zeros((1, 21, 21), dtype=np.float32)
    image[0, 10, 10] = 1.0
    rng = np.random.default_rng(3)
    for _ in range(10):
        out = transform_images(image, rng, shift_px=3.0)
        row, col = np.unravel_index(out[0].argmax(), out[0].shape)
        assert abs(row - 10) <= 3 and abs(col - 10) <= 3
        assert out[0].sum() == pytest.approx(1.0, abs=1e-4)  # moved, not lost


def _orientation_deg(image: np.ndarray) -> float:
    """Angle of the main axis of the bright pixels (second moments), in degrees."""
    rows, cols = np.nonzero(image > 0.5)
    cov = np.cov(np.stack([cols - cols.mean(), rows - rows.mean()]))
    return float(np.degrees(0.5 * np.arctan2(2 * cov[0, 1], cov[0, 0] - cov[1, 1])))


def test_rotations_turn_a_bar_by_no_more_than_rotation_deg() -> None:
    image = np.zeros((40, 31, 31), dtype=np.float32)
    image[:, 15, 5:26] = 1.0
    out = transform_images(image, np.random.default_rng(0), rotation_deg=30)
    angles = np.array([_orientation_deg(im) for im in out])
    assert np.abs(angles).max() <= 30 + 3  # a little slack for the pixel grid
    assert (angles > 10).any() and (angles < -10).any()  # both ways, not a no-op


def test_brightness_and_contrast_change_mean_and_spread_within_bounds() -> None:
    images = np.full((50, 8, 8), 0.5, dtype=np.float32)
    images[:, :4] = 0.4
    rng = np.random.default_rng(0)
    bright = transform_images(images, rng, brightness=0.1)
    shift = bright.mean(axis=(1, 2)) - images.mean(axis=(1, 2))
    assert np.abs(shift).max() <= 0.1 + 1e-6 and shift.std() > 0.01
    contrasted = transform_images(images, rng, contrast=0.5)
    spread = contrasted.std(axis=(1, 2)) / images.std(axis=(1, 2))
    assert spread.min() >= 0.5 - 1e-4 and spread.max() <= 1.5 + 1e-4 and spread.std() > 0.05


def test_a_shift_of_half_the_image_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"image\.shift_px must be less than half the image"):
        transform_images(_images((1, 8, 8), "uint8"), np.random.default_rng(0), shift_px=4)


def test_an_array_that_is_not_images_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"\[N, H, W\] or \[N, C, H, W\]"):
        augment_images(np.zeros((4, 4)), ALL, np.random.default_rng(0))
