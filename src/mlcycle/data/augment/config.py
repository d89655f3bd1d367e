"""Checks of the ``train.augment`` section, and the slices it targets.

Every parameter is checked before any row is touched, so a bad value fails at once with
a message that names the key, the allowed range and the value given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlcycle.evaluate.slices import Slice, parse_slices
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    from mlcycle.config.structured import AugmentConfig, ImageAugmentConfig

__all__ = [
    "METHODS",
    "check_augment_config",
    "check_image_config",
    "has_tabular_work",
    "image_transforms_set",
    "targets",
]

#: Rebalancing methods of ``train.augment.rebalance.method``.
METHODS = ("none", "random", "smote")

_KEY = "train.augment"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fail(key: str, rule: str, value: Any) -> ConfigError:
    return ConfigError(f"{_KEY}.{key} must be {rule}; got {value!r}")


def check_image_config(image: ImageAugmentConfig) -> None:
    """Check ``train.augment.image``.

    Parameters
    ----------
    image
        The image section.

    Raises
    ------
    ConfigError
        A value outside its range (the message names the key and the range).

    Examples
    --------
    >>> from mlcycle.config.structured import ImageAugmentConfig
    >>> check_image_config(ImageAugmentConfig(rotation_deg=90))
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.ConfigError: train.augment.image.rotation_deg must be a number in [0, 45] (small rotations keep the label); got 90
    """  # noqa: E501
    ranges = {
        "noise_std": (0.0, 0.5, True, "a number in [0, 0.5] (a fraction of the value range)"),
        "rotation_deg": (0.0, 45.0, True, "a number in [0, 45] (small rotations keep the label)"),
        "brightness": (0.0, 1.0, False, "a number in [0, 1) (a fraction of the value range)"),
        "contrast": (0.0, 1.0, False, "a number in [0, 1) (scale 1 +- contrast)"),
    }
    for key, (low, high, closed, rule) in ranges.items():
        value = getattr(image, key)
        if not _number(value) or value < low or (value > high if closed else value >= high):
            raise _fail(f"image.{key}", rule, value)
    if not _number(image.shift_px) or image.shift_px < 0:
        raise _fail("image.shift_px", "a number >= 0 (pixels)", image.shift_px)
    if not _integer(image.copies) or image.copies < 1:
        raise _fail("image.copies", "an integer >= 1", image.copies)


def image_transforms_set(image: ImageAugmentConfig) -> bool:
    """Whether any image transform is switched on."""
    return any(
        getattr(image, k) != 0
        for k in ("noise_std", "rotation_deg", "shift_px", "brightness", "contrast")
    )


def check_augment_config(cfg: AugmentConfig) -> None:
    """Check every parameter of ``train.augment`` (whether or not it is enabled).

    Parameters
    ----------
    cfg
        The section.

    Raises
    ------
    ConfigError
        A value outside its range, an unknown method, or a malformed target slice.

    Examples
    --------
    >>> from mlcycle.config.structured import AugmentConfig, NoiseConfig
    >>> check_augment_config(AugmentConfig(noise=NoiseConfig(snr_db=0)))
    Traceback (most recent call last):
    ...
    mlcycle.exceptions.ConfigError: train.augment.noise.snr_db must be a number > 0 (decibels; 20 dB is noise with 1/100 of the signal's power) or null (no noise); got 0
    """  # noqa: E501
    rb = cfg.rebalance
    if rb.method not in METHODS:
        raise _fail("rebalance.method", f"one of {', '.join(METHODS)}", rb.method)
    if not _number(rb.ratio) or not 0 < rb.ratio <= 1:
        raise _fail(
            "rebalance.ratio",
            "a number in (0, 1] (each class grows to ratio x the largest class)",
            rb.ratio,
        )
    if not _integer(rb.k_neighbors) or rb.k_neighbors < 1:
        raise _fail("rebalance.k_neighbors", "an integer >= 1", rb.k_neighbors)
    noise = cfg.noise
    if noise.snr_db is not None and (not _number(noise.snr_db) or noise.snr_db <= 0):
        raise _fail(
            "noise.snr_db",
            "a number > 0 (decibels; 20 dB is noise with 1/100 of the signal's power) "
            "or null (no noise)",
            noise.snr_db,
        )
    if not _integer(noise.copies) or noise.copies < 1:
        raise _fail("noise.copies", "an integer >= 1", noise.copies)
    if not _number(cfg.factor) or cfg.factor < 1 or cfg.factor > 100:
        raise _fail("factor", "a number in [1, 100] (1: no targeted oversampling)", cfg.factor)
    if cfg.seed is not None and not _integer(cfg.seed):
        raise _fail("seed", "an integer or null (train.seed)", cfg.seed)
    check_image_config(cfg.image)
    if not isinstance(cfg.target_slices, Sequence) or isinstance(cfg.target_slices, str):
        raise _fail("target_slices", "a list of slice names or {name, where} entries", None)
    for entry in cfg.target_slices:
        if not isinstance(entry, str | Mapping) or not entry:
            raise _fail(
                "target_slices",
                "a list of slice names (from analyze.slices) or {name, where} entries",
                entry,
            )


def has_tabular_work(cfg: AugmentConfig) -> bool:
    """Whether the section asks for any change to tabular rows."""
    return cfg.rebalance.method != "none" or cfg.noise.snr_db is not None or cfg.factor > 1


def targets(cfg: AugmentConfig) -> list[Slice]:
    """The slices ``cfg.target_slices`` names, in its order (empty: the whole split).

    A name is looked up in ``cfg.slices`` (``analyze.slices`` unless set); an inline
    ``{name, where}`` entry is a slice of its own (e.g. one ``mlcycle analyze`` found).

    Parameters
    ----------
    cfg
        The section.

    Returns
    -------
    list of Slice

    Raises
    ------
    ConfigError
        A name that is not a declared slice (the message lists them), a malformed
        slice, or the same slice targeted twice.

    Examples
    --------
    >>> from mlcycle.config.structured import AugmentConfig
    >>> cfg = AugmentConfig(target_slices=["big"],
    ...                     slices=[{"name": "big", "where": {"x": {"min": 3}}}])
    >>> [s.describe() for s in targets(cfg)]
    ['x >= 3']
    """
    if not cfg.target_slices:
        return []
    declared_entries = cfg.slices
    if isinstance(declared_entries, str) or declared_entries is None:
        declared_entries = []  # unresolved "${analyze.slices}" outside a composed config
    declared = {s.name: s for s in parse_slices(list(declared_entries), "analyze.slices")}
    out: list[Slice] = []
    for i, entry in enumerate(cfg.target_slices):
        if isinstance(entry, str):
            if entry not in declared:
                known = ", ".join(repr(n) for n in declared) or "none"
                raise ConfigError(
                    f"{_KEY}.target_slices names the slice {entry!r}, which is not in "
                    f"analyze.slices (declared: {known}); declare it there, or give it inline "
                    "as {name: ..., where: {feature: condition}}"
                )
            out.append(declared[entry])
        else:
            out.append(Slice.from_config(entry, f"{_KEY}.target_slices[{i}]"))
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{_KEY}.target_slices: each slice once; repeated: {dupes}")
    return out
