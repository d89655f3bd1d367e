"""What the prediction store says about each arm of a rollout since a time.

:func:`gather` reads the ``predictions`` rows of one model logged in ``[since, until)``
and sums them up per arm (:class:`ArmSample`): requests, failed requests, one latency per
request, the predicted-class mix and, where feedback was given, the true and predicted
labels. In shadow mode the challenger is the ``shadow`` arm (its answers to mirrored
requests) and :class:`ShadowSample` compares it row by row with the champion's answers
to the same requests.

Conventions:

* a request is a distinct ``request_id`` of an arm; it is an error when any of its rows
  has an ``error`` (a failed request, or a row with no finite probability);
* ``latency_ms`` holds one value per request (the request's latency is logged on each of
  its rows); requests logged without a latency are left out of it;
* ``class_counts``, ``y_true`` and ``y_pred`` count rows with a predicted label: rows with
  no label (failures) are skipped there, as they already count in ``errors``.

Four queries at most (SQLAlchemy Core, grouped in the database), so tens of thousands of
rows take a fraction of a second. Standard library, numpy and SQLAlchemy only: the server
imports this module.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from mlcycle.monitor.log_batches import expand_batches
from mlcycle.monitor.store import FEEDBACK, PREDICTIONS

__all__ = ["ArmSample", "Evidence", "ShadowSample", "gather"]

CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"


@dataclass(frozen=True, eq=False)
class ArmSample:
    """One arm's predictions (see the module notes for what counts).

    Examples
    --------
    >>> s = ArmSample(requests=4, errors=1, y_true=["a", "b"], y_pred=["a", "a"])
    >>> s.error_rate, s.labelled, s.accuracy
    (0.25, 2, 0.5)
    """

    #: Distinct requests (``request_id``) answered by this arm.
    requests: int = 0
    #: Requests with an error on any of their rows.
    errors: int = 0
    #: One latency (ms) per request, float64.
    latency_ms: np.ndarray[Any, np.dtype[np.float64]] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float64)
    )
    #: Predicted label -> rows (rows without a label are left out).
    class_counts: dict[str, int] = field(default_factory=dict)
    #: True labels of the rows with feedback (and a predicted label).
    y_true: list[str] = field(default_factory=list)
    #: Predicted labels of the same rows, in the same order.
    y_pred: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows with a predicted label."""
        return sum(self.class_counts.values())

    @property
    def error_rate(self) -> float:
        """Share of requests that failed (0.0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0

    @property
    def labelled(self) -> int:
        """Rows with feedback."""
        return len(self.y_true)

    @property
    def correct(self) -> int:
        """Labelled rows predicted right."""
        return sum(t == p for t, p in zip(self.y_true, self.y_pred, strict=True))

    @property
    def accuracy(self) -> float | None:
        """Share of labelled rows predicted right; ``None`` without labels."""
        return self.correct / self.labelled if self.y_true else None


@dataclass(frozen=True)
class ShadowSample:
    """The shadow's answers set against the champion's, row by row."""

    #: Rows logged both by the champion and the shadow (same request id and row).
    pairs: int
    #: Pairs whose predicted labels differ (a missing label on one side only differs).
    disagreements: int
    #: Mean of ``|p_shadow(c) - p_champion(c)|``, ``c`` the champion's predicted class,
    #: over the pairs where the champion has a label and a finite ``p(c)`` (a shadow
    #: without a finite ``p(c)`` counts as 0); NaN without such pairs.
    probability_difference: float

    @property
    def disagreement_rate(self) -> float:
        """Share of pairs that disagree (0.0 without pairs)."""
        return self.disagreements / self.pairs if self.pairs else 0.0


@dataclass(frozen=True, eq=False)
class Evidence:
    """Both arms of a rollout (and the shadow comparison in shadow mode)."""

    champion: ArmSample
    #: The ``challenger`` arm, or in shadow mode the ``shadow`` arm.
    challenger: ArmSample
    #: Only in shadow mode.
    shadow: ShadowSample | None = None


def gather(
    engine: sa.Engine,
    *,
    model_name: str,
    since: float,
    shadow: bool = False,
    until: float | None = None,
    champion_version: str | None = None,
) -> Evidence:
    """Sum up the store's rows of ``model_name`` logged in ``[since, until)`` per arm.

    Parameters
    ----------
    engine
        The monitoring store (:func:`mlcycle.monitor.store.connect`).
    model_name
        Only this model's rows (``PREDICTIONS.model_name``).
    since, until
        Unix seconds: rows with ``since <= time`` (and ``time < until`` when given).
    shadow
        Shadow mode: the challenger is the ``shadow`` arm and the row-by-row comparison
        with the champion is computed; otherwise the ``challenger`` arm, no comparison.
    champion_version
        Only the champion rows of this model version (a window reaching back before the
        rollout may hold an earlier champion's rows).

    Returns
    -------
    Evidence
        The champion's and challenger's samples (empty when an arm logged nothing).
    """
    other = SHADOW if shadow else CHALLENGER
    expand_batches(engine)
    p = PREDICTIONS
    window = [*_window(p, model_name, since, until), p.c.arm.in_((CHAMPION, other))]
    if champion_version is not None:
        window.append(sa.or_(p.c.arm != CHAMPION, p.c.model_version == champion_version))

    failed = sa.func.max(sa.case((p.c.error.is_not(None), 1), else_=0))
    per_request = (
        sa.select(p.c.arm, sa.func.max(p.c.latency_ms), failed)
        .where(*window)
        .group_by(p.c.arm, p.c.request_id)
    )
    per_class = (
        sa.select(p.c.arm, p.c.label, sa.func.count())
        .where(*window, p.c.label.is_not(None))
        .group_by(p.c.arm, p.c.label)
    )
    f = FEEDBACK
    labelled = (
        sa.select(p.c.arm, f.c.label, p.c.label)
        .join(f, sa.and_(p.c.request_id == f.c.request_id, p.c.row == f.c.row))
        .where(*window, p.c.label.is_not(None))
    )
    arms: dict[str, _Tally] = {CHAMPION: _Tally(), other: _Tally()}
    with engine.connect() as conn:
        for arm, latency, error in conn.execute(per_request):
            tally = arms[arm]
            tally.requests += 1
            tally.errors += int(error)
            if latency is not None:
                tally.latency.append(float(latency))
        for arm, label, n in conn.execute(per_class):
            arms[arm].classes[str(label)] = int(n)
        for arm, true, pred in conn.execute(labelled):
            arms[arm].y_true.append(str(true))
            arms[arm].y_pred.append(str(pred))
        pairs = _shadow_sample(conn, model_name, since, until) if shadow else None
    return Evidence(champion=arms[CHAMPION].sample(), challenger=arms[other].sample(), shadow=pairs)


@dataclass
class _Tally:
    requests: int = 0
    errors: int = 0
    latency: list[float] = field(default_factory=list)
    classes: dict[str, int] = field(default_factory=dict)
    y_true: list[str] = field(default_factory=list)
    y_pred: list[str] = field(default_factory=list)

    def sample(self) -> ArmSample:
        return ArmSample(
            requests=self.requests,
            errors=self.errors,
            latency_ms=np.asarray(self.latency, dtype=np.float64),
            class_counts=self.classes,
            y_true=self.y_true,
            y_pred=self.y_pred,
        )


def _window(
    table: sa.FromClause, model_name: str, since: float, until: float | None
) -> list[sa.ColumnElement[bool]]:
    """The conditions on ``table`` (``predictions`` or an alias) of the rows analysed."""
    conditions = [table.c.model_name == model_name, table.c.time >= since]
    if until is not None:
        conditions.append(table.c.time < until)
    return conditions


def _shadow_sample(
    conn: sa.Connection, model_name: str, since: float, until: float | None
) -> ShadowSample:
    """Pair the champion's and the shadow's rows of the same request and row."""
    champion = PREDICTIONS.alias("champion")
    shadow = PREDICTIONS.alias("shadow")
    query = (
        sa.select(
            champion.c.label, champion.c.probabilities, shadow.c.label, shadow.c.probabilities
        )
        .join(
            shadow,
            sa.and_(
                shadow.c.request_id == champion.c.request_id,
                shadow.c.row == champion.c.row,
                shadow.c.arm == SHADOW,
                *_window(shadow, model_name, since, until),
            ),
        )
        .where(champion.c.arm == CHAMPION, *_window(champion, model_name, since, until))
    )
    rows = conn.execute(query).all()
    disagreements = 0
    differences: list[float] = []
    for c_label, c_probs, s_label, s_probs in rows:
        if c_label != s_label:
            disagreements += 1
        if c_label is None:
            continue
        p_champion = _probability(c_probs, c_label)
        if p_champion is None:
            continue
        p_shadow = _probability(s_probs, c_label)
        differences.append(abs((p_shadow or 0.0) - p_champion))
    mean = math.fsum(differences) / len(differences) if differences else math.nan
    return ShadowSample(pairs=len(rows), disagreements=disagreements, probability_difference=mean)


def _probability(text: str | None, label: str) -> float | None:
    """``p(label)`` of a logged probabilities JSON object; ``None`` when missing or not
    finite."""
    if not text:
        return None
    try:
        value = json.loads(text).get(label)
    except (ValueError, AttributeError):  # not JSON, or not an object
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
