"""The review queue on a real SQLite store: its state machine, the compare-and-set on
decisions, the feedback a label writes, statistics and the live automation mode.

``queue_checks`` are shared with tests/review/test_queue_postgres.py, which runs them on
PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlcycle.monitor.store import FEEDBACK, connect
from mlcycle.review.queue import NewReview, ReviewError, ReviewItem, ReviewQueue, is_review_id
from mlcycle.review.settings import AutomationSettings
from mlcycle.review.tables import REVIEWS

CLASSES = ["high", "low", "mid"]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> float:
        self.now += seconds
        return self.now


def new(
    request_id: str, row: int = 0, *, mode: str = "assist", suggestion: str | None = "high"
) -> NewReview:
    return NewReview(
        request_id, row, "mixed", None if mode == "human_only" else "v1", mode,
        {"x0": float(row), "color": "red"},
        suggestion=None if mode == "human_only" else suggestion,
        confidence=None if mode == "human_only" else 0.7,
        probabilities=None if mode == "human_only" else {"high": 0.7, "low": 0.2, "mid": 0.1},
    )  # fmt: skip


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    e = connect(tmp_path / "monitor.db")
    yield e
    e.dispose()


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def queue(engine: sa.Engine, clock: Clock) -> ReviewQueue:
    return ReviewQueue(engine, model_name="mixed", clock=clock)


def feedback_rows(engine: sa.Engine) -> list[tuple[Any, ...]]:
    f = FEEDBACK
    query = sa.select(f.c.request_id, f.c.row, f.c.label, f.c.previous_label, f.c.source)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query.order_by(f.c.request_id, f.c.row))]


# -- checks shared with PostgreSQL ------------------------------------------------------------


def check_enqueue_is_one_commit_with_fresh_ids(queue: ReviewQueue) -> None:
    items = queue.enqueue([new("r1", 0), new("r1", 1), new("r2", 0, mode="human_only")])
    assert [(i.request_id, i.row, i.state) for i in items] == [
        ("r1", 0, "pending"), ("r1", 1, "pending"), ("r2", 0, "pending"),
    ]  # fmt: skip
    assert all(is_review_id(i.review_id) for i in items)
    assert len({i.review_id for i in items}) == 3
    # Another engine (another worker) sees them at once: the insert was committed.
    engine = sa.create_engine(queue.engine.url)
    try:
        other = ReviewQueue(engine)
        assert other.get(items[0].review_id) == items[0]
        assert [e["action"] for e in other.events(items[2].review_id)] == ["queued"]
        assert other.get(items[2].review_id).suggestion is None
    finally:
        engine.dispose()
    assert queue.counts() == {"pending": 3, "escalated": 0, "labelled": 0, "total": 3}


def check_two_reviewers_labelling_at_once_one_wins(queue: ReviewQueue) -> None:
    (item,) = queue.enqueue([new("race", 0)])
    barrier = threading.Barrier(2)

    class Racing(ReviewQueue):
        """Both reviewers read the item before either writes (the compare-and-set decides)."""

        def get(self, review_id: str) -> ReviewItem:
            found = super().get(review_id)
            if found.state == "pending":
                barrier.wait(10)
            return found

    racing = Racing(queue.engine, clock=queue.clock)
    results: dict[str, Any] = {}

    def label(who: str, label: str) -> None:
        try:
            results[who] = racing.decide(item.review_id, "label", who, label, classes=CLASSES)
        except ReviewError as exc:
            results[who] = exc

    threads = [threading.Thread(target=label, args=a) for a in (("ana", "low"), ("bo", "mid"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    won = [v for v in results.values() if isinstance(v, ReviewItem)]
    lost = [v for v in results.values() if isinstance(v, ReviewError)]
    assert len(won) == 1 and len(lost) == 1, results
    winner = won[0]
    assert lost[0].status == 409
    assert f"labelled {winner.label!r} by {winner.decided_by}" in str(lost[0])
    stored = queue.get(item.review_id)
    assert (stored.state, stored.label, stored.revision) == ("labelled", winner.label, 1)
    assert [e["action"] for e in queue.events(item.review_id)] == ["queued", "label"]


def check_counts_and_agreement_add_up(queue: ReviewQueue) -> None:
    items = queue.enqueue([new("s", i, mode="shadow") for i in range(3)])
    items += queue.enqueue([new("h", 0, mode="human_only")])
    queue.decide(items[0].review_id, "label", "ana", "high", classes=CLASSES)  # agrees
    queue.decide(items[1].review_id, "label", "ana", "low", classes=CLASSES)  # disagrees
    queue.decide(items[3].review_id, "label", "ana", "mid", classes=CLASSES)  # no suggestion
    queue.add_counts("mixed", {("partial", "automatic"): 6, ("full", "automatic"): 10})
    queue.add_counts("mixed", {("partial", "automatic"): 2})
    queue.add_counts("other-model", {("full", "automatic"): 1000})
    stats = queue.stats()
    assert stats["rows"] == {"automatic": 18, "review": 4, "total": 22}
    assert stats["automation_rate"] == pytest.approx(18 / 22)
    assert stats["agreement"] == {"compared": 2, "agreed": 1, "rate": 0.5}
    assert stats["reviews"] == {"pending": 1, "escalated": 0, "labelled": 3}
    shadow = stats["by_mode"]["shadow"]
    assert shadow["rows"] == {"automatic": 0, "review": 3, "total": 3}
    assert shadow["automation_rate"] == 0.0
    assert shadow["agreement"]["rate"] == 0.5
    assert stats["by_mode"]["partial"]["automation_rate"] == 1.0
    assert stats["by_mode"]["human_only"]["agreement"] == {"compared": 0, "agreed": 0, "rate": None}
    assert list(stats["by_mode"]) == ["human_only", "shadow", "partial", "full"]


def check_the_live_mode_is_a_compare_and_set(queue: ReviewQueue) -> None:
    default = AutomationSettings(mode="assist", threshold=0.8)
    assert queue.get_automation("mixed", default).to_dict() == {
        "model_name": "mixed", "mode": "assist", "threshold": 0.8, "revision": 0,
        "updated_at": None, "updated_by": "", "source": "config",
    }  # fmt: skip
    first = queue.set_automation("mixed", "partial", 0.95, "ana")
    assert (first.mode, first.threshold, first.revision, first.source) == (
        "partial",
        0.95,
        1,
        "store",
    )
    second = queue.set_automation("mixed", "full", 0.95, "bo")
    assert queue.get_automation("mixed", default) == second
    assert (second.revision, second.updated_by) == (2, "bo")
    assert queue.get_automation("other", default).source == "config"


QUEUE_CHECKS: list[Callable[[ReviewQueue], None]] = [
    check_enqueue_is_one_commit_with_fresh_ids,
    check_two_reviewers_labelling_at_once_one_wins,
    check_counts_and_agreement_add_up,
    check_the_live_mode_is_a_compare_and_set,
]


@pytest.mark.parametrize("check", QUEUE_CHECKS, ids=[c.__name__[6:] for c in QUEUE_CHECKS])
def test_queue_on_sqlite(queue: ReviewQueue, check: Callable[[ReviewQueue], None]) -> None:
    check(queue)


# -- the state machine --------------------------------------------------------------------------


def test_skipped_items_go_behind_the_others(queue: ReviewQueue, clock: Clock) -> None:
    a, b, c = queue.enqueue([new("q", 0), new("q", 1), new("q", 2)])
    assert queue.next() == a
    clock.tick()
    skipped = queue.decide(a.review_id, "skip", "ana", note="unsure")
    assert (skipped.state, skipped.skips, skipped.skipped_at) == ("pending", 1, clock.now)
    assert queue.next() == b
    assert queue.next(exclude=[b.review_id]) == c
    clock.tick()
    queue.decide(b.review_id, "skip", "ana")
    assert [i.review_id for i in queue.list("pending")] == [c.review_id, a.review_id, b.review_id]
    assert queue.next(exclude=[c.review_id, a.review_id, b.review_id]) is None


def test_escalated_items_leave_the_pending_queue_and_can_still_be_labelled(
    queue: ReviewQueue,
) -> None:
    (item,) = queue.enqueue([new("e", 0)])
    escalated = queue.decide(item.review_id, "escalate", "ana", note="ask a doctor")
    assert escalated.state == "escalated"
    assert queue.next() is None
    assert [i.review_id for i in queue.list("escalated")] == [item.review_id]
    with pytest.raises(ReviewError, match="already escalated") as again:
        queue.decide(item.review_id, "escalate", "bo")
    assert again.value.status == 409
    labelled = queue.decide(item.review_id, "label", "dr. who", "mid", classes=CLASSES)
    assert (labelled.state, labelled.label, labelled.decided_by) == ("labelled", "mid", "dr. who")
    events = queue.events(item.review_id)
    assert [(e["action"], e["who"], e["note"]) for e in events] == [
        ("queued", "server", "mode assist"),
        ("escalate", "ana", "ask a doctor"),
        ("label", "dr. who", ""),
    ]


def test_a_labelled_item_cannot_be_decided_again(queue: ReviewQueue, clock: Clock) -> None:
    (item,) = queue.enqueue([new("twice", 0)])
    queue.decide(item.review_id, "label", "ana", "low", classes=CLASSES)
    for action, label in (("label", "high"), ("skip", None), ("escalate", None)):
        with pytest.raises(ReviewError, match=r"already labelled 'low' by ana at 2027-") as exc:
            queue.decide(item.review_id, action, "bo", label, classes=CLASSES)
        assert exc.value.status == 409
    assert queue.get(item.review_id).label == "low"


def test_a_label_that_is_not_a_class_is_422_listing_the_classes(queue: ReviewQueue) -> None:
    (item,) = queue.enqueue([new("cls", 0)])
    with pytest.raises(ReviewError, match=r"'medium' is not one of .*'high', 'low', 'mid'") as exc:
        queue.decide(item.review_id, "label", "ana", "medium", classes=CLASSES)
    assert exc.value.status == 422
    for action, who, label, match in (
        ("label", "ana", None, 'needs "label"'),
        ("approve", "ana", "low", "action must be one of label, skip, escalate"),
        ("label", "  ", "low", "reviewer's name is missing"),
    ):
        with pytest.raises(ReviewError, match=match) as bad:
            queue.decide(item.review_id, action, who, label, classes=CLASSES)
        assert bad.value.status == 422
    assert queue.get(item.review_id).state == "pending"


@pytest.mark.parametrize("review_id", ["rv-00000000000000000000", "nope", "rv-" + "x" * 300])
def test_an_unknown_review_is_404(queue: ReviewQueue, review_id: str) -> None:
    with pytest.raises(ReviewError, match="no review with id") as exc:
        queue.get(review_id)
    assert exc.value.status == 404
    with pytest.raises(ReviewError) as decided:
        queue.decide(review_id, "skip", "ana")
    assert decided.value.status == 404


def test_a_label_becomes_the_predictions_feedback(queue: ReviewQueue, engine: sa.Engine) -> None:
    a, b = queue.enqueue([new("fb", 0), new("fb", 1)])
    queue.decide(a.review_id, "label", "ana", "low", classes=CLASSES)
    assert feedback_rows(engine) == [("fb", 0, "low", None, "review")]
    # Feedback sent earlier through POST /feedback is replaced, and kept.
    with engine.begin() as conn:
        conn.execute(FEEDBACK.insert().values(request_id="fb", row=1, time=1.0, label="high",
                                              previous_label=None, source="api"))  # fmt: skip
    queue.decide(b.review_id, "label", "bo", "mid", classes=CLASSES)
    assert feedback_rows(engine)[1] == ("fb", 1, "mid", "high", "review")
    note = queue.events(b.review_id)[-1]["note"]
    assert "replaced the feedback label 'high' (source api" in note


def test_the_same_label_as_the_feedback_is_kept_and_noted(
    queue: ReviewQueue, engine: sa.Engine
) -> None:
    (item,) = queue.enqueue([new("same", 0)])
    with engine.begin() as conn:
        conn.execute(FEEDBACK.insert().values(request_id="same", row=0, time=1.0, label="low",
                                              previous_label=None, source="api"))  # fmt: skip
    queue.decide(item.review_id, "label", "ana", "low", note="agreed", classes=CLASSES)
    assert feedback_rows(engine) == [("same", 0, "low", None, "api")]
    assert queue.events(item.review_id)[-1]["note"] == (
        "agreed; the feedback already had this label (source api)"
    )


def test_a_retried_request_gets_its_items_back(queue: ReviewQueue) -> None:
    first = queue.enqueue([new("retry", 0), new("retry", 1)])
    assert queue.enqueue([new("retry", 0), new("retry", 1)]) == first
    other = NewReview("retry", 0, "mixed", "v1", "assist", {"x0": 42.0})
    with pytest.raises(ReviewError, match="give every request its own X-Request-ID") as exc:
        queue.enqueue([other])
    assert exc.value.status == 409
    assert queue.counts()["total"] == 2


def test_reviewers_see_the_suggestion_only_where_the_mode_shows_it(queue: ReviewQueue) -> None:
    items = queue.enqueue(
        [new(m, 0, mode=m) for m in ("human_only", "shadow", "assist", "partial")]
    )
    shown = {i.mode: "suggestion" in i.for_reviewer() for i in items}
    assert shown == {"human_only": False, "shadow": False, "assist": True, "partial": True}
    assist = items[2].for_reviewer()
    assert (assist["suggestion"], assist["confidence"]) == ("high", 0.7)
    assert items[1].poll() == {
        "review_id": items[1].review_id, "request_id": "shadow", "row": 0, "state": "pending",
        "label": None, "decided_by": None, "decided_at": None,
    }  # fmt: skip


def test_the_list_is_scoped_to_the_model_and_checks_its_arguments(
    queue: ReviewQueue, engine: sa.Engine, clock: Clock
) -> None:
    queue.enqueue([new("mine", 0)])
    ReviewQueue(engine, model_name="other", clock=clock).enqueue(
        [NewReview("theirs", 0, "other", "v1", "assist", {"x0": 1.0})]
    )
    assert [i.request_id for i in queue.list()] == ["mine"]
    assert queue.counts()["total"] == 1
    assert ReviewQueue(engine).counts()["total"] == 2
    with pytest.raises(ReviewError, match="state must be one of pending, escalated, labelled"):
        queue.list("open")
    with pytest.raises(ReviewError, match="limit must be"):
        queue.list(limit=0)


def test_a_labelled_item_with_a_callback_is_due_for_its_webhook(
    queue: ReviewQueue, clock: Clock
) -> None:
    plain, called = queue.enqueue([new("cb", 0), NewReview(
        "cb", 1, "mixed", "v1", "assist", {"x0": 1.0}, callback_url="http://127.0.0.1:9/hook"
    )])  # fmt: skip
    assert queue.decide(plain.review_id, "label", "ana", "low").notify_due is None
    assert queue.decide(called.review_id, "label", "ana", "low").notify_due == clock.now
    with queue.engine.connect() as conn:
        due = conn.execute(sa.select(REVIEWS.c.review_id).where(REVIEWS.c.notify_due.is_not(None)))
        assert [r for (r,) in due] == [called.review_id]


@pytest.mark.parametrize(
    ("mode", "threshold", "match"),
    [
        ("auto", 0.5, "mode must be one of human_only, shadow, assist, partial, full"),
        ("partial", 1.5, r"threshold must be a number in \[0, 1\]"),
        ("partial", -0.1, r"threshold must be a number in \[0, 1\]"),
    ],
)
def test_an_invalid_mode_or_threshold_is_422(
    queue: ReviewQueue, mode: str, threshold: float, match: str
) -> None:
    with pytest.raises(ReviewError, match=match) as exc:
        queue.set_automation("mixed", mode, threshold, "ana")
    assert exc.value.status == 422
    assert queue.get_automation("mixed", AutomationSettings()).source == "config"


def test_stats_since_counts_only_the_recent_hours(queue: ReviewQueue, clock: Clock) -> None:
    queue.add_counts("mixed", {("full", "automatic"): 5})
    queue.enqueue([new("old", 0)])
    clock.tick(7200)
    queue.add_counts("mixed", {("full", "automatic"): 3})
    queue.enqueue([new("new", 0)])
    assert queue.stats()["rows"] == {"automatic": 8, "review": 2, "total": 10}
    assert queue.stats(since=clock.now - 60)["rows"] == {"automatic": 3, "review": 1, "total": 4}
