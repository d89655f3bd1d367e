"""Is the feedback timely? How old the labelled data is, and what production has sent since.

* **The data file**: when it was last modified (its age in days).
* **The time column** (``data.time_column``, optional): the newest and oldest value of
  that column of the raw data file among the labelled rows (ISO 8601 text or Unix
  seconds). It is read from the raw file, so it need not be a feature; when the schema
  lists it too, it is a feature as well (remove it from the schema file to keep it out).
* **Production feedback since the last training**: labels in the monitoring store
  (``POST /feedback``, ``mlcycle feedback import``, the review queue) given after the
  champion was trained (its bundle's ``lineage.json`` ``created_at``, else its
  registration time), counted as :func:`mlcycle.data.feedback_export.collect_feedback`
  counts them for ``mlcycle data feedback``. No store, or no champion, is reported, not
  an error.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlcycle._optional import require
from mlcycle.exceptions import DataError, MlcycleError

if TYPE_CHECKING:
    import pandas as pd

    from mlcycle.config.project import Project
    from mlcycle.config.structured import Config

__all__ = [
    "champion_training",
    "data_file_age",
    "feedback_since",
    "iso",
    "store_location",
    "time_column_age",
]

logger = logging.getLogger(__name__)

_DAY = 86400.0


def iso(seconds: float) -> str:
    """Unix seconds as ISO 8601 UTC, to the second.

    Examples
    --------
    >>> iso(0)
    '1970-01-01T00:00:00Z'
    """
    return (
        dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def data_file_age(path: Path, now: float) -> dict[str, Any]:
    """When the data file was last modified, and how many days ago.

    Examples
    --------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = p.write_text("x")
    >>> data_file_age(p, p.stat().st_mtime + 2 * 86400)["age_days"]
    2.0
    """
    modified = path.stat().st_mtime
    return {
        "path": str(path),
        "modified_at": iso(modified),
        "age_days": round((now - modified) / _DAY, 3),
    }


def _seconds(column: pd.Series) -> np.ndarray[Any, Any]:
    """Unix seconds of each value (NaN where it is missing or not a time)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        numbers: np.ndarray[Any, Any] = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return numbers
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        when = pd.to_datetime(column, utc=True)
    else:
        text = column.astype("string").str.strip()
        when = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    out = np.full(len(column), np.nan)
    present = when.notna().to_numpy()
    out[present] = when[present].map(lambda t: t.timestamp()).to_numpy(dtype=np.float64)
    return out


def time_column_age(raw: pd.DataFrame, column: str, now: float) -> dict[str, Any]:
    """The newest and oldest time in ``column`` of the raw (labelled) rows.

    Parameters
    ----------
    raw
        The labelled rows of the raw data file.
    column
        ``data.time_column``: ISO 8601 text (UTC when no zone) or Unix seconds.
    now
        The current time (Unix seconds).

    Returns
    -------
    dict
        ``column``, ``newest``, ``oldest`` (ISO 8601), ``age_days`` (of the newest),
        ``unparsed`` (rows whose value is missing or not a time).

    Raises
    ------
    DataError
        The column is not in the data, or holds no time at all.

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"t": ["2024-01-01", "2024-01-03T00:00:00Z", "soon"]})
    >>> out = time_column_age(raw, "t", now=1704240000.0 + 86400)
    >>> out["newest"], out["age_days"], out["unparsed"]
    ('2024-01-03T00:00:00Z', 1.0, 1)
    """
    if column not in raw.columns:
        raise DataError(
            f"data.time_column is {column!r}, which is not a column of the data file (columns: "
            f"{[str(c) for c in raw.columns]}); set data.time_column to one of them, or to null"
        )
    seconds = _seconds(raw[column])
    ok = np.isfinite(seconds)
    if not ok.any():
        raise DataError(
            f"data.time_column {column!r} holds no time in any row; it needs ISO 8601 times "
            "(2024-05-01T12:00:00Z) or Unix seconds. Fix the column or set data.time_column=null"
        )
    newest, oldest = float(seconds[ok].max()), float(seconds[ok].min())
    return {
        "column": column,
        "newest": iso(newest),
        "oldest": iso(oldest),
        "age_days": round((now - newest) / _DAY, 3),
        "unparsed": int((~ok).sum()),
    }


def _lineage_time(folder: Path) -> float | None:
    try:
        lineage = json.loads((folder / "lineage.json").read_text())
        created = dt.datetime.fromisoformat(str(lineage["created_at"]).replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created.timestamp()


def champion_training(cfg: Config, project: Project) -> dict[str, Any]:
    """The champion's version and when it was trained, or why it is unknown.

    The training time is ``created_at`` of the bundle's ``lineage.json``; when the bundle
    cannot be read, the version's registration time. A project that never trained (no
    SQLite tracking store) is not probed, so the check creates no store.

    Returns
    -------
    dict
        ``version``, ``trained_at`` (ISO 8601), ``trained_at_seconds``, ``source``
        (``lineage`` or ``registry``), ``data_md5`` (what it was trained on, when known);
        or ``version: None`` and ``reason``.
    """
    if cfg.tracking.uri is None and not project.mlflow_db.is_file():
        return {"version": None, "reason": f"no tracking store at {project.mlflow_db} yet"}
    mlflow_exceptions = require("mlflow.exceptions", "train")
    # The registry only informs this section: a failure is reported, not raised.
    unreadable = (MlcycleError, mlflow_exceptions.MlflowException)
    try:
        from mlcycle.registry import lookup_version, resolve_bundle
        from mlcycle.tracking import configure_tracking

        ctx = configure_tracking(cfg.tracking, project)
        name = str(cfg.tracking.registered_model)
        version = lookup_version(ctx, "@champion", default_name=name)
        if version is None:
            return {"version": None, "reason": f"model {name!r} has no @champion"}
        mv = ctx.client.get_model_version(name, version)
        registered = int(mv.creation_timestamp) / 1000
        tags = dict(mv.tags or {})
        trained, source = None, "registry"
        try:
            trained = _lineage_time(resolve_bundle(ctx, f"models:/{name}/{version}"))
        except unreadable as exc:
            logger.info("cannot read the champion's lineage: %s", exc)
        if trained is not None:
            source = "lineage"
    except unreadable as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"version": None, "reason": f"the registry could not be read: {first}"}
    when = trained if trained is not None else registered
    return {
        "name": name,
        "version": str(version),
        "trained_at": iso(when),
        "trained_at_seconds": when,
        "source": source,
        "data_md5": tags.get("mlcycle.data_md5"),
    }


def feedback_since(location: str, since: float | None, model: str) -> dict[str, Any]:
    """Labels in the monitoring store given at or after ``since``.

    Parameters
    ----------
    location
        A SQLite file or SQLAlchemy URL.
    since
        Unix seconds; None: all labels.
    model
        The registered model name; ``labels`` counts its predictions' labels,
        ``labels_all_models`` every model's.

    Returns
    -------
    dict
        ``labels``, ``labels_all_models``, ``with_features`` (usable by ``mlcycle data
        feedback``), ``by_source``, ``newest`` (ISO 8601 or None), ``skipped`` (labels
        with no logged prediction, by reason).

    Raises
    ------
    StoreError
        The store cannot be opened.
    """
    from mlcycle.data.feedback_export import collect_feedback
    from mlcycle.monitor.store import connect

    engine = connect(location)
    try:
        rows, skipped = collect_feedback(engine, since=since, model=model)
        every, _ = collect_feedback(engine, since=since)
    finally:
        engine.dispose()
    newest = max((r.labelled_at for r in rows), default=None)
    return {
        "labels": len(rows),
        "labels_all_models": len(every),
        "with_features": sum(r.features is not None for r in rows),
        "by_source": dict(sorted(Counter(r.source for r in rows).items())),
        "newest": None if newest is None else iso(newest),
        "skipped": dict(sorted(skipped.items())),
    }


def store_location(cfg: Config, project: Project, store: str | None) -> tuple[str, bool]:
    """The monitoring store to read, and whether it exists (a URL is assumed to).

    ``--store``, else ``serve.monitor.store``, else ``monitor.db`` in the project.
    """
    from mlcycle.monitor.store import DEFAULT_STORE_FILE

    location = store or cfg.serve.monitor.store or str(project.root / DEFAULT_STORE_FILE)
    if "://" in location:
        return location, True
    path = Path(location).expanduser()
    if not path.is_absolute():
        path = project.path(location)
    return str(path), path.is_file()
