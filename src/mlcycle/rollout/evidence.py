"""What the prediction store says about each arm of a rollout since a time.

:func:`gather` reads the logged rows of one model logged in ``[since, until)``
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

The rows are read in one snapshot of the store, from the ``predictions`` table and the
batches not expanded yet (:mod:`mlcycle.monitor.log_read`), without their features, and
summed up here. Standard library, numpy and SQLAlchemy only: the server imports this
module.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import sqlalchemy as sa

from mlcycle.monitor.log_read import LoggedRow, snapshot, window_rows, with_feedback

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
    with snapshot(engine) as conn:
        logged = window_rows(conn, since=since, until=until, model_name=model_name,
                             arms=(CHAMPION, other), features=False,
                             columns=_SHADOW_COLUMNS if shadow else _COLUMNS)  # fmt: skip
        logged = with_feedback(conn, logged)
    rows = [
        r for r in logged
        if champion_version is None or r.arm != CHAMPION or r.model_version == champion_version
    ]  # fmt: skip
    arms: dict[str, _Tally] = {CHAMPION: _Tally(), other: _Tally()}
    requests: dict[tuple[str, str], list[Any]] = {}  # (arm, id): [latency, failed]
    for r in rows:
        seen = requests.get((r.arm, r.request_id))
        if seen is None:
            requests[(r.arm, r.request_id)] = [r.latency_ms, r.error is not None]
            continue
        if r.latency_ms is not None and (seen[0] is None or r.latency_ms > seen[0]):
            seen[0] = r.latency_ms
        seen[1] = seen[1] or r.error is not None
    for (arm, _), (latency, failed) in requests.items():
        tally = arms[arm]
        tally.requests += 1
        tally.errors += int(failed)
        if latency is not None:
            tally.latency.append(float(latency))
    for (arm, label), n in Counter((r.arm, r.label) for r in rows if r.label is not None).items():
        arms[arm].classes[label] = n
    for r in rows:
        if r.label is not None and r.true_label is not None:
            arms[r.arm].y_true.append(r.true_label)
            arms[r.arm].y_pred.append(r.label)
    pairs = _shadow_sample(logged) if shadow else None
    return Evidence(champion=arms[CHAMPION].sample(), challenger=arms[other].sample(), shadow=pairs)


#: What the sums need of the ``predictions`` table's columns (and the shadow pairs).
_COLUMNS = ("request_id", "row", "time", "arm", "model_version", "label", "latency_ms", "error")
_SHADOW_COLUMNS = (*_COLUMNS, "probabilities")


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


def _shadow_sample(rows: Sequence[LoggedRow]) -> ShadowSample:
    """Pair the champion's and the shadow's rows of the same request and row."""
    shadows: dict[tuple[str, int], list[LoggedRow]] = {}
    for r in rows:
        if r.arm == SHADOW:
            shadows.setdefault((r.request_id, r.row), []).append(r)
    pairs = [
        (c, s) for c in rows if c.arm == CHAMPION for s in shadows.get((c.request_id, c.row), ())
    ]
    disagreements = 0
    differences: list[float] = []
    for c, s in pairs:
        if c.label != s.label:
            disagreements += 1
        if c.label is None:
            continue
        p_champion = _probability(c.probabilities, c.label)
        if p_champion is None:
            continue
        p_shadow = _probability(s.probabilities, c.label)
        differences.append(abs((p_shadow or 0.0) - p_champion))
    mean = math.fsum(differences) / len(differences) if differences else math.nan
    return ShadowSample(pairs=len(pairs), disagreements=disagreements, probability_difference=mean)


def _loads(text: str) -> Any:
    """JSON: orjson's, or the standard library's for what orjson refuses (``NaN``, which
    ``json.dumps`` writes for a non-finite probability)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _probability(text: str | None, label: str) -> float | None:
    """``p(label)`` of a logged probabilities JSON object; ``None`` when missing or not
    finite."""
    if not text:
        return None
    try:
        value = _loads(text).get(label)
    except (ValueError, AttributeError):  # not JSON, or not an object
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
