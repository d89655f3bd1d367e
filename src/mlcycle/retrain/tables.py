"""The ``retrains`` table: every retraining, why it ran and what the gate said.

At most one retraining runs per model: ``active_key`` is the model name while it runs and
NULL once it has finished, and it is UNIQUE, so of two starts (two alarms, two workers,
a person and an alarm) the database lets exactly one in; alarms that fire while it runs are
added to its ``alarm_ids`` (``coalesced``) instead of starting another.
"""

from __future__ import annotations

import sqlalchemy as sa

from mlcycle.monitor.store import metadata

__all__ = ["RETRAINS", "RETRAIN_STATES"]

#: running, then passed (registered as challenger), failed (the gate said no; recorded
#: with the reason), skipped (nothing new to learn from) or error (it crashed).
RETRAIN_STATES = ("running", "passed", "failed", "skipped", "error")

RETRAINS = sa.Table(
    "retrains",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False, index=True),
    sa.Column("state", sa.String(20), nullable=False),
    # manual, or alarm (started by the server when a configured alarm fired).
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("who", sa.String(200), nullable=False, default=""),
    # JSON list of the alarms (ids in the alarms table) behind it, coalesced ones included.
    sa.Column("alarm_ids", sa.Text, nullable=False, default="[]"),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    # The machine the pid lives on: only there can a dead process be told from a live one.
    sa.Column("host", sa.String(255), nullable=True),
    # The champion it tried to beat, and what it produced.
    sa.Column("parent_version", sa.String(100), nullable=True),
    sa.Column("run_id", sa.String(100), nullable=True),
    sa.Column("version", sa.String(100), nullable=True),
    # The new version's bundle folder on this machine (what a server's rollout loads).
    sa.Column("bundle", sa.Text, nullable=True),
    # JSON: data versions (training data md5, feedback dataset md5 and rows).
    sa.Column("data_versions", sa.Text, nullable=True),
    # JSON: every gate check with its numbers.
    sa.Column("gate", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("rollout_id", sa.Integer, nullable=True),
    sa.Column("active_key", sa.String(200), nullable=True, unique=True),
)
