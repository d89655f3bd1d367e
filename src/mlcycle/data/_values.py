"""Column helpers shared by schema inference and loading: missing values, text, numbers.

One definition of "missing" and of "the text of a value" keeps inferred categories, class
names and the loaded frame consistent with each other.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def missing_mask(series: pd.Series) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True where a value is missing: NaN/None/NA, or a blank string."""
    import pandas as pd

    mask: np.ndarray[Any, np.dtype[np.bool_]] = np.asarray(pd.isna(series), dtype=bool)
    if is_numeric_or_bool(series):
        return mask
    blank = np.fromiter(
        (isinstance(v, str) and not v.strip() for v in series.tolist()),
        dtype=bool,
        count=len(series),
    )
    out: np.ndarray[Any, np.dtype[np.bool_]] = mask | blank
    return out


def is_numeric_or_bool(series: pd.Series) -> bool:
    """Whether the column's dtype is a number or bool dtype (not object or string)."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series.dtype)) or bool(
        pd.api.types.is_bool_dtype(series.dtype)
    )


def is_bool_column(series: pd.Series) -> bool:
    """Bool dtype, or an object column whose present values are all booleans."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        return True
    if is_numeric_or_bool(series):
        return False
    present = series[~missing_mask(series)].tolist()
    return bool(present) and all(isinstance(v, bool | np.bool_) for v in present)


def text_values(series: pd.Series) -> list[str | None]:
    """The text of each value; None where missing.

    Booleans become ``True``/``False``; a float column whose values are all whole numbers
    (an integer column with gaps, as CSV readers give it) is written without ``.0``.
    """
    mask = missing_mask(series)
    values = series.tolist()
    present = [v for v, m in zip(values, mask, strict=True) if not m]
    whole = bool(present) and all(
        isinstance(v, float | np.floating) and math.isfinite(v) and float(v).is_integer()
        for v in present
        if not isinstance(v, str | bool | np.bool_ | int | np.integer)
    )
    out: list[str | None] = []
    for v, m in zip(values, mask, strict=True):
        if m:
            out.append(None)
        elif isinstance(v, str):
            out.append(v)
        elif isinstance(v, bool | np.bool_):
            out.append("True" if v else "False")
        elif isinstance(v, int | np.integer):
            out.append(str(int(v)))
        elif isinstance(v, float | np.floating):
            out.append(str(int(v)) if whole else repr(float(v)))
        else:
            out.append(str(v))
    return out


def parse_numbers(
    series: pd.Series,
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.bool_]]]:
    """Values as float64 (NaN where missing), and a mask of present values that are not numbers.

    Number and bool dtypes convert directly; text is parsed with :func:`pandas.to_numeric`.
    """
    import pandas as pd

    if is_numeric_or_bool(series):
        values = series.astype("float64").to_numpy(dtype="float64", na_value=np.nan)
        return values, np.zeros(len(series), dtype=bool)
    mask = missing_mask(series)
    raw = series.astype(object).where(~mask, None)
    raw = raw.map(lambda v: float(v) if isinstance(v, bool | np.bool_) else v)
    parsed = pd.to_numeric(raw, errors="coerce")
    values = np.asarray(parsed, dtype="float64")
    bad = ~mask & np.isnan(values)
    return values, bad
