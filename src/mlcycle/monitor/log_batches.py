"""The prediction log's compact form: one stored row per hand-over of the monitor.

At full speed a server answers thousands of requests a second, and writing each predicted
row as a row of the ``predictions`` table (its features as JSON text, two indexes) costs
the monitor more CPU than the worker spends answering a one-row request. So the monitor
writes what one hand-over brought — hundreds of requests — as **one** row of the
``prediction_batches`` table: the request ids as text (so they can be looked up), and the
times, latencies, features and probabilities as raw arrays (:func:`pack_batch`).

mlcycle's readers read the batches as they are, beside the table
(:mod:`mlcycle.monitor.log_read`). For your own SQL, a batch can be **expanded** into
``predictions`` rows (:func:`expand_batches`) in one transaction that deletes it, so no
row is lost or written twice, even with several expanding processes: by
``mlcycle monitor expand``, or, when ``serve.monitor.expand_after`` is set (it is not by
default), by the server's monitor once a batch is that many seconds old or more than
``serve.monitor.expand_backlog`` rows wait. Each batch also carries a Bloom filter of its
request ids (:mod:`mlcycle.monitor.id_filter`), so a request is found without expanding.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from mlcycle.monitor.encode import RowEncoder
from mlcycle.monitor.id_filter import filter_of_text
from mlcycle.monitor.prediction_log import insert_rows
from mlcycle.monitor.store import PREDICTION_BATCHES, LogBatch, StoreError

__all__ = [
    "BatchModel",
    "DecodedBatch",
    "backlog",
    "decode_batch",
    "expand_batches",
    "has_batches",
    "pack_batch",
    "predicted_labels",
]

_MAGIC = b"MLCB1"
_HEAD = struct.Struct("<I")
#: The only array types a batch holds (no object arrays: a payload is data, never code).
_DTYPES = {"<f8": np.float64, "<f4": np.float32, "<i4": np.int32, "|b1": np.bool_}
#: The error text of a predicted row whose probabilities are not all finite.
NO_FINITE_PROBABILITY = "no finite probability"


@dataclass(frozen=True)
class BatchModel:
    """What every row of a batch shares: the model, its stage and its columns."""

    name: str
    version: str
    stage: str
    numeric_names: Sequence[str]
    categorical_names: Sequence[str]
    classes: Sequence[str]


def pack_batch(
    model: BatchModel,
    *,
    times: Sequence[float] | np.ndarray[Any, Any],
    request_ids: Sequence[str],
    latency_s: Sequence[float] | np.ndarray[Any, Any],
    errors: Sequence[str | None],
    arms: Sequence[str],
    pipeline_ids: Sequence[str | None],
    counts: np.ndarray[Any, Any],
    keep: np.ndarray[Any, Any],
    numeric: np.ndarray[Any, Any],
    categorical: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any],
) -> LogBatch:
    """Requests and their predicted rows as one compact batch.

    Parameters
    ----------
    model
        The model, stage and column names the rows share.
    times, request_ids, latency_s, errors, arms, pipeline_ids
        One per request: when it was answered (unix s), its id, latency (s), error text
        (``None`` when answered), arm and pipeline id.
    counts
        One per request: its predicted rows (0 for a failed request).
    keep
        One per row: whether its features are kept.
    numeric, categorical, proba
        One row per predicted row, in request order: the numeric and categorical
        features and the class probabilities.

    Returns
    -------
    LogBatch
    """
    kept = np.flatnonzero(keep)
    header: dict[str, Any] = {
        "numeric_names": list(model.numeric_names),
        "categorical_names": list(model.categorical_names),
        "classes": list(model.classes),
        "arms": _one_or_all(arms),
        "pipeline_ids": _one_or_all(pipeline_ids),
        "errors": _one_or_all(errors),
        "categorical": categorical[kept].tolist() if categorical.shape[1] else [],
    }
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "time": np.asarray(times, dtype=np.float64),
        "latency_ms": np.asarray(latency_s, dtype=np.float64) * 1000.0,
        "counts": np.asarray(counts, dtype=np.int32),
        "keep": np.asarray(keep, dtype=np.bool_),
        "numeric": np.asarray(numeric[kept], dtype=np.float32),
        "proba": np.asarray(proba, dtype=np.float32),
    }
    stamps = arrays["time"]
    ids = "\n".join(request_ids)
    return LogBatch(
        time_min=float(stamps.min()) if len(stamps) else 0.0,
        time_max=float(stamps.max()) if len(stamps) else 0.0,
        model_name=model.name,
        model_version=model.version,
        stage=model.stage,
        rows=int(np.maximum(arrays["counts"], 1).sum()),  # a failed request: one row
        request_ids=ids,
        payload=_encode(header, arrays),
        id_filter=filter_of_text(ids, len(request_ids)),
    )


def _one_or_all(values: Sequence[Any]) -> Any:
    """``{"all": v}`` when every value is ``v`` (the usual case), else the list."""
    values = list(values)
    if values and values.count(values[0]) == len(values):
        return {"all": values[0]}
    return values


def _each(value: Any, n: int) -> list[Any]:
    if isinstance(value, dict):
        return [value["all"]] * n
    return list(value)


def _encode(header: dict[str, Any], arrays: dict[str, np.ndarray[Any, Any]]) -> bytes:
    specs: dict[str, list[Any]] = {}
    parts: list[bytes] = []
    offset = 0
    for name, array in arrays.items():
        data = np.ascontiguousarray(array).tobytes()
        specs[name] = [array.dtype.str, list(array.shape), offset]
        parts.append(data)
        offset += len(data)
    head = orjson.dumps({**header, "arrays": specs})
    return b"".join([_MAGIC, _HEAD.pack(len(head)), head, *parts])


@dataclass
class DecodedBatch:
    """A batch's contents (:func:`decode_batch`)."""

    numeric_names: list[str]
    categorical_names: list[str]
    classes: list[str]
    request_ids: list[str]
    arms: list[str]
    pipeline_ids: list[str | None]
    errors: list[str | None]
    categorical: list[list[Any]]
    time: np.ndarray[Any, Any]
    latency_ms: np.ndarray[Any, Any]
    counts: np.ndarray[Any, Any]
    keep: np.ndarray[Any, Any]
    numeric: np.ndarray[Any, Any]
    proba: np.ndarray[Any, Any]


def decode_batch(payload: bytes, request_ids: str, batch_id: int | None = None) -> DecodedBatch:
    """The contents of a batch; :class:`StoreError` if it is not one.

    Parameters
    ----------
    payload, request_ids
        The ``prediction_batches.payload`` and ``request_ids`` values.
    batch_id
        Its row id, named in the error.
    """
    where = f"prediction batch {batch_id}" if batch_id is not None else "a prediction batch"
    try:
        return _decode(payload, request_ids.split("\n"))
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
        raise StoreError(
            f"{where} in the monitoring store cannot be read ({exc}); it was not written by "
            "this version of mlcycle or was damaged. Delete that row of the "
            "prediction_batches table to go on (its predictions are lost)"
        ) from exc


def _decode(payload: bytes, request_ids: list[str]) -> DecodedBatch:
    if not payload.startswith(_MAGIC):
        raise ValueError("it does not start with the batch marker")
    start = len(_MAGIC) + _HEAD.size
    (length,) = _HEAD.unpack_from(payload, len(_MAGIC))
    header = orjson.loads(payload[start : start + length])
    body = memoryview(payload)[start + length :]
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    for name, (dtype, shape, offset) in header["arrays"].items():
        if dtype not in _DTYPES:
            raise ValueError(f"array {name!r} has the unsupported type {dtype!r}")
        kind = np.dtype(_DTYPES[dtype])
        size = int(np.prod(shape, dtype=np.int64)) * kind.itemsize
        if offset < 0 or offset + size > len(body):
            raise ValueError(f"array {name!r} runs past the end of the payload")
        arrays[name] = np.frombuffer(body[offset : offset + size], dtype=kind).reshape(shape)
    n = len(request_ids)
    counts = arrays["counts"]
    if not len(arrays["time"]) == len(arrays["latency_ms"]) == len(counts) == n:
        raise ValueError("its per-request columns differ in length")
    rows = int(counts.sum())
    if len(arrays["keep"]) != rows or len(arrays["proba"]) != rows:
        raise ValueError("its per-row columns do not match the requests' row counts")
    return DecodedBatch(
        numeric_names=list(header["numeric_names"]),
        categorical_names=list(header["categorical_names"]),
        classes=[str(c) for c in header["classes"]],
        request_ids=request_ids,
        arms=_each(header["arms"], n),
        pipeline_ids=_each(header["pipeline_ids"], n),
        errors=_each(header["errors"], n),
        categorical=header["categorical"],
        time=arrays["time"],
        latency_ms=arrays["latency_ms"],
        counts=counts,
        keep=arrays["keep"],
        numeric=arrays["numeric"],
        proba=arrays["proba"],
    )


def predicted_labels(
    proba: np.ndarray[Any, Any],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Per row: whether its probabilities are all finite, its class index, its confidence.

    Examples
    --------
    >>> finite, k, conf = predicted_labels(np.array([[0.2, 0.8], [np.nan, 1.0]]))
    >>> finite.tolist(), k.tolist(), conf[:1].tolist()
    ([True, False], [1, 0], [0.8])
    """
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(proba).all(axis=1)
        predicted = np.where(finite, np.nan_to_num(proba).argmax(axis=1), 0)
        confidence = np.where(finite, proba.max(axis=1, initial=0.0), np.nan)
    return finite, predicted, confidence


def batch_rows(
    batch: DecodedBatch,
    model_name: str,
    version: str,
    stage: str,
    *,
    features: bool = True,
    only: Collection[str] | None = None,
) -> list[Any]:
    """The ``predictions`` rows of a batch, as tuples in the order of
    :data:`~mlcycle.monitor.store.PREDICTION_COLUMNS`.

    Parameters
    ----------
    batch
        From :func:`decode_batch`.
    model_name, version, stage
        What the batch's row in ``prediction_batches`` says.
    features
        Whether to encode the features (``None`` in every row otherwise).
    only
        Only the rows of these request ids.
    """
    encoder = RowEncoder(batch.numeric_names, batch.categorical_names, batch.classes)
    rows = len(batch.proba)
    if features:
        width = len(batch.numeric_names)
        numeric = np.full((rows, width), np.nan, dtype=np.float32)
        numeric[batch.keep] = batch.numeric
        categorical = np.empty((rows, len(batch.categorical_names)), dtype=object)
        if batch.categorical_names and batch.categorical:
            categorical[batch.keep] = np.array(batch.categorical, dtype=object)
        encoded = encoder.features(numeric, categorical, batch.keep)
    else:
        encoded = [None] * rows
    probabilities = encoder.probabilities(batch.proba)
    finite, predicted, confidence = predicted_labels(batch.proba)
    classes = batch.classes
    out: list[Any] = []
    at = 0
    counts = batch.counts.tolist()
    times, latency = batch.time.tolist(), batch.latency_ms.tolist()
    conf = confidence.tolist()
    for i, rid in enumerate(batch.request_ids):
        if only is not None and rid not in only:
            at += counts[i]
            continue
        arm, pid, t, ms = batch.arms[i], batch.pipeline_ids[i], times[i], latency[i]
        if counts[i] == 0:
            out.append((rid, 0, t, model_name, version, arm, stage, pid, None, None, None, None,
                        ms, batch.errors[i]))  # fmt: skip
            continue
        for r in range(counts[i]):
            k = at + r
            ok = bool(finite[k])
            out.append((
                rid, r, t, model_name, version, arm, stage, pid, encoded[k],
                classes[int(predicted[k])] if ok else None, conf[k] if ok else None,
                probabilities[k], ms, None if ok else NO_FINITE_PROBABILITY,
            ))  # fmt: skip
        at += counts[i]
    return out


B = PREDICTION_BATCHES


def expand_batches(
    engine: sa.Engine, *, older_than: float | None = None, max_rows: int | None = None
) -> int:
    """Move batches into the ``predictions`` table, oldest first; the rows written.

    Each step deletes a few batches and inserts their rows in one transaction: a batch is
    expanded exactly once, however many processes expand at the same time.

    Parameters
    ----------
    engine
        The monitoring store.
    older_than
        Only batches whose last request was answered before this unix time.
    max_rows
        Stop once about this many rows were written (``None``: all of them).
    """
    written = 0
    if not has_batches(engine):
        return 0
    while max_rows is None or written < max_rows:
        oldest = sa.select(B.c.id).order_by(B.c.id).limit(20)
        if older_than is not None:
            oldest = oldest.where(B.c.time_max < older_than)
        taking = (
            sa.delete(B)
            .where(B.c.id.in_(oldest.scalar_subquery()))
            .returning(
                B.c.id, B.c.model_name, B.c.model_version, B.c.stage, B.c.payload, B.c.request_ids
            )
        )
        with engine.begin() as conn:
            taken = sorted(conn.execute(taking).all())
            if not taken:
                break
            rows = [
                row
                for bid, name, version, stage, payload, ids in taken
                for row in batch_rows(decode_batch(payload, ids, bid), name, version, stage)
            ]
            insert_rows(conn, rows)
        written += len(rows)
    return written


def has_batches(bind: sa.Engine | sa.Connection) -> bool:
    """Whether the store has the batches table (a store written by mlcycle before it
    existed and not opened with :func:`~mlcycle.monitor.store.connect` since has not)."""
    return sa.inspect(bind).has_table(B.name)


def backlog(engine: sa.Engine) -> int:
    """The ``predictions`` rows waiting in batches."""
    if not has_batches(engine):
        return 0
    with engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(B.c.rows), 0))).scalar()
    return int(total or 0)
