"""Images as numbers the monitor can watch: per-image brightness and contrast.

Pixels are neither logged nor compared one by one. An image feature ``image`` is watched
as two numeric pseudo-features, ``image.brightness`` (the mean pixel value of each image)
and ``image.contrast`` (the standard deviation of its pixels), so the numeric metrics
(``input.mean``, ``input.quantile``, ``input.out_of_range_rate``) and the KS drift test
work on them as on any numeric feature. The bundle's profile describes both the same way
(:mod:`mlcycle.export.profile`), and the prediction log holds these two numbers.

Examples
--------
>>> images = np.stack([np.zeros((1, 2, 2)), np.array([[[0.0, 2.0], [0.0, 2.0]]])])
>>> image_stats(images).tolist()
[[0.0, 0.0], [1.0, 1.0]]
>>> image_features("image")
['image.brightness', 'image.contrast']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["IMAGE_STATS", "image_features", "image_stats", "reference_stat", "split_feature"]

#: The numbers watched per image, in column order.
IMAGE_STATS: tuple[str, ...] = ("brightness", "contrast")


def image_features(name: str) -> list[str]:
    """The pseudo-feature names of image feature ``name``."""
    return [f"{name}.{stat}" for stat in IMAGE_STATS]


def image_stats(images: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Brightness (mean pixel) and contrast (pixel std) of each image, float64 ``[N, 2]``.

    Parameters
    ----------
    images
        ``[N, C, H, W]`` or ``[N, H, W]`` (or any ``[N, ...]``): everything after the
        first axis is one image.
    """
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    if flat.shape[1] == 0:
        return np.full((len(images), 2), np.nan)
    return np.stack([flat.mean(axis=1), flat.std(axis=1)], axis=1)


def split_feature(name: str) -> tuple[str, str] | None:
    """``("image", "brightness")`` for ``"image.brightness"``; ``None`` for other names."""
    base, dot, stat = name.rpartition(".")
    return (base, stat) if dot and base and stat in IMAGE_STATS else None


def reference_stat(profile_features: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The profile's description of pseudo-feature ``name`` (``image.brightness``), if any.

    Returns the ``{count, mean, std, min, max, quantiles, histogram, sample}`` block of
    the image feature's statistic, or ``None`` when ``name`` is not an image statistic
    of the profile.
    """
    parts = split_feature(name)
    if parts is None:
        return None
    spec = profile_features.get(parts[0])
    if not isinstance(spec, Mapping) or spec.get("kind") != "image":
        return None
    stat = spec.get(parts[1])
    return stat if isinstance(stat, Mapping) else None
