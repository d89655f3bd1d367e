"""Candidate slices found automatically: each value of a categorical feature, and
quantile bins of each numeric feature.

Error analysis (``mlcycle analyze``) scores every candidate and keeps the worst few per
feature. The candidates must be *stable*, so that a slice found today has the same name
and rows tomorrow and can be pasted into ``analyze.slices``:

* numeric bins take their edges from the **training** split (the same rows for the same
  data and seed), as quantiles rounded to the fewest significant digits (3 to 6) that
  keep them apart; the outer bins are open (``x < a``, ``x >= b``), so values beyond the
  training range still fall in a bin, and missing values form a slice of their own;
* categorical values are taken from the rows analysed and from the training split.

Names read like the conditions: ``mean radius < 11.7``, ``mean radius in [11.7, 13.4)``,
``mean radius >= 17.1``, ``colour = red``, ``colour is missing``.

Examples
--------
>>> import numpy as np
>>> import pandas as pd
>>> from mlcycle.data.schema import FeatureSpec, Schema
>>> schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric"),
...                                   FeatureSpec("c", "categorical")])
>>> train = pd.DataFrame({"x": np.arange(8, dtype="float32"), "c": list("uuvvuuvv")})
>>> [s.name for s in candidate_slices(schema, train, train, bins=2)]
['x < 3.5', 'x >= 3.5', 'c = u', 'c = v']
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from mlcycle.data.schema import Schema
from mlcycle.evaluate.slices import Condition, Slice
from mlcycle.exceptions import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["candidate_slices", "quantile_edges"]

#: Significant digits tried, fewest first, when rounding bin edges.
_DIGITS = (3, 4, 5, 6)


def quantile_edges(values: npt.ArrayLike, bins: int) -> list[float]:
    """Inner edges of ``bins`` quantile bins of the finite ``values``, rounded.

    Edges are the ``1/bins, ..., (bins-1)/bins`` quantiles, rounded to the fewest
    significant digits (3 to 6) that keep distinct quantiles distinct; repeated edges
    (many equal values) and edges at or below the smallest value (which would leave an
    empty first bin) are dropped, so there may be fewer than ``bins`` bins.

    Parameters
    ----------
    values
        The feature's training values; NaN is ignored.
    bins
        Bins wanted, at least 2.

    Returns
    -------
    list of float
        Increasing inner edges (empty when all values are equal or missing).

    Examples
    --------
    >>> quantile_edges([1.0, 2.0, 3.0, 4.0, 100.0], 2)
    [3.0]
    >>> quantile_edges([0, 0, 0, 0, 1, 1], 4)
    [0.75]
    >>> quantile_edges([5.0, 5.0, float("nan")], 4)
    []
    """
    if bins < 2:
        raise ConfigError(f"analyze.auto_bins must be at least 2, got {bins}")
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return []
    raw = np.quantile(x, np.arange(1, bins) / bins)
    lowest = float(x.min())
    distinct = sorted({float(e) for e in raw if e > lowest})
    for digits in _DIGITS:
        rounded = sorted({float(f"{e:.{digits}g}") for e in distinct})
        if len(rounded) == len(distinct) and all(r > lowest for r in rounded):
            return rounded
    return distinct


def _num(x: float) -> str:
    return f"{x:g}"


def _numeric_slices(feature: str, edges: list[float]) -> list[Slice]:
    if not edges:
        return []
    bounds: list[tuple[float | None, float | None]] = [(None, edges[0])]
    bounds += list(itertools.pairwise(edges))
    bounds.append((edges[-1], None))
    out = []
    for lo, hi in bounds:
        if lo is None:
            assert hi is not None
            name = f"{feature} < {_num(hi)}"
        elif hi is None:
            name = f"{feature} >= {_num(lo)}"
        else:
            name = f"{feature} in [{_num(lo)}, {_num(hi)})"
        out.append(Slice(name, (Condition(feature, min=lo, max=hi),), source="auto"))
    return out


def _category_slice(feature: str, value: str) -> Slice:
    name = f"{feature} is missing" if value == "" else f"{feature} = {value}"
    return Slice(name, (Condition(feature, values=(value,)),), source="auto")


def candidate_slices(
    schema: Schema, train: pd.DataFrame, frame: pd.DataFrame, *, bins: int
) -> list[Slice]:
    """Every automatic candidate slice of the numeric and categorical features.

    Parameters
    ----------
    schema
        Tells each feature's kind; text and image features get no candidates.
    train
        The training split's raw features: the numeric bin edges come from it.
    frame
        The raw features of the rows to analyse: their categorical values (with the
        training split's) are the categorical candidates, and a numeric feature with
        missing values there also gets an ``is missing`` candidate.
    bins
        Quantile bins per numeric feature (``analyze.auto_bins``), at least 2.

    Returns
    -------
    list of Slice
        One condition each, ``source="auto"``, in schema order and, per feature, bin
        order or sorted by value. Candidates may match no row of ``frame``.
    """
    out: list[Slice] = []
    for spec in schema.features:
        name = spec.name
        if name not in frame.columns:
            continue
        if spec.kind == "numeric":
            ref = train[name].to_numpy() if name in train.columns else frame[name].to_numpy()
            out += _numeric_slices(name, quantile_edges(ref, bins))
            if np.isnan(frame[name].to_numpy(dtype=np.float64)).any():
                out.append(_category_slice(name, ""))
        elif spec.kind == "categorical":
            seen: set[str] = set(frame[name].astype(str).tolist())
            if name in train.columns:
                seen |= set(train[name].astype(str).tolist())
            out += [_category_slice(name, v) for v in sorted(seen)]
    return out
