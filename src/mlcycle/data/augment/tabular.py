"""New training rows for tabular data: class rebalancing, oversampling, noisy copies.

Each function takes the training split's raw features (a :class:`Dataset`'s ``frame``:
numeric features float32 with NaN for missing, categorical and text features strings),
its labels and the positions of the *source* rows (the targeted slices' rows, or every
row), and returns only the rows it adds, as :class:`NewRows`, each with the position of
the real row it came from. Numeric features are what changes; categorical and text
features are copied from the origin row, and a value missing there stays missing.

Rebalancing uses imbalanced-learn: ``RandomOverSampler`` (exact copies) and ``SMOTE``
(a new row on the segment between a row and one of its ``k`` nearest neighbours of the
same class). SMOTE runs on the numeric features, standardised so that no feature's unit
decides the neighbours, with missing values filled by the median for the search only;
a new row's origin is the source row of its class nearest to it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlcycle._optional import require
from mlcycle.data.augment.signal import noise_std
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.data.schema import Schema

__all__ = ["NewRows", "noisy_copies", "oversample", "rebalance", "rebalance_targets"]

IntArray = npt.NDArray[np.intp]


@dataclass
class NewRows:
    """Rows to add to the training split.

    Parameters
    ----------
    frame
        Their features, in the training frame's columns and dtypes.
    y
        Their labels.
    origin
        For each row, the position in the training split of the real row it came from.
    """

    frame: pd.DataFrame
    y: npt.NDArray[Any]
    origin: IntArray

    def __len__(self) -> int:
        return len(self.y)


def _rows(frame: pd.DataFrame, y: npt.NDArray[Any], origin: npt.ArrayLike) -> NewRows:
    idx = np.asarray(origin, dtype=np.intp)
    return NewRows(frame.iloc[idx].reset_index(drop=True), np.asarray(y)[idx], idx)


def rebalance_targets(y: npt.NDArray[Any], ratio: float) -> dict[str, int]:
    """Rows each class should have: at least ``ratio`` x the largest class (only growth).

    Examples
    --------
    >>> rebalance_targets(np.array(["a"] * 10 + ["b"] * 2 + ["c"] * 7), 0.5)
    {'b': 5}
    """
    classes, counts = np.unique(np.asarray(y).astype(str), return_counts=True)
    if not len(counts):
        return {}
    goal = math.ceil(ratio * int(counts.max()) - 1e-9)
    return {str(c): goal for c, n in zip(classes, counts, strict=True) if n < goal}


def rebalance(
    frame: pd.DataFrame,
    y: npt.NDArray[Any],
    source: IntArray,
    schema: Schema,
    *,
    method: str,
    ratio: float,
    k_neighbors: int,
    seed: int,
) -> NewRows:
    """Grow the smaller classes among the ``source`` rows to ``ratio`` x the largest.

    Parameters
    ----------
    frame, y
        The training split's features and labels.
    source
        Positions of the rows to rebalance and to draw from (a targeted slice's rows).
    schema
        Tells numeric from categorical features.
    method
        ``random`` (copies of rows of the class) or ``smote`` (interpolated rows).
    ratio
        In (0, 1]; 1 balances the classes.
    k_neighbors
        SMOTE's neighbours.
    seed
        Seed of the draw.

    Returns
    -------
    NewRows
        The added rows only; none when the classes already meet the ratio.

    Raises
    ------
    ConfigError
        SMOTE without numeric features, or a class with too few rows for ``k_neighbors``.
    """
    ys = np.asarray(y).astype(str)[source]
    wanted = rebalance_targets(ys, ratio)
    if not wanted:
        return _rows(frame, y, np.empty(0, dtype=np.intp))
    over = require("imblearn.over_sampling", "train")
    if method == "random":
        sampler = over.RandomOverSampler(sampling_strategy=wanted, random_state=seed)
        sampler.fit_resample(np.arange(len(source)).reshape(-1, 1), ys)
        picked = np.asarray(sampler.sample_indices_[len(source) :], dtype=np.intp)
        return _rows(frame, y, source[picked])
    return _smote(frame, y, source, ys, schema, wanted, k_neighbors, seed)


def _smote(
    frame: pd.DataFrame,
    y: npt.NDArray[Any],
    source: IntArray,
    ys: npt.NDArray[Any],
    schema: Schema,
    wanted: dict[str, int],
    k_neighbors: int,
    seed: int,
) -> NewRows:
    import pandas as pd

    numeric = [f.name for f in schema.numeric]
    if not numeric:
        raise ConfigError(
            "train.augment.rebalance.method=smote interpolates numeric features and this "
            "data has none; use method=random"
        )
    counts = {c: int(np.sum(ys == c)) for c in wanted}
    small = {c: n for c, n in counts.items() if n <= k_neighbors}
    if small:
        listed = ", ".join(f"'{c}' has {n}" for c, n in sorted(small.items()))
        raise ConfigError(
            f"train.augment.rebalance.k_neighbors={k_neighbors} needs more than {k_neighbors} "
            f"rows of each class it grows among the targeted rows ({listed}); lower "
            "k_neighbors, target a larger slice, or use method=random"
        )
    x = frame[numeric].to_numpy(dtype=np.float64)[source]
    missing = np.isnan(x)
    fill = np.nanmedian(np.where(missing.all(axis=0), 0.0, x), axis=0)
    filled = np.where(missing, fill, x)
    center = filled.mean(axis=0)
    scale = filled.std(axis=0)
    scale[scale == 0] = 1.0
    z = (filled - center) / scale
    over = require("imblearn.over_sampling", "train")
    sampler = over.SMOTE(sampling_strategy=wanted, k_neighbors=k_neighbors, random_state=seed)
    z_res, y_res = sampler.fit_resample(z, ys)
    z_new = np.asarray(z_res[len(source) :], dtype=np.float64)
    y_new = np.asarray(y_res[len(source) :]).astype(str)
    origin = np.empty(len(z_new), dtype=np.intp)
    for c in np.unique(y_new):
        rows = np.flatnonzero(ys == c)
        new = np.flatnonzero(y_new == c)
        d = ((z_new[new, None, :] - z[None, rows, :]) ** 2).sum(axis=2)
        origin[new] = rows[d.argmin(axis=1)]
    values = z_new * scale + center
    values[missing[origin]] = np.nan  # missing where the origin row is missing
    out = frame.iloc[source[origin]].reset_index(drop=True)
    numeric_new = pd.DataFrame(values.astype(np.float32), columns=numeric)
    for name in numeric:
        out[name] = numeric_new[name].to_numpy()
    return NewRows(out, y_new.astype(np.asarray(y).dtype), source[origin])


def oversample(
    frame: pd.DataFrame, y: npt.NDArray[Any], source: IntArray, *, factor: float, seed: int
) -> NewRows:
    """Copies of the ``source`` rows until they are ``factor`` times as many.

    Whole copies first (``floor(factor) - 1`` of each row), then the remainder drawn
    without replacement, so every row is repeated as evenly as the factor allows.

    Examples
    --------
    >>> import pandas as pd
    >>> new = oversample(pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]}), np.array(list("abab")),
    ...                  np.array([1, 3]), factor=2.5, seed=0)
    >>> len(new), sorted(set(new.origin.tolist()))
    (3, [1, 3])
    """
    total = round(factor * len(source)) - len(source)
    whole, rest = divmod(total, len(source)) if len(source) else (0, 0)
    rng = np.random.default_rng(seed)
    origin = np.concatenate(
        [np.tile(source, whole), rng.choice(source, size=rest, replace=False)]
    ).astype(np.intp)
    return _rows(frame, y, origin)


def noisy_copies(
    frame: pd.DataFrame,
    y: npt.NDArray[Any],
    source: IntArray,
    schema: Schema,
    *,
    snr: float,
    copies: int,
    clip: bool,
    seed: int,
) -> tuple[NewRows, float | None]:
    """``copies`` noisy copies of each ``source`` row, at ``snr`` dB per numeric feature.

    A feature's signal power is its variance over the whole training split (``frame``),
    so the noise is the same for every row of a feature; a constant feature gets none.
    NaN stays NaN; categorical and text features are copied.

    Returns
    -------
    tuple
        The new rows, and the SNR measured on the noise actually added (after clipping;
        the median over the features that got noise), or ``None`` when none did.

    Raises
    ------
    ConfigError
        The data has no numeric feature.
    """
    numeric = [f.name for f in schema.numeric]
    if not numeric:
        raise ConfigError(
            "train.augment.noise adds noise to numeric features and this data has none; "
            "set train.augment.noise.snr_db=null"
        )
    origin = np.tile(source, copies).astype(np.intp)
    new = _rows(frame, y, origin)
    x_all = frame[numeric].to_numpy(dtype=np.float64)
    with warnings.catch_warnings():  # an all-missing feature: no power, no range
        warnings.simplefilter("ignore", RuntimeWarning)
        power = np.nan_to_num(np.nanvar(x_all, axis=0))
        lo, hi = np.nanmin(x_all, axis=0), np.nanmax(x_all, axis=0)
    std = noise_std(power, snr)
    rng = np.random.default_rng(seed)
    base = new.frame[numeric].to_numpy(dtype=np.float64)
    noisy = base + rng.standard_normal(base.shape) * std
    if clip:
        noisy = np.clip(noisy, lo, hi)
    for j, name in enumerate(numeric):
        new.frame[name] = noisy[:, j].astype(np.float32)
    return new, _measured_snr(power, noisy - base, std > 0)


def _measured_snr(
    power: npt.NDArray[Any], added: npt.NDArray[Any], noised: npt.NDArray[np.bool_]
) -> float | None:
    """Median over the noised features of 10 log10(power / mean square of the noise)."""
    if not noised.any() or not len(added):
        return None
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        per = 10 * np.log10(power[noised] / np.nanmean(added[:, noised] ** 2, axis=0))
        value = np.nanmedian(per)
    return None if np.isnan(value) else float(value)
