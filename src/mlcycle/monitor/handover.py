"""What a server worker hands its monitor: requests column by column.

The request path queues one tuple per request (:data:`Request`), the cheapest thing it
can do. Once a second the worker's sender turns the queue into one message of columns
(:func:`message_of`): times, latencies and statuses as arrays, the ids as a list, values
that every request shares (the arm, no error, no pipeline) sent once, and the model
inputs and probabilities of all the answered requests joined. numpy arrays pickle as raw
buffers, so the message costs little to send and the monitor works on whole columns
(:class:`Chunk`) instead of request by request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from mlcycle.monitor.ring import PROBA, RingRows, RowRing

__all__ = ["Chunk", "Request", "chunk_of", "join_chunks", "message_of", "pack"]

#: One request as the request path queues it: (time answered, request id, latency s,
#: HTTP status, error text, arm, pipeline id, seconds since its pipeline started, model
#: inputs, probabilities); the last two are ``None`` for a failed request.
Request = tuple[Any, ...]

#: The status of every answered request the monitor is given.
ANSWERED = 200


@dataclass
class Chunk:
    """Requests handed over together, as columns (request ``i`` is index ``i``).

    ``inputs`` (per model input) and ``proba`` hold the rows of the answered requests
    (``rows[i] > 0``), in order.
    """

    times: np.ndarray[Any, Any]
    request_ids: list[str]
    latency: np.ndarray[Any, Any]
    status: np.ndarray[Any, Any]
    errors: list[str | None]
    arms: list[str]
    pipeline_ids: list[str | None]
    #: Seconds since the request's pipeline started; NaN outside a pipeline.
    pipeline_latency: np.ndarray[Any, Any]
    #: Predicted rows per request (0 for a failed request).
    rows: np.ndarray[Any, Any]
    inputs: dict[str, np.ndarray[Any, Any]]
    proba: np.ndarray[Any, Any] | None

    def __len__(self) -> int:
        return len(self.request_ids)

    @property
    def row_count(self) -> int:
        """Predicted rows in the chunk."""
        return int(self.rows.sum())

    @property
    def weight(self) -> int:
        """What the chunk counts against a queue's capacity: its rows (a failed request
        counts 1)."""
        return int(np.maximum(self.rows, 1).sum())


def message_of(requests: Sequence[Request], blocks: Sequence[str]) -> dict[str, Any]:
    """Queued requests as one message of columns (plain types and arrays: it pickles).

    Parameters
    ----------
    requests
        As the request path queued them (:data:`Request`).
    blocks
        The model's input names.

    Examples
    --------
    >>> x = np.ones((1, 2), np.float32)
    >>> p = np.array([[0.2, 0.8]], np.float32)
    >>> m = message_of([(1.0, "a", 0.1, 200, None, "champion", None, None, {"x": x}, p),
    ...                 (2.0, "b", 0.2, 422, "bad", "champion", None, None, None, None)], ["x"])
    >>> m["request_ids"].splitlines(), m["arms"], m["errors"], m["rows"].tolist()
    (['a', 'b'], 'champion', [None, 'bad'], [1, 0])
    """
    message, inputs, proba = _columns(requests)
    message["inputs"] = (
        {b: np.concatenate(list(map(itemgetter(b), inputs))) for b in blocks} if proba else {}
    )
    message["proba"] = np.concatenate(proba) if proba else None
    return message


def pack(
    requests: Sequence[Request], blocks: Sequence[str], ring: RowRing | None
) -> tuple[dict[str, Any], list[memoryview], int]:
    """Queued requests as a message, the raw rows to send after it, and how far to release.

    Requests whose rows the request path copied into ``ring`` carry a :class:`RingRows`
    where their probabilities would be, and only their object-dtype inputs. When any
    does, the message announces the ring's inputs and the probabilities under ``"raw"``
    (name, dtype, row shape, rows) and views of the rows follow it, request after request:
    of the ring (a run of requests next to each other in the ring is one view) or of a
    request's own arrays. Otherwise (or when a request's own arrays do not match the
    ring's dtypes and row shapes) it is :func:`message_of` of them all.

    Returns
    -------
    message, views, end
        ``end``: release the ring up to it once the views are sent (-1: nothing to
        release).
    """
    answered = [r for r in requests if r[9] is not None]
    in_ring = [r[9] for r in answered if isinstance(r[9], RingRows)]
    end = in_ring[-1].end if in_ring else -1
    if ring is None or not in_ring:
        return message_of(requests, blocks), [], end
    pieces = _pieces(answered, ring)
    if pieces is None:
        return message_of([_materialized(r, ring) for r in requests], blocks), [], end
    message, inputs, _ = _columns(requests)
    message["inputs"] = {
        b: np.concatenate(list(map(itemgetter(b), inputs))) for b in blocks if b not in ring.blocks
    }
    message["proba"] = None
    total = sum(len(r[9]) for r in answered)
    raw, views = [], []
    for name, array in (*ring.blocks.items(), (PROBA, ring.proba)):
        raw.append((name, array.dtype.str, array.shape[1:], total))
        for piece in pieces:
            if isinstance(piece, slice):
                views.append(ring.view(name, piece.start, piece.stop).data.cast("B"))
            else:
                own = piece[9] if name == PROBA else piece[8][name]
                views.append(np.ascontiguousarray(own).data.cast("B"))
    message["raw"] = raw
    return message, views, end


def _pieces(answered: Sequence[Request], ring: RowRing) -> list[Any] | None:
    """Where each answered request's rows are, in order: a ring run ``slice(start, stop)``
    (neighbours joined) or the request itself (its own arrays); ``None`` when own arrays
    do not match the ring's dtypes and row shapes."""
    pieces: list[Any] = []
    for r in answered:
        rows = r[9]
        if isinstance(rows, RingRows):
            last = pieces[-1] if pieces else None
            if isinstance(last, slice) and last.stop == rows.start:
                pieces[-1] = slice(last.start, rows.start + rows.rows)
            else:
                pieces.append(slice(rows.start, rows.start + rows.rows))
            continue
        own = [(r[8].get(b), a) for b, a in ring.blocks.items()] + [(rows, ring.proba)]
        if not all(
            x is not None and x.dtype == a.dtype and x.shape[1:] == a.shape[1:] for x, a in own
        ):
            return None
        pieces.append(r)
    return pieces


def _columns(
    requests: Sequence[Request],
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...], tuple[Any, ...]]:
    """The message's columns but ``inputs`` and ``proba``; the answered requests' inputs
    and probabilities."""
    n = len(requests)
    times, ids, latency, status, errors, arms, pipelines, since, inputs, proba = zip(
        *requests, strict=True
    )
    if status.count(ANSWERED) == n:
        rows = list(map(len, proba))
        answered_inputs, answered_proba = inputs, proba
    else:
        rows = [0 if p is None else len(p) for p in proba]
        answered_inputs = tuple(i for i in inputs if i is not None)
        answered_proba = tuple(p for p in proba if p is not None)
    message = {
        "times": np.array(times, np.float64),
        # One string, one line per id (ids are printable): far cheaper to pickle than a list.
        "request_ids": "\n".join(ids),
        "latency": np.array(latency, np.float64),
        "status": np.array(status, np.int64),
        "errors": None if errors.count(None) == n else list(errors),
        "arms": arms[0] if arms.count(arms[0]) == n else list(arms),
        "pipeline_ids": None if pipelines.count(None) == n else list(pipelines),
        "pipeline_latency": None
        if since.count(None) == n
        else np.array([np.nan if s is None else s for s in since], np.float64),
        "rows": np.array(rows, np.int64),
    }
    return message, answered_inputs, answered_proba


def _materialized(request: Request, ring: RowRing) -> Request:
    """``request`` with its rows as arrays (views of ``ring`` when it is in it)."""
    rows = request[9]
    if not isinstance(rows, RingRows):
        return request
    stop = rows.start + rows.rows
    inputs = {**request[8], **{b: ring.view(b, rows.start, stop) for b in ring.blocks}}
    return (*request[:8], inputs, ring.view(PROBA, rows.start, stop))


def chunk_of(message: dict[str, Any]) -> Chunk:
    """The :class:`Chunk` a message (:func:`message_of`) describes."""
    ids = message["request_ids"].split("\n")
    n = len(ids)
    arms, errors, pipelines = message["arms"], message["errors"], message["pipeline_ids"]
    since = message["pipeline_latency"]
    return Chunk(
        times=message["times"],
        request_ids=ids,
        latency=message["latency"],
        status=message["status"],
        errors=[None] * n if errors is None else errors,
        arms=[arms] * n if isinstance(arms, str) else arms,
        pipeline_ids=[None] * n if pipelines is None else pipelines,
        pipeline_latency=np.full(n, np.nan) if since is None else since,
        rows=message["rows"],
        inputs=message["inputs"],
        proba=message["proba"],
    )


def join_chunks(chunks: Sequence[Chunk]) -> Chunk:
    """Several chunks as one, in order."""
    if len(chunks) == 1:
        return chunks[0]
    answered = [c for c in chunks if c.proba is not None]
    blocks = answered[0].inputs if answered else {}
    return Chunk(
        times=np.concatenate([c.times for c in chunks]),
        request_ids=list(chain.from_iterable(c.request_ids for c in chunks)),
        latency=np.concatenate([c.latency for c in chunks]),
        status=np.concatenate([c.status for c in chunks]),
        errors=list(chain.from_iterable(c.errors for c in chunks)),
        arms=list(chain.from_iterable(c.arms for c in chunks)),
        pipeline_ids=list(chain.from_iterable(c.pipeline_ids for c in chunks)),
        pipeline_latency=np.concatenate([c.pipeline_latency for c in chunks]),
        rows=np.concatenate([c.rows for c in chunks]),
        inputs={b: np.concatenate([c.inputs[b] for c in answered]) for b in blocks},
        proba=np.concatenate([c.proba for c in answered if c.proba is not None])
        if answered
        else None,
    )
