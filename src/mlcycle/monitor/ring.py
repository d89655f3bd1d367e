"""A worker's rows on their way to the monitor: copied once into a ring, sent from it.

Keeping each request's own arrays until the hand-over, then joining and pickling them in
the sender thread, made the request path itself slower by 4-8 % at 512 rows a request
(measured within one process, switching between the two, docs/benchmarks.md): the same
instructions, run slower, and for the rest of the process's life. Copying the rows at
:meth:`RowRing.put` into arrays the worker allocates once, and handing the kernel views
of them (:func:`send_views`, no join, no pickle), cost the request path 1-2 %. (At a
fixed request rate; loaded back to back, the throughput did not show the gain.)

The request path writes (:meth:`RowRing.put`); the sender thread releases what it sent
(:meth:`RowRing.release`). Positions are logical row counts that only grow, so the two
threads never write the same number; a request's rows are contiguous in the ring (a
request that would wrap starts again at row 0, the rows skipped count as sent).
"""

from __future__ import annotations

import socket
from typing import Any, NamedTuple

import numpy as np

__all__ = ["PROBA", "RingRows", "RowRing", "receive_views", "send_views"]

#: The key of the probabilities among a message's raw parts.
PROBA = "__proba__"
#: At most this many buffers per ``sendmsg`` call (Linux's IOV_MAX is 1024).
_IOV_MAX = 1024


class RingRows(NamedTuple):
    """A request's rows in a :class:`RowRing`: ring rows ``start:start + rows``, and the
    logical position just after them (what :meth:`RowRing.release` takes)."""

    start: int
    rows: int
    end: int

    def __len__(self) -> int:  # a request's row count
        return self.rows


class RowRing:
    """Fixed-size arrays of the model inputs and probabilities of recent requests.

    Parameters
    ----------
    rows
        Rows the ring holds.
    inputs, proba
        A request's inputs and probabilities: the ring takes their dtypes and row
        shapes. Inputs of an object dtype (text, categories) are not in the ring.

    Examples
    --------
    >>> x, p = np.ones((3, 2), np.float32), np.full((3, 2), 0.5, np.float32)
    >>> ring = RowRing(4, {"x": x}, p)
    >>> first = ring.put({"x": x}, p)
    >>> first, ring.put({"x": x}, p)  # no room for 3 more rows until the first are sent
    (RingRows(start=0, rows=3, end=3), None)
    >>> ring.release(first.end)
    >>> ring.put({"x": x}, p)  # it wraps: rows 0-2 again (row 3 is skipped)
    RingRows(start=0, rows=3, end=7)
    """

    def __init__(
        self,
        rows: int,
        inputs: dict[str, np.ndarray[Any, Any]],
        proba: np.ndarray[Any, Any],
    ) -> None:
        self.size = rows
        self.blocks = {
            name: np.empty((rows, *a.shape[1:]), a.dtype)
            for name, a in inputs.items()
            if not a.dtype.hasobject
        }
        self.proba = np.empty((rows, *proba.shape[1:]), proba.dtype)
        self._head = 0  # rows written (and skipped), written by the request path only
        self._tail = 0  # rows sent, written by the sender only

    def put(
        self, inputs: dict[str, np.ndarray[Any, Any]], proba: np.ndarray[Any, Any]
    ) -> RingRows | None:
        """Copy a request's rows in; ``None`` (nothing copied) when they do not fit or do
        not match the ring's dtypes and row shapes."""
        n = len(proba)
        at = self._head % self.size
        skip = self.size - at if at + n > self.size else 0
        if self._head + skip + n - self._tail > self.size:
            return None
        start = 0 if skip else at
        try:
            for name, ring in self.blocks.items():
                a = inputs[name]
                if a.dtype != ring.dtype:
                    return None
                ring[start : start + n] = a
            if proba.dtype != self.proba.dtype:
                return None
            self.proba[start : start + n] = proba
        except (KeyError, ValueError):  # another input, another shape
            return None
        self._head += skip + n
        return RingRows(start, n, self._head)

    def view(self, name: str, start: int, stop: int) -> np.ndarray[Any, Any]:
        """Rows ``start:stop`` of input ``name`` (:data:`PROBA`: the probabilities)."""
        return (self.proba if name == PROBA else self.blocks[name])[start:stop]

    def release(self, end: int) -> None:
        """The rows up to logical position ``end`` are sent: they may be written again."""
        if end > self._tail:
            self._tail = end


def send_views(sock: socket.socket, views: list[memoryview]) -> None:
    """Write ``views`` to ``sock`` in order, all of them (``sendmsg``, no copy of ours)."""
    pending = [v for v in views if v.nbytes]
    while pending:
        batch = pending[:_IOV_MAX]
        sent = sock.sendmsg(batch)
        done = 0
        while done < len(batch) and sent >= batch[done].nbytes:
            sent -= batch[done].nbytes
            done += 1
        pending = pending[done:]
        if sent:  # part of the next buffer went
            pending[0] = pending[0][sent:]


def receive_views(
    sock: socket.socket, parts: list[tuple[str, str, tuple[int, ...], int]]
) -> dict[str, np.ndarray[Any, Any]]:
    """Read the raw parts a message announced: ``(name, dtype, row shape, rows)`` each.

    Raises
    ------
    EOFError
        The socket closed before all of it came.
    """
    out = {}
    for name, dtype, shape, rows in parts:
        array = np.empty((rows, *shape), np.dtype(dtype))
        buffer = array.data.cast("B")
        got = 0
        while got < buffer.nbytes:
            n = sock.recv_into(buffer[got:])
            if n == 0:
                raise EOFError("the worker closed the socket in the middle of a message")
            got += n
        out[name] = array
    return out
