"""The record of retrainings: start one (or join the one running), finish it, list them.

A :class:`RetrainStore` works on the monitoring store's engine
(:func:`mlcycle.monitor.store.connect`), in the ``retrains`` table
(:mod:`mlcycle.retrain.tables`). The database decides who runs: the UNIQUE ``active_key``
lets one start per model in, and a start that loses gets ``None`` back after its alarm ids
were added to the running one (coalesced). A retraining whose process died (``kill -9``,
a crashed machine) is found by its pid on the next start and marked ``error``, so it
never blocks the model for good.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from mlcycle.exceptions import MlcycleError
from mlcycle.retrain.tables import RETRAIN_STATES, RETRAINS

__all__ = ["FINISH_FIELDS", "TRIGGERS", "Retrain", "RetrainError", "RetrainStore", "pid_alive"]

log = logging.getLogger(__name__)

#: Who asked for a retraining: a person (or a script), or the server on an alarm.
TRIGGERS = ("manual", "alarm")
#: What :meth:`RetrainStore.finish` may record besides the state and the reason.
FINISH_FIELDS = (
    "parent_version",
    "run_id",
    "version",
    "bundle",
    "data_versions",
    "gate",
    "rollout_id",
)
_JSON_FIELDS = ("data_versions", "gate")
_DIED = "the retraining process died"


class RetrainError(MlcycleError):
    """A retraining cannot be recorded: an unknown id, state or trigger."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie counts as dead).

    Examples
    --------
    >>> pid_alive(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    try:  # Linux: a killed child its parent has not reaped yet is a zombie
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return {"raw": text}


@dataclass(frozen=True)
class Retrain:
    """One row of the ``retrains`` table, JSON columns parsed."""

    id: int
    model_name: str
    state: str
    trigger: str
    who: str
    started_at: float
    alarm_ids: list[int] = field(default_factory=list)
    finished_at: float | None = None
    pid: int | None = None
    host: str | None = None
    parent_version: str | None = None
    run_id: str | None = None
    version: str | None = None
    bundle: str | None = None
    data_versions: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    reason: str = ""
    rollout_id: int | None = None

    @property
    def running(self) -> bool:
        """Whether it has not finished yet."""
        return self.state == "running"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (``None`` while it runs)."""
        return None if self.finished_at is None else self.finished_at - self.started_at

    def describe(self) -> str:
        """One line naming it: id, model, who started it and since when.

        Examples
        --------
        >>> r = Retrain(3, "wine", "running", "alarm", "server", 0.0, [7], pid=42, host="h")
        >>> r.describe()  # doctest: +ELLIPSIS
        "retrain 3 of 'wine' (alarm, alarms [7], by server, pid 42 on h, started 1970-01-01 ..."
        """
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(self.started_at))
        alarms = f", alarms {self.alarm_ids}" if self.alarm_ids else ""
        where = f", pid {self.pid} on {self.host}" if self.pid else ""
        return (
            f"retrain {self.id} of {self.model_name!r} ({self.trigger}{alarms}, by "
            f"{self.who or 'unknown'}{where}, started {started}, {self.state})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json``)."""
        return {
            "id": self.id,
            "model_name": self.model_name,
            "state": self.state,
            "trigger": self.trigger,
            "who": self.who,
            "alarm_ids": list(self.alarm_ids),
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration": self.duration,
            "pid": self.pid,
            "host": self.host,
            "parent_version": self.parent_version,
            "run_id": self.run_id,
            "version": self.version,
            "bundle": self.bundle,
            "data_versions": self.data_versions,
            "gate": self.gate,
            "reason": self.reason,
            "rollout_id": self.rollout_id,
        }

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Retrain:
        """From a ``retrains`` row."""
        ids = _loads(row["alarm_ids"])
        return cls(
            id=int(row["id"]),
            model_name=str(row["model_name"]),
            state=str(row["state"]),
            trigger=str(row["trigger"]),
            who=str(row["who"] or ""),
            started_at=float(row["started_at"]),
            alarm_ids=[int(i) for i in ids] if isinstance(ids, list) else [],
            finished_at=None if row["finished_at"] is None else float(row["finished_at"]),
            pid=row["pid"],
            host=row["host"],
            parent_version=row["parent_version"],
            run_id=row["run_id"],
            version=row["version"],
            bundle=row["bundle"],
            data_versions=_loads(row["data_versions"]),
            gate=_loads(row["gate"]),
            reason=str(row["reason"] or ""),
            rollout_id=row["rollout_id"],
        )


class RetrainStore:
    """The ``retrains`` table of a monitoring store.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect` (which creates the table).
    stale_after
        A running retraining whose process is gone is marked dead only when it started
        at least this many seconds ago (its process may still be starting up).
    clock
        Seconds since the epoch (tests pass a fake one).
    """

    def __init__(
        self,
        engine: sa.Engine,
        *,
        stale_after: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.stale_after = stale_after
        self.clock = clock

    @classmethod
    def open(cls, url_or_path: str | Path | None = None) -> RetrainStore:
        """The store at ``url_or_path`` (default: ``monitor.db`` in the project root).

        Raises
        ------
        mlcycle.monitor.store.StoreError
            The store cannot be opened.
        """
        from mlcycle.monitor.store import connect, resolve_store

        return cls(connect(resolve_store(url_or_path)))

    # -- reading ------------------------------------------------------------------------

    def get(self, retrain_id: int) -> Retrain:
        """The retraining with id ``retrain_id``.

        Raises
        ------
        RetrainError
            No such id.
        """
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(RETRAINS).where(RETRAINS.c.id == retrain_id)).first()
        if row is None:
            raise RetrainError(
                f"no retrain with id {retrain_id}; run `mlcycle retrain history` to list them"
            )
        return Retrain.from_row(row._mapping)

    def running(self, model_name: str) -> Retrain | None:
        """The retraining of ``model_name`` that runs now, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(RETRAINS).where(RETRAINS.c.active_key == model_name)
            ).first()
        return None if row is None else Retrain.from_row(row._mapping)

    def latest(self, model_name: str) -> Retrain | None:
        """The most recently started retraining of ``model_name``, if any."""
        found = self.history(model_name, limit=1)
        return found[0] if found else None

    def history(self, model_name: str | None = None, limit: int = 50) -> list[Retrain]:
        """Retrainings, newest first (of ``model_name`` only when given)."""
        query = sa.select(RETRAINS).order_by(RETRAINS.c.id.desc()).limit(limit)
        if model_name is not None:
            query = query.where(RETRAINS.c.model_name == model_name)
        with self.engine.connect() as conn:
            return [Retrain.from_row(row._mapping) for row in conn.execute(query)]

    # -- writing ------------------------------------------------------------------------

    def start(
        self,
        model_name: str,
        trigger: str,
        who: str,
        alarm_ids: Iterable[int] = (),
        *,
        pid: int | None = None,
    ) -> Retrain | None:
        """Record a retraining of ``model_name`` as running, unless one already runs.

        Parameters
        ----------
        model_name
            The registered model it retrains.
        trigger
            ``manual`` or ``alarm``.
        who
            Who asked (a login name, or the server).
        alarm_ids
            The alarms behind it.
        pid
            The process doing the work (default: this one).

        Returns
        -------
        Retrain or None
            The new row; ``None`` when another retraining of the model runs (then
            ``alarm_ids`` were added to it: see :meth:`running`).

        Raises
        ------
        RetrainError
            An unknown trigger.
        """
        if trigger not in TRIGGERS:
            raise RetrainError(f"retrain trigger must be one of {TRIGGERS}, not {trigger!r}")
        ids = sorted({int(i) for i in alarm_ids})
        for _ in range(3):
            now = self.clock()
            values = {
                "model_name": model_name,
                "state": "running",
                "trigger": trigger,
                "who": who,
                "alarm_ids": json.dumps(ids),
                "started_at": now,
                "pid": os.getpid() if pid is None else pid,
                "host": socket.gethostname(),
                "reason": "",
                "active_key": model_name,
            }
            try:
                with self.engine.begin() as conn:
                    key = conn.execute(RETRAINS.insert().values(**values)).inserted_primary_key
                assert key is not None
                return self.get(int(key[0]))
            except sa.exc.IntegrityError:
                pass
            current = self.running(model_name)
            if current is None:
                continue  # it finished in between: try again
            if self._recover(current, now):
                continue
            if self._add_alarms(current.id, ids):
                return None
        raise RetrainError(
            f"could not start a retrain of {model_name!r}: others kept starting and finishing "
            "at the same time; try again"
        )

    def adopt(self, retrain_id: int, *, pid: int | None = None) -> Retrain:
        """Take over a running retraining that another process recorded (it is now ours).

        A server records the retraining when an alarm fires (so that it is the one that
        runs) and then hands the work to ``mlcycle retrain --retrain-id ID``, which adopts
        it: the row's pid becomes the worker's, so a dead worker is recognised as such.

        Raises
        ------
        RetrainError
            No such id, or it is no longer running.
        """
        current = self.get(retrain_id)
        with self.engine.begin() as conn:
            done = conn.execute(
                RETRAINS.update()
                .where(RETRAINS.c.id == retrain_id, RETRAINS.c.state == "running")
                .values(pid=os.getpid() if pid is None else pid, host=socket.gethostname())
            ).rowcount
        if not done:
            raise RetrainError(
                f"retrain {retrain_id} is {current.state}, not running, so it cannot be "
                "taken over; start a new one with `mlcycle retrain`"
            )
        return self.get(retrain_id)

    def finish(self, retrain_id: int, state: str, reason: str = "", **fields: Any) -> Retrain:
        """Record how a retraining ended and free its model for the next one.

        Parameters
        ----------
        retrain_id
            Its id.
        state
            ``passed``, ``failed``, ``skipped`` or ``error``.
        reason
            Why (for ``failed``, the failed gate checks; for ``skipped``, what was missing).
        **fields
            Any of :data:`FINISH_FIELDS`; ``data_versions`` and ``gate`` as plain data.

        Raises
        ------
        RetrainError
            An unknown id, state or field.
        """
        if state not in RETRAIN_STATES or state == "running":
            allowed = [s for s in RETRAIN_STATES if s != "running"]
            raise RetrainError(f"a retrain finishes as one of {allowed}, not {state!r}")
        unknown = sorted(set(fields) - set(FINISH_FIELDS))
        if unknown:
            raise RetrainError(f"unknown retrain field(s) {unknown}; allowed: {FINISH_FIELDS}")
        values = {
            k: json.dumps(v, default=str) if k in _JSON_FIELDS else v for k, v in fields.items()
        }
        before = self.get(retrain_id)
        if not before.running:
            log.warning("%s is recorded again, now as %s", before.describe(), state)
        with self.engine.begin() as conn:
            conn.execute(
                RETRAINS.update()
                .where(RETRAINS.c.id == retrain_id)
                .values(
                    state=state,
                    reason=reason,
                    finished_at=self.clock(),
                    active_key=None,
                    **values,
                )
            )
        return self.get(retrain_id)

    def set_rollout(self, retrain_id: int, rollout_id: int) -> Retrain:
        """Record the rollout that a (passed) retraining started.

        Raises
        ------
        RetrainError
            No such id.
        """
        self.get(retrain_id)
        with self.engine.begin() as conn:
            conn.execute(
                RETRAINS.update().where(RETRAINS.c.id == retrain_id).values(rollout_id=rollout_id)
            )
        return self.get(retrain_id)

    def append_reason(self, retrain_id: int, text: str) -> Retrain:
        """Add ``text`` to a retraining's reason (e.g. why its rollout did not start)."""
        current = self.get(retrain_id)
        reason = f"{current.reason}; {text}" if current.reason else text
        with self.engine.begin() as conn:
            conn.execute(RETRAINS.update().where(RETRAINS.c.id == retrain_id).values(reason=reason))
        return self.get(retrain_id)

    # -- helpers ------------------------------------------------------------------------

    def _recover(self, current: Retrain, now: float) -> bool:
        """Mark ``current`` dead when its process is gone; True when it was."""
        if current.pid is None or current.host != socket.gethostname():
            return False
        if now - current.started_at < self.stale_after or pid_alive(current.pid):
            return False
        reason = f"{_DIED} (pid {current.pid} on {current.host} is gone)"
        with self.engine.begin() as conn:
            done = conn.execute(
                RETRAINS.update()
                .where(RETRAINS.c.id == current.id, RETRAINS.c.state == "running")
                .values(state="error", reason=reason, finished_at=now, active_key=None)
            ).rowcount
        if done:
            log.warning("%s: %s; marked error", current.describe(), reason)
        return True

    def _add_alarms(self, retrain_id: int, ids: list[int]) -> bool:
        """Add ``ids`` to a running retraining's alarms; False when it is no longer running.

        A compare-and-swap on the column's text, so two coalescing alarms never lose one;
        the read and the write are separate transactions (a write that starts as a write
        waits for SQLite's lock instead of failing on a stale read).
        """
        for _ in range(20):
            with self.engine.connect() as conn:
                row = conn.execute(
                    sa.select(RETRAINS.c.alarm_ids, RETRAINS.c.state).where(
                        RETRAINS.c.id == retrain_id
                    )
                ).first()
            if row is None or row.state != "running":
                return False
            old = _loads(row.alarm_ids)
            merged = sorted({*(old if isinstance(old, list) else []), *ids})
            if merged == old:
                return True
            with self.engine.begin() as conn:
                changed = conn.execute(
                    RETRAINS.update()
                    .where(
                        RETRAINS.c.id == retrain_id,
                        RETRAINS.c.state == "running",
                        RETRAINS.c.alarm_ids == row.alarm_ids,
                    )
                    .values(alarm_ids=json.dumps(merged))
                ).rowcount
            if changed:
                return True
        return True  # others keep adding theirs; the running one knows it was asked again
