"""Calendar parts of Unix seconds with integer arithmetic only, written once for two backends.

ONNX opset 18 has no date type and no string splitting (``StringSplit`` is opset 20), so
a date reaches the graph as a number: seconds since 1970-01-01 UTC. The parts are computed
with integer operations (Howard Hinnant's ``civil_from_days``, proleptic Gregorian
calendar), which both numpy and an ONNX graph can do exactly. :func:`date_part` is
written against :class:`IntOps`, so the numpy derivation and the exported graph run the
very same algorithm; the tests check both against Python's :mod:`datetime`.

Examples
--------
>>> import numpy as np
>>> secs = np.array([951782400, 1709251199])  # 2000-02-29 00:00, 2024-02-29 23:59:59
>>> ops = NumpyIntOps()
>>> [date_part(ops, secs, p).tolist() for p in ("year", "month", "day", "dayofyear", "hour")]
[[2000, 2024], [2, 2], [29, 29], [60, 60], [0, 23]]
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np

__all__ = ["IntOps", "NumpyIntOps", "date_part"]

T = TypeVar("T")

_SECONDS_PER_DAY = 86400


class IntOps(Protocol[T]):
    """Elementwise int64 operations; comparisons give booleans of the same kind of value."""

    def add(self, a: T, b: T | int) -> T:
        """``a + b``."""

    def sub(self, a: T, b: T | int) -> T:
        """``a - b``."""

    def mul(self, a: T, b: int) -> T:
        """``a * b``."""

    def floordiv(self, a: T, b: int) -> T:
        """``a // b`` rounded towards minus infinity (``b > 0``)."""

    def mod(self, a: T, b: int) -> T:
        """``a % b`` in ``[0, b)`` (``b > 0``)."""

    def less(self, a: T, b: int) -> T:
        """``a < b``."""

    def equal(self, a: T, b: int) -> T:
        """``a == b``."""

    def and_(self, a: T, b: T) -> T:
        """Logical and."""

    def or_(self, a: T, b: T) -> T:
        """Logical or."""

    def not_(self, a: T) -> T:
        """Logical not."""

    def where(self, cond: T, a: T, b: T) -> T:
        """``a`` where ``cond`` holds, else ``b``."""


def date_part(ops: IntOps[T], secs: T, part: str) -> T:
    """The calendar ``part`` of Unix seconds ``secs`` (int64, UTC).

    Parameters
    ----------
    ops
        The backend (:class:`NumpyIntOps`, or the ONNX graph builder).
    secs
        Whole seconds since 1970-01-01 00:00 UTC; negative before it.
    part
        ``year``, ``month`` (1-12), ``day`` (1-31), ``weekday`` (Monday 0 to Sunday 6),
        ``hour`` (0-23) or ``dayofyear`` (1-366).

    Returns
    -------
    The part, int64.

    Raises
    ------
    ValueError
        An unknown part (the config parser refuses it earlier).
    """
    days = ops.floordiv(secs, _SECONDS_PER_DAY)
    if part == "hour":
        return ops.floordiv(ops.mod(secs, _SECONDS_PER_DAY), 3600)
    if part == "weekday":  # 1970-01-01 was a Thursday (3)
        return ops.mod(ops.add(days, 3), 7)
    # civil_from_days: eras of 400 years (146097 days) starting on 0000-03-01
    z = ops.add(days, 719468)
    era = ops.floordiv(z, 146097)
    doe = ops.sub(z, ops.mul(era, 146097))  # day of era, [0, 146096]
    yoe = ops.floordiv(  # year of era, [0, 399]
        ops.sub(
            ops.add(ops.sub(doe, ops.floordiv(doe, 1460)), ops.floordiv(doe, 36524)),
            ops.floordiv(doe, 146096),
        ),
        365,
    )
    doy = ops.sub(  # day of the year starting on March 1st, [0, 365]
        doe,
        ops.sub(ops.add(ops.mul(yoe, 365), ops.floordiv(yoe, 4)), ops.floordiv(yoe, 100)),
    )
    mp = ops.floordiv(ops.add(ops.mul(doy, 5), 2), 153)  # month from March, [0, 11]
    march_on = ops.less(mp, 10)  # March to December
    if part == "day":
        return ops.add(ops.sub(doy, ops.floordiv(ops.add(ops.mul(mp, 153), 2), 5)), 1)
    if part == "month":
        return ops.where(march_on, ops.add(mp, 3), ops.sub(mp, 9))
    year = ops.where(
        march_on, ops.add(yoe, ops.mul(era, 400)), ops.add(ops.add(yoe, ops.mul(era, 400)), 1)
    )
    if part == "year":
        return year
    if part == "dayofyear":
        leap = ops.or_(
            ops.and_(ops.equal(ops.mod(year, 4), 0), ops.not_(ops.equal(ops.mod(year, 100), 0))),
            ops.equal(ops.mod(year, 400), 0),
        )
        after_feb = ops.add(doy, 60)  # March 1st is day 60 (61 in a leap year)
        return ops.where(
            march_on,
            ops.where(leap, ops.add(after_feb, 1), after_feb),
            ops.sub(doy, 305),  # January 1st is day 306 from March
        )
    raise ValueError(f"unknown date part {part!r}")


class NumpyIntOps:
    """:class:`IntOps` on numpy int64 arrays (floor division and modulo as in Python)."""

    def add(self, a: Any, b: Any) -> Any:
        """``a + b``."""
        return np.add(a, b)

    def sub(self, a: Any, b: Any) -> Any:
        """``a - b``."""
        return np.subtract(a, b)

    def mul(self, a: Any, b: int) -> Any:
        """``a * b``."""
        return np.multiply(a, b)

    def floordiv(self, a: Any, b: int) -> Any:
        """``a // b``."""
        return np.floor_divide(a, b)

    def mod(self, a: Any, b: int) -> Any:
        """``a % b``."""
        return np.mod(a, b)

    def less(self, a: Any, b: int) -> Any:
        """``a < b``."""
        return np.less(a, b)

    def equal(self, a: Any, b: int) -> Any:
        """``a == b``."""
        return np.equal(a, b)

    def and_(self, a: Any, b: Any) -> Any:
        """Logical and."""
        return np.logical_and(a, b)

    def or_(self, a: Any, b: Any) -> Any:
        """Logical or."""
        return np.logical_or(a, b)

    def not_(self, a: Any) -> Any:
        """Logical not."""
        return np.logical_not(a)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        """``a`` where ``cond`` holds, else ``b``."""
        return np.where(cond, a, b)
