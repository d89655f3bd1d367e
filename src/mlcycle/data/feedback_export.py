"""Labels from production become a dataset: ``mlcycle data feedback``.

Two kinds of labels reach the monitoring store: a person's decision in the review queue
(table ``reviews``, state ``labelled``) and ground truth sent for a logged prediction
(table ``feedback``: ``POST /feedback``, ``mlcycle feedback import``). :func:`export_feedback`
turns both into one CSV file with exactly the training data's columns (the schema's
features in order, then the label column) followed by provenance columns:

=================  ==============================================================
``_request_id``    the request the row came in with
``_row``           the row of that request
``_labelled_by``   who decided it (review); empty for ``api`` and ``import:`` labels
``_labelled_at``   when it was labelled, ISO 8601 UTC (the file is sorted by it)
``_source``        ``review``, ``api`` or ``import:<file>``
``_model_version`` the version that predicted (or suggested) it; empty if none did
=================  ==============================================================

A review's features are stored with it; a ``feedback`` label is joined to the logged
prediction's features, which exist only when the server logged them
(``serve.monitor.log_features: all``); labels without features are counted, not used.
A review label wins over another label of the same request and row. Each row is checked
against the schema and skipped, with a counted reason, when it does not fit.

:func:`load_feedback` reads such a file back as a :class:`~mlcycle.data.dataset.Dataset`
plus the provenance columns, ready to append to a training split.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import Schema
from mlcycle.exceptions import DataError, SchemaError
from mlcycle.monitor.log_read import LoggedRow, rows_of_requests, snapshot
from mlcycle.monitor.store import FEEDBACK
from mlcycle.review.tables import REVIEWS  # also makes connect() create the reviews table

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PROVENANCE_COLUMNS",
    "SKIP_REASONS",
    "ExportSummary",
    "FeedbackData",
    "FeedbackRow",
    "collect_feedback",
    "export_feedback",
    "feedback_frame",
    "load_feedback",
    "parse_since",
]

#: The provenance columns that follow the data columns, in this order.
PROVENANCE_COLUMNS = (
    "_request_id", "_row", "_labelled_by", "_labelled_at", "_source", "_model_version"
)  # fmt: skip

#: Why a labelled row is left out of the export (the keys of ``ExportSummary.skipped``).
SKIP_REASONS = {
    "no_features": "features not logged (serve.monitor.log_features is none or sample; set "
    "it to all to use such labels)",
    "no_prediction": "no logged prediction with that request id and row",
    "missing_feature": "features lack a column of the schema",
    "unknown_feature": "features hold a column the schema does not have",
    "bad_value": "a feature value does not fit its kind in the schema",
    "unknown_label": "the label is not one of the schema's classes",
    "review_wins": "labelled in review too (the review label is used)",
}

_PROVENANCE_TEXT = ("_request_id", "_labelled_by", "_labelled_at", "_source", "_model_version")


@dataclass(frozen=True)
class FeedbackRow:
    """One labelled row, before it is checked against the schema."""

    request_id: str
    row: int
    features: str | None
    label: str
    labelled_by: str
    labelled_at: float
    source: str
    model_version: str


@dataclass
class ExportSummary:
    """What one export wrote and left out."""

    path: Path
    rows: int
    by_source: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)
    dvc_file: Path | None = None
    md5: str | None = None

    def lines(self, root: Path | None = None) -> list[str]:
        """The summary ``mlcycle data feedback`` prints (paths relative to ``root``)."""

        def shown(path: Path) -> str:
            try:
                return path.resolve().relative_to(root.resolve()).as_posix() if root else str(path)
            except ValueError:
                return str(path)

        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.by_source.items()))
        out = [f"exported {self.rows} labelled row(s) to {shown(self.path)} ({sources})"]
        if self.skipped:
            out.append(f"skipped {sum(self.skipped.values())} row(s):")
            out += [f"  {n} {SKIP_REASONS.get(k, k)}" for k, n in sorted(self.skipped.items())]
        if self.dvc_file is not None:
            dvc_file = shown(self.dvc_file)
            out.append(f"tracked with DVC in {dvc_file}: data version md5 {self.md5}")
            out.append(
                f"next: `git commit {dvc_file}` to record this version, then "
                "`mlcycle retrain` to train on it"
            )
        else:
            out.append("not tracked with DVC (--no-dvc); next: `mlcycle retrain`")
        return out


def parse_since(text: str) -> float:
    """Unix seconds from ``--since``: a number, or an ISO 8601 time (UTC when no zone).

    Examples
    --------
    >>> parse_since("1700000000")
    1700000000.0
    >>> parse_since("2024-01-02T03:04:05Z")
    1704164645.0
    >>> parse_since("2024-01-02")
    1704153600.0
    """
    value = text.strip()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise DataError(
            f"--since {text!r} is neither Unix seconds nor an ISO 8601 time; give e.g. "
            "2024-05-01, 2024-05-01T12:00:00Z or 1714564800"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _iso(seconds: float) -> str:
    when = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _review_rows(conn: sa.Connection, since: float | None, model: str | None) -> list[FeedbackRow]:
    R = REVIEWS
    query = sa.select(R).where(R.c.state == "labelled", R.c.label.is_not(None))
    if model is not None:
        query = query.where(R.c.model_name == model)
    out = []
    for r in conn.execute(query):
        when = float(r.decided_at if r.decided_at is not None else r.created_at)
        if since is None or when >= since:
            out.append(
                FeedbackRow(r.request_id, int(r.row), r.features, str(r.label), r.decided_by or "",
                            when, "review", r.model_version or "")
            )  # fmt: skip
    return out


def _feedback_rows(
    conn: sa.Connection, since: float | None, model: str | None, skipped: Counter[str]
) -> list[FeedbackRow]:
    F = FEEDBACK
    query = sa.select(F).where(F.c.source != "review")
    if since is not None:
        query = query.where(F.c.time >= since)
    labels = list(conn.execute(query.order_by(F.c.id)))
    logged: dict[tuple[str, int], list[tuple[int, LoggedRow]]] = {}
    found = rows_of_requests(conn, {f.request_id for f in labels})
    for position, p in enumerate(found):  # the table's rows by id, then the batches'
        logged.setdefault((p.request_id, p.row), []).append((position, p))
    out = []
    for f in labels:
        preds = logged.get((f.request_id, int(f.row)), [])
        if model is not None and preds:
            preds = [(i, p) for i, p in preds if p.model_name == model]
            if not preds:
                continue  # predicted by another model: not part of this export
        if not preds:
            skipped["no_prediction"] += 1
            continue
        # The prediction with features, else the champion arm's, else the first logged.
        _, p = min(preds, key=lambda ip: (ip[1].features is None, ip[1].arm != "champion", ip[0]))
        out.append(
            FeedbackRow(f.request_id, int(f.row), p.features, str(f.label), "", float(f.time),
                        str(f.source), str(p.model_version or ""))
        )  # fmt: skip
    return out


def collect_feedback(
    engine: sa.Engine, *, since: float | None = None, model: str | None = None
) -> tuple[list[FeedbackRow], Counter[str]]:
    """Every usable label in the store, a review's winning over another of the same row.

    Parameters
    ----------
    engine
        The monitoring store (:func:`mlcycle.monitor.store.connect`).
    since
        Only labels given at or after this time (Unix seconds).
    model
        Only labels of this model name's predictions (or reviews).

    Returns
    -------
    rows : list of FeedbackRow
        Deduplicated on (request id, row); features not yet checked.
    skipped : collections.Counter
        Rows left out, by reason (see :data:`SKIP_REASONS`).
    """
    skipped: Counter[str] = Counter()
    with snapshot(engine) as conn:
        # A store written before the review queue existed has no reviews table.
        has_reviews = sa.inspect(conn).has_table(REVIEWS.name)
        reviews = _review_rows(conn, since, model) if has_reviews else []
        others = _feedback_rows(conn, since, model, skipped)
    taken = {(r.request_id, r.row) for r in reviews}
    rows = list(reviews)
    for r in others:
        if (r.request_id, r.row) in taken:
            skipped["review_wins"] += 1
        else:
            rows.append(r)
    return rows, skipped


def _numeric_value(value: Any) -> float | None:
    """A numeric feature's value (NaN when missing), or None when it is not a number."""
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        if not value.strip():
            return math.nan
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) or math.isnan(number) else None


def _check_row(row: FeedbackRow, schema: Schema) -> tuple[dict[str, Any] | None, str | None]:
    """The row's data values in schema order, or the reason it cannot be used."""
    from mlcycle.monitor.feedback import label_text

    if row.features is None:
        return None, "no_features"
    try:
        features = json.loads(row.features)
    except ValueError:
        return None, "bad_value"
    if not isinstance(features, Mapping):
        return None, "bad_value"
    names = schema.feature_names
    if any(n not in features for n in names):
        return None, "missing_feature"
    if any(k not in names for k in features):
        return None, "unknown_feature"
    if row.label not in schema.classes:
        return None, "unknown_label"
    values: dict[str, Any] = {}
    for spec in schema.features:
        raw = features[spec.name]
        if spec.kind == "numeric":
            number = _numeric_value(raw)
            if number is None:
                return None, "bad_value"
            values[spec.name] = number
        else:
            text = "" if raw is None else label_text(raw)
            if text is None:
                return None, "bad_value"
            values[spec.name] = text
    values[schema.label] = row.label
    values.update(
        {
            "_request_id": row.request_id,
            "_row": row.row,
            "_labelled_by": row.labelled_by,
            "_labelled_at": _iso(row.labelled_at),
            "_source": row.source,
            "_model_version": row.model_version,
        }
    )
    return values, None


def feedback_frame(
    rows: Sequence[FeedbackRow], schema: Schema
) -> tuple[pd.DataFrame, Counter[str]]:
    """The rows that fit ``schema`` as a table: data columns, then provenance columns.

    Sorted by the time each row was labelled (then request id and row), so the same
    labels always give the same file.

    Returns
    -------
    frame : pandas.DataFrame
        Columns: the schema's features in order, its label, :data:`PROVENANCE_COLUMNS`.
    skipped : collections.Counter
        Rows that do not fit, by reason.
    """
    import pandas as pd

    skipped: Counter[str] = Counter()
    kept: list[tuple[float, str, int, dict[str, Any]]] = []
    for row in rows:
        values, reason = _check_row(row, schema)
        if values is None:
            skipped[reason or "bad_value"] += 1
        else:
            kept.append((row.labelled_at, row.request_id, row.row, values))
    kept.sort(key=lambda k: k[:3])
    columns = [*schema.feature_names, schema.label, *PROVENANCE_COLUMNS]
    frame = pd.DataFrame([k[3] for k in kept], columns=columns)
    for spec in schema.numeric:
        frame[spec.name] = frame[spec.name].astype("float64")
    return frame, skipped


def _write_atomically(frame: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            frame.to_csv(fh, index=False, lineterminator="\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _no_labels(store: str, out: Path, skipped: Counter[str]) -> DataError:
    if skipped:
        reasons = "; ".join(f"{n} {SKIP_REASONS.get(k, k)}" for k, n in sorted(skipped.items()))
        return DataError(
            f"none of the labelled rows in the monitoring store {store} can be used: "
            f"{reasons}. {out} was left as it was"
        )
    return DataError(
        f"there is no labelled feedback yet in the monitoring store {store}. Get some by "
        "sending true labels for logged predictions (POST /feedback with request_id, row, "
        "label), importing a CSV of them (`mlcycle feedback import FILE.csv`), or labelling "
        f"queued rows on the server's review page. {out} was left as it was"
    )


def export_feedback(
    engine: sa.Engine,
    schema: Schema,
    out: Path,
    *,
    since: float | None = None,
    model: str | None = None,
    dvc_root: Path | None = None,
    store_name: str = "",
) -> ExportSummary:
    """Write the store's labels as a dataset file, and track it with DVC.

    Parameters
    ----------
    engine
        The monitoring store.
    schema
        The training data's schema: the file's columns and the checks of each row.
    out
        The CSV file to write (replaced atomically; untouched when nothing is exported).
    since, model
        Only labels given from ``since`` on, of predictions by ``model`` (a name).
    dvc_root
        The DVC repository to track ``out`` in (a new data version per change); None:
        not tracked.
    store_name
        How messages name the store.

    Returns
    -------
    ExportSummary
        Rows by source, skipped rows by reason, the DVC file and md5.

    Raises
    ------
    DataError
        No usable label (the message says how to get some); ``out`` outside the DVC
        repository; an image model (the log holds no pixels).
    ProjectError
        ``dvc add`` failed.
    """
    if schema.image:
        raise DataError(
            f"the model takes the image feature {schema.image[0].name!r}; the prediction log "
            "holds each image's brightness and contrast, not its pixels, so its labels cannot "
            "become a dataset file. Add the labelled images to the .npz data and train again"
        )
    rows, skipped = collect_feedback(engine, since=since, model=model)
    frame, bad = feedback_frame(rows, schema)
    skipped.update(bad)
    if len(frame) == 0:
        raise _no_labels(store_name or str(engine.url), out, skipped)
    _write_atomically(frame, out)
    summary = ExportSummary(
        path=out,
        rows=len(frame),
        by_source=dict(Counter(frame["_source"].tolist())),
        skipped=dict(skipped),
    )
    if dvc_root is not None:
        from mlcycle.data import dvc
        from mlcycle.data.version import recorded_md5

        summary.dvc_file = dvc.add(dvc_root, out)
        summary.md5 = recorded_md5(out)
    return summary


@dataclass
class FeedbackData:
    """A feedback file read back: its data as a :class:`Dataset`, and its provenance.

    ``dataset`` has the training data's layout (see :class:`Dataset`), so its frame and
    labels concatenate with a training split (:meth:`append_to`). ``provenance`` maps
    each of :data:`PROVENANCE_COLUMNS` to an array with one value per row (``_row`` as
    int64, the others as ``str``, empty where unknown).
    """

    dataset: Dataset
    provenance: dict[str, np.ndarray[Any, Any]]

    def __len__(self) -> int:
        return len(self.dataset)

    def append_to(self, base: Dataset) -> Dataset:
        """``base`` followed by these rows (with ``base``'s schema, version and path).

        Raises
        ------
        SchemaError
            ``base`` has other features or another label than this file.
        """
        import pandas as pd

        mine = self.dataset.schema
        if base.schema.feature_names != mine.feature_names or base.schema.label != mine.label:
            raise SchemaError(
                f"cannot append feedback with features {mine.feature_names} and label "
                f"'{mine.label}' to data with {base.schema.feature_names} and "
                f"'{base.schema.label}'; export the feedback again with the data's schema"
            )
        frame = pd.concat([base.frame, self.dataset.frame], ignore_index=True)
        y = np.concatenate([base.y, self.dataset.y])
        return Dataset(frame=frame, y=y, schema=base.schema, version=base.version, path=base.path)


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(
            f"feedback file {path} does not exist; write it with `mlcycle data feedback`"
        )
    try:
        return pd.read_csv(path, dtype={c: str for c in _PROVENANCE_TEXT})
    except pd.errors.EmptyDataError:
        raise DataError(
            f"feedback file {path} is empty; export it with `mlcycle data feedback`"
        ) from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"feedback file {path} could not be read as CSV: {first}") from None


def load_feedback(path: Path, schema: Schema, *, root: Path | None = None) -> FeedbackData:
    """Read a file written by :func:`export_feedback`, checked against ``schema``.

    Parameters
    ----------
    path
        The feedback CSV file.
    schema
        The training data's schema; the file must have its features and label (in any
        order) and the provenance columns, and nothing else.
    root
        The project root, for the dataset's version path; default: the file's folder.

    Returns
    -------
    FeedbackData
        The data as a :class:`Dataset` (even of a single class) and the provenance.

    Raises
    ------
    DataError
        The file is missing, unreadable or has no rows.
    SchemaError
        Its columns are not the schema's plus the provenance columns, a numeric feature
        holds text, or a label is not one of the schema's classes.
    """
    import pandas as pd

    from mlcycle.data._values import parse_numbers, text_values
    from mlcycle.data.version import data_version

    path = Path(path)
    frame = _read(path)
    columns = [str(c) for c in frame.columns]
    expected = [*schema.feature_names, schema.label, *PROVENANCE_COLUMNS]
    missing = [c for c in expected if c not in columns]
    unexpected = [c for c in columns if c not in expected]
    if missing or unexpected or len(columns) != len(expected):
        raise SchemaError(
            f"feedback file {path} does not match the data's schema: missing columns "
            f"{missing}, unexpected columns {unexpected}. It needs the schema's features, "
            f"the label '{schema.label}' and {list(PROVENANCE_COLUMNS)}; export it again "
            "with `mlcycle data feedback` (the schema changed since it was written)"
        )
    if len(frame) == 0:
        raise DataError(f"feedback file {path} has no rows; export it with `mlcycle data feedback`")
    out: dict[str, Any] = {}
    for spec in schema.features:
        if spec.kind == "numeric":
            values, bad = parse_numbers(frame[spec.name])
            if bad.any():
                raise SchemaError(
                    f"feedback file {path}: numeric column '{spec.name}' holds "
                    f"{int(bad.sum())} value(s) that are not numbers; export it again"
                )
            out[spec.name] = pd.Series(values.astype(np.float32), dtype="float32")
        else:
            out[spec.name] = pd.Series(
                ["" if t is None else t for t in text_values(frame[spec.name])], dtype=str
            )
    labels = ["" if t is None else t for t in text_values(frame[schema.label])]
    unknown = sorted(set(labels) - set(schema.classes))
    if unknown:
        raise SchemaError(
            f"feedback file {path}: labels {unknown} are not among the classes "
            f"{schema.classes}; fix them or add the classes to the schema file"
        )
    rows = pd.to_numeric(frame["_row"], errors="coerce")
    if rows.isna().any() or (rows % 1 != 0).any():
        raise SchemaError(f"feedback file {path}: column '_row' must hold whole numbers")
    provenance: dict[str, np.ndarray[Any, Any]] = {
        c: np.array(["" if t is None else t for t in text_values(frame[c])], dtype=str)
        for c in _PROVENANCE_TEXT
    }
    provenance["_row"] = rows.to_numpy(dtype=np.int64)
    provenance = {c: provenance[c] for c in PROVENANCE_COLUMNS}
    dataset = Dataset(
        frame=pd.DataFrame(out, columns=schema.feature_names),
        y=np.array(labels, dtype=str),
        schema=schema,
        version=data_version(path, root or path.parent),
        path=path,
    )
    return FeedbackData(dataset=dataset, provenance=provenance)
