"""Deterministic, stratified train / validation / test split of a :class:`Dataset`.

The test set is split off first (``test_fraction`` of all rows), then the validation set
from the rest (``val_fraction`` of all rows), both with scikit-learn's
``train_test_split`` and the same seed, so the same data and seed always give the same
rows. Each split keeps the rows in file order.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import ConfigError, DataError

if TYPE_CHECKING:
    from mlcycle.config.structured import SplitConfig

__all__ = ["MIN_ROWS_PER_CLASS", "Splits", "split_dataset"]

logger = logging.getLogger(__name__)

#: Fewest rows a class needs to be stratified into train, validation and test.
MIN_ROWS_PER_CLASS = 3


@dataclass
class Splits:
    """The three splits of a dataset."""

    train: Dataset
    val: Dataset
    test: Dataset

    def items(self) -> Iterator[tuple[str, Dataset]]:
        """``("train", ds), ("val", ds), ("test", ds)``."""
        yield "train", self.train
        yield "val", self.val
        yield "test", self.test

    def sizes(self) -> dict[str, int]:
        """Rows per split."""
        return {name: len(ds) for name, ds in self.items()}


def _check_fractions(cfg: SplitConfig) -> None:
    for key in ("test_fraction", "val_fraction"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ConfigError(
                f"data.split.{key}={value!r} is not allowed; use a number between 0 and 1 "
                "(exclusive), e.g. 0.2"
            )
    total = cfg.test_fraction + cfg.val_fraction
    if total >= 1:
        raise ConfigError(
            f"data.split.test_fraction + data.split.val_fraction = {total:g} leaves no "
            "training rows; make their sum less than 1"
        )


def _check_class_sizes(y: np.ndarray[Any, Any]) -> None:
    counts = Counter(y.tolist())
    small = sorted((c, n) for c, n in counts.items() if n < MIN_ROWS_PER_CLASS)
    if small:
        listed = ", ".join(f"'{c}' has {n} row(s)" for c, n in small)
        raise DataError(
            f"cannot stratify the split: class {listed}; each class needs at least "
            f"{MIN_ROWS_PER_CLASS} rows to appear in train, validation and test. Add more "
            "data for it, or set data.split.stratify=false"
        )


def split_dataset(ds: Dataset, cfg: SplitConfig) -> Splits:
    """Split ``ds`` into train, validation and test sets.

    Parameters
    ----------
    ds
        The dataset.
    cfg
        Fractions of all rows for test and validation, the seed, and whether to keep the
        class mix equal in every split (``stratify``).

    Returns
    -------
    Splits
        Disjoint datasets covering every row; each shares ``ds``'s schema and version.

    Raises
    ------
    ConfigError
        When a fraction is not in (0, 1) or they add up to 1 or more.
    DataError
        When a class is too small to stratify, or there are too few rows for the
        fractions.

    Examples
    --------
    >>> import pandas as pd
    >>> from pathlib import Path
    >>> from mlcycle.config.structured import SplitConfig
    >>> from mlcycle.data.dataset import DataVersion
    >>> from mlcycle.data.schema import FeatureSpec, Schema
    >>> schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
    >>> ds = Dataset(pd.DataFrame({"x": np.arange(20, dtype="float32")}),
    ...              np.array(["a", "b"] * 10), schema,
    ...              DataVersion("0" * 32, "d.csv", False, 0), Path("d.csv"))
    >>> split_dataset(ds, SplitConfig(test_fraction=0.2, val_fraction=0.2)).sizes()
    {'train': 12, 'val': 4, 'test': 4}
    """
    _check_fractions(cfg)
    model_selection = require("sklearn.model_selection", "train")
    y = np.asarray(ds.y)
    n = len(y)
    if n < 3:
        raise DataError(f"cannot split {n} row(s) into train, validation and test; add data")
    if cfg.stratify:
        _check_class_sizes(y)
    index = np.arange(n)
    try:
        rest, test = model_selection.train_test_split(
            index,
            test_size=cfg.test_fraction,
            random_state=cfg.seed,
            stratify=y if cfg.stratify else None,
        )
        train, val = model_selection.train_test_split(
            rest,
            test_size=cfg.val_fraction / (1 - cfg.test_fraction),
            random_state=cfg.seed,
            stratify=y[rest] if cfg.stratify else None,
        )
    except ValueError as exc:
        raise DataError(
            f"cannot split {n} rows with test_fraction={cfg.test_fraction:g} and "
            f"val_fraction={cfg.val_fraction:g}: {exc}. Add data, change "
            "data.split.test_fraction / data.split.val_fraction, or set "
            "data.split.stratify=false"
        ) from None
    splits = Splits(
        train=ds.subset(np.sort(train)),
        val=ds.subset(np.sort(val)),
        test=ds.subset(np.sort(test)),
    )
    classes = set(y.tolist())
    for name, part in splits.items():
        lacking = sorted(classes - set(part.y.tolist()))
        if lacking:
            logger.warning("the %s split has no rows of class(es) %s", name, lacking)
    return splits
