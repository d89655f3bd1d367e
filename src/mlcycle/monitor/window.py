"""Sliding windows over live traffic, kept in fixed-size numpy ring buffers.

A :class:`RowWindow` keeps the last ``size`` predicted rows: their time, numeric and
categorical features, predicted class and confidence. A :class:`RequestWindow` keeps the
last requests' time, latency and outcome. Both are windows by count; a window by time
is the same buffer read with a time cut (:meth:`RowWindow.view` with ``since``), so its
size bounds the memory either way. Adding is vectorised (one slice copy per batch), so the
monitor keeps up with the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["RequestView", "RequestWindow", "RowView", "RowWindow"]

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class RowView:
    """The rows now in a window (oldest first)."""

    times: Array
    numeric: Array
    categorical: Array
    predicted: Array
    confidence: Array

    @property
    def rows(self) -> int:
        """Rows in the view."""
        return int(self.times.size)


@dataclass(frozen=True)
class RequestView:
    """The requests now in a window (oldest first)."""

    times: Array
    latency: Array
    failed: Array
    #: Seconds from the pipeline's start to the answer (NaN outside a pipeline).
    pipeline: Array

    @property
    def requests(self) -> int:
        """Requests in the view."""
        return int(self.times.size)


class _Ring:
    """Columns of equal length in ring buffers; ``add`` copies whole slices."""

    def __init__(self, size: int, columns: dict[str, tuple[tuple[int, ...], Any]]) -> None:
        self.size = size
        self.data = {
            name: np.empty((size, *shape), dtype=dtype) for name, (shape, dtype) in columns.items()
        }
        self.next = 0
        self.filled = 0
        self.total = 0

    def add(self, values: dict[str, Array]) -> None:
        n = len(next(iter(values.values())))
        if n == 0:
            return
        if n >= self.size:  # only the newest `size` rows survive
            for k, v in values.items():
                self.data[k][:] = v[n - self.size :]
            self.next, self.filled = 0, self.size
            self.total += n
            return
        end = self.next + n
        for k, v in values.items():
            buf = self.data[k]
            if end <= self.size:
                buf[self.next : end] = v
            else:
                first = self.size - self.next
                buf[self.next :] = v[:first]
                buf[: n - first] = v[first:]
        self.next = end % self.size
        self.filled = min(self.filled + n, self.size)
        self.total += n

    def ordered(self, name: str) -> Array:
        buf = self.data[name]
        if self.filled < self.size:
            return buf[: self.filled]
        return np.concatenate([buf[self.next :], buf[: self.next]])


class RowWindow:
    """The last ``size`` predicted rows.

    Parameters
    ----------
    size
        Rows kept.
    numeric, categorical
        Number of numeric and categorical feature columns.

    Examples
    --------
    >>> w = RowWindow(3, numeric=1, categorical=0)
    >>> for t in range(5):
    ...     w.add(np.array([float(t)]), np.array([[t]], "f4"), np.empty((1, 0), object),
    ...           np.array([0]), np.array([0.9]))
    >>> w.view().numeric[:, 0].tolist(), w.total
    ([2.0, 3.0, 4.0], 5)
    """

    def __init__(self, size: int, *, numeric: int, categorical: int) -> None:
        self._ring = _Ring(
            size,
            {
                "times": ((), np.float64),
                "numeric": ((numeric,), np.float64),
                "categorical": ((categorical,), object),
                "predicted": ((), np.int64),
                "confidence": ((), np.float64),
            },
        )

    @property
    def total(self) -> int:
        """Rows ever added."""
        return self._ring.total

    def add(
        self,
        times: Array,
        numeric: Array,
        categorical: Array,
        predicted: Array,
        confidence: Array,
    ) -> None:
        """Append rows (all arrays of the same length)."""
        self._ring.add(
            {
                "times": times,
                "numeric": numeric,
                "categorical": categorical,
                "predicted": predicted,
                "confidence": confidence,
            }
        )

    def view(self, since: float | None = None) -> RowView:
        """The rows in the window, oldest first; only those at or after ``since`` if given."""
        r = self._ring
        times = r.ordered("times")
        cut = 0 if since is None else int(np.searchsorted(times, since, side="left"))
        return RowView(
            times[cut:],
            r.ordered("numeric")[cut:],
            r.ordered("categorical")[cut:],
            r.ordered("predicted")[cut:],
            r.ordered("confidence")[cut:],
        )


class RequestWindow:
    """The last ``size`` requests: time, latency (s), failed, time since pipeline start."""

    def __init__(self, size: int) -> None:
        self._ring = _Ring(
            size,
            {
                "times": ((), np.float64),
                "latency": ((), np.float64),
                "failed": ((), bool),
                "pipeline": ((), np.float64),
            },
        )

    @property
    def total(self) -> int:
        """Requests ever added."""
        return self._ring.total

    def add(
        self, times: Array, latency: Array, failed: Array, pipeline: Array | None = None
    ) -> None:
        """Append requests (arrays of the same length; ``pipeline`` NaN when not in one)."""
        if pipeline is None:
            pipeline = np.full(len(times), np.nan)
        self._ring.add({"times": times, "latency": latency, "failed": failed, "pipeline": pipeline})

    def view(self, since: float | None = None) -> RequestView:
        """The requests in the window, oldest first (at or after ``since`` if given)."""
        r = self._ring
        times = r.ordered("times")
        cut = 0 if since is None else int(np.searchsorted(times, since, side="left"))
        return RequestView(
            times[cut:],
            r.ordered("latency")[cut:],
            r.ordered("failed")[cut:],
            r.ordered("pipeline")[cut:],
        )
