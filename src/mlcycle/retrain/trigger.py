"""The server's side of the closed loop: an alarm fires, a retraining runs, a rollout starts.

With ``serve.retrain.on_alarms`` set, every worker of ``mlcycle serve`` runs a
:class:`RetrainTrigger` thread that looks at the ``alarms`` table every ``interval``
seconds. When an alarm of the served model whose name (or metric) is in ``on_alarms``
fires, the trigger

1. records a retraining in the ``retrains`` table. Only one per model can be running (a
   UNIQUE key decides, across workers and replicas); an alarm that fires while one runs
   is added to it instead (*coalesced*), and none starts within ``cooldown_seconds`` of
   the last one's end;
2. exports the feedback dataset (``mlcycle data feedback``: a new DVC version) and runs
   ``mlcycle retrain --retrain-id ID`` in the project, in subprocesses, so the request
   path never waits and the server never imports the training stack;
3. when the gate passed, starts the configured rollout of the new challenger on this
   server (``serve.retrain.rollout``), through the same controller as the admin API.

All of it is in ``mlcycle retrain history`` and ``mlcycle rollout history``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from mlcycle.monitor.store import ALARMS
from mlcycle.retrain.settings import RetrainTriggerSettings
from mlcycle.retrain.store import Retrain, RetrainStore

__all__ = ["RetrainTrigger", "StartRollout", "matching_alarms"]

log = logging.getLogger("mlcycle.retrain")

#: Starts a rollout of (bundle, version, reason) on this server; returns its id.
StartRollout = Callable[[str, str, str], int]

#: Most seconds a feedback export or a retraining may take before it is stopped.
STEP_TIMEOUT = 1800.0


@dataclass(frozen=True)
class FiredAlarm:
    """An alarm row that asks for a retraining."""

    id: int
    name: str
    metric: str
    time: float


def matching_alarms(
    engine: sa.Engine, model_name: str, names: Sequence[str], after_id: int
) -> list[FiredAlarm]:
    """Firing alarms of ``model_name`` newer than ``after_id`` named (or on a metric) in ``names``.

    Parameters
    ----------
    engine
        The monitoring store.
    model_name
        The served model; alarms of other models (or of none) are not its business.
    names
        Alarm rule names or metric names (``dataset_drift``, ``drift.share``).
    after_id
        Only alarms with a larger id.
    """
    wanted = list(names)
    query = (
        sa.select(ALARMS.c.id, ALARMS.c.name, ALARMS.c.metric, ALARMS.c.time)
        .where(
            ALARMS.c.id > after_id,
            ALARMS.c.state == "firing",
            ALARMS.c.model_name.in_([model_name, ""]),
            sa.or_(ALARMS.c.name.in_(wanted), ALARMS.c.metric.in_(wanted)),
        )
        .order_by(ALARMS.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query)
        return [FiredAlarm(int(r.id), str(r.name), str(r.metric), float(r.time)) for r in rows]


def _last_alarm_id(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.max(ALARMS.c.id))).scalar() or 0)


class RetrainTrigger:
    """Starts a retraining when a configured alarm fires; see the module docstring.

    Parameters
    ----------
    settings
        ``serve.retrain``.
    engine
        The monitoring store (alarms, retrainings).
    model_name
        The served model's registered name.
    store_url
        The store's URL, handed to the subprocesses (``--store``).
    project_root
        The project the server runs in (where ``mlcycle retrain`` runs); ``None``: no
        project, so nothing can be retrained (logged once, alarms are only watched).
    start_rollout
        Starts the configured rollout of a new challenger on this server.
    command
        How to call ``mlcycle`` (default: this interpreter's ``-m mlcycle``).
    """

    def __init__(
        self,
        settings: RetrainTriggerSettings,
        engine: sa.Engine,
        *,
        model_name: str,
        store_url: str,
        project_root: Path | None,
        start_rollout: StartRollout | None,
        command: Sequence[str] = (sys.executable, "-m", "mlcycle"),
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = RetrainStore(engine)
        self.model_name = model_name
        self.store_url = store_url
        self.root = project_root
        self.start_rollout = start_rollout
        self.command = list(command)
        self.last_error = ""
        self._seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Lock()

    # -- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Remember the newest alarm (older ones are history), then watch in a thread."""
        if not self.settings.on_alarms:
            return
        try:
            self._seen = _last_alarm_id(self.engine)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("retrain trigger: cannot read the alarms yet: %s", exc)
        if self.root is None:
            log.warning(
                "retrain trigger: the server does not run in an mlcycle project, so alarms "
                "%s cannot start a retraining; start `mlcycle serve` in the project",
                self.settings.on_alarms,
            )
        self._thread = threading.Thread(target=self._run, name="mlcycle-retrain", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (a retraining already running goes on in its subprocess)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.check()
                self.last_error = ""
            except Exception as exc:  # the store is down: try again next time
                if str(exc) != self.last_error:
                    log.warning("retrain trigger: %s", exc)
                    self.last_error = str(exc)

    # -- one look -----------------------------------------------------------------------

    def check(self) -> Retrain | None:
        """Look for new alarms once; run a retraining if they ask for one.

        Returns
        -------
        Retrain or None
            The retraining this call ran (finished), or ``None`` (no alarm, coalesced
            into a running one, in the cooldown, or no project).
        """
        fired = matching_alarms(
            self.engine, self.model_name, self.settings.on_alarms, after_id=self._seen
        )
        if not fired:
            return None
        self._seen = max(a.id for a in fired)
        ids = [a.id for a in fired]
        names = sorted({a.name for a in fired})
        if self.root is None:
            return None
        with self._busy:
            if self._in_cooldown(fired, names):
                return None
            row = self.store.start(self.model_name, "alarm", "server", ids)
            if row is None:
                log.info("retrain trigger: alarm(s) %s joined the running retraining", names)
                return None
            covered = self._covered_by_previous(row, fired)
            if covered is not None:
                return covered
            log.warning("retrain trigger: alarm(s) %s fired; retrain %d starts", names, row.id)
            return self._carry_out(row)

    def _in_cooldown(self, fired: list[FiredAlarm], names: list[str]) -> bool:
        """Whether the last retraining ended too recently (or after these alarms fired)."""
        last = self.store.latest(self.model_name)
        if last is None or last.finished_at is None:
            return False
        since = time.time() - last.finished_at
        if since < self.settings.cooldown_seconds:
            log.warning(
                "retrain trigger: alarm(s) %s fired %.0f s after retrain %d ended, inside "
                "serve.retrain.cooldown_seconds (%.0f s); not retraining",
                names, since, last.id, self.settings.cooldown_seconds,
            )  # fmt: skip
            return True
        return False

    def _covered_by_previous(self, row: Retrain, fired: list[FiredAlarm]) -> Retrain | None:
        """Finish ``row`` as skipped when the retraining before it ended after every one
        of ``fired`` (they fired while it ran, so it covered them: no second run)."""
        previous = [r for r in self.store.history(self.model_name, limit=2) if r.id != row.id]
        if not previous or previous[0].finished_at is None:
            return None
        if max(a.time for a in fired) > previous[0].finished_at:
            return None
        return self.store.finish(
            row.id,
            "skipped",
            f"alarms {[a.id for a in fired]} fired while retrain {previous[0].id} ran; it "
            "covered them",
        )

    def _carry_out(self, row: Retrain) -> Retrain:
        assert self.root is not None
        if self.settings.export_feedback:
            export = self._mlcycle(["data", "feedback", "--store", self.store_url])
            if export.returncode != 0:
                reason = f"exporting the feedback dataset failed: {_last_line(export)}"
                current = self.store.get(row.id)
                if current.running:  # nothing else finished it
                    return self.store.finish(row.id, "skipped", reason)
                return current
        retrain = self._mlcycle(
            [
                "retrain",
                "--retrain-id",
                str(row.id),
                "--trigger",
                "alarm",
                "--who",
                "server",
                "--store",
                self.store_url,
            ]
        )
        done = self.store.get(row.id)
        if done.running:  # the subprocess died without recording how it ended
            done = self.store.finish(
                row.id, "error", f"mlcycle retrain exited {retrain.returncode}: "
                f"{_last_line(retrain)}"
            )  # fmt: skip
        if done.state == "passed":
            self._roll_out(done)
        return self.store.get(row.id)

    def _roll_out(self, done: Retrain) -> None:
        mode = self.settings.rollout
        if mode == "none" or self.start_rollout is None:
            log.warning(
                "retrain %d passed its gate: version %s is the challenger; start its rollout "
                "with `mlcycle rollout start --mode canary`",
                done.id,
                done.version,
            )
            return
        if not done.bundle or not done.version:
            log.warning("retrain %d passed but recorded no bundle; no rollout", done.id)
            return
        reason = f"retrain {done.id} (alarms {done.alarm_ids}) passed its gate"
        try:
            rollout_id = self.start_rollout(done.bundle, done.version, reason)
        except Exception as exc:  # e.g. a rollout already running: say so, keep the model
            log.warning("retrain %d: its rollout could not start: %s", done.id, exc)
            self.store.append_reason(done.id, f"its rollout did not start: {exc}")
            return
        self.store.set_rollout(done.id, rollout_id)
        log.warning(
            "retrain %d: rollout %d of version %s started", done.id, rollout_id, done.version
        )

    def _mlcycle(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        assert self.root is not None
        env = {**os.environ, "MLCYCLE_PROJECT_ROOT": str(self.root)}
        env.pop("MLCYCLE_SERVE_SETTINGS", None)
        try:
            proc = subprocess.run(
                [*self.command, *args],
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 124, "", f"timed out after {exc.timeout}s")
        level = logging.INFO if proc.returncode == 0 else logging.WARNING
        log.log(level, "mlcycle %s exited %d: %s", args[0], proc.returncode, _last_line(proc))
        return proc


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    for text in (proc.stderr, proc.stdout):
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1][:500]
    return "(no output)"
