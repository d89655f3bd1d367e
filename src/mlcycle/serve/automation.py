"""A worker's degree of automation: the live mode, and the rows it sends to human review.

The request path reads :attr:`ServerState.policy <mlcycle.serve.app.ServerState>`, a
:class:`Policy` replaced whole when the mode changes, so ``full`` mode (the default) costs
one comparison and never touches the store. In the other modes ``POST /predict`` queues
rows for review (:meth:`Automation.answer`) and answers 202 while any row waits:

=============  ======================================================================
``human_only`` the model is not called; every row is queued (no suggestion)
``shadow``     the model predicts (logged as usual); every row is queued with its
               suggestion, which reviewers do not see
``assist``     as shadow, but reviewers see the suggestion and its confidence
``partial``    rows whose top probability is at least ``threshold`` are answered; the
               others are queued (200 when none is, else 202)
=============  ======================================================================

The queue insert is committed, in a worker thread, before the answer is sent, so a
``kill -9`` loses no queued row; a store that cannot be written is a 503 and nothing is
answered as queued. The mode lives in the store (``automation_state``, set through
``POST /admin/automation``); each worker's :class:`Automation` thread reads it every
:data:`SYNC_SECONDS`, adds the worker's row counts to the store, and hands due webhooks to
its :class:`~mlcycle.review.webhook.Notifier`. Without a store (``--no-monitor``) only
``full`` mode is possible: :func:`check_automation_store` refuses any other at start.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from mlcycle.exceptions import ConfigError
from mlcycle.serve.errors import RequestError
from mlcycle.serve.protocols import prediction_rows

if TYPE_CHECKING:
    import sqlalchemy as sa

    from mlcycle.review.queue import AutomationState, NewReview, ReviewItem
    from mlcycle.serve.app import ServerState
    from mlcycle.serve.arms import Arm
    from mlcycle.serve.batching import Prediction
    from mlcycle.serve.settings import ServeSettings
    from mlcycle.serve.validation import FeatureBatch

__all__ = [
    "SYNC_SECONDS",
    "Automation",
    "Policy",
    "callback_url",
    "check_automation_store",
    "not_full",
]

log = logging.getLogger("mlcycle.serve.automation")

#: How often each worker reads the live mode (and adds its counts to the store).
SYNC_SECONDS = 1.0
_MAX_URL = 2000


@dataclass(frozen=True)
class Policy:
    """The mode a worker answers in, and partial mode's threshold.

    ``revision`` is the stored mode's revision (-1: the config's, not read yet).
    """

    mode: str = "full"
    threshold: float = 0.9
    revision: int = -1


def check_automation_store(settings: ServeSettings) -> None:
    """Refuse a mode other than ``full`` without a store to queue reviews in.

    Raises
    ------
    ConfigError
        ``serve.automation.mode`` needs review but monitoring is off.
    """
    mode = settings.automation.mode
    if mode != "full" and not settings.monitor.enabled:
        raise ConfigError(
            f"serve.automation.mode is {mode!r}, which queues rows for human review in the "
            "monitoring store, but monitoring is off (--no-monitor or serve.monitor.enabled="
            "false); turn monitoring on, or set serve.automation.mode=full"
        )


def not_full(mode: str, route: str) -> RequestError:
    """The 409 of a route that cannot say "pending" while the mode is ``mode``."""
    return RequestError(
        409,
        "automation_mode",
        f"this deployment runs in automation mode {mode!r}: rows may wait for a person's "
        f"review, which {route} cannot express; use POST /predict (it answers 202 with a "
        "review id to poll for each pending row)",
        "path",
    )


def callback_url(value: str | None, default: str = "") -> str | None:
    """The webhook for a request's decisions: ``X-Callback-URL``, else ``default``.

    Raises
    ------
    RequestError
        400 when the header is not an http(s) URL.

    Examples
    --------
    >>> callback_url("https://example.com/done"), callback_url(None)
    ('https://example.com/done', None)
    """
    if value is None or not value.strip():
        return default or None
    text = value.strip()
    parts = urllib.parse.urlsplit(text) if text.isprintable() else None
    if (
        len(text) > _MAX_URL
        or parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
    ):
        raise RequestError(
            400,
            "invalid_header",
            f"X-Callback-URL must be an http:// or https:// URL of at most {_MAX_URL} "
            f"characters (where the server POSTs each decision), not {text[:80]!r}",
            "headers.x-callback-url",
        )
    return text


class Automation:
    """A worker's review queue, live mode, row counts and webhooks.

    Parameters
    ----------
    state
        The server's state: its ``policy`` is what this keeps in step with the store.
    engine
        The monitoring store.
    """

    def __init__(self, state: ServerState, engine: sa.Engine) -> None:
        from mlcycle.monitor.encode import RowEncoder
        from mlcycle.review.queue import ReviewQueue
        from mlcycle.review.webhook import Notifier

        self.state = state
        self.settings = state.settings.automation
        self.model_name = state.model.name
        self.queue = ReviewQueue(engine, model_name=self.model_name)
        self.notifier = Notifier(
            engine, timeout=self.settings.webhook_timeout, retries=self.settings.webhook_retries
        )
        blocks = state.model.validator.blocks
        # an image goes to the review as its nested list of pixels (see _features)
        self._images = [b.name for b in blocks if b.shape is not None]
        self._numeric = [b.name for b in blocks if b.numeric and b.shape is None]
        self._categorical = [b.name for b in blocks if not b.numeric]
        self._encoder = RowEncoder(
            [f for b in blocks if b.numeric and b.shape is None for f in b.features],
            [f for b in blocks if not b.numeric for f in b.features],
            state.model.classes,
        )
        self.last_error = ""
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._reviewed_rows = 0.0  # rows this process predicted for the review modes
        self._full_seen = state.metrics.predicted_rows()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life -------------------------------------------------------------------------

    def start(self) -> None:
        """Apply the stored mode now (before the first request), then follow it."""
        try:
            self.apply(self.queue.get_automation(self.model_name, self.settings))
        except Exception:
            log.exception(
                "automation: reading the stored mode at start-up failed; using the config's"
            )
        self.notifier.start()
        self._thread = threading.Thread(target=self._run, name="mlcycle-automation", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread, add the last counts to the store, stop the webhooks."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            self.flush()
        except Exception as exc:
            log.warning("automation: the last row counts were not stored: %s", exc)
        self.notifier.close()

    def _run(self) -> None:
        while not self._stop.wait(SYNC_SECONDS):
            try:
                self.sync()
                self.last_error = ""
            except Exception as exc:  # the store is down: keep answering as we are
                if str(exc) != self.last_error:
                    log.warning("automation: following the stored mode failed: %s", exc)
                self.last_error = str(exc)

    def sync(self) -> None:
        """Read the live mode, store this worker's counts, queue the webhooks due."""
        self.apply(self.queue.get_automation(self.model_name, self.settings))
        self.flush()
        self.notifier.sweep()

    def apply(self, st: AutomationState) -> None:
        """Answer in ``st``'s mode from the next request on."""
        current = self.state.policy
        policy = Policy(st.mode, st.threshold, st.revision)
        if policy != current:
            self.state.policy = policy
            if (policy.mode, policy.threshold) != (current.mode, current.threshold):
                log.warning(
                    "automation: mode %s (threshold %g), set by %s",
                    policy.mode,
                    policy.threshold,
                    st.updated_by or "the config",
                )

    def set(self, mode: str, threshold: float, who: str) -> AutomationState:
        """Set the mode for every worker sharing the store; this one at once."""
        st = self.queue.set_automation(self.model_name, mode, threshold, who)
        self.apply(st)
        return st

    def status(self) -> dict[str, Any]:
        """The stored mode, and the one this worker answers in."""
        from mlcycle.review.settings import AUTOMATION_MODES

        st = self.queue.get_automation(self.model_name, self.settings)
        p = self.state.policy
        worker = {"mode": p.mode, "threshold": p.threshold, "revision": p.revision}
        return {**st.to_dict(), "worker": worker, "modes": list(AUTOMATION_MODES)}

    # -- counting ---------------------------------------------------------------------

    def predicting(self, rows: int) -> None:
        """Note rows about to be predicted outside full mode (negative: they were not).

        Called before the model runs, so :meth:`flush` never takes them for full mode's.
        """
        with self._lock:
            self._reviewed_rows += rows

    def count(self, mode: str, automatic: int, review: int) -> None:
        """Count a request's rows answered automatically and sent to review."""
        rows = self.state.metrics.automation_rows
        with self._lock:
            for outcome, n in (("automatic", automatic), ("review", review)):
                if n:
                    key = (mode, outcome)
                    self._counts[key] = self._counts.get(key, 0) + n
                    rows.labels(outcome, mode).inc(n)

    def flush(self) -> None:
        """Add the counts since the last flush to the store.

        Rows answered in ``full`` mode are not counted on the request path: they are the
        rows this process predicted minus those of the other modes (noted before they are
        predicted, so the difference never runs ahead; it is counted up to its highest).
        """
        with self._lock:
            counts, self._counts = self._counts, {}
            full = self.state.metrics.predicted_rows() - self._reviewed_rows
        if full > self._full_seen:
            new = int(full - self._full_seen)
            self._full_seen += new
            counts[("full", "automatic")] = counts.get(("full", "automatic"), 0) + new
            self.state.metrics.automation_rows.labels("automatic", "full").inc(new)
        try:
            self.queue.add_counts(self.model_name, counts)
        except Exception:
            with self._lock:  # keep them for the next flush
                for key, n in counts.items():
                    self._counts[key] = self._counts.get(key, 0) + n
            raise

    # -- the request path -------------------------------------------------------------

    async def answer(
        self,
        rid: str,
        arm: Arm,
        batch: FeatureBatch,
        prediction: Prediction | None,
        policy: Policy,
        callback: str | None,
    ) -> tuple[dict[str, Any], int]:
        """Queue the rows that need a person; the ``/predict`` body and its status.

        Parameters
        ----------
        rid
            The request id (each row's review keeps it, with its row number).
        arm
            The arm that predicted (or would have, in human_only mode).
        batch
            The validated rows.
        prediction
            Labels and probabilities; ``None`` in human_only mode.
        policy
            The mode the request is answered in.
        callback
            Where to POST each decision, or ``None``.

        Raises
        ------
        RequestError
            503 when the store cannot be written (nothing was queued); 409 when the
            request id already has other rows queued.
        """
        from mlcycle.review.queue import NewReview

        n, mode = batch.rows, policy.mode
        classes = arm.model.classes
        if prediction is None:
            pending = np.arange(n)
            rows: list[dict[str, Any]] = [{} for _ in range(n)]
            labels, top = [], np.zeros(0)
        else:
            label_array, proba = prediction
            rows = prediction_rows(label_array, proba, classes)
            labels = [str(x) for x in label_array.tolist()]
            top = np.round(np.asarray(proba, np.float64).max(axis=1), 7)
            pending = np.flatnonzero(top < policy.threshold) if mode == "partial" else np.arange(n)
        features = self._features(batch, pending)
        version = None if prediction is None else arm.model.version
        items: list[NewReview] = []
        for k, i in enumerate(pending.tolist()):
            answer: dict[str, Any] = {}
            if prediction is not None:
                answer = {"suggestion": labels[i], "confidence": float(top[i]),
                          "probabilities": rows[i]["probabilities"]}  # fmt: skip
            queued_row = NewReview(rid, i, arm.model.name, version, mode, features[k],
                                   callback_url=callback, **answer)  # fmt: skip
            items.append(queued_row)
        queued = await self._enqueue(items, mode) if items else []
        self.count(mode, n - len(items), len(items))
        for row in rows:
            row["status"] = "answered"
        for i, review in zip(pending.tolist(), queued, strict=True):
            rows[i] = {"status": "pending", "review_id": review.review_id,
                       "poll": f"/reviews/{review.review_id}"}  # fmt: skip
        doc = {
            "request_id": rid,
            "model": arm.model_doc,
            "mode": mode,
            "pending": len(queued),
            "predictions": rows,
        }
        return doc, 202 if queued else 200

    def _features(self, batch: FeatureBatch, rows: np.ndarray[Any, Any]) -> list[str]:
        """The validated features of ``rows`` as JSON objects, as the prediction log has them."""
        if rows.size == 0:
            return []
        inputs, n = batch.inputs, batch.rows
        numeric = (
            np.hstack([inputs[b].reshape(n, -1) for b in self._numeric])
            if self._numeric
            else np.empty((n, 0), np.float32)
        )
        categorical = (
            np.hstack([inputs[b].reshape(n, -1) for b in self._categorical]).astype(object)
            if self._categorical
            else np.empty((n, 0), object)
        )
        keep = np.zeros(n, bool)
        keep[rows] = True
        encoded = self._encoder.features(numeric, categorical, keep)
        if self._images:
            return [self._with_images(str(encoded[i]), inputs, i) for i in rows.tolist()]
        return [str(encoded[i]) for i in rows.tolist()]

    def _with_images(self, encoded: str, inputs: dict[str, np.ndarray[Any, Any]], i: int) -> str:
        """The row's JSON object with each image added as its nested list of pixels."""
        import orjson

        doc = orjson.loads(encoded)
        for name in self._images:
            doc[name] = inputs[name][i].tolist()
        return orjson.dumps(doc).decode()

    async def _enqueue(self, items: list[NewReview], mode: str) -> list[ReviewItem]:
        from sqlalchemy.exc import SQLAlchemyError

        from mlcycle.review.queue import ReviewError

        try:
            return await run_in_threadpool(self.queue.enqueue, items)
        except ReviewError as exc:
            raise RequestError(
                exc.status, "duplicate_request_id", str(exc), "headers.x-request-id"
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            log.error("automation: queueing %d row(s) for review failed: %s", len(items), exc)
            raise RequestError(
                503,
                "review_queue_unavailable",
                f"the {mode!r} automation mode needs these rows reviewed, "
                "but the review queue (the monitoring store) cannot be written right now; "
                "nothing was queued: send the request again later",
            ) from None
