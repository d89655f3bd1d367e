"""Reading the prediction log: the ``predictions`` table and the batches not expanded yet.

A server's monitor writes the log as packed batches (:mod:`mlcycle.monitor.log_batches`)
and may expand them into ``predictions`` rows later; mlcycle's readers do not wait for
that and do not write. They read both, in one snapshot of the store (so a batch expanded
while they read is seen once, not twice or never), as :class:`LoggedRow` tuples:

* :func:`window_rows` — the rows logged in a time window, filtered by model, stage, arm;
* :func:`rows_of_requests` and :func:`logged_labels` — the rows of given request ids;
* :func:`with_feedback` — the same rows with their feedback label;
* :func:`log_extent` and :func:`predicted_classes` — what the store holds.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from itertools import starmap
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa

from mlcycle.monitor.id_filter import may_hold
from mlcycle.monitor.log_batches import (
    DecodedBatch,
    batch_rows,
    decode_batch,
    has_batches,
    predicted_labels,
)
from mlcycle.monitor.store import FEEDBACK, PREDICTION_BATCHES, PREDICTION_COLUMNS, PREDICTIONS

__all__ = [
    "LoggedRow",
    "log_extent",
    "logged_labels",
    "predicted_classes",
    "rows_of_requests",
    "snapshot",
    "window_rows",
    "with_feedback",
]

P, B, F = PREDICTIONS, PREDICTION_BATCHES, FEEDBACK
#: Ids per ``IN (...)`` look-up.
_CHUNK = 500


class LoggedRow(NamedTuple):
    """One logged predicted row (or failed request), wherever it is stored."""

    request_id: str
    row: int
    time: float
    model_name: str
    model_version: str
    arm: str
    stage: str
    pipeline_id: str | None
    #: JSON text; ``None`` when not kept (or not asked for).
    features: str | None
    label: str | None
    confidence: float | None
    #: JSON text of the class probabilities.
    probabilities: str | None
    latency_ms: float | None
    error: str | None
    #: Its feedback label: only filled by :func:`with_feedback`.
    true_label: str | None = None


@contextmanager
def snapshot(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A connection whose reads all see the store as it was at the first one.

    SQLite: an explicit deferred transaction (the driver starts none for reads);
    PostgreSQL and others: ``REPEATABLE READ``. Nothing is written; it is rolled back.
    """
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")
        else:
            conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()


def window_rows(
    conn: sa.Connection,
    *,
    since: float | None = None,
    until: float | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    stage: str | None = None,
    arms: Collection[str] | None = None,
    pipeline_only: bool = False,
    features: bool = True,
    columns: Collection[str] | None = None,
) -> list[LoggedRow]:
    """The rows logged in ``[since, until)``, oldest first.

    Parameters
    ----------
    conn
        A connection (:func:`snapshot`, so both sources are read at one moment).
    since, until
        Unix seconds (``None``: no bound).
    model_name, model_version, stage
        Only rows of this model, version, stage.
    arms
        Only rows of these arms.
    pipeline_only
        Only rows that belong to a pipeline run.
    features
        Whether to read the features (JSON text); ``None`` in every row otherwise.
    columns
        Read only these columns of the ``predictions`` table (the others are ``None``
        in its rows; faster for many rows); ``None``: all.
    """
    table = _table_query(features, columns).order_by(P.c.time, P.c.id)
    batches = _batch_query().order_by(B.c.id)
    if since is not None:
        table = table.where(P.c.time >= since)
        batches = batches.where(B.c.time_max >= since)
    if until is not None:
        table = table.where(P.c.time < until)
        batches = batches.where(B.c.time_min < until)
    for column, value in (("model_name", model_name), ("model_version", model_version),
                          ("stage", stage)):  # fmt: skip
        if value is not None:
            table = table.where(P.c[column] == value)
            batches = batches.where(B.c[column] == value)
    if arms is not None:
        table = table.where(P.c.arm.in_(list(arms)))
    if pipeline_only:
        table = table.where(P.c.pipeline_id.is_not(None))
    rows = list(starmap(LoggedRow, conn.execute(table).all()))
    wanted = None if arms is None else set(arms)
    lo = -np.inf if since is None else since
    hi = np.inf if until is None else until
    from_batches = [
        r
        for r in _batch_rows(conn, batches, features)
        if lo <= r.time < hi
        and (wanted is None or r.arm in wanted)
        and (not pipeline_only or r.pipeline_id is not None)
    ]
    if not from_batches:
        return rows
    return sorted(rows + from_batches, key=_time)  # stable: ties keep their order


def _time(row: LoggedRow) -> float:
    return row.time


def _table_query(features: bool, columns: Collection[str] | None = None) -> sa.Select[Any]:
    wanted = set(PREDICTION_COLUMNS if columns is None else columns)
    if not features:
        wanted.discard("features")
    return sa.select(*(P.c[c] if c in wanted else sa.null() for c in PREDICTION_COLUMNS))


def _batch_query() -> sa.Select[Any]:
    return sa.select(
        B.c.id, B.c.model_name, B.c.model_version, B.c.stage, B.c.payload, B.c.request_ids
    )


def _batch_rows(
    conn: sa.Connection,
    query: sa.Select[Any],
    features: bool,
    request_ids: Collection[str] | None = None,
) -> Iterator[LoggedRow]:
    if not has_batches(conn):
        return
    for bid, name, version, stage, payload, ids in conn.execute(query):
        batch = decode_batch(payload, ids, bid)
        for r in batch_rows(batch, name, version, stage, features=features, only=request_ids):
            yield LoggedRow(*r)


def rows_of_requests(
    conn: sa.Connection,
    request_ids: Collection[str],
    *,
    model_version: str | None = None,
    features: bool = True,
) -> list[LoggedRow]:
    """Every logged row of these requests: the table's by id, then the batches'.

    Parameters
    ----------
    conn
        A connection (:func:`snapshot`).
    request_ids
        The requests wanted.
    model_version
        Only this model version's rows.
    features
        Whether to read the features.
    """
    ids = sorted(set(request_ids))
    rows: list[LoggedRow] = []
    for start in range(0, len(ids), _CHUNK):
        query = _table_query(features).where(P.c.request_id.in_(ids[start : start + _CHUNK]))
        if model_version is not None:
            query = query.where(P.c.model_version == model_version)
        rows += starmap(LoggedRow, conn.execute(query.order_by(P.c.id)).all())
    hits = _batches_holding(conn, ids, model_version)
    for start in range(0, len(hits), _CHUNK):
        query = _batch_query().where(B.c.id.in_(hits[start : start + _CHUNK])).order_by(B.c.id)
        rows += _batch_rows(conn, query, features, set(ids))
    return rows


def _batches_holding(
    conn: sa.Connection, request_ids: Collection[str], model_version: str | None
) -> list[int]:
    """The ids of the batches holding any of ``request_ids``: those whose id filter may
    hold one (:mod:`mlcycle.monitor.id_filter`), checked against their ids."""
    wanted = set(request_ids)
    if not wanted or not has_batches(conn):
        return []
    query = sa.select(B.c.id, B.c.id_filter)
    if model_version is not None:
        query = query.where(B.c.model_version == model_version)
    filtered = conn.execute(query).all()
    maybe = may_hold([f for _, f in filtered], sorted(wanted))
    candidates = [bid for (bid, _), hit in zip(filtered, maybe.tolist(), strict=True) if hit]
    found = []
    for start in range(0, len(candidates), _CHUNK):
        chosen = sa.select(B.c.id, B.c.request_ids).where(
            B.c.id.in_(candidates[start : start + _CHUNK])
        )
        found += [
            bid for bid, ids in conn.execute(chosen) if not wanted.isdisjoint(ids.split("\n"))
        ]
    return sorted(found)


def logged_labels(
    conn: sa.Connection, request_ids: Collection[str], *, model_version: str | None = None
) -> dict[tuple[str, int], str | None]:
    """The predicted label of every logged row of ``request_ids``, expanded or not.

    Cheaper than :func:`rows_of_requests`: a batch's rows are not built, only their
    labels read.

    Parameters
    ----------
    conn
        A connection to the store.
    request_ids
        The requests wanted.
    model_version
        Only this model version's predictions.

    Returns
    -------
    dict
        ``(request id, row)`` to the predicted class (``None`` for a failed request or a
        row with no finite probability).
    """
    found: dict[tuple[str, int], str | None] = {}
    ids = sorted(set(request_ids))
    for start in range(0, len(ids), _CHUNK):
        query = sa.select(P.c.request_id, P.c.row, P.c.label).where(
            P.c.request_id.in_(ids[start : start + _CHUNK])
        )
        if model_version is not None:
            query = query.where(P.c.model_version == model_version)
        for rid, row, label in conn.execute(query):
            found[(rid, int(row))] = label
    hits = _batches_holding(conn, ids, model_version)
    wanted = set(ids)
    for start in range(0, len(hits), _CHUNK):
        chunk = hits[start : start + _CHUNK]
        query = sa.select(B.c.id, B.c.payload, B.c.request_ids).where(B.c.id.in_(chunk))
        for bid, payload, text in conn.execute(query):
            found.update(_labels_of(decode_batch(payload, text, bid), wanted))
    return found


def _labels_of(batch: DecodedBatch, wanted: set[str]) -> dict[tuple[str, int], str | None]:
    finite, predicted, _ = predicted_labels(batch.proba)
    starts = (np.cumsum(batch.counts) - batch.counts).tolist()
    found: dict[tuple[str, int], str | None] = {}
    for i, rid in enumerate(batch.request_ids):
        if rid not in wanted:
            continue
        n = int(batch.counts[i])
        if n == 0:
            found[(rid, 0)] = None
        for r in range(n):
            k = starts[i] + r
            found[(rid, r)] = batch.classes[int(predicted[k])] if finite[k] else None
    return found


def with_feedback(conn: sa.Connection, rows: Sequence[LoggedRow]) -> list[LoggedRow]:
    """``rows`` with :attr:`LoggedRow.true_label` set from the ``feedback`` table.

    The feedback of the rows' requests is looked up by id, or read whole when the table
    holds fewer labels than the rows asked about.
    """
    if not rows:
        return []
    ids = sorted({r.request_id for r in rows})
    labels: dict[tuple[str, int], str] = {}
    held = conn.execute(sa.select(sa.func.count()).select_from(F)).scalar() or 0
    if held <= len(ids):
        labels = {(rid, int(row)): label for rid, row, label in conn.execute(_feedback())}
    else:
        for start in range(0, len(ids), _CHUNK):
            query = _feedback().where(F.c.request_id.in_(ids[start : start + _CHUNK]))
            labels.update({(rid, int(row)): label for rid, row, label in conn.execute(query)})
    if not labels:
        return list(rows)
    return [
        r._replace(true_label=labels[key]) if (key := (r.request_id, r.row)) in labels else r
        for r in rows
    ]


def _feedback() -> sa.Select[Any]:
    return sa.select(F.c.request_id, F.c.row, F.c.label)


def log_extent(
    conn: sa.Connection, *, model_name: str | None = None, stage: str | None = None
) -> tuple[int, float | None, float | None]:
    """How many rows the log holds and the first and last time, expanded or not.

    Parameters
    ----------
    conn
        A connection (:func:`snapshot`).
    model_name, stage
        Only rows of this model and stage.
    """
    table = sa.select(sa.func.count(), sa.func.min(P.c.time), sa.func.max(P.c.time))
    batches = sa.select(sa.func.coalesce(sa.func.sum(B.c.rows), 0), sa.func.min(B.c.time_min),
                        sa.func.max(B.c.time_max))  # fmt: skip
    for column, value in (("model_name", model_name), ("stage", stage)):
        if value is not None:
            table = table.where(P.c[column] == value)
            batches = batches.where(B.c[column] == value)
    parts = [conn.execute(table).one()]
    if has_batches(conn):
        parts.append(conn.execute(batches).one())
    n = sum(int(p[0] or 0) for p in parts)
    lows = [float(p[1]) for p in parts if p[1] is not None]
    highs = [float(p[2]) for p in parts if p[2] is not None]
    return n, min(lows, default=None), max(highs, default=None)


def predicted_classes(conn: sa.Connection) -> list[str]:
    """The distinct predicted labels in the log, sorted."""
    labels = {str(v) for (v,) in conn.execute(sa.select(P.c.label).where(
        P.c.label.is_not(None)).distinct())}  # fmt: skip
    if has_batches(conn):
        for bid, payload, text in conn.execute(sa.select(B.c.id, B.c.payload, B.c.request_ids)):
            batch = decode_batch(payload, text, bid)
            finite, predicted, _ = predicted_labels(batch.proba)
            labels.update(batch.classes[k] for k in set(predicted[finite].tolist()))
    return sorted(labels)
