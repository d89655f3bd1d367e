"""mlcycle.rollout.evidence: per-arm requests, errors (a failed request once), one latency
per request, the predicted-class mix and the labels joined from feedback, the shadow's
row-by-row comparison with the champion, and the model and time filter, on a real SQLite
store (and PostgreSQL when a server is at hand)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from mlcycle.monitor.store import FEEDBACK, PREDICTION_COLUMNS, PREDICTIONS, connect
from mlcycle.rollout.evidence import ArmSample, gather

MODEL = "iris"


def row(
    request_id: str,
    arm: str = "champion",
    *,
    r: int = 0,
    t: float = 100.0,
    label: str | None = "a",
    probs: dict[str, float] | None = None,
    latency: float | None = 10.0,
    error: str | None = None,
    model: str = MODEL,
) -> dict[str, Any]:
    """A ``predictions`` row as a mapping."""
    if probs is None and label is not None:
        probs = {label: 0.9, "other": 0.1}
    return {
        "request_id": request_id,
        "row": r,
        "time": t,
        "model_name": model,
        "model_version": "2" if arm != "champion" else "1",
        "arm": arm,
        "stage": "",
        "pipeline_id": None,
        "features": None,
        "label": label,
        "confidence": max(probs.values()) if probs else None,
        "probabilities": json.dumps(probs) if probs is not None else None,
        "latency_ms": latency,
        "error": error,
    }


def insert(engine: sa.Engine, rows: Iterable[dict[str, Any]], feedback: Iterable[Any] = ()) -> None:
    rows = list(rows)
    labels = [
        {"request_id": rid, "row": r, "time": 200.0, "label": lab, "source": "api"}
        for rid, r, lab in feedback
    ]
    with engine.begin() as conn:
        if rows:
            conn.execute(PREDICTIONS.insert(), rows)
        if labels:
            conn.execute(FEEDBACK.insert(), labels)


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return connect(tmp_path / "m.db")


def test_counts_requests_per_arm_and_a_failed_request_once(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            # champion: two requests of three rows and one; one row has no finite probability
            *(row("c1", r=i, latency=12.0) for i in range(3)),
            row("c2", latency=30.0, label=None, error="no finite probability"),
            # challenger: one ok request of two rows, one failed request (one row)
            *(row("k1", "challenger", r=i, latency=8.0, label="b") for i in range(2)),
            row("k2", "challenger", latency=50.0, label=None, error="500: boom"),
            # another arm is not read outside shadow mode
            row("s1", "shadow"),
        ],
    )
    ev = gather(engine, model_name=MODEL, since=0.0)
    assert (ev.champion.requests, ev.champion.errors) == (2, 1)
    assert (ev.challenger.requests, ev.challenger.errors) == (2, 1)
    assert ev.challenger.error_rate == 0.5
    assert sorted(ev.champion.latency_ms.tolist()) == [12.0, 30.0]
    assert sorted(ev.challenger.latency_ms.tolist()) == [8.0, 50.0]
    assert ev.champion.latency_ms.dtype == np.float64
    assert ev.champion.class_counts == {"a": 3}
    assert ev.challenger.class_counts == {"b": 2}
    assert ev.champion.rows == 3
    assert ev.shadow is None


def test_a_request_with_one_failed_row_is_one_error(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            row("c1", r=0),
            row("c1", r=1, label=None, error="no finite probability"),
            row("c1", r=2),
        ],
    )
    ev = gather(engine, model_name=MODEL, since=0.0)
    assert (ev.champion.requests, ev.champion.errors) == (1, 1)
    assert ev.champion.class_counts == {"a": 2}


def test_requests_without_latency_are_left_out_of_latencies(engine: sa.Engine) -> None:
    insert(engine, [row("c1", latency=None), row("c2", latency=5.0)])
    ev = gather(engine, model_name=MODEL, since=0.0)
    assert ev.champion.requests == 2
    assert ev.champion.latency_ms.tolist() == [5.0]


def test_labels_are_joined_from_feedback_by_request_and_row(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            row("c1", r=0, label="a"),
            row("c1", r=1, label="b"),
            row("c2", r=0, label="a"),  # no feedback
            row("k1", "challenger", r=0, label="a"),
            row("k2", "challenger", label=None, error="500: boom"),  # failed: skipped
        ],
        feedback=[("c1", 0, "a"), ("c1", 1, "a"), ("k1", 0, "b"), ("k2", 0, "a")],
    )
    ev = gather(engine, model_name=MODEL, since=0.0)
    pairs = sorted(zip(ev.champion.y_true, ev.champion.y_pred, strict=True))
    assert pairs == [("a", "a"), ("a", "b")]
    assert (ev.champion.labelled, ev.champion.accuracy) == (2, 0.5)
    assert (ev.challenger.y_true, ev.challenger.y_pred) == (["b"], ["a"])
    assert ev.challenger.accuracy == 0.0


def test_accuracy_is_none_without_labels() -> None:
    empty = ArmSample()
    assert (empty.labelled, empty.accuracy, empty.error_rate, empty.rows) == (0, None, 0.0, 0)


def test_time_window_and_model_filter(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            row("early", t=99.9),
            row("start", t=100.0),
            row("mid", t=150.0),
            row("end", t=200.0),
            row("other-model", t=150.0, model="other"),
        ],
    )
    assert gather(engine, model_name=MODEL, since=100.0).champion.requests == 3
    assert gather(engine, model_name=MODEL, since=100.0, until=200.0).champion.requests == 2
    assert gather(engine, model_name="other", since=0.0).champion.requests == 1
    nothing = gather(engine, model_name=MODEL, since=1000.0)
    assert (nothing.champion.requests, nothing.challenger.requests) == (0, 0)
    assert nothing.champion.latency_ms.size == 0


def test_shadow_mode_pairs_rows_and_counts_disagreement(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            # r1: two rows, both shadowed; row 1 disagrees
            row("r1", r=0, label="a", probs={"a": 0.9, "b": 0.1}),
            row("r1", r=1, label="a", probs={"a": 0.6, "b": 0.4}),
            row("r1", "shadow", r=0, label="a", probs={"a": 0.7, "b": 0.3}),
            row("r1", "shadow", r=1, label="b", probs={"a": 0.2, "b": 0.8}),
            # r2: the shadow failed (no label, no probabilities): a disagreement, p = 0
            row("r2", label="b", probs={"a": 0.25, "b": 0.75}),
            row("r2", "shadow", label=None, probs=None, error="500: boom"),
            # r3: not mirrored
            row("r3", label="a"),
            # a challenger row is not part of shadow mode
            row("r4", "challenger", label="a"),
        ],
    )
    ev = gather(engine, model_name=MODEL, since=0.0, shadow=True)
    assert ev.shadow is not None
    assert ev.shadow.pairs == 3
    assert ev.shadow.disagreements == 2
    assert ev.shadow.disagreement_rate == pytest.approx(2 / 3)
    # |0.7 - 0.9|, |0.2 - 0.6|, |0 - 0.75|
    assert ev.shadow.probability_difference == pytest.approx((0.2 + 0.4 + 0.75) / 3)
    assert (ev.champion.requests, ev.challenger.requests) == (3, 2)
    assert ev.challenger.errors == 1
    assert ev.challenger.class_counts == {"a": 1, "b": 1}


def test_shadow_pairs_respect_the_time_window(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            row("old", t=50.0),
            row("old", "shadow", t=50.0, label="b"),
            row("new", t=150.0),
            row("new", "shadow", t=150.0),
        ],
    )
    ev = gather(engine, model_name=MODEL, since=100.0, shadow=True)
    assert ev.shadow is not None
    assert (ev.shadow.pairs, ev.shadow.disagreements) == (1, 0)


def test_shadow_without_pairs_has_nan_difference(engine: sa.Engine) -> None:
    insert(engine, [row("c1")])
    ev = gather(engine, model_name=MODEL, since=0.0, shadow=True)
    assert ev.shadow is not None
    assert (ev.shadow.pairs, ev.shadow.disagreements) == (0, 0)
    assert math.isnan(ev.shadow.probability_difference)


def test_champion_without_probability_is_left_out_of_the_difference(engine: sa.Engine) -> None:
    insert(
        engine,
        [
            row("r1", label=None, probs=None, error="no finite probability"),
            row("r1", "shadow", label=None, probs=None, error="no finite probability"),
            row("r2", label="a", probs={"a": 0.5, "b": 0.5}),
            row("r2", "shadow", label="a", probs={"a": 0.75, "b": 0.25}),
        ],
    )
    ev = gather(engine, model_name=MODEL, since=0.0, shadow=True)
    assert ev.shadow is not None
    assert (ev.shadow.pairs, ev.shadow.disagreements) == (2, 0)  # both failing: same answer
    assert ev.shadow.probability_difference == pytest.approx(0.25)


def _many(n: int, seed: int) -> list[tuple[Any, ...]]:
    """``n`` requests of two rows each for the champion and the shadow, as tuples."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[Any, ...]] = []
    for i in range(n):
        latency = float(rng.gamma(2.0, 5.0))
        for r in range(2):
            for arm in ("champion", "shadow"):
                p = float(rng.random())
                label = "a" if p > 0.5 else "b"
                probs = json.dumps({"a": p, "b": 1 - p})
                rows.append(
                    (f"q{i}", r, 1000.0 + i, MODEL, "1", arm, "", None, None, label, max(p, 1 - p),
                     probs, latency, None)
                )  # fmt: skip
    return rows


def test_tens_of_thousands_of_rows_are_counted_and_paired(engine: sa.Engine) -> None:
    # How long this takes is measured by bench/rollout_evidence.py, not here.
    rows = _many(5_000, seed=0)  # 20 000 rows
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in PREDICTION_COLUMNS)})",
            rows,
        )
    ev = gather(engine, model_name=MODEL, since=0.0, shadow=True)
    assert ev.champion.requests == ev.challenger.requests == 5_000
    assert ev.shadow is not None and ev.shadow.pairs == 10_000


def test_gather_on_postgresql(postgres_url: str) -> None:
    engine = connect(postgres_url)
    try:
        insert(
            engine,
            [
                row("r1", r=0, label="a", probs={"a": 0.9, "b": 0.1}),
                row("r1", "shadow", r=0, label="b", probs={"a": 0.4, "b": 0.6}),
                row("r2", label=None, probs=None, error="500: boom"),
                row("r2", "shadow", label=None, probs=None, error="500: boom"),
            ],
            feedback=[("r1", 0, "a")],
        )
        ev = gather(engine, model_name=MODEL, since=0.0, shadow=True)
        assert (ev.champion.requests, ev.champion.errors) == (2, 1)
        assert (ev.challenger.y_true, ev.challenger.y_pred) == (["a"], ["b"])
        assert ev.shadow is not None
        assert (ev.shadow.pairs, ev.shadow.disagreements) == (2, 1)
        assert ev.shadow.probability_difference == pytest.approx(0.5)
    finally:
        engine.dispose()
