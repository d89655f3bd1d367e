"""The review queue's tables, in the monitoring store beside the prediction log.

A review is one row of one request that a person must decide. It is written (and
committed) before the caller is answered, so a queued item survives a ``kill -9`` of the
server. Its ``review_id`` is what the caller polls (``GET /reviews/{id}``); ``state`` moves

::

    pending --label--> labelled
    pending --escalate--> escalated --label--> labelled
    pending --skip--> pending (skips + 1; the item goes behind the others)

and every action, with who took it, is a row of ``review_events``. A label is also written
to the ``feedback`` table (source ``review``), so it joins the logged prediction like any
other ground truth and flows into ``mlcycle data feedback``.

A labelled item with a ``callback_url`` gets ``notify_due`` (the time its webhook is due):
a worker claims the delivery with a compare-and-set that moves ``notify_due`` past a lease,
and clears it once delivered (``notified_at``) or given up; ``automation_counts`` adds up,
per model, mode and hour, the rows answered automatically and those sent to review.
"""

from __future__ import annotations

import sqlalchemy as sa

from mlcycle.monitor.store import metadata

__all__ = [
    "AUTOMATION_COUNTS",
    "AUTOMATION_STATE",
    "REVIEWS",
    "REVIEW_ACTIONS",
    "REVIEW_EVENTS",
    "REVIEW_STATES",
]

#: States of a review item; only ``labelled`` is final.
REVIEW_STATES = ("pending", "escalated", "labelled")
#: What a ``review_events`` row records.
REVIEW_ACTIONS = ("queued", "label", "skip", "escalate", "notified", "notify_failed")

REVIEWS = sa.Table(
    "reviews",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # Public, unguessable id the caller polls with (e.g. "rv-3f2a...").
    sa.Column("review_id", sa.String(40), nullable=False, unique=True),
    sa.Column("request_id", sa.String(200), nullable=False),
    sa.Column("row", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    # Null in human_only mode: no model was consulted.
    sa.Column("model_version", sa.String(100), nullable=True),
    # The automation mode that queued it (human_only, shadow, assist, partial).
    sa.Column("mode", sa.String(20), nullable=False),
    # The row's input features, as a JSON object.
    sa.Column("features", sa.Text, nullable=False),
    # The model's answer; null in human_only mode. Shown to reviewers in assist and
    # partial modes only (in shadow mode people decide blind, so agreement is honest).
    sa.Column("suggestion", sa.String(200), nullable=True),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("probabilities", sa.Text, nullable=True),
    sa.Column("state", sa.String(20), nullable=False, default="pending", index=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("skips", sa.Integer, nullable=False, default=0),
    # When it was last skipped (skipped items go behind the others).
    sa.Column("skipped_at", sa.Float, nullable=True),
    # Where to POST the decision (the caller's X-Callback-URL, else serve.automation.webhook).
    sa.Column("callback_url", sa.Text, nullable=True),
    sa.Column("notified_at", sa.Float, nullable=True),
    # Delivery rounds claimed so far (each round tries webhook_retries + 1 times).
    sa.Column("notify_attempts", sa.Integer, nullable=False, default=0),
    # When the webhook is next due; null: nothing to deliver (no callback, delivered, or
    # given up). A worker delivering holds it a lease into the future.
    sa.Column("notify_due", sa.Float, nullable=True, index=True),
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.UniqueConstraint("request_id", "row", name="uq_reviews_request_row"),
)

REVIEW_EVENTS = sa.Table(
    "review_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("review_id", sa.String(40), nullable=False, index=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("who", sa.String(200), nullable=False, default=""),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("note", sa.Text, nullable=False, default=""),
)

#: The live automation mode of each model, set through the admin API (absent: config).
AUTOMATION_STATE = sa.Table(
    "automation_state",
    metadata,
    sa.Column("model_name", sa.String(200), primary_key=True),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False, default=""),
)

#: Rows answered automatically or sent to review, per model, mode and hour (every worker
#: adds its counts about once a second).
AUTOMATION_COUNTS = sa.Table(
    "automation_counts",
    metadata,
    sa.Column("model_name", sa.String(200), primary_key=True),
    sa.Column("mode", sa.String(20), primary_key=True),
    # automatic | review
    sa.Column("outcome", sa.String(20), primary_key=True),
    # The hour counted (unix seconds at its start).
    sa.Column("hour", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rows", sa.BigInteger, nullable=False, default=0),
)
