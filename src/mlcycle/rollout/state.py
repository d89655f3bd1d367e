"""The rollout state machine, kept in the monitoring store and shared by every server.

A rollout moves a challenger model version into the champion's place, in one of the
:data:`~mlcycle.rollout.settings.MODES`. Its state lives in the ``rollouts`` table, each
transition (with who did it, why and the analysis seen) in ``rollout_events``. Every
server process reads the same rows, so they all route the same way, and a restarted
server carries on where the last one was.

Two rules hold across processes, on SQLite and PostgreSQL alike:

- one active rollout per model: ``rollouts.active_key`` is the model name while a rollout
  runs (or is paused) and NULL once it is finished, and it is UNIQUE, so of two starts for
  the same model the database lets exactly one in;
- one transition per revision: every transition is a compare-and-set on ``(id,
  revision)`` in one transaction with its event. Of two processes that saw the same
  revision, one moves the rollout and the other gets ``None`` and re-reads it.

::

    shadow    --promote_step--> canary step 0 | bluegreen | completed (after_shadow)
    canary i  --promote_step--> canary i+1 ... last step --promote_step--> promoted
    bluegreen --promote_step--> promoted
    running   --pause--> paused --resume--> running
    running / paused --promote--> promoted, --rollback--> rolled_back
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from mlcycle.exceptions import MlcycleError
from mlcycle.monitor.store import metadata
from mlcycle.rollout.settings import AFTER_SHADOW, MODES, RolloutSettings, check_rollout_settings

__all__ = [
    "ACTIONS",
    "ACTIVE_STATES",
    "FINISHED_STATES",
    "ROLLOUTS",
    "ROLLOUT_EVENTS",
    "STATES",
    "Rollout",
    "RolloutError",
    "RolloutEvent",
    "RolloutStore",
]

#: States of a rollout; the first two are active (the model has this rollout).
STATES = ("running", "paused", "promoted", "rolled_back", "completed")
ACTIVE_STATES = ("running", "paused")
FINISHED_STATES = ("promoted", "rolled_back", "completed")
#: What a ``rollout_events`` row records.
ACTIONS = ("start", "step", "promote", "rollback", "pause", "resume", "complete")

#: One row per rollout, updated in place by each transition.
ROLLOUTS = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(200), nullable=False, index=True),
    sa.Column("mode", sa.String(20), nullable=False),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    # Index into ``steps`` in the canary phase, else 0.
    sa.Column("step", sa.Integer, nullable=False, default=0),
    # The challenger's percent of live traffic.
    sa.Column("weight", sa.Float, nullable=False, default=0.0),
    # The percent of requests mirrored to the challenger; 0 outside the shadow phase.
    sa.Column("shadow_percent", sa.Float, nullable=False, default=0.0),
    sa.Column("steps", sa.Text, nullable=False),
    sa.Column("champion_version", sa.String(100), nullable=False),
    sa.Column("champion_bundle", sa.Text, nullable=False),
    sa.Column("challenger_version", sa.String(100), nullable=False),
    sa.Column("challenger_bundle", sa.Text, nullable=False),
    sa.Column("step_started_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, default=0),
    sa.Column("started_by", sa.String(200), nullable=False, default=""),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("last_analysis", sa.Text, nullable=True),
    # The model name while running or paused, NULL when finished: one active per model.
    sa.Column("active_key", sa.String(200), nullable=True, unique=True),
)

#: One row per transition of a rollout (and one for its start).
ROLLOUT_EVENTS = sa.Table(
    "rollout_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False, index=True),
    sa.Column("time", sa.Float, nullable=False, index=True),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("from_phase", sa.String(20), nullable=True),
    sa.Column("to_phase", sa.String(20), nullable=False),
    sa.Column("from_state", sa.String(20), nullable=True),
    sa.Column("to_state", sa.String(20), nullable=False),
    sa.Column("from_weight", sa.Float, nullable=True),
    sa.Column("to_weight", sa.Float, nullable=False),
    sa.Column("step", sa.Integer, nullable=False, default=0),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("metrics", sa.Text, nullable=True),
    sa.Column("who", sa.String(200), nullable=False, default=""),
)


class RolloutError(MlcycleError):
    """A rollout that does not exist, or a change it does not allow.

    Parameters
    ----------
    message
        What was wrong and what to do.
    status
        The HTTP status it maps to: 404 no such (or no active) rollout, 409 a conflict
        or a change not allowed in the rollout's state, 422 invalid input.
    rollout
        The rollout it is about, when there is one (for a 409: the one in the way).
    """

    def __init__(self, message: str, status: int = 409, rollout: Rollout | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.rollout = rollout


def _dumps(value: Any) -> str:
    """JSON text; NaN and infinities become null, numpy values plain numbers."""
    option = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, option=option, default=str).decode()


def _loads(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"raw": text}


@dataclass(frozen=True)
class Rollout:
    """One rollout as a row of ``rollouts`` (JSON columns parsed)."""

    id: int
    model_name: str
    mode: str
    phase: str
    state: str
    step: int
    weight: float
    shadow_percent: float
    steps: list[float]
    champion_version: str
    champion_bundle: str
    challenger_version: str
    challenger_bundle: str
    step_started_at: float
    created_at: float
    updated_at: float
    revision: int
    started_by: str
    settings: dict[str, Any]
    last_analysis: dict[str, Any] | None
    active_key: str | None

    @property
    def active(self) -> bool:
        """Whether it is running or paused (its model has no other rollout)."""
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        """The rollout as JSON-ready values, with ``active`` as a key of its own."""
        return {**dataclasses.asdict(self), "active": self.active}

    def describe(self) -> str:
        """One line naming it: id, mode, phase, state and the challenger's weight."""
        return (
            f"rollout {self.id} of {self.model_name!r} ({self.mode}, phase {self.phase}, "
            f"{self.state}, challenger {self.challenger_version} at {self.weight:g}% of traffic)"
        )

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Rollout:
        """From a ``rollouts`` row."""
        values = dict(row)
        steps = _loads(values["steps"]) or []
        values["steps"] = [float(s) for s in steps]
        settings = _loads(values["settings"])
        values["settings"] = settings if isinstance(settings, dict) else {}
        analysis = _loads(values["last_analysis"])
        values["last_analysis"] = (
            analysis if isinstance(analysis, dict) or analysis is None else {"value": analysis}
        )
        return cls(**values)


@dataclass(frozen=True)
class RolloutEvent:
    """One transition of a rollout, as a row of ``rollout_events`` (metrics parsed)."""

    id: int
    rollout_id: int
    time: float
    action: str
    from_phase: str | None
    to_phase: str
    from_state: str | None
    to_state: str
    from_weight: float | None
    to_weight: float
    step: int
    reason: str
    metrics: dict[str, Any] | None
    who: str

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RolloutEvent:
        """From a ``rollout_events`` row."""
        values = dict(row)
        metrics = _loads(values["metrics"])
        values["metrics"] = (
            metrics if isinstance(metrics, dict) or metrics is None else {"value": metrics}
        )
        return cls(**values)


class RolloutStore:
    """Rollouts in the monitoring store: start, read, and move them through their states.

    Parameters
    ----------
    engine
        From :func:`mlcycle.monitor.store.connect` (which creates the tables).
    clock
        Seconds since the epoch; every time written comes from it.

    Notes
    -----
    Each transition takes the :class:`Rollout` as the caller last saw it and applies
    only if its revision is still the stored one; it returns the new rollout, or
    ``None`` when another process changed it first (re-read with :meth:`get`).
    """

    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    # -- reading ------------------------------------------------------------------------

    def get(self, rollout_id: int) -> Rollout:
        """The rollout with this id.

        Raises
        ------
        RolloutError
            404 when there is none.
        """
        with self.engine.connect() as conn:
            found = self._select(conn, ROLLOUTS.c.id == int(rollout_id))
        if found is None:
            raise RolloutError(
                f"no rollout with id {rollout_id}; `mlcycle rollout status` lists them", 404
            )
        return found

    def active(self, model_name: str) -> Rollout | None:
        """The running or paused rollout of ``model_name``; ``None`` when it has none."""
        with self.engine.connect() as conn:
            return self._select(conn, ROLLOUTS.c.active_key == model_name)

    def latest(self, model_name: str) -> Rollout | None:
        """The most recently started rollout of ``model_name``, active or not."""
        query = (
            sa.select(ROLLOUTS)
            .where(ROLLOUTS.c.model_name == model_name)
            .order_by(ROLLOUTS.c.created_at.desc(), ROLLOUTS.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else Rollout.from_row(row)

    def history(
        self,
        *,
        model_name: str | None = None,
        rollout_id: int | None = None,
        limit: int = 100,
    ) -> list[RolloutEvent]:
        """Events, newest first.

        Parameters
        ----------
        model_name
            Only events of this model's rollouts.
        rollout_id
            Only events of this rollout.
        limit
            Most events returned.
        """
        query = sa.select(ROLLOUT_EVENTS).order_by(
            ROLLOUT_EVENTS.c.time.desc(), ROLLOUT_EVENTS.c.id.desc()
        )
        if rollout_id is not None:
            query = query.where(ROLLOUT_EVENTS.c.rollout_id == int(rollout_id))
        if model_name is not None:
            ids = sa.select(ROLLOUTS.c.id).where(ROLLOUTS.c.model_name == model_name)
            query = query.where(ROLLOUT_EVENTS.c.rollout_id.in_(ids))
        query = query.limit(max(int(limit), 0))
        with self.engine.connect() as conn:
            return [RolloutEvent.from_row(row) for row in conn.execute(query).mappings()]

    # -- starting -----------------------------------------------------------------------

    def start(
        self,
        *,
        model_name: str,
        mode: str,
        champion_version: str,
        champion_bundle: str,
        challenger_version: str,
        challenger_bundle: str,
        settings: RolloutSettings,
        who: str,
        reason: str = "",
    ) -> Rollout:
        """Start a rollout of ``challenger_version`` against ``champion_version``.

        Parameters
        ----------
        model_name
            The served model; it may have one active rollout at a time.
        mode
            ``shadow``, ``bluegreen`` or ``canary``.
        champion_version, champion_bundle
            The version serving now and its bundle folder.
        challenger_version, challenger_bundle
            The version to roll out and its bundle folder.
        settings
            How it runs (kept with the rollout, so every server uses the same).
        who, reason
            Recorded in the ``start`` event.

        Returns
        -------
        Rollout
            Running: shadow at weight 0 mirroring ``settings.shadow_percent``; canary at
            step 0 (weight ``settings.steps[0]``); bluegreen at weight 100.

        Raises
        ------
        RolloutError
            422 for an unknown mode or invalid settings; 409 naming the active rollout
            when the model already has one.
        """
        if mode not in MODES:
            raise RolloutError(f"rollout mode must be one of {MODES}, not {mode!r}", 422)
        if not model_name:
            raise RolloutError("a rollout needs the name of the model it rolls out", 422)
        problems = check_rollout_settings(settings)
        if problems:
            raise RolloutError("; ".join(problems), 422)
        steps = [float(s) for s in settings.steps]
        phase, step, weight, shadow = {
            "shadow": ("shadow", 0, 0.0, float(settings.shadow_percent)),
            "canary": ("canary", 0, steps[0], 0.0),
            "bluegreen": ("bluegreen", 0, 100.0, 0.0),
        }[mode]
        now = self.clock()
        values = {
            "model_name": model_name,
            "mode": mode,
            "phase": phase,
            "state": "running",
            "step": step,
            "weight": weight,
            "shadow_percent": shadow,
            "steps": _dumps(steps),
            "champion_version": str(champion_version),
            "champion_bundle": str(champion_bundle),
            "challenger_version": str(challenger_version),
            "challenger_bundle": str(challenger_bundle),
            "step_started_at": now,
            "created_at": now,
            "updated_at": now,
            "revision": 1,
            "started_by": who,
            "settings": _dumps(dataclasses.asdict(settings)),
            "last_analysis": None,
            "active_key": model_name,
        }
        # The UNIQUE active_key decides a race; a rollout that finished between the
        # failed insert and the re-read leaves the model free, so try again.
        for _ in range(3):
            current = self.active(model_name)
            if current is not None:
                raise self._busy(current)
            try:
                with self.engine.begin() as conn:
                    inserted = conn.execute(ROLLOUTS.insert().values(**values))
                    key = inserted.inserted_primary_key
                    assert key is not None
                    rollout_id = int(key[0])
                    conn.execute(
                        ROLLOUT_EVENTS.insert().values(
                            rollout_id=rollout_id, time=now, action="start",
                            from_phase=None, to_phase=phase, from_state=None,
                            to_state="running", from_weight=None, to_weight=weight,
                            step=step, reason=reason, metrics=None, who=who,
                        )
                    )  # fmt: skip
                    created = self._select(conn, ROLLOUTS.c.id == rollout_id)
            except sa.exc.IntegrityError:
                continue
            assert created is not None
            return created
        current = self.active(model_name)
        if current is not None:
            raise self._busy(current)
        raise RolloutError(
            f"could not start a rollout of {model_name!r}: other rollouts kept starting and "
            "finishing at the same time; try again",
            409,
        )

    @staticmethod
    def _busy(current: Rollout) -> RolloutError:
        return RolloutError(
            f"{current.model_name!r} already has an active rollout: {current.describe()}; "
            f"promote or roll back rollout {current.id} first",
            409,
            current,
        )

    # -- transitions --------------------------------------------------------------------

    def promote_step(
        self, r: Rollout, *, who: str, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> Rollout | None:
        """Move a running rollout one step on (what a passed analysis does).

        Shadow: on to a canary at step 0, a blue/green switch, or completed, as its
        ``after_shadow`` setting says. Canary: the next step, or promoted after the last.
        Blue/green: promoted.

        Returns
        -------
        Rollout or None
            The rollout after the step; ``None`` when its revision moved since ``r``.

        Raises
        ------
        RolloutError
            409 unless ``r`` is running.
        """
        self._require(r, ("running",), "move a step on")
        now = self.clock()
        changes: dict[str, Any]
        if r.phase == "shadow":
            after = str(r.settings.get("after_shadow", "canary"))
            if after not in AFTER_SHADOW:
                raise RolloutError(
                    f"rollout {r.id} has after_shadow {after!r}, not one of {AFTER_SHADOW}", 409
                )
            if after == "canary":
                action = "step"
                changes = {"phase": "canary", "step": 0, "weight": r.steps[0]}
            elif after == "bluegreen":
                action = "step"
                changes = {"phase": "bluegreen", "step": 0, "weight": 100.0}
            else:
                action = "complete"
                changes = {"state": "completed", "weight": 0.0}
            changes.update(shadow_percent=0.0, step_started_at=now)
        elif r.phase == "canary" and r.step + 1 < len(r.steps):
            action = "step"
            changes = {"step": r.step + 1, "weight": r.steps[r.step + 1], "step_started_at": now}
        else:  # the canary's last step, or blue/green
            action = "promote"
            changes = {"state": "promoted", "weight": 100.0, "shadow_percent": 0.0}
        return self._transition(
            r, action, changes, now=now, who=who, reason=reason, metrics=metrics
        )

    def promote(
        self, r: Rollout, *, who: str, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> Rollout | None:
        """Promote a running or paused rollout by hand: the challenger takes all traffic.

        Returns
        -------
        Rollout or None
            The promoted rollout; ``None`` when its revision moved since ``r``.

        Raises
        ------
        RolloutError
            409 when ``r`` is finished.
        """
        self._require(r, ACTIVE_STATES, "promote")
        changes = {"state": "promoted", "weight": 100.0, "shadow_percent": 0.0}
        return self._transition(r, "promote", changes, who=who, reason=reason, metrics=metrics)

    def rollback(
        self, r: Rollout, *, who: str, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> Rollout | None:
        """Roll a running or paused rollout back: the champion takes all traffic again.

        Returns
        -------
        Rollout or None
            The rolled-back rollout; ``None`` when its revision moved since ``r``.

        Raises
        ------
        RolloutError
            409 when ``r`` is finished.
        """
        self._require(r, ACTIVE_STATES, "roll back")
        changes = {"state": "rolled_back", "weight": 0.0, "shadow_percent": 0.0}
        return self._transition(r, "rollback", changes, who=who, reason=reason, metrics=metrics)

    def pause(self, r: Rollout, *, who: str, reason: str) -> Rollout | None:
        """Pause a running rollout: its weights stay, analysis and steps stop.

        Raises
        ------
        RolloutError
            409 unless ``r`` is running.
        """
        self._require(r, ("running",), "pause")
        return self._transition(r, "pause", {"state": "paused"}, who=who, reason=reason)

    def resume(self, r: Rollout, *, who: str, reason: str) -> Rollout | None:
        """Resume a paused rollout; its step's bake window starts again.

        Raises
        ------
        RolloutError
            409 unless ``r`` is paused.
        """
        self._require(r, ("paused",), "resume")
        now = self.clock()
        changes = {"state": "running", "step_started_at": now}
        return self._transition(r, "resume", changes, now=now, who=who, reason=reason)

    def note_analysis(self, r: Rollout, analysis: Mapping[str, Any]) -> None:
        """Keep ``analysis`` as the rollout's last one (no revision bump, no event).

        Raises
        ------
        RolloutError
            404 when the rollout does not exist.
        """
        with self.engine.begin() as conn:
            result = conn.execute(
                ROLLOUTS.update()
                .where(ROLLOUTS.c.id == r.id)
                .values(last_analysis=_dumps(dict(analysis)))
            )
        if result.rowcount == 0:
            raise RolloutError(f"no rollout with id {r.id}", 404)

    # -- helpers ------------------------------------------------------------------------

    @staticmethod
    def _require(r: Rollout, states: tuple[str, ...], what: str) -> None:
        if r.state in states:
            return
        if r.state in FINISHED_STATES:
            hint = "it is finished; start a new rollout instead"
        elif r.state == "paused":
            hint = "it is paused; resume it first"
        else:
            hint = f"only a {' or '.join(states)} rollout can"
        raise RolloutError(f"cannot {what} {r.describe()}: {hint}", 409, r)

    def _transition(
        self,
        r: Rollout,
        action: str,
        changes: dict[str, Any],
        *,
        who: str,
        reason: str,
        metrics: Mapping[str, Any] | None = None,
        now: float | None = None,
    ) -> Rollout | None:
        """Apply ``changes`` if ``r.revision`` is still stored, with its event, atomically."""
        now = self.clock() if now is None else now
        state = changes.get("state", r.state)
        values = {
            **changes,
            "revision": r.revision + 1,
            "updated_at": now,
            "active_key": r.model_name if state in ACTIVE_STATES else None,
        }
        after = dataclasses.replace(r, **values)
        with self.engine.begin() as conn:
            result = conn.execute(
                ROLLOUTS.update()
                .where(ROLLOUTS.c.id == r.id, ROLLOUTS.c.revision == r.revision)
                .values(**values)
            )
            if result.rowcount != 1:
                exists = conn.execute(sa.select(ROLLOUTS.c.id).where(ROLLOUTS.c.id == r.id))
                if exists.first() is None:
                    raise RolloutError(f"no rollout with id {r.id}", 404)
                return None
            conn.execute(
                ROLLOUT_EVENTS.insert().values(
                    rollout_id=r.id, time=now, action=action,
                    from_phase=r.phase, to_phase=after.phase,
                    from_state=r.state, to_state=after.state,
                    from_weight=r.weight, to_weight=after.weight, step=after.step,
                    reason=reason, metrics=None if metrics is None else _dumps(dict(metrics)),
                    who=who,
                )
            )  # fmt: skip
            return self._select(conn, ROLLOUTS.c.id == r.id)

    @staticmethod
    def _select(conn: sa.Connection, condition: sa.ColumnElement[bool]) -> Rollout | None:
        row = conn.execute(sa.select(ROLLOUTS).where(condition)).mappings().first()
        return None if row is None else Rollout.from_row(row)
