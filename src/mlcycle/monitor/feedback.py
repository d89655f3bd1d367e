"""Ground truth for logged predictions: parse it, check it, store it, join it back.

Feedback names a prediction by the request id the server returned and the row of that
request (0 for a single record), and gives its true label. :func:`record_feedback` checks
a whole batch first and then writes all of it in one transaction, or nothing:

==========================================================  ======  ========================
problem                                                     status  ``code``
==========================================================  ======  ========================
a body or CSV row of the wrong shape                         400     ``invalid``
the label is not one of the model's classes                 422     ``unknown_label``
no prediction with that request id and row is logged        404     ``unknown_prediction``
another label is already stored for that prediction         409     ``duplicate``
(send ``overwrite=true`` to replace it)
the same prediction twice in one batch with two labels      409     ``duplicate_in_batch``
==========================================================  ======  ========================

Every item is checked and every problem reported (:class:`FeedbackError` ``.problems``);
when problems of several kinds occur the status is the first of 400, 422, 404, 409 that
applies. Sending the *same* label again is not an error: the item counts as
``unchanged`` and nothing is written, so a client may retry a batch safely. With
``overwrite`` a different label replaces the stored one, which moves to
``previous_label``.

Labels are compared as text, the way predictions are logged (``PREDICTIONS.label`` is
the class name, a string): JSON ``true``/``false`` become ``True``/``False``, whole
numbers ``1`` or ``1.0`` become ``1``, other numbers their shortest form (``0.5``), as
:func:`mlcycle.data.infer.infer_schema` names classes. A text label that is not a class
but spells one the same way (``true`` for ``True``, ``1.0`` for ``1``) is taken as it.

This module imports only the standard library and SQLAlchemy: the server imports it.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.exceptions import DataError, MlcycleError
from mlcycle.monitor.log_read import logged_labels, predicted_classes, rows_of_requests, snapshot
from mlcycle.monitor.store import FEEDBACK

__all__ = [
    "OVERWRITE_HINT",
    "FeedbackError",
    "FeedbackItem",
    "FeedbackResult",
    "import_feedback_csv",
    "import_feedback_text",
    "label_text",
    "labelled_predictions",
    "logged_classes",
    "parse_feedback",
    "record_feedback",
]

#: What the 409 of a stored label says to do.
OVERWRITE_HINT = "send overwrite=true to replace it"
_MAX_ID = 200  # the request_id and label columns are String(200)
_ITEM_KEYS = ("request_id", "label", "row")
_BULK_KEYS = ("feedback", "overwrite")
_CHUNK = 500  # request ids per IN (...) query
_STATUS_ORDER = (400, 422, 404, 409)
_SHOWN = 5  # problems spelled out in an error message


@dataclass(frozen=True)
class FeedbackItem:
    """The true label of row ``row`` of the prediction request ``request_id``."""

    request_id: str
    label: str
    row: int = 0


@dataclass
class FeedbackResult:
    """What a batch did: new labels, replaced ones, repeats, and (skipped) rejects."""

    stored: int = 0
    replaced: int = 0
    unchanged: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {
            "stored": self.stored,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "rejected": len(self.rejected),
            "problems": list(self.rejected),
        }


class FeedbackError(MlcycleError):
    """A feedback batch was refused; nothing of it was stored.

    Attributes
    ----------
    status
        The HTTP status for the whole batch (400, 404, 409 or 422).
    problems
        One dictionary per refused item: ``index`` (position in the batch, ``None`` for
        the body itself), ``request_id``, ``row``, ``code`` and ``message``.
    """

    def __init__(self, message: str, *, status: int, problems: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems

    @classmethod
    def from_problems(cls, problems: list[dict[str, Any]], total: int) -> FeedbackError:
        """The error for ``problems`` found in a batch of ``total`` items."""
        status = next(s for s in _STATUS_ORDER if any(p["status"] == s for p in problems))
        shown = "; ".join(p["message"] for p in problems[:_SHOWN])
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        noun = "item" if total == 1 else "items"
        return cls(
            f"feedback refused, nothing stored: {len(problems)} problem(s) in {total} {noun}: "
            f"{shown}{more}",
            status=status,
            problems=[_public(p) for p in problems],
        )


def _problem(
    index: int | None,
    request_id: Any,
    row: Any,
    code: str,
    status: int,
    message: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "index": index,
        "request_id": request_id if isinstance(request_id, str) else None,
        "row": row if isinstance(row, int) and not isinstance(row, bool) else None,
        "code": code,
        "message": message,
        "status": status,
        **extra,
    }


def _public(problem: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "status"}


# -- parsing ----------------------------------------------------------------------------


def label_text(value: Any) -> str | None:
    """A JSON label as the text predictions are logged with; ``None`` if not a label.

    Examples
    --------
    >>> [label_text(v) for v in ("yes", True, 1, 1.0, 0.5, None, [1])]
    ['yes', 'True', '1', '1', '0.5', None, None]
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _class_of(label: str, classes: Sequence[str]) -> str | None:
    """The class ``label`` names: itself, or the class it spells differently."""
    if label in classes:
        return label
    text = label.strip()
    lowered = text.lower()
    for name in classes:
        if name.lower() == lowered and lowered in ("true", "false"):
            return name
    try:
        number = float(text)
    except ValueError:
        return None
    canonical = label_text(number)
    return canonical if canonical in classes else None


def _parse_item(raw: Any, where: str, index: int | None) -> FeedbackItem | dict[str, Any]:
    """One item, or the problem with it (naming ``where``, e.g. ``feedback[3]``)."""
    if not isinstance(raw, Mapping):
        return _problem(
            index, None, None, "invalid", 400,
            f"{where} must be an object with request_id, label and optional row, "
            f"got {type(raw).__name__}",
        )  # fmt: skip
    rid, label, row = raw.get("request_id"), raw.get("label"), raw.get("row", 0)

    def bad(key: str, message: str) -> dict[str, Any]:
        return _problem(index, rid, row, "invalid", 400, f"{where}.{key} {message}")

    unknown = sorted(str(k) for k in raw if k not in _ITEM_KEYS)
    if unknown:
        return bad(unknown[0], f"is not a feedback field (fields: {', '.join(_ITEM_KEYS)})")
    if "request_id" not in raw:
        return bad("request_id", "is missing")
    if not isinstance(rid, str) or not rid.strip():
        return bad("request_id", f"must be a non-empty string, got {rid!r}")
    if len(rid) > _MAX_ID:
        return bad("request_id", f"is longer than {_MAX_ID} characters")
    if "label" not in raw:
        return bad("label", "is missing")
    text = label_text(label)
    if text is None or not text.strip():
        return bad("label", f"must be a class name (string, number or boolean), got {label!r}")
    if isinstance(row, str) and row.strip().isdigit():
        row = int(row)
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        return bad("row", f"must be a whole number >= 0, got {row!r}")
    return FeedbackItem(request_id=rid, label=text, row=row)


def _parse_all(raws: Sequence[Any], prefix: str) -> tuple[list[FeedbackItem], list[dict[str, Any]]]:
    items: list[FeedbackItem] = []
    problems: list[dict[str, Any]] = []
    for i, raw in enumerate(raws):
        got = _parse_item(raw, f"{prefix}[{i}]", i)
        if isinstance(got, FeedbackItem):
            items.append(got)
        else:
            problems.append(got)
    return items, problems


def parse_feedback(doc: Any) -> list[FeedbackItem]:
    """The items of a feedback request body (parsed JSON).

    Parameters
    ----------
    doc
        One object ``{"request_id": ..., "label": ..., "row": 0}`` (``row`` optional), a
        list of them, or ``{"feedback": [...]}`` (the bulk form; an ``overwrite`` key
        beside it is allowed and left to the caller).

    Returns
    -------
    list of FeedbackItem
        In the order given; labels as text (see :func:`label_text`).

    Raises
    ------
    FeedbackError
        Status 400: the body or an item has the wrong shape. The message and each
        problem name the path, e.g. ``feedback[3].label``.

    Examples
    --------
    >>> parse_feedback({"request_id": "r1", "label": 1})
    [FeedbackItem(request_id='r1', label='1', row=0)]
    >>> parse_feedback({"feedback": [{"request_id": "r1", "row": 2, "label": True}]})
    [FeedbackItem(request_id='r1', label='True', row=2)]
    """
    if isinstance(doc, list):
        raws, prefix = doc, "feedback"
    elif isinstance(doc, Mapping) and "feedback" in doc:
        raws, prefix = doc["feedback"], "feedback"
        extra = sorted(str(k) for k in doc if k not in _BULK_KEYS)
        if extra:
            raise FeedbackError.from_problems(
                [_problem(None, None, None, "invalid", 400,
                          f"{extra[0]} is not a field of a bulk feedback body "
                          f"(fields: {', '.join(_BULK_KEYS)})")], 1
            )  # fmt: skip
        if not isinstance(raws, list):
            raise FeedbackError.from_problems(
                [_problem(None, None, None, "invalid", 400,
                          f"feedback must be a list of items, got {type(raws).__name__}")], 1
            )  # fmt: skip
    elif isinstance(doc, Mapping):
        got = _parse_item(doc, "body", 0)
        if isinstance(got, FeedbackItem):
            return [got]
        raise FeedbackError.from_problems([got], 1)
    else:
        raise FeedbackError.from_problems(
            [_problem(None, None, None, "invalid", 400,
                      "the body must be a feedback object, a list of them or "
                      f'{{"feedback": [...]}}, got {type(doc).__name__}')], 1
        )  # fmt: skip
    if not raws:
        raise FeedbackError.from_problems(
            [_problem(None, None, None, "invalid", 400, f"{prefix} is an empty list")], 1
        )
    items, problems = _parse_all(raws, prefix)
    if problems:
        raise FeedbackError.from_problems(problems, len(raws))
    return items


# -- storing ----------------------------------------------------------------------------


@dataclass
class _Plan:
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _existing(
    conn: sa.Connection, table: sa.Table, ids: Sequence[str], label: bool
) -> dict[tuple[str, int], str | None]:
    """(request_id, row) -> label (or ``None``) of the rows of ``table`` with these ids."""
    found: dict[tuple[str, int], str | None] = {}
    cols = [table.c.request_id, table.c.row, table.c.label if label else sa.null()]
    for chunk in _chunks(ids):
        for rid, row, value in conn.execute(sa.select(*cols).where(table.c.request_id.in_(chunk))):
            found[(rid, int(row))] = value
    return found


def _plan(
    conn: sa.Connection,
    entries: Sequence[tuple[int, FeedbackItem]],
    classes: Sequence[str],
    overwrite: bool,
    hint: str,
    where_of: Callable[[int], str],
) -> _Plan:
    """Check every entry against the classes, the batch and the store; say what to write."""
    plan = _Plan()
    names = [str(c) for c in classes]
    ids = sorted({item.request_id for _, item in entries})
    predicted = logged_labels(conn, ids)
    stored = _existing(conn, FEEDBACK, ids, label=True)
    seen: dict[tuple[str, int], tuple[int, str]] = {}
    for index, item in entries:
        key = (item.request_id, item.row)
        where = where_of(index)
        label = _class_of(item.label, names)
        if label is None:
            known = ", ".join(repr(c) for c in names) if names else "none known"
            plan.problems.append(_problem(
                index, item.request_id, item.row, "unknown_label", 422,
                f"{where}: label {item.label!r} is not one of the model's classes ({known})",
            ))  # fmt: skip
            continue
        if key not in predicted:
            plan.problems.append(_problem(
                index, item.request_id, item.row, "unknown_prediction", 404,
                f"{where}: no prediction with request id {item.request_id!r} row {item.row} "
                "is logged; send the request_id (and row) a prediction returned",
            ))  # fmt: skip
            continue
        if key in seen:
            first, first_label = seen[key]
            if first_label == label:
                plan.unchanged += 1
            else:
                plan.problems.append(_problem(
                    index, item.request_id, item.row, "duplicate_in_batch", 409,
                    f"{where}: request id {item.request_id!r} row {item.row} has label "
                    f"{first_label!r} at feedback[{first}] and {label!r} here; send one",
                ))  # fmt: skip
            continue
        seen[key] = (index, label)
        if key not in stored:
            plan.inserts.append({"request_id": item.request_id, "row": item.row, "label": label})
        elif stored[key] == label:
            plan.unchanged += 1
        elif overwrite:
            plan.updates.append({
                "k_request_id": item.request_id, "k_row": item.row,
                "new_label": label, "old_label": stored[key],
            })  # fmt: skip
        else:
            plan.problems.append(_problem(
                index, item.request_id, item.row, "duplicate", 409,
                f"{where}: feedback for request id {item.request_id!r} row {item.row} is "
                f"already stored (label {stored[key]!r}); {hint}",
            ))  # fmt: skip
    return plan


def _write(conn: sa.Connection, plan: _Plan, source: str, now: float) -> None:
    if plan.inserts:
        rows = [{**r, "time": now, "source": source, "previous_label": None} for r in plan.inserts]
        conn.execute(FEEDBACK.insert(), rows)
    if plan.updates:
        stmt = (
            FEEDBACK.update()
            .where(FEEDBACK.c.request_id == sa.bindparam("k_request_id"))
            .where(FEEDBACK.c.row == sa.bindparam("k_row"))
            .values(
                label=sa.bindparam("new_label"),
                previous_label=sa.bindparam("old_label"),
                time=now,
                source=source,
            )
        )
        conn.execute(stmt, plan.updates)


def _record(
    engine: sa.Engine,
    entries: Sequence[tuple[int, FeedbackItem]],
    *,
    classes: Sequence[str],
    overwrite: bool,
    source: str,
    now: float | None,
    skip_invalid: bool,
    rejected: list[dict[str, Any]],
    total: int,
    hint: str = OVERWRITE_HINT,
    where_of: Callable[[int], str] = "feedback[{}]".format,
) -> FeedbackResult:
    """Check and write ``entries`` (index, item) with problems found earlier in ``rejected``."""
    when = time.time() if now is None else float(now)
    try:
        with engine.begin() as conn:
            plan = _plan(conn, entries, classes, overwrite, hint, where_of)
            problems = sorted([*rejected, *plan.problems], key=lambda p: p["index"] or 0)
            if problems and not skip_invalid:
                raise FeedbackError.from_problems(problems, total)
            _write(conn, plan, source, when)
    except sa.exc.IntegrityError as exc:  # another client stored one of them meanwhile
        raise FeedbackError(
            f"feedback refused, nothing stored: a label for one of these predictions was "
            f"stored at the same time by another request; send the batch again ({exc.orig})",
            status=409,
            problems=[],
        ) from exc
    return FeedbackResult(
        stored=len(plan.inserts),
        replaced=len(plan.updates),
        unchanged=plan.unchanged,
        rejected=[_public(p) for p in problems],
    )


def record_feedback(
    engine: sa.Engine,
    items: Sequence[FeedbackItem],
    *,
    classes: Sequence[str],
    overwrite: bool = False,
    source: str = "api",
    now: float | None = None,
    skip_invalid: bool = False,
) -> FeedbackResult:
    """Store the true labels of logged predictions: all of them, or none.

    Parameters
    ----------
    engine
        The monitoring store (:func:`mlcycle.monitor.store.connect`).
    items
        The feedback, e.g. from :func:`parse_feedback`.
    classes
        The model's classes; a label must name one of them.
    overwrite
        Replace a stored label that differs (the old one moves to ``previous_label``).
        Without it such an item is a 409. The same label again is never an error.
    source
        Recorded with each label: ``api``, ``import:<file>``, ``review``.
    now
        The time stored with the labels (default: now).
    skip_invalid
        Store the valid items and return the others in :attr:`FeedbackResult.rejected`
        instead of refusing the batch.

    Returns
    -------
    FeedbackResult
        ``stored`` (new labels), ``replaced`` (overwritten), ``unchanged`` (the stored
        label was sent again, or an item repeated in the batch) and ``rejected``.

    Raises
    ------
    FeedbackError
        Nothing was stored: ``status`` 422 (label not among ``classes``), 404 (no such
        prediction) or 409 (a different label is stored; or the batch gives one
        prediction two labels), with every problem in ``problems``.
    """
    entries = list(enumerate(items))
    return _record(
        engine, entries, classes=classes, overwrite=overwrite, source=source, now=now,
        skip_invalid=skip_invalid, rejected=[], total=len(entries),
    )  # fmt: skip


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise DataError(f"feedback file {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"feedback file {path} is a folder, not a CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read feedback file {path} as UTF-8 CSV: {exc}") from None
    return header, rows


def import_feedback_csv(
    engine: sa.Engine,
    path: str | Path,
    *,
    classes: Sequence[str],
    overwrite: bool = False,
    skip_invalid: bool = False,
    now: float | None = None,
) -> FeedbackResult:
    """Store the labels of a CSV file with columns ``request_id``, ``label`` (and ``row``).

    Parameters
    ----------
    engine
        The monitoring store.
    path
        A UTF-8 CSV file with a header; other columns are ignored, a missing or blank
        ``row`` is 0. Labels are read as text (``1.0`` matches a class ``1``).
    classes, overwrite, now
        As for :func:`record_feedback`; the source recorded is ``import:<file name>``.
    skip_invalid
        Store the valid rows and report the others (:attr:`FeedbackResult.rejected`,
        each with its ``line`` in the file); by default one bad row refuses the file.

    Returns
    -------
    FeedbackResult
        What was stored, replaced, unchanged and rejected.

    Raises
    ------
    DataError
        The file is missing, unreadable, not CSV, empty, or lacks a required column.
    FeedbackError
        Without ``skip_invalid``: a row is invalid; nothing was stored.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    return _import_rows(
        engine, header, rows, what=f"feedback file {path}", source=f"import:{path.name}",
        classes=classes, overwrite=overwrite, skip_invalid=skip_invalid, now=now,
        hint=f"{OVERWRITE_HINT} (--overwrite)",
    )  # fmt: skip


def import_feedback_text(
    engine: sa.Engine,
    text: str,
    *,
    classes: Sequence[str],
    overwrite: bool = False,
    skip_invalid: bool = False,
    now: float | None = None,
    source: str = "import:api",
    what: str = "the feedback CSV",
) -> FeedbackResult:
    """Store the labels of CSV text, as :func:`import_feedback_csv` does for a file.

    ``POST /admin/feedback`` uses it: the same columns, checks, line numbers and result.

    Parameters
    ----------
    engine
        The monitoring store.
    text
        CSV with a header row: ``request_id``, ``label`` and optionally ``row``.
    classes, overwrite, skip_invalid, now
        As for :func:`import_feedback_csv`.
    source
        Recorded with each label.
    what
        How error messages name the text.

    Returns
    -------
    FeedbackResult
        What was stored, replaced, unchanged and rejected.

    Raises
    ------
    DataError
        The text is not CSV, is empty, or lacks a required column.
    FeedbackError
        Without ``skip_invalid``: a row is invalid; nothing was stored.
    """
    try:
        reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
        header = list(reader.fieldnames or [])
        rows = list(reader)
    except csv.Error as exc:
        raise DataError(f"cannot read {what} as CSV: {exc}") from None
    return _import_rows(
        engine, header, rows, what=what, source=source, classes=classes,
        overwrite=overwrite, skip_invalid=skip_invalid, now=now, hint=OVERWRITE_HINT,
    )  # fmt: skip


def _import_rows(
    engine: sa.Engine,
    header: list[str],
    rows: list[dict[str, str]],
    *,
    what: str,
    source: str,
    classes: Sequence[str],
    overwrite: bool,
    skip_invalid: bool,
    now: float | None,
    hint: str,
) -> FeedbackResult:
    """Check and store the rows of a CSV (``what`` names it in messages)."""
    if not header:
        raise DataError(f"{what} is empty; it needs a header: request_id,label,row")
    missing = [c for c in ("request_id", "label") if c not in header]
    if missing:
        raise DataError(
            f"{what} lacks the column(s) {', '.join(missing)} (it has "
            f"{', '.join(header)}); it needs request_id and label, and optionally row"
        )
    if not rows:
        raise DataError(f"{what} has a header but no rows")
    entries: list[tuple[int, FeedbackItem]] = []
    rejected: list[dict[str, Any]] = []
    for i, raw in enumerate(rows):
        line = i + 2  # the header is line 1 (for files without quoted line breaks)
        fields = {"request_id": raw.get("request_id"), "label": raw.get("label")}
        if (raw.get("row") or "").strip():
            fields["row"] = (raw.get("row") or "").strip()
        got = _parse_item(fields, f"line {line}", i)
        if isinstance(got, FeedbackItem):
            entries.append((i, got))
        else:
            rejected.append({**got, "line": line})
    try:
        result = _record(
            engine, entries, classes=classes, overwrite=overwrite,
            source=source, now=now, skip_invalid=skip_invalid,
            rejected=rejected, total=len(rows), hint=hint,
            where_of=lambda i: f"line {i + 2}",
        )  # fmt: skip
    except FeedbackError as exc:
        _add_lines(exc.problems)
        raise
    _add_lines(result.rejected)
    return result


def _add_lines(problems: list[dict[str, Any]]) -> None:
    for problem in problems:
        if problem.get("index") is not None:
            problem.setdefault("line", problem["index"] + 2)


# -- reading ----------------------------------------------------------------------------


def labelled_predictions(
    engine: sa.Engine,
    *,
    since: float | None = None,
    until: float | None = None,
    model_version: str | None = None,
    arm: str | None = None,
) -> list[tuple[str, str, float]]:
    """The logged predictions that have feedback: (predicted label, true label, time).

    Parameters
    ----------
    engine
        The monitoring store.
    since, until
        Only predictions made at or after ``since`` and before ``until`` (Unix seconds,
        the prediction's time, not the feedback's).
    model_version
        Only this model version's predictions.
    arm
        Only this arm's (``champion``, ``challenger``, ...); by default every arm, so a
        request served by two arms counts twice.

    Returns
    -------
    list of (str, str, float)
        Oldest first. Failed predictions (no label) are left out.
    """
    f = FEEDBACK
    with snapshot(engine) as conn:
        labels = conn.execute(sa.select(f.c.request_id, f.c.row, f.c.label))
        truth = {(rid, int(row)): str(label) for rid, row, label in labels}
        rows = rows_of_requests(
            conn, {rid for rid, _ in truth}, model_version=model_version, features=False
        )
    lo = -math.inf if since is None else since
    hi = math.inf if until is None else until
    found = [
        (str(r.label), truth[(r.request_id, r.row)], float(r.time))
        for r in rows
        if r.label is not None
        and (r.request_id, r.row) in truth
        and lo <= r.time < hi
        and (arm is None or r.arm == arm)
    ]
    return sorted(found, key=lambda t: t[2])  # stable: by time, then as logged


def logged_classes(engine: sa.Engine) -> list[str]:
    """The distinct labels of the logged predictions, sorted: the classes when no bundle
    is at hand."""
    with snapshot(engine) as conn:
        return predicted_classes(conn)
