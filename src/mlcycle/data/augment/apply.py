"""Augment a training split as ``train.augment`` says, and record what was done.

:func:`augment_training_set` is what fitting calls: it runs after the split, on the
training split only (validation and test are never touched), and is deterministic for a
seed. The steps draw from the *source* rows, the rows of the targeted slices (or every
row when no slice is targeted), each from the real rows only, in this order:

1. ``rebalance``: the smaller classes among the source rows grow to ``ratio`` x the
   largest (random copies, or SMOTE);
2. ``factor``: the source rows are drawn again until they are ``factor`` times as many;
3. ``noise``: ``copies`` noisy copies of each source row, at ``snr_db`` per feature;
4. ``image``: for data with image features (a column of ``[C, H, W]`` arrays),
   ``copies`` randomly transformed copies of each source row's images
   (:func:`~mlcycle.data.augment.image.augment_images`), clipped to the pixel range the
   schema records.

The record (:func:`augment_training_set`'s second value) goes into the bundle's
``lineage.json`` (``augmentation``) and the MLflow run (:mod:`mlcycle.data.augment.record`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle.data.augment.config import (
    check_augment_config,
    has_tabular_work,
    image_transforms_set,
    targets,
)
from mlcycle.data.augment.image import augment_images
from mlcycle.data.augment.tabular import NewRows, noisy_copies, oversample, rebalance
from mlcycle.data.dataset import Dataset
from mlcycle.evaluate.slices import slice_mask
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.config.structured import AugmentConfig, ImageAugmentConfig
    from mlcycle.data.schema import FeatureSpec

__all__ = ["augment_training_set"]


def _counts(y: np.ndarray[Any, Any]) -> dict[str, int]:
    classes, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    return {str(c): int(n) for c, n in zip(classes, counts, strict=True)}


def augment_training_set(
    train: Dataset, cfg: AugmentConfig, *, seed: int
) -> tuple[Dataset, dict[str, Any] | None]:
    """The training split with the rows ``cfg`` adds, and a record of them.

    Parameters
    ----------
    train
        The training split (never the validation or test split).
    cfg
        The ``train.augment`` section.
    seed
        ``train.seed``, used when ``cfg.seed`` is null.

    Returns
    -------
    tuple
        The augmented split (the original rows first, in order, then the new ones) and
        the record: ``seed``, ``steps`` (each step's method, parameters and rows added,
        per class), ``target_slices`` (name, conditions, training rows, rows added),
        ``rows_before`` / ``rows_after`` and ``class_counts_before`` / ``_after``. With
        ``cfg.enabled`` false: ``train`` itself and ``None``.

    Raises
    ------
    ConfigError
        A bad parameter, nothing to do, image transforms on data without images, a target slice
        that is not declared or matches no training row.

    Examples
    --------
    >>> import pandas as pd
    >>> from pathlib import Path
    >>> from mlcycle.config.structured import AugmentConfig, RebalanceConfig
    >>> from mlcycle.data.dataset import DataVersion
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> ds = Dataset(pd.DataFrame({"x": np.arange(10, dtype="float32")}),
    ...              np.array(["a"] * 8 + ["b"] * 2),
    ...              Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")]),
    ...              DataVersion("x", "p", False, 0), Path("p"))
    >>> cfg = AugmentConfig(enabled=True, rebalance=RebalanceConfig(method="random"))
    >>> out, record = augment_training_set(ds, cfg, seed=0)
    >>> record["class_counts_before"], record["class_counts_after"]
    ({'a': 8, 'b': 2}, {'a': 8, 'b': 8})
    """
    if not cfg.enabled:
        return train, None
    check_augment_config(cfg)
    images = [f for f in train.schema.features if f.kind == "image"]
    if image_transforms_set(cfg.image) and not images:
        raise ConfigError(
            "train.augment.image transforms images and this data has no image feature; set "
            "the image transforms to 0"
        )
    if not has_tabular_work(cfg) and not image_transforms_set(cfg.image):
        raise ConfigError(
            "train.augment.enabled is true but no augmentation is set: set "
            "train.augment.rebalance.method (random, smote), train.augment.noise.snr_db, "
            "train.augment.factor > 1 or, for images, train.augment.image.*"
        )
    seed = int(cfg.seed if cfg.seed is not None else seed)
    frame, y, schema = train.frame, np.asarray(train.y), train.schema
    slices = targets(cfg)
    masks = {}
    for sl in slices:
        mask = slice_mask(frame, sl, schema)
        if not mask.any():
            raise ConfigError(
                f"train.augment.target_slices: the slice {sl.name!r} ({sl.describe()}) "
                f"matches none of the {len(train)} training rows; check its conditions "
                "against the data, or target another slice"
            )
        masks[sl.name] = mask
    source_mask = np.logical_or.reduce(list(masks.values())) if masks else np.ones(len(y), bool)
    source = np.flatnonzero(source_mask).astype(np.intp)
    seeds = np.random.SeedSequence(seed).generate_state(4)

    parts: list[NewRows] = []
    steps: list[dict[str, Any]] = []
    rb = cfg.rebalance
    if rb.method != "none":
        new = rebalance(
            frame,
            y,
            source,
            schema,
            method=rb.method,
            ratio=float(rb.ratio),
            k_neighbors=int(rb.k_neighbors),
            seed=int(seeds[0]),
        )
        step = {"method": rb.method, "ratio": float(rb.ratio)}
        if rb.method == "smote":
            step["k_neighbors"] = int(rb.k_neighbors)
        parts.append(new)
        steps.append(step | _added(new))
    if cfg.factor > 1:
        new = oversample(frame, y, source, factor=float(cfg.factor), seed=int(seeds[1]))
        parts.append(new)
        steps.append({"method": "oversample", "factor": float(cfg.factor)} | _added(new))
    if cfg.noise.snr_db is not None:
        new, measured = noisy_copies(
            frame,
            y,
            source,
            schema,
            snr=float(cfg.noise.snr_db),
            copies=int(cfg.noise.copies),
            clip=bool(cfg.noise.clip),
            seed=int(seeds[2]),
        )
        parts.append(new)
        steps.append(
            {
                "method": "noise",
                "snr_db": float(cfg.noise.snr_db),
                "copies": int(cfg.noise.copies),
                "clip": bool(cfg.noise.clip),
                "measured_snr_db": measured,
                "features": [f.name for f in schema.numeric],
            }
            | _added(new)
        )
    if images and image_transforms_set(cfg.image):
        new = _image_copies(frame, y, source, images, cfg.image, seed=int(seeds[3]))
        parts.append(new)
        steps.append(
            {"method": "image", **dataclasses.asdict(cfg.image)}
            | {"features": [f.name for f in images]}
            | _added(new)
        )
    out = _append(train, parts)
    origin = np.concatenate([p.origin for p in parts]) if parts else np.empty(0, np.intp)
    record = {
        "seed": seed,
        "steps": steps,
        "target_slices": [
            {
                "name": sl.name,
                "where": sl.describe(),
                "rows": int(masks[sl.name].sum()),
                "added": int(masks[sl.name][origin].sum()),
            }
            for sl in slices
        ],
        "source_rows": len(source),
        "rows_before": len(train),
        "rows_after": len(out),
        "class_counts_before": _counts(y),
        "class_counts_after": _counts(out.y),
    }
    return out, record


def _image_copies(
    frame: pd.DataFrame,
    y: np.ndarray[Any, Any],
    source: np.ndarray[Any, Any],
    images: list[FeatureSpec],
    image_cfg: ImageAugmentConfig,
    *,
    seed: int,
) -> NewRows:
    """``image_cfg.copies`` transformed copies of the source rows' images."""
    import pandas as pd

    origin = np.tile(source, image_cfg.copies).astype(np.intp)
    out = frame.iloc[origin].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    for spec in images:
        stack = np.stack([np.asarray(v) for v in frame[spec.name].to_numpy()[source]])
        bounds = None if spec.min is None or spec.max is None else (spec.min, spec.max)
        new = augment_images(stack, image_cfg, rng, value_range=bounds)
        out[spec.name] = pd.Series(list(new), dtype=object)
    return NewRows(out, np.asarray(y)[origin], origin)


def _added(new: NewRows) -> dict[str, Any]:
    return {"added": len(new), "added_per_class": _counts(new.y)}


def _append(train: Dataset, parts: list[NewRows]) -> Dataset:
    import pandas as pd

    parts = [p for p in parts if len(p)]
    if not parts:
        return train
    frame = pd.concat([train.frame, *(p.frame for p in parts)], ignore_index=True)
    for column in train.frame.columns:  # concat can widen float32; keep the split's dtypes
        frame[column] = frame[column].astype(train.frame[column].dtype)
    y = np.concatenate([np.asarray(train.y), *(np.asarray(p.y) for p in parts)])
    return Dataset(
        frame=frame,
        y=y.astype(np.asarray(train.y).dtype),
        schema=train.schema,
        version=train.version,
        path=train.path,
    )
