"""Random transforms of image arrays: noise, small rotations, shifts, brightness, contrast.

Images are numpy arrays ``[N, H, W]`` (grey) or ``[N, C, H, W]`` (channels first), of an
integer or float dtype. Each image draws its own rotation angle, shift, brightness and
contrast from uniform ranges, and its own pixel noise; a seed gives the same result.
Rotation and shift are one affine resampling (bilinear, edges extended) per channel;
then contrast (around the image's mean), brightness and noise; finally the values are
clipped to the value range and cast back to the input dtype (integers rounded), so the
output has the shape, dtype and range of the input.

The value range is the dtype's for integers (``uint8``: 0 to 255) and ``[0, 1]`` for
floats within it, else the batch's own minimum and maximum; pass ``value_range`` to say
otherwise.

Examples
--------
>>> import numpy as np
>>> from mlcycle.config.structured import ImageAugmentConfig
>>> imgs = np.zeros((2, 3, 8, 8), dtype=np.uint8)
>>> out = augment_images(imgs, ImageAugmentConfig(rotation_deg=10, brightness=0.2, copies=2),
...                      np.random.default_rng(0))
>>> out.shape, out.dtype
((4, 3, 8, 8), dtype('uint8'))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlcycle.data.augment.config import check_image_config
from mlcycle.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    from mlcycle.config.structured import ImageAugmentConfig

__all__ = ["augment_images", "default_value_range", "transform_images"]


def default_value_range(images: npt.NDArray[Any]) -> tuple[float, float]:
    """The range values are clipped to (see the module's description).

    Examples
    --------
    >>> default_value_range(np.zeros((1, 2, 2), dtype=np.uint8))
    (0.0, 255.0)
    >>> default_value_range(np.array([[[0.2, 0.9]]], dtype=np.float32))
    (0.0, 1.0)
    """
    if np.issubdtype(images.dtype, np.integer):
        info = np.iinfo(images.dtype)
        return float(info.min), float(info.max)
    if not images.size:
        return 0.0, 1.0
    lo, hi = float(np.nanmin(images)), float(np.nanmax(images))
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi


def _check_images(images: npt.NDArray[Any]) -> None:
    if images.ndim not in (3, 4):
        raise DataError(
            f"images must be an array [N, H, W] or [N, C, H, W]; got shape {images.shape}"
        )
    if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
        raise DataError(f"images must hold integers or floats; got dtype {images.dtype}")


def transform_images(
    images: npt.ArrayLike,
    rng: np.random.Generator,
    *,
    noise_std: float = 0.0,
    rotation_deg: float = 0.0,
    shift_px: float = 0.0,
    brightness: float = 0.0,
    contrast: float = 0.0,
    value_range: tuple[float, float] | None = None,
) -> npt.NDArray[Any]:
    """One randomly transformed version of each image.

    Parameters
    ----------
    images
        ``[N, H, W]`` or ``[N, C, H, W]``.
    rng
        The random generator.
    noise_std
        Std of Gaussian pixel noise, as a fraction of the value range.
    rotation_deg
        Each image turns by an angle drawn from ``[-rotation_deg, rotation_deg]``.
    shift_px
        Each image moves by up to ``shift_px`` pixels along each axis.
    brightness
        Each image's values move by up to ``brightness`` x the value range.
    contrast
        Each image's values are scaled around its mean by a factor in
        ``[1 - contrast, 1 + contrast]``.
    value_range
        ``(low, high)`` to clip to; default: see :func:`default_value_range`.

    Returns
    -------
    numpy.ndarray
        The transformed images: same shape and dtype, values within the range.

    Raises
    ------
    DataError
        Not an image array.
    ConfigError
        ``shift_px`` of half the image or more.
    """
    from scipy import ndimage

    x = np.asarray(images)
    _check_images(x)
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    if shift_px >= min(h, w) / 2:
        raise ConfigError(
            f"train.augment.image.shift_px must be less than half the image ({h}x{w}); "
            f"got {shift_px}"
        )
    lo, hi = value_range if value_range is not None else default_value_range(x)
    span = hi - lo
    work = x.astype(np.float64).reshape(n, -1, h, w)
    center = np.array([(h - 1) / 2.0, (w - 1) / 2.0])
    out = np.empty_like(work)
    for i in range(n):
        angle = math.radians(rng.uniform(-rotation_deg, rotation_deg))
        shift = rng.uniform(-shift_px, shift_px, size=2)
        gain = rng.uniform(1.0 - contrast, 1.0 + contrast)
        offset_b = rng.uniform(-brightness, brightness) * span
        img = work[i]
        if angle or shift.any():
            cos, sin = math.cos(angle), math.sin(angle)
            matrix = np.array([[cos, -sin], [sin, cos]])
            offset = center - matrix @ (center + shift)
            img = np.stack(
                [
                    ndimage.affine_transform(ch, matrix, offset=offset, order=1, mode="nearest")
                    for ch in img
                ]
            )
        mean = img.mean()
        img = mean + (img - mean) * gain + offset_b
        if noise_std:
            img = img + rng.normal(0.0, noise_std * span, size=img.shape)
        out[i] = np.clip(img, lo, hi)
    if np.issubdtype(x.dtype, np.integer):
        out = np.rint(out)
    return out.reshape(x.shape).astype(x.dtype)


def augment_images(
    images: npt.ArrayLike,
    cfg: ImageAugmentConfig,
    rng: np.random.Generator,
    *,
    value_range: tuple[float, float] | None = None,
) -> npt.NDArray[Any]:
    """``cfg.copies`` transformed copies of every image, as ``train.augment.image`` says.

    Parameters
    ----------
    images
        ``[N, H, W]`` or ``[N, C, H, W]``.
    cfg
        The ``train.augment.image`` section (checked here).
    rng
        The random generator (``np.random.default_rng(seed)``).
    value_range
        ``(low, high)`` to clip to; default: see :func:`default_value_range`.

    Returns
    -------
    numpy.ndarray
        ``[copies * N, ...]``: copy 1 of every image, then copy 2, ...; the originals are
        not included (concatenate them yourself). Labels repeat with
        ``np.tile(labels, copies)``.

    Raises
    ------
    ConfigError
        A bad parameter.
    DataError
        Not an image array.
    """
    check_image_config(cfg)
    x = np.asarray(images)
    _check_images(x)
    params = {
        "noise_std": float(cfg.noise_std),
        "rotation_deg": float(cfg.rotation_deg),
        "shift_px": float(cfg.shift_px),
        "brightness": float(cfg.brightness),
        "contrast": float(cfg.contrast),
    }
    return np.concatenate(
        [transform_images(x, rng, value_range=value_range, **params) for _ in range(cfg.copies)]
    )
