"""The monitoring store: its tables, and how to open one (SQLite by default, any SQLAlchemy
URL such as PostgreSQL). What writes the prediction log into it is
:mod:`mlcycle.monitor.prediction_log`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.exceptions import MlcycleError

__all__ = [
    "ALARMS",
    "DEFAULT_STORE_FILE",
    "FEEDBACK",
    "METRIC_POINTS",
    "PREDICTIONS",
    "PREDICTION_BATCHES",
    "PREDICTION_COLUMNS",
    "LogBatch",
    "PredictionEvent",
    "Row",
    "StoreError",
    "check_store",
    "connect",
    "metadata",
    "resolve_store",
]


class StoreError(MlcycleError):
    """The monitoring store cannot be opened or used."""


metadata = sa.MetaData()

#: One row per answered (or failed) prediction.
PREDICTIONS = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(200), nullable=False, index=True),
    sa.Column("row", sa.Integer, nullable=False, default=0),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("arm", sa.String(50), nullable=False, default="champion"),
    # Pipeline monitoring: the stage this model is, and the id shared by a pipeline run.
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("pipeline_id", sa.String(200), nullable=True),
    sa.Column("features", sa.Text, nullable=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("probabilities", sa.Text, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)

#: Predictions not yet in ``predictions``: one row per hand-over of a server's monitor,
#: the rows packed in ``payload`` (:mod:`mlcycle.monitor.log_batches`), the request ids
#: one per line so they can be looked up before the batch is expanded.
PREDICTION_BATCHES = sa.Table(
    "prediction_batches",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time_min", sa.Float, nullable=False),
    sa.Column("time_max", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("rows", sa.Integer, nullable=False),
    # A Bloom filter of the request ids (mlcycle.monitor.id_filter); null: not known. Ahead
    # of the long columns, so that SQLite reads it without walking their overflow pages.
    sa.Column("id_filter", sa.LargeBinary, nullable=True),
    sa.Column("request_ids", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

#: Ground truth for a logged prediction, by request id and row.
FEEDBACK = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("row", sa.Integer, nullable=False, default=0),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    # The label it replaced when sent again with overwrite; null for the first one.
    sa.Column("previous_label", sa.String(200), nullable=True),
    # Where it came from: api, import:<file>, review.
    sa.Column("source", sa.String(300), nullable=False, default="api"),
    sa.UniqueConstraint("request_id", "row", name="uq_feedback_request_row"),
)

#: Alarms raised by the monitor; acknowledged by a person.
ALARMS = sa.Table(
    "alarms",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("model_name", sa.String(200), nullable=False, default=""),
    sa.Column("model_version", sa.String(100), nullable=False, default=""),
    sa.Column("severity", sa.String(20), nullable=False, default="warning"),
    # firing (crossed the threshold) or resolved (back inside it, past the hysteresis).
    sa.Column("state", sa.String(20), nullable=False, default="firing"),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("message", sa.Text, nullable=False, default=""),
    sa.Column("details", sa.Text, nullable=True),
    sa.Column("acknowledged_at", sa.Float, nullable=True),
    sa.Column("acknowledged_by", sa.String(200), nullable=True),
)

#: Time series of monitor values (window metrics, drift scores), for report timelines.
METRIC_POINTS = sa.Table(
    "metric_points",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("stage", sa.String(100), nullable=False, default=""),
    sa.Column("model_version", sa.String(100), nullable=False, default=""),
    # Extra labels (e.g. {"feature": "age"}) as JSON; "" when none.
    sa.Column("labels", sa.Text, nullable=False, default=""),
    sa.Column("value", sa.Float, nullable=False),
)


#: The columns of a prediction row given as a tuple, in this order.
PREDICTION_COLUMNS = tuple(c.name for c in PREDICTIONS.columns if c.name != "id")

Row = tuple[Any, ...]


@dataclass
class PredictionEvent:
    """What the log keeps of one predicted row (or one failed request)."""

    request_id: str
    model_name: str
    model_version: str
    row: int = 0
    time: float = field(default_factory=time.time)
    arm: str = "champion"
    stage: str = ""
    pipeline_id: str | None = None
    #: The features, as a mapping or already encoded as JSON text.
    features: Mapping[str, Any] | str | None = None
    label: str | None = None
    probabilities: Mapping[str, float] | None = None
    latency_ms: float | None = None
    error: str | None = None

    def to_row(self) -> dict[str, Any]:
        """The event as a ``predictions`` table row."""
        probs = dict(self.probabilities) if self.probabilities else None
        features = self.features
        if features is not None and not isinstance(features, str):
            features = json.dumps(dict(features))
        return {
            "request_id": self.request_id,
            "row": self.row,
            "time": self.time,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "arm": self.arm,
            "stage": self.stage,
            "pipeline_id": self.pipeline_id,
            "features": features,
            "label": self.label,
            "confidence": max(probs.values()) if probs else None,
            "probabilities": None if probs is None else json.dumps(probs),
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


@dataclass(frozen=True)
class LogBatch:
    """One ``prediction_batches`` row, ready to insert (made by
    :func:`mlcycle.monitor.log_batches.pack_batch`)."""

    time_min: float
    time_max: float
    model_name: str
    model_version: str
    stage: str
    #: The ``predictions`` rows it expands to (a failed request is one row).
    rows: int
    request_ids: str
    payload: bytes
    id_filter: bytes | None = None

    def values(self) -> dict[str, Any]:
        """The row as a mapping of column names to values."""
        return {
            "time_min": self.time_min,
            "time_max": self.time_max,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "stage": self.stage,
            "rows": self.rows,
            "request_ids": self.request_ids,
            "payload": self.payload,
            "id_filter": self.id_filter,
        }


#: The store's file in a project (or the working folder outside one) when none is given.
DEFAULT_STORE_FILE = "monitor.db"


def resolve_store(value: str | Path | None = None) -> str:
    """The store to use: ``value`` when given, else ``monitor.db`` in the project root.

    Parameters
    ----------
    value
        A SQLAlchemy URL or SQLite file path (e.g. the ``--store`` flag or
        ``monitor.store`` setting); empty or ``None`` for the default.

    Returns
    -------
    str
        A URL or an absolute SQLite file path, for :func:`connect`.
    """
    if value:
        return str(value)
    from mlcycle.config.project import find_project_root

    return str(find_project_root() / DEFAULT_STORE_FILE)


def connect(url_or_path: str | Path, *, busy_timeout_ms: int = 5000) -> sa.Engine:
    """An engine with the log's tables created.

    Parameters
    ----------
    url_or_path
        A SQLAlchemy URL, or a file path for SQLite (opened in WAL mode, so readers do
        not block the writer).
    busy_timeout_ms
        SQLite: how long a write waits for another writer's lock before failing.
    """
    text = str(url_or_path)
    url = text if "://" in text else f"sqlite:///{Path(text).expanduser()}"
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"cannot use the monitoring store {_redact(text)!r}: {exc}. Give a SQLite file "
            "path or a SQLAlchemy URL such as postgresql+psycopg://user@host/db (PostgreSQL "
            "needs the postgres extra: pip install 'mlcycle[postgres]')"
        ) from exc
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.close()

    try:
        metadata.create_all(engine)
        _add_missing_columns(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open the monitoring store {_redact(text)!r}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0]}. Check that the database is running and reachable, "
            "or that the SQLite file's folder exists and is writable"
        ) from exc
    return engine


def _add_missing_columns(engine: sa.Engine) -> None:
    """Add the nullable columns a store made by an earlier mlcycle lacks."""

    def have() -> set[str]:
        return {c["name"] for c in sa.inspect(engine).get_columns(PREDICTION_BATCHES.name)}

    if "id_filter" in have():
        return
    blob = PREDICTION_BATCHES.c.id_filter.type.compile(dialect=engine.dialect)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"ALTER TABLE prediction_batches ADD COLUMN id_filter {blob}")
    except sa.exc.SQLAlchemyError:
        if "id_filter" not in have():  # not another process adding it at the same time
            raise


def check_store(url_or_path: str | Path) -> None:
    """Open the store once (creating its tables), or raise a clear :class:`StoreError`."""
    connect(url_or_path).dispose()


def _redact(url: str) -> str:
    """``url`` without a password."""
    if "://" not in url or "@" not in url:
        return url
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
