"""Telling a caller its review was decided: POST the decision to its callback URL, durably.

A label on an item with a ``callback_url`` sets its ``notify_due`` in the same transaction
as the decision, so a decision is never forgotten: if the server dies before delivering,
the sweeper of any worker (of any replica) delivers it later. Every delivery round starts
with a claim, a compare-and-set that moves ``notify_due`` a lease into the future, so
several workers do not deliver the same decision twice; a round tries ``retries + 1``
times with exponential back-off (connection errors, timeouts, 5xx and 429). A failed
round is recorded (``notify_failed`` event) and tried again later, further apart each
time, up to :data:`MAX_ROUNDS` rounds. Delivery is at least once (a worker that dies
after the receiver got the POST but before recording it leaves the lease to run out):
receivers should treat ``review_id`` as the key.

The body::

    {"review_id", "request_id", "row", "state", "label", "decided_by", "decided_at"}
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from mlcycle.review.queue import ReviewItem
from mlcycle.review.tables import REVIEW_EVENTS, REVIEWS

__all__ = ["MAX_ROUNDS", "Notifier", "post_json"]

log = logging.getLogger("mlcycle.review.webhook")

#: Delivery rounds before a decision's webhook is given up (about a day of tries).
MAX_ROUNDS = 30
#: Seconds before the second round; doubled for each next one, at most an hour.
ROUND_DELAY = 5.0
_MAX_DELAY = 3600.0


def post_json(
    url: str, doc: dict[str, Any], *, timeout: float, retries: int, backoff: float = 0.5
) -> tuple[bool, str, int]:
    """POST ``doc`` as JSON to ``url``, retrying failures that may pass.

    Returns
    -------
    tuple
        ``(delivered, what happened, attempts made)``.
    """
    body = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "mlcycle-review"}
    problem = ""
    attempt = 0
    for attempt in range(1, retries + 2):
        if attempt > 1:
            time.sleep(backoff * 2 ** (attempt - 2))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read()
                return True, f"HTTP {response.status}", attempt
        except urllib.error.HTTPError as exc:
            exc.close()
            problem = f"HTTP {exc.code}"
            if exc.code < 500 and exc.code != 429:
                break
        except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, timeout
            problem = str(getattr(exc, "reason", exc)) or type(exc).__name__
    return False, problem, attempt


class Notifier:
    """Delivers decided reviews' webhooks from a thread of its own.

    Parameters
    ----------
    engine
        The monitoring store.
    timeout, retries, backoff
        Per round: seconds per attempt, further attempts, seconds before the first retry
        (doubled for each next one).
    clock
        Seconds since the epoch.
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.clock = clock
        #: How long a claimed round holds the item: every attempt and back-off, and a margin.
        self.lease = timeout * (retries + 1) + backoff * (2**retries) + 10.0
        self.delivered = 0
        self.failed = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._queued: set[str] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread."""
        self._thread = threading.Thread(target=self._run, name="mlcycle-review-webhook")
        self._thread.daemon = True
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (a round in progress finishes first, up to ``timeout``)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def notify(self, review_id: str) -> None:
        """Deliver ``review_id``'s decision soon (never blocks)."""
        with self._lock:
            if review_id in self._queued:
                return
            self._queued.add(review_id)
        self._queue.put(review_id)

    def sweep(self, limit: int = 100) -> int:
        """Queue the decisions whose webhook is due (one cheap indexed query); how many."""
        query = (
            sa.select(REVIEWS.c.review_id)
            .where(REVIEWS.c.notify_due.is_not(None), REVIEWS.c.notify_due <= self.clock())
            .order_by(REVIEWS.c.notify_due)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            due = [str(r) for (r,) in conn.execute(query)]
        for review_id in due:
            self.notify(review_id)
        return len(due)

    def _run(self) -> None:
        while True:
            review_id = self._queue.get()
            if review_id is None:
                return
            with self._lock:
                self._queued.discard(review_id)
            try:
                self.deliver(review_id)
            except Exception:  # the store is down: the sweeper tries again later
                log.exception("review %s: delivering the webhook failed", review_id)

    # -- one round --------------------------------------------------------------------

    def deliver(self, review_id: str) -> bool | None:
        """Claim and deliver one decision's webhook.

        Returns
        -------
        bool or None
            Whether it was delivered; ``None`` when there was nothing to deliver or
            another worker holds it.
        """
        item = self._claim(review_id)
        if item is None or not item.callback_url:
            return None
        ok, what, attempts = post_json(
            item.callback_url,
            item.poll(),
            timeout=self.timeout,
            retries=self.retries,
            backoff=self.backoff,
        )
        self._record(item, ok, what, attempts)
        return ok

    def _claim(self, review_id: str) -> ReviewItem | None:
        now = self.clock()
        r = REVIEWS
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(r).where(r.c.review_id == review_id)).mappings().first()
            if row is None or row["notify_due"] is None or row["notify_due"] > now:
                return None
            claimed = conn.execute(
                r.update()
                .where(r.c.review_id == review_id)
                .where(r.c.notify_attempts == row["notify_attempts"])
                .where(r.c.notify_due == row["notify_due"])
                .values(notify_attempts=row["notify_attempts"] + 1, notify_due=now + self.lease)
            )
            if claimed.rowcount != 1:
                return None
        item = ReviewItem.from_row(row)
        return ReviewItem.from_row({**row, "notify_attempts": item.notify_attempts + 1})

    def _record(self, item: ReviewItem, ok: bool, what: str, attempts: int) -> None:
        now = self.clock()
        rounds = item.notify_attempts
        tries = f"{attempts} attempt(s) in round {rounds}"
        if ok:
            changes: dict[str, Any] = {"notified_at": now, "notify_due": None}
            action, note = "notified", f"delivered ({what}) after {tries}"
            self.delivered += 1
        elif rounds >= MAX_ROUNDS:
            changes = {"notify_due": None}
            action, note = "notify_failed", f"{what} after {tries}; giving up"
            self.failed += 1
        else:
            delay = min(ROUND_DELAY * 2 ** (rounds - 1), _MAX_DELAY)
            changes = {"notify_due": now + delay}
            action, note = "notify_failed", f"{what} after {tries}; next round in {delay:g} s"
        log_level = logging.INFO if ok else logging.WARNING
        log.log(log_level, "review %s webhook: %s", item.review_id, note)
        with self.engine.begin() as conn:
            conn.execute(
                REVIEWS.update()
                .where(REVIEWS.c.review_id == item.review_id)
                .where(REVIEWS.c.notify_attempts == rounds)
                .values(**changes)
            )
            conn.execute(
                REVIEW_EVENTS.insert().values(
                    review_id=item.review_id, time=now, action=action, who="webhook",
                    label=None, note=note,
                )
            )  # fmt: skip
