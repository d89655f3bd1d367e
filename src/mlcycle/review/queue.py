"""The review queue in the monitoring store: enqueue, list, decide, and the live mode.

:class:`ReviewQueue` works on the tables of :mod:`mlcycle.review.tables` through one
SQLAlchemy engine, so every worker of every server replica shares one queue. Each change
is one transaction; a decision is a compare-and-set on the item's ``revision``, so of two
reviewers labelling the same item at once exactly one wins and the other gets a 409 that
names who labelled it. A label is written to the ``feedback`` table in the same
transaction (source ``review``); a label already there from another source is replaced,
kept in ``previous_label`` and named in the decision's event.
"""

from __future__ import annotations

import builtins
import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from mlcycle.exceptions import MlcycleError
from mlcycle.monitor.store import FEEDBACK, metadata
from mlcycle.review.settings import AUTOMATION_MODES, AutomationSettings
from mlcycle.review.tables import (
    AUTOMATION_COUNTS,
    AUTOMATION_STATE,
    REVIEW_EVENTS,
    REVIEW_STATES,
    REVIEWS,
)

__all__ = [
    "DECISIONS",
    "SHOWN_MODES",
    "AutomationState",
    "NewReview",
    "ReviewError",
    "ReviewItem",
    "ReviewQueue",
    "is_review_id",
]

#: What a reviewer can do with an item.
DECISIONS = ("label", "skip", "escalate")
#: The modes whose items show reviewers the model's suggestion (shadow keeps it hidden,
#: so that people decide blind and agreement measures the model honestly).
SHOWN_MODES = ("assist", "partial")
_ID_PREFIX = "rv-"
_ID_HEX = 20
_MAX_TEXT = 200
_MAX_NOTE = 2000


class ReviewError(MlcycleError):
    """A review that does not exist, or a change it does not allow.

    Parameters
    ----------
    message
        What was wrong and what to do.
    status
        The HTTP status it maps to: 404 unknown item, 409 already decided or changed
        meanwhile, 422 invalid input.
    """

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def is_review_id(text: str) -> bool:
    """Whether ``text`` has the form of a review id (``rv-`` and 20 hex digits).

    Examples
    --------
    >>> is_review_id("rv-0123456789abcdef0123"), is_review_id("rv-x")
    (True, False)
    """
    hexpart = text[len(_ID_PREFIX) :]
    return (
        text.startswith(_ID_PREFIX)
        and len(hexpart) == _ID_HEX
        and all(c in "0123456789abcdef" for c in hexpart)
    )


def _when(t: float | None) -> str:
    if t is None:
        return "at an unknown time"
    return datetime.fromtimestamp(t, UTC).strftime("at %Y-%m-%d %H:%M:%S UTC")


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"raw": text}


@dataclass(frozen=True)
class NewReview:
    """One row to queue: what the caller sent and, unless human_only, the model's answer."""

    request_id: str
    row: int
    model_name: str
    model_version: str | None
    mode: str
    #: The row's validated features: a JSON object, as text or as a mapping.
    features: str | Mapping[str, Any]
    suggestion: str | None = None
    confidence: float | None = None
    probabilities: Mapping[str, float] | None = None
    callback_url: str | None = None


@dataclass(frozen=True)
class ReviewItem:
    """One review as a row of ``reviews`` (JSON columns parsed)."""

    review_id: str
    request_id: str
    row: int
    created_at: float
    model_name: str
    model_version: str | None
    mode: str
    features: dict[str, Any]
    suggestion: str | None
    confidence: float | None
    probabilities: dict[str, float] | None
    state: str
    label: str | None
    decided_by: str | None
    decided_at: float | None
    skips: int
    skipped_at: float | None
    callback_url: str | None
    notified_at: float | None
    notify_attempts: int
    notify_due: float | None
    revision: int

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> ReviewItem:
        """From a ``reviews`` row."""
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        features = _loads(values["features"])
        values["features"] = features if isinstance(features, dict) else {}
        probabilities = _loads(values["probabilities"])
        values["probabilities"] = probabilities if isinstance(probabilities, dict) else None
        return cls(**values)

    @property
    def shows_suggestion(self) -> bool:
        """Whether reviewers may see the model's suggestion (assist and partial modes)."""
        return self.mode in SHOWN_MODES

    def poll(self) -> dict[str, Any]:
        """What the caller polling ``GET /reviews/{id}`` sees."""
        return {
            "review_id": self.review_id,
            "request_id": self.request_id,
            "row": self.row,
            "state": self.state,
            "label": self.label,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
        }

    def for_reviewer(self) -> dict[str, Any]:
        """What a reviewer sees: the model's answer only in the modes that show it."""
        doc: dict[str, Any] = {
            "review_id": self.review_id,
            "state": self.state,
            "mode": self.mode,
            "created_at": self.created_at,
            "request_id": self.request_id,
            "row": self.row,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "features": self.features,
            "label": self.label,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "skips": self.skips,
        }
        if self.shows_suggestion:
            doc.update(
                suggestion=self.suggestion,
                confidence=self.confidence,
                probabilities=self.probabilities,
            )
        return doc


@dataclass(frozen=True)
class AutomationState:
    """A model's live automation mode; ``source`` ``config`` until someone sets one."""

    model_name: str
    mode: str
    threshold: float
    revision: int = 0
    updated_at: float | None = None
    updated_by: str = ""
    source: str = "config"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return dataclasses.asdict(self)


class ReviewQueue:
    """The review queue and the automation mode, in the monitoring store.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect`; the review tables are created in it
        when missing.
    model_name
        Only this model's items are listed, counted and handed out (``None``: all).
    clock
        Seconds since the epoch; every time written comes from it.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        model_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.model_name = model_name
        self.clock = clock
        tables = [REVIEWS, REVIEW_EVENTS, AUTOMATION_STATE, AUTOMATION_COUNTS, FEEDBACK]
        metadata.create_all(engine, tables=tables, checkfirst=True)

    # -- queueing ---------------------------------------------------------------------

    def enqueue(self, items: Sequence[NewReview]) -> list[ReviewItem]:
        """Queue ``items`` in one transaction, committed when this returns.

        A request id queued before with the same rows and features (a caller's retry) gets
        its earlier items back instead of new ones.

        Returns
        -------
        list of ReviewItem
            In the order of ``items``, each ``pending`` with a fresh ``review_id``.

        Raises
        ------
        ReviewError
            409 when a row of the request id is already queued with other features.
        sqlalchemy.exc.SQLAlchemyError
            The store cannot be written (nothing was queued).
        """
        if not items:
            return []
        now = self.clock()
        rows = [self._new_row(item, now) for item in items]
        events = [
            {"review_id": r["review_id"], "time": now, "action": "queued", "who": "server",
             "label": None, "note": f"mode {r['mode']}"}
            for r in rows
        ]  # fmt: skip
        try:
            with self.engine.begin() as conn:
                conn.execute(REVIEWS.insert(), rows)
                conn.execute(REVIEW_EVENTS.insert(), events)
        except sa.exc.IntegrityError:
            return self._replayed(rows)
        return [ReviewItem.from_row(r) for r in rows]

    @staticmethod
    def _new_row(item: NewReview, now: float) -> dict[str, Any]:
        features = item.features if isinstance(item.features, str) else _json(dict(item.features))
        probabilities = None if item.probabilities is None else _json(dict(item.probabilities))
        return {
            "review_id": _ID_PREFIX + secrets.token_hex(_ID_HEX // 2),
            "request_id": item.request_id,
            "row": int(item.row),
            "created_at": now,
            "model_name": item.model_name,
            "model_version": item.model_version,
            "mode": item.mode,
            "features": features,
            "suggestion": item.suggestion,
            "confidence": None if item.confidence is None else float(item.confidence),
            "probabilities": probabilities,
            "state": "pending",
            "label": None,
            "decided_by": None,
            "decided_at": None,
            "skips": 0,
            "skipped_at": None,
            "callback_url": item.callback_url,
            "notified_at": None,
            "notify_attempts": 0,
            "notify_due": None,
            "revision": 0,
        }

    def _replayed(self, rows: list[dict[str, Any]]) -> list[ReviewItem]:
        """The items already queued for these rows, if they are the same (a retry)."""
        request_ids = sorted({r["request_id"] for r in rows})
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(REVIEWS).where(REVIEWS.c.request_id.in_(request_ids)))
            stored = {(r.request_id, r.row): ReviewItem.from_row(r._mapping) for r in found}
        out = []
        for r in rows:
            item = stored.get((r["request_id"], r["row"]))
            if item is None or item.features != _loads(r["features"]):
                raise ReviewError(
                    f"request id {r['request_id']!r} already has rows queued for review with "
                    "other inputs; give every request its own X-Request-ID (or none: the "
                    "server makes one)",
                    409,
                )
            out.append(item)
        return out

    # -- reading ----------------------------------------------------------------------

    def get(self, review_id: str) -> ReviewItem:
        """The item with this id.

        Raises
        ------
        ReviewError
            404 when there is none.
        """
        row = None
        if is_review_id(review_id):
            with self.engine.connect() as conn:
                query = sa.select(REVIEWS).where(REVIEWS.c.review_id == review_id)
                row = conn.execute(query).mappings().first()
        if row is None:
            raise ReviewError(
                f"no review with id {review_id[:60]!r}; review ids are the 'review_id' of a "
                "pending row in a POST /predict answer (rv- and 20 hex digits)",
                404,
            )
        return ReviewItem.from_row(row)

    def events(self, review_id: str) -> builtins.list[dict[str, Any]]:
        """What happened to the item, oldest first: time, action, who, label, note."""
        e = REVIEW_EVENTS
        query = (
            sa.select(e.c.time, e.c.action, e.c.who, e.c.label, e.c.note)
            .where(e.c.review_id == review_id)
            .order_by(e.c.time, e.c.id)
        )
        names = ("time", "action", "who", "label", "note")
        with self.engine.connect() as conn:
            return [dict(zip(names, r, strict=True)) for r in conn.execute(query)]

    def _scoped(self, query: sa.Select[Any]) -> sa.Select[Any]:
        if self.model_name is None:
            return query
        return query.where(REVIEWS.c.model_name == self.model_name)

    def list(
        self, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> builtins.list[ReviewItem]:
        """Items in ``state`` (all when ``None``).

        Open items (pending, escalated) come in queue order, as :meth:`next` hands them
        out; labelled ones newest decision first; all of them newest first.

        Raises
        ------
        ReviewError
            422 for an unknown state or a limit or offset out of range.
        """
        if state is not None and state not in REVIEW_STATES:
            raise ReviewError(
                f"state must be one of {', '.join(REVIEW_STATES)}, not {state!r}", 422
            )
        if not 1 <= limit <= 1000 or not 0 <= offset <= 10**9:
            raise ReviewError("limit must be 1..1000 and offset 0..1000000000", 422)
        r = REVIEWS
        query = self._scoped(sa.select(r))
        if state is None:
            query = query.order_by(r.c.created_at.desc(), r.c.id.desc())
        elif state == "labelled":
            query = query.where(r.c.state == state).order_by(r.c.decided_at.desc(), r.c.id.desc())
        else:
            query = query.where(r.c.state == state).order_by(*_QUEUE_ORDER)
        with self.engine.connect() as conn:
            found = conn.execute(query.limit(limit).offset(offset)).mappings()
            return [ReviewItem.from_row(row) for row in found]

    def next(self, exclude: Iterable[str] = ()) -> ReviewItem | None:
        """The pending item to decide next: the oldest, skipped ones behind the others.

        Parameters
        ----------
        exclude
            Review ids not to hand out (e.g. the ones this reviewer has open).
        """
        query = self._scoped(sa.select(REVIEWS)).where(REVIEWS.c.state == "pending")
        skip = [i for i in exclude if i]
        if skip:
            query = query.where(REVIEWS.c.review_id.not_in(skip))
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(*_QUEUE_ORDER).limit(1)).mappings().first()
        return None if row is None else ReviewItem.from_row(row)

    def counts(self) -> dict[str, int]:
        """Items per state, and ``total``."""
        query = self._scoped(sa.select(REVIEWS.c.state, sa.func.count())).group_by(REVIEWS.c.state)
        with self.engine.connect() as conn:
            found = {str(s): int(n) for s, n in conn.execute(query)}
        counts = {s: found.get(s, 0) for s in REVIEW_STATES}
        counts["total"] = sum(found.values())
        return counts

    # -- deciding ---------------------------------------------------------------------

    def decide(
        self,
        review_id: str,
        action: str,
        who: str,
        label: str | None = None,
        note: str = "",
        *,
        classes: Sequence[str] | None = None,
    ) -> ReviewItem:
        """Label, skip or escalate an item, as ``who``.

        Parameters
        ----------
        review_id
            The item.
        action
            ``label`` (final: the item is ``labelled`` and the label becomes the
            prediction's feedback), ``skip`` (it goes behind the other pending items) or
            ``escalate`` (it leaves the pending queue for someone more senior).
        who
            The reviewer, recorded with the decision.
        label
            The true class, for ``label``.
        note
            Kept in the item's events.
        classes
            The model's classes; a label must be one of them (``None``: not checked).

        Returns
        -------
        ReviewItem
            The item after the decision.

        Raises
        ------
        ReviewError
            404 unknown item; 409 already labelled (naming who and when) or changed
            meanwhile by others too often; 422 unknown action, no reviewer, or a label
            that is not a class.
        """
        if action not in DECISIONS:
            raise ReviewError(f"action must be one of {', '.join(DECISIONS)}, not {action!r}", 422)
        who = who.strip()[:_MAX_TEXT] if isinstance(who, str) else ""
        if not who:
            raise ReviewError("the reviewer's name is missing; say who decides", 422)
        label = self._class(label, classes) if action == "label" else None
        for _ in range(10):  # another reviewer may move it between our read and our write
            item = self.get(review_id)
            if item.state == "labelled":
                raise ReviewError(
                    f"review {review_id} was already labelled {item.label!r} by "
                    f"{item.decided_by} {_when(item.decided_at)}; it cannot be decided again",
                    409,
                )
            if action == "escalate" and item.state == "escalated":
                raise ReviewError(f"review {review_id} is already escalated", 409)
            done = self._apply(item, action, who, label, note[:_MAX_NOTE])
            if done is not None:
                return done
        raise ReviewError(f"review {review_id} kept changing while this was tried; try again", 409)

    @staticmethod
    def _class(label: str | None, classes: Sequence[str] | None) -> str:
        if not isinstance(label, str) or not label.strip():
            raise ReviewError('a label decision needs "label": one of the model\'s classes', 422)
        if classes is None:
            return label[:_MAX_TEXT]
        names = [str(c) for c in classes]
        if label in names:
            return label
        from mlcycle.monitor.feedback import _class_of

        found = _class_of(label, names)
        if found is None:
            known = ", ".join(repr(c) for c in names)
            raise ReviewError(
                f"label {label[:_MAX_TEXT]!r} is not one of the model's classes ({known})", 422
            )
        return found

    def _apply(
        self, item: ReviewItem, action: str, who: str, label: str | None, note: str
    ) -> ReviewItem | None:
        """The decision as a compare-and-set on the item's revision; ``None``: it moved."""
        now = self.clock()
        changes: dict[str, Any] = {"revision": item.revision + 1}
        if action == "label":
            changes.update(state="labelled", label=label, decided_by=who, decided_at=now)
            if item.callback_url:
                changes["notify_due"] = now
        elif action == "skip":
            changes.update(skips=item.skips + 1, skipped_at=now)
        else:
            changes["state"] = "escalated"
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    REVIEWS.update()
                    .where(REVIEWS.c.review_id == item.review_id)
                    .where(REVIEWS.c.revision == item.revision)
                    .values(**changes)
                )
                if result.rowcount != 1:
                    return None
                if action == "label":
                    assert label is not None
                    note = "; ".join(p for p in (note, self._feedback(conn, item, label, now)) if p)
                conn.execute(
                    REVIEW_EVENTS.insert().values(
                        review_id=item.review_id, time=now, action=action, who=who,
                        label=label, note=note,
                    )
                )  # fmt: skip
        except sa.exc.IntegrityError:  # feedback for this row was stored at the same time
            return None
        return dataclasses.replace(item, **changes)

    @staticmethod
    def _feedback(conn: sa.Connection, item: ReviewItem, label: str, now: float) -> str:
        """Write the label as the prediction's feedback; a note when one was there."""
        f = FEEDBACK
        key = (f.c.request_id == item.request_id, f.c.row == item.row)
        old = conn.execute(sa.select(f.c.label, f.c.source).where(*key)).first()
        if old is None:
            conn.execute(
                f.insert().values(
                    request_id=item.request_id, row=item.row, time=now, label=label,
                    previous_label=None, source="review",
                )
            )  # fmt: skip
            return ""
        if old.label == label:
            return f"the feedback already had this label (source {old.source})"
        conn.execute(
            f.update()
            .where(*key)
            .values(label=label, previous_label=old.label, time=now, source="review")
        )
        return (
            f"replaced the feedback label {old.label!r} (source {old.source}; now previous_label)"
        )

    # -- statistics -------------------------------------------------------------------

    def add_counts(self, model_name: str, counts: Mapping[tuple[str, str], int]) -> None:
        """Add rows per (mode, outcome) to this hour's counts, atomically across processes.

        ``outcome`` is ``automatic`` (answered by the model) or ``review`` (queued).
        """
        hour = int(self.clock() // 3600 * 3600)
        rows = [
            {"model_name": model_name, "mode": m, "outcome": o, "hour": hour, "rows": int(n)}
            for (m, o), n in counts.items()
            if n
        ]
        if not rows:
            return
        c = AUTOMATION_COUNTS
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            stmt = sqlite.insert(c) if dialect == "sqlite" else postgresql.insert(c)
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.c.model_name, c.c.mode, c.c.outcome, c.c.hour],
                set_={"rows": c.c.rows + stmt.excluded.rows},
            )
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)
            return
        for row in rows:  # other databases: update, else insert (a racing insert: update)
            for _ in range(3):
                with self.engine.begin() as conn:
                    keys = [c.c[k] == row[k] for k in ("model_name", "mode", "outcome", "hour")]
                    done = conn.execute(c.update().where(*keys).values(rows=c.c.rows + row["rows"]))
                    if done.rowcount:
                        break
                try:
                    with self.engine.begin() as conn:
                        conn.execute(c.insert().values(**row))
                    break
                except sa.exc.IntegrityError:
                    continue

    def stats(self, since: float | None = None) -> dict[str, Any]:
        """Automation rate and the model's agreement with reviewers, overall and per mode.

        Parameters
        ----------
        since
            Only rows counted, and items queued, at or after this time (the counts are
            kept per hour, so they start at the hour ``since`` falls in).

        Rows sent to review are counted from the ``reviews`` table (durable); rows answered
        automatically from ``automation_counts``, which every worker adds to about once a
        second (a worker killed with ``kill -9`` loses at most its last second).

        Returns
        -------
        dict
            ``rows`` (``automatic``, ``review``, ``total``), ``automation_rate``
            (automatic / total; ``None`` without rows), ``agreement`` over labelled items
            that have a suggestion (``compared``, ``agreed``, ``rate``: the model's
            precision on reviewed items), ``reviews`` (items per state) and ``by_mode``
            with the same per mode.
        """
        c, r = AUTOMATION_COUNTS, REVIEWS
        counted = sa.select(c.c.mode, c.c.outcome, sa.func.sum(c.c.rows)).group_by(
            c.c.mode, c.c.outcome
        )
        compared = sa.and_(r.c.state == "labelled", r.c.suggestion.is_not(None))
        agreed = sa.and_(compared, r.c.suggestion == r.c.label)
        reviewed = self._scoped(
            sa.select(
                r.c.mode,
                r.c.state,
                sa.func.count(),
                sa.func.sum(sa.case((compared, 1), else_=0)),
                sa.func.sum(sa.case((agreed, 1), else_=0)),
            )
        ).group_by(r.c.mode, r.c.state)
        if self.model_name is not None:
            counted = counted.where(c.c.model_name == self.model_name)
        if since is not None:
            counted = counted.where(c.c.hour >= int(since // 3600 * 3600))
            reviewed = reviewed.where(r.c.created_at >= since)
        by_mode: dict[str, dict[str, Any]] = {}

        def entry(mode: str) -> dict[str, Any]:
            return by_mode.setdefault(mode, {
                "rows": {"automatic": 0, "review": 0},
                "reviews": dict.fromkeys(REVIEW_STATES, 0),
                "agreement": {"compared": 0, "agreed": 0},
            })  # fmt: skip

        with self.engine.connect() as conn:
            for mode, outcome, n in conn.execute(counted):
                if outcome == "automatic":
                    entry(mode)["rows"]["automatic"] += int(n or 0)
            for mode, state, n, n_compared, n_agreed in conn.execute(reviewed):
                e = entry(mode)
                e["reviews"][state] = e["reviews"].get(state, 0) + int(n)
                e["rows"]["review"] += int(n)
                e["agreement"]["compared"] += int(n_compared or 0)
                e["agreement"]["agreed"] += int(n_agreed or 0)
        total = {
            "rows": {"automatic": 0, "review": 0},
            "reviews": dict.fromkeys(REVIEW_STATES, 0),
            "agreement": {"compared": 0, "agreed": 0},
        }
        for e in by_mode.values():
            for part in ("rows", "reviews", "agreement"):
                for k, v in e[part].items():
                    total[part][k] = total[part].get(k, 0) + v
        for e in (*by_mode.values(), total):
            _rates(e)
        ordered = {m: by_mode[m] for m in AUTOMATION_MODES if m in by_mode}
        return {**total, "by_mode": ordered, "since": since}

    # -- the live mode ----------------------------------------------------------------

    def get_automation(self, model_name: str, default: AutomationSettings) -> AutomationState:
        """The model's mode and threshold: as set through the admin API, else ``default``."""
        query = sa.select(AUTOMATION_STATE).where(AUTOMATION_STATE.c.model_name == model_name)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return AutomationState(model_name, default.mode, float(default.threshold))
        return AutomationState(
            model_name, str(row["mode"]), float(row["threshold"]), int(row["revision"]),
            float(row["updated_at"]), str(row["updated_by"]), "store",
        )  # fmt: skip

    def set_automation(
        self, model_name: str, mode: str, threshold: float, who: str
    ) -> AutomationState:
        """Set the model's mode and threshold for every server that shares this store.

        Raises
        ------
        ReviewError
            422 for an unknown mode (the message lists them) or a threshold outside
            [0, 1].
        """
        if mode not in AUTOMATION_MODES:
            raise ReviewError(
                f"mode must be one of {', '.join(AUTOMATION_MODES)}, not {str(mode)[:40]!r}", 422
            )
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.0 <= threshold <= 1.0
        ):
            raise ReviewError(
                f"threshold must be a number in [0, 1] (the top probability at or above "
                f"which partial mode answers automatically), not {threshold!r}",
                422,
            )
        s = AUTOMATION_STATE
        for _ in range(10):
            now = self.clock()
            current = self.get_automation(model_name, AutomationSettings())
            new = AutomationState(
                model_name, mode, float(threshold), current.revision + 1, now, who[:_MAX_TEXT],
                "store",
            )  # fmt: skip
            values = {"mode": mode, "threshold": new.threshold, "updated_at": now,
                      "updated_by": new.updated_by, "revision": new.revision}  # fmt: skip
            try:
                with self.engine.begin() as conn:
                    if current.source == "config":
                        conn.execute(s.insert().values(model_name=model_name, **values))
                    else:
                        done = conn.execute(
                            s.update()
                            .where(s.c.model_name == model_name)
                            .where(s.c.revision == current.revision)
                            .values(**values)
                        )
                        if done.rowcount != 1:
                            continue
            except sa.exc.IntegrityError:  # another process set it first: read it again
                continue
            return new
        raise ReviewError("the automation mode kept changing while this was tried; try again", 409)


#: Queue order: never-skipped items first, then by when they were (last) skipped; oldest first.
_QUEUE_ORDER = (
    REVIEWS.c.skipped_at.is_not(None),
    REVIEWS.c.skipped_at,
    REVIEWS.c.created_at,
    REVIEWS.c.id,
)


def _rates(e: dict[str, Any]) -> None:
    rows, agreement = e["rows"], e["agreement"]
    rows["total"] = rows["automatic"] + rows["review"]
    e["automation_rate"] = rows["automatic"] / rows["total"] if rows["total"] else None
    agreement["rate"] = (
        agreement["agreed"] / agreement["compared"] if agreement["compared"] else None
    )
