"""A server worker's part in rollouts: follow the shared state, analyse, act.

Every worker of every server replica runs one :class:`RolloutController`. The rollout
itself lives in the store (:mod:`mlcycle.rollout.state`), so they all agree:

* every ``interval`` seconds a background thread reads the model's rollout; when its
  revision moved (here or on another replica) the worker loads or drops the challenger
  and swaps in a new :class:`~mlcycle.rollout.router.Routing` in one assignment, so no
  request sees half a change and none fails;
* while the rollout runs, the thread gathers the evidence of the current step from the
  prediction log (:mod:`mlcycle.rollout.evidence`) and analyses it
  (:mod:`mlcycle.rollout.analysis`): a failed check rolls back at once, a passed bake
  window promotes a step. The transition is a compare-and-set on the rollout's revision,
  so when several workers decide the same thing at once exactly one of them records it;
* the worker that records a promotion or rollback moves the registry aliases (in a
  process of its own: :mod:`mlcycle.rollout.registry_sync`).

A restarted server reads the state at start-up, before it answers its first request, and
resumes the same step.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle.exceptions import BundleError
from mlcycle.rollout.router import Routing, RoutingKey, signature_problems
from mlcycle.rollout.settings import (
    MODES,
    RolloutSettings,
    check_rollout_settings,
    rollout_settings_from,
)
from mlcycle.rollout.state import Rollout, RolloutError, RolloutStore
from mlcycle.serve.arms import Arm, describe, load_arm_model, make_arm, warm_up_problems

if TYPE_CHECKING:
    import sqlalchemy as sa

    from mlcycle.rollout.analysis import Decision
    from mlcycle.serve.app import ServerState

__all__ = ["RolloutController"]

log = logging.getLogger("mlcycle.rollout")

#: Seconds a replaced arm keeps serving the requests already sent to it before it stops.
RETIRE_GRACE_SECONDS = 5.0
#: Before a step's bake window is over, a check fails only at ``alpha`` divided by this.
EARLY_ALPHA_DIVISOR = 10.0
#: Manual actions the admin API and ``mlcycle rollout`` offer.
ACTIONS = ("pause", "resume", "promote", "rollback")


class RolloutController:
    """Keeps a worker's routing in step with the model's rollout; see the module docstring.

    Parameters
    ----------
    state
        The server's shared state (its ``routing`` is what this replaces).
    engine
        The store (the monitoring store: the prediction log is the evidence).
    cwd
        Where the server was started (the project, for registry aliases).
    """

    def __init__(self, state: ServerState, engine: sa.Engine, *, cwd: Path | None = None) -> None:
        self.state = state
        self.settings = state.settings
        self.engine = engine
        self.store = RolloutStore(engine)
        self.model_name = state.model.name
        self.cwd = cwd or Path.cwd()
        self.last_error = ""
        self._lock = threading.RLock()  # one change of routing at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._blocks = [(b.name, b.features) for b in state.model.validator.blocks]

    # -- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Apply the stored state now (resume a rollout), then follow it in a thread."""
        try:
            self.sync(analyse=False)
        except Exception:
            log.exception("rollout: reading the rollout state at start-up failed")
        self._thread = threading.Thread(target=self._run, name="mlcycle-rollout", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval()):
            try:
                self.sync(analyse=True)
                self.last_error = ""
            except Exception as exc:  # the store is down: keep serving as we are
                if str(exc) != self.last_error:
                    log.warning("rollout: following the rollout state failed: %s", exc)
                self.last_error = str(exc)

    def _interval(self) -> float:
        routing = self.state.routing
        if routing.rollout_id is not None and routing.settings is not None:
            return float(routing.settings.interval)
        return float(self.settings.rollout.interval)

    # -- following the shared state --------------------------------------------------------

    def sync(self, *, analyse: bool) -> Rollout | None:
        """Read the rollout, apply it when it moved, and analyse it when it runs."""
        current = self.state.routing
        r = self.store.active(self.model_name)
        if r is None and current.rollout_id is not None:
            r = self.store.get(current.rollout_id)  # it finished: apply how
        if r is None:
            return None
        if (r.id, r.revision) != (current.rollout_id, current.revision):
            self.apply(r)
        if analyse and r.state == "running" and rollout_settings_from(r.settings).auto:
            self.analyse(r)
        return r

    def apply(self, r: Rollout, challenger: Arm | None = None) -> None:
        """Make this worker's routing what ``r`` says (``challenger``: already loaded)."""
        with self._lock:
            routing = self.state.routing
            if (r.id, r.revision) == (routing.rollout_id, routing.revision):
                return
            champion: Arm = routing.champion
            loaded: Arm | None = challenger or routing.challenger
            if loaded is not None and not _is_arm_of(loaded, r.challenger_bundle):
                self._retire(loaded)
                loaded = None
            settings = rollout_settings_from(r.settings)
            if r.active:
                if loaded is None:
                    loaded = self._load_challenger(r)
                    if loaded is None:
                        return
                self.state.routing = Routing(
                    {"champion": champion, "challenger": loaded},
                    weight=r.weight,
                    shadow_percent=r.shadow_percent if r.phase == "shadow" else 0.0,
                    rollout_id=r.id,
                    revision=r.revision,
                    phase=r.phase,
                    state=r.state,
                    key=RoutingKey(settings.key, self._blocks),
                    settings=settings,
                )
            elif r.state == "promoted" and (
                loaded is not None or _is_arm_of(champion, r.champion_bundle)
            ):
                new = loaded or self._load_challenger(r)
                if new is None:
                    return
                self.state.routing = Routing(
                    {"champion": new.renamed("champion")},
                    rollout_id=r.id,
                    revision=r.revision,
                    state=r.state,
                )
                if not _is_arm_of(champion, r.challenger_bundle):
                    self._retire(champion)
                log.warning(
                    "rollout %d: version %s is the champion now", r.id, r.challenger_version
                )
            else:  # rolled back or completed (or promoted before this server started)
                self.state.routing = Routing(
                    {"champion": champion}, rollout_id=r.id, revision=r.revision, state=r.state
                )
                if loaded is not None:
                    self._retire(loaded)
            log.info("rollout %d: %s %s, challenger at %.0f%%", r.id, r.phase, r.state, r.weight)

    def _load_challenger(self, r: Rollout) -> Arm | None:
        champion: Arm = self.state.routing.champion
        try:
            model = load_arm_model(
                self.settings,
                r.challenger_bundle,
                name=champion.model.name,
                version=r.challenger_version,
            )
        except BundleError as exc:  # e.g. the bundle folder was deleted since
            log.error("rollout %d: cannot load the challenger: %s", r.id, exc)
            if r.active:
                self.store.rollback(
                    r, who="server", reason=f"the challenger cannot be loaded here: {exc}"
                )
            return None
        return self._arm("challenger", model)

    def _arm(self, name: str, model: Any) -> Arm:
        """An arm for ``model`` whose monitor process is up before any traffic reaches it
        (its start-up would otherwise slow the arm's first requests)."""
        arm = make_arm(name, model, self.settings, self.state.metrics, lambda: self.state.in_flight)
        if arm.monitor is not None:
            arm.monitor.flush(timeout=30.0)
        return arm

    def _retire(self, arm: Arm) -> None:
        """Stop ``arm`` once the requests already sent to it are answered."""
        self.state.retired.append(arm)

        def close() -> None:
            if arm in self.state.retired:
                self.state.retired.remove(arm)
            arm.close()

        timer = threading.Timer(RETIRE_GRACE_SECONDS, close)
        timer.daemon = True
        timer.start()

    # -- analysis --------------------------------------------------------------------------

    def analyse(self, r: Rollout) -> Rollout | None:
        """Analyse the current step of ``r``; promote a step or roll back when it says so."""
        from mlcycle.rollout.analysis import analyse
        from mlcycle.rollout.evidence import Evidence, gather

        settings = rollout_settings_from(r.settings)
        now = time.time()
        shadow = r.phase == "shadow"
        evidence = gather(
            self.engine, model_name=self.model_name, since=r.step_started_at, shadow=shadow
        )
        if not shadow and evidence.champion.requests < settings.analysis.min_requests:
            # The champion had (almost) no traffic in this step (blue/green, a 100 % step):
            # compare with what it answered since shortly before the rollout instead.
            # Otherwise both arms are compared over the same minutes, under the same load.
            baseline = gather(
                self.engine,
                model_name=self.model_name,
                since=r.created_at - settings.analysis.baseline_seconds,
                champion_version=r.champion_version,
            )
            evidence = Evidence(champion=baseline.champion, challenger=evidence.challenger)
        served = evidence.challenger.requests
        elapsed = now - r.step_started_at
        bake = settings.bake
        reached = served >= bake.min_requests and elapsed >= bake.min_seconds
        detail = (
            f"bake window not over: {served}/{bake.min_requests} challenger requests, "
            f"{elapsed:.0f}/{bake.min_seconds:.0f} s"
        )
        analysis = settings.analysis
        if not reached:
            # Looked at every `interval` until the bake window ends: roll back early only
            # on evidence ten times stronger, so repeated looks do not add up to false
            # rollbacks of a good challenger (the decision at the window's end uses alpha).
            analysis = dataclasses.replace(analysis, alpha=analysis.alpha / EARLY_ALPHA_DIVISOR)
        decision = analyse(evidence, analysis, bake_reached=reached, bake_detail=detail)
        if not reached and decision.action == "rollback":
            decision = _patient_on_latency(decision, detail)
        metrics = decision.to_dict()
        if decision.action == "hold":
            self.store.note_analysis(r, metrics)
            return None
        if decision.action == "rollback":
            new = self.store.rollback(r, who="analysis", reason=decision.reason, metrics=metrics)
        else:
            new = self.store.promote_step(
                r, who="analysis", reason=decision.reason, metrics=metrics
            )
        if new is not None:  # this worker recorded it (another may have been first)
            # Route by it first: once the store says "rolled back", this worker's next
            # request must not reach the challenger (moving the registry aliases starts a
            # process, and the first time imports modules: the event loop answers meanwhile).
            self.apply(new)
            log.warning("rollout %d: %s: %s", r.id, decision.action, decision.reason)
            self._after(new)
        return new

    def _after(self, r: Rollout) -> None:
        """Move the registry aliases after a promotion or rollback this worker recorded."""
        from mlcycle.rollout.registry_sync import sync_in_background

        try:
            if r.state == "promoted":
                reason = f"rollout {r.id} ({r.mode}) promoted it"
                sync_in_background("promote", r.model_name, r.challenger_version, reason, self.cwd)
            elif r.state == "rolled_back":
                reason = f"rollout {r.id} ({r.mode}) rolled it back"
                sync_in_background("reject", r.model_name, r.challenger_version, reason, self.cwd)
        except Exception:
            log.exception("rollout %d: moving the registry aliases failed", r.id)

    # -- the admin API -----------------------------------------------------------------------

    def begin(
        self,
        *,
        mode: str,
        bundle: str,
        version: str = "",
        overrides: dict[str, Any] | None = None,
        who: str,
        reason: str = "",
    ) -> Rollout:
        """Check and load a challenger, record a new rollout, and route by it.

        Raises
        ------
        RolloutError
            422: an unknown mode, bad settings, a bundle that does not load, a signature
            that differs from the champion's or a failed warm-up (nothing is routed);
            409: a rollout is already running.
        """
        if mode not in MODES:
            raise RolloutError(f"mode must be one of {', '.join(MODES)}, not {mode!r}", 422)
        settings = _with_overrides(self.settings.rollout, overrides or {})
        active = self.store.active(self.model_name)
        if active is not None:
            raise RolloutError(_active_message(active), 409)
        champion: Arm = self.state.routing.champion
        try:
            model = load_arm_model(self.settings, bundle, name=champion.model.name, version=version)
        except BundleError as exc:
            raise RolloutError(f"the challenger cannot be loaded: {exc}", 422) from None
        problems = signature_problems(champion.model.bundle.signature, model.bundle.signature)
        problems += warm_up_problems(model)
        if problems:
            raise RolloutError(
                "the challenger cannot stand in for the champion, so no traffic moved: "
                + "; ".join(problems),
                422,
            )
        r = self.store.start(
            model_name=self.model_name,
            mode=mode,
            champion_version=champion.model.version,
            champion_bundle=str(champion.model.bundle.path),
            challenger_version=model.version,
            challenger_bundle=str(model.bundle.path),
            settings=settings,
            who=who,
            reason=reason,
        )
        arm = self._arm("challenger", model)
        self.apply(r, challenger=arm)
        return r

    def act(self, action: str, *, who: str, reason: str = "") -> Rollout:
        """Pause, resume, promote or roll back the running rollout by hand.

        Raises
        ------
        RolloutError
            404 when no rollout is active; 409 when the action is not allowed now.
        """
        if action not in ACTIONS:
            raise RolloutError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}", 404)
        for _ in range(5):  # another worker may move it between our read and our write
            r = self.store.active(self.model_name)
            if r is None:
                raise RolloutError(
                    f"no rollout of {self.model_name!r} is running; start one with "
                    "`mlcycle rollout start`",
                    404,
                )
            kwargs: dict[str, Any] = {"who": who, "reason": reason or f"{action} by {who}"}
            new = getattr(self.store, action)(r, **kwargs)
            if new is not None:
                self.apply(new)  # route by it first, as in analyse
                self._after(new)
                return new  # type: ignore[no-any-return]
        raise RolloutError("the rollout kept changing while this was tried; try again", 409)

    def status(self) -> dict[str, Any]:
        """The latest rollout, this worker's arms and weights, and the last analysis."""
        routing = self.state.routing
        r = self.store.latest(self.model_name)
        return {
            "rollout": r.to_dict() if r is not None else None,
            "routing": {
                "weight": routing.weight,
                "shadow_percent": routing.shadow_percent,
                "rollout_id": routing.rollout_id,
                "revision": routing.revision,
            },
            "arms": {name: describe(arm) for name, arm in routing.arms.items()},
            "shadow": {"done": self.state.shadow.done, "dropped": self.state.shadow.dropped},
        }

    def history(self, *, limit: int = 100, rollout_id: int | None = None) -> list[dict[str, Any]]:
        """Transitions of this model's rollouts, newest first."""
        events = self.store.history(
            model_name=self.model_name if rollout_id is None else None,
            rollout_id=rollout_id,
            limit=limit,
        )
        return [e.to_dict() for e in events]


def _patient_on_latency(decision: Decision, bake_detail: str) -> Decision:
    """Hold instead of an early rollback that only latency or the class mix asks for.

    A challenger just loaded is slower for its first requests (cold caches, its monitor
    process starting), and the class mix of the first few dozen rows of each arm is noisy
    (PSI has no significance test, and the step is looked at every second): so these two
    decide only when the bake window is over. Error rate and accuracy, tested at
    ``alpha / 10`` before then, still roll back early.
    """
    failed = {c.name for c in decision.checks if c.status == "fail"}
    if not failed or not failed <= {"latency", "output_psi"}:
        return decision
    why = "; ".join(c.detail for c in decision.checks if c.name in failed)
    from mlcycle.rollout.analysis import Decision

    return Decision(
        "hold",
        f"{bake_detail}; {' and '.join(sorted(failed))} look worse ({why}), decided when the "
        "window is over",
        decision.checks,
    )


def _is_arm_of(arm: Arm, bundle: str) -> bool:
    return str(arm.model.bundle.path) == str(Path(bundle))


def _active_message(r: Rollout) -> str:
    return (
        f"rollout {r.id} of {r.model_name!r} is already {r.state} ({r.mode}, {r.phase} phase, "
        f"challenger version {r.challenger_version} at {r.weight:.0f}%); promote or roll it "
        "back first (`mlcycle rollout promote|rollback`)"
    )


def _with_overrides(base: RolloutSettings, overrides: dict[str, Any]) -> RolloutSettings:
    """``base`` with a start request's overrides (steps, shadow_percent, bake, ...).

    Raises
    ------
    RolloutError
        422 naming an unknown or invalid setting.
    """
    data = dataclasses.asdict(base)
    for key, value in overrides.items():
        if key not in data:
            raise RolloutError(f"unknown rollout setting {key!r}; allowed: {sorted(data)}", 422)
        if isinstance(data[key], dict):
            if not isinstance(value, dict):
                raise RolloutError(f"rollout setting {key} must be an object", 422)
            unknown = sorted(set(value) - set(data[key]))
            if unknown:
                raise RolloutError(
                    f"unknown rollout setting(s) {key}.{unknown[0]}; allowed: {sorted(data[key])}",
                    422,
                )
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    try:
        settings = rollout_settings_from(data)
        problems = check_rollout_settings(settings, "rollout")
    except (TypeError, ValueError) as exc:
        raise RolloutError(f"invalid rollout settings: {exc}", 422) from None
    if problems:
        raise RolloutError("; ".join(problems), 422)
    return settings
