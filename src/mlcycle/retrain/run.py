"""One retraining: feedback in, a gated challenger out.

:func:`retrain` records the retraining (one per model at a time), fits the configured
model on the training split plus the feedback rows, judges it against the champion on
the holdout and on recent labelled traffic (:mod:`mlcycle.retrain.gate`), and then:

* **passed**: exports, logs and registers it the way ``mlcycle train`` does, with its
  provenance added (run and version tags ``mlcycle.parent_version``, ``mlcycle.trigger``,
  ``mlcycle.alarm_ids``, ``mlcycle.feedback_md5``, ``mlcycle.feedback_rows``,
  ``mlcycle.retrain_id``, ``mlcycle.gate``; ``gate.json``; the bundle's lineage names
  its parent); the new version holds the alias ``challenger``;
* **failed**: logs the MLflow run (tag ``mlcycle.gate=failed``, ``gate.json``) and
  registers nothing;
* **skipped**: no feedback dataset, or fewer than ``retrain.min_new_rows`` rows labelled
  since the champion was registered; nothing is trained.

It runs off the request path: in a process of its own (``mlcycle retrain``,
``python -m mlcycle.retrain``) or in-process.
"""

from __future__ import annotations

import getpass
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig

from mlcycle.config.project import Project
from mlcycle.config.structured import Config
from mlcycle.data.dataset import Dataset
from mlcycle.evaluate.report import evaluate_predictions
from mlcycle.exceptions import ConfigError, MlcycleError, RegistryError
from mlcycle.retrain.config import check_retrain_config
from mlcycle.retrain.data import (
    Feedback,
    FeedbackSplit,
    append_rows,
    has_rows,
    iso,
    read_feedback,
)
from mlcycle.retrain.gate import GateVerdict, judge
from mlcycle.retrain.record import Judged, log_rejected, register_passed
from mlcycle.retrain.store import Retrain, RetrainStore

if TYPE_CHECKING:
    from mlcycle.data.split import Splits
    from mlcycle.tracking import TrackingContext

__all__ = ["EXIT_CODES", "OUTCOMES", "RetrainOutcome", "retrain"]

log = logging.getLogger(__name__)

#: How a retraining can end for its caller: a finished state, or ``coalesced`` (another
#: retraining of the model was already running; this request joined it).
OUTCOMES = ("passed", "failed", "skipped", "error", "coalesced")
#: The exit code of each outcome: 0 a new challenger, 1 the gate said no, 2 nothing new
#: (skipped, coalesced or an error).
EXIT_CODES = {"passed": 0, "failed": 1, "skipped": 2, "error": 2, "coalesced": 2}

_EXPORT_HINT = (
    "export labelled traffic with `mlcycle data feedback` (label predictions with "
    "`mlcycle feedback` or the review queue first)"
)


@dataclass
class RetrainOutcome:
    """What a retraining ended with.

    Parameters
    ----------
    state
        One of :data:`OUTCOMES`.
    retrain
        Its row in the ``retrains`` table (for ``coalesced``: the one already running);
        ``None`` only when a coalesced retraining finished before it could be read.
    reason
        Why (the gate's failed checks, what was missing, the error).
    gate
        The gate's verdict, when a candidate was judged.
    comparison
        Per evaluation set: ``rows`` and the gate metric of ``candidate`` and
        ``champion``.
    """

    state: str
    retrain: Retrain | None
    reason: str = ""
    gate: GateVerdict | None = None
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """0 passed, 1 failed the gate, 2 skipped, coalesced or an error."""
        return EXIT_CODES[self.state]

    @property
    def challenger(self) -> str | None:
        """``models:/NAME/VERSION`` of the new challenger, when it passed."""
        r = self.retrain
        if self.state != "passed" or r is None or r.version is None:
            return None
        return f"models:/{r.model_name}/{r.version}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``mlcycle retrain --json``)."""
        return {
            "state": self.state,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "challenger": self.challenger,
            "comparison": self.comparison,
            "gate": None if self.gate is None else self.gate.to_dict(),
            "retrain": None if self.retrain is None else self.retrain.to_dict(),
        }


@dataclass
class _Finish:
    """How :func:`_attempt` ended: the state, the reason and what to record."""

    state: str
    reason: str
    fields: dict[str, Any] = field(default_factory=dict)
    gate: GateVerdict | None = None
    comparison: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Champion:
    name: str
    version: str
    registered_at: float
    run_id: str | None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _user() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def retrain(
    cfg: Config,
    project: Project,
    raw: DictConfig,
    *,
    trigger: str = "manual",
    who: str | None = None,
    alarm_ids: Iterable[int] = (),
    store: RetrainStore,
    retrain_id: int | None = None,
) -> RetrainOutcome:
    """Retrain on the feedback data and, if the gate passes, register a challenger.

    Parameters
    ----------
    cfg
        The composed config (``retrain``, ``data``, ``model``, ``train``, ``evaluate``,
        ``tracking``).
    project
        The project.
    raw
        The composed DictConfig (logged with the run).
    trigger
        ``manual`` or ``alarm``.
    who
        Who asked; default: the login name.
    alarm_ids
        The alarms behind it (recorded, and tagged on the run and version).
    store
        Where retrainings are recorded (the monitoring store).
    retrain_id
        Carry on a retraining already recorded as running (a server records it when an
        alarm fires, then runs this in a subprocess) instead of recording a new one.

    Returns
    -------
    RetrainOutcome
        ``passed``, ``failed``, ``skipped``, ``error`` (an :class:`MlcycleError`; also
        recorded) or ``coalesced``.

    Raises
    ------
    ConfigError
        A bad ``retrain`` setting (nothing is recorded).
    Exception
        Anything unexpected, after recording the retraining as ``error``.
    """
    problems = check_retrain_config(cfg.retrain)
    if problems:
        raise ConfigError("; ".join(problems))
    name = cfg.tracking.registered_model
    if retrain_id is not None:
        row: Retrain | None = store.adopt(retrain_id)
    else:
        row = store.start(name, trigger, who or _user(), alarm_ids)
    if row is None:
        running = store.running(name) or store.latest(name)
        what = running.describe() if running else f"another retrain of {name!r}"
        return RetrainOutcome(
            "coalesced",
            running,
            f"{what} is already running; its alarms now include this request's. Wait for "
            "it (`mlcycle retrain history`)",
        )
    log.info("retrain %d of %r started (%s)", row.id, name, trigger)
    try:
        end = _attempt(_Job(cfg, project, raw, row, store))
    except MlcycleError as exc:
        return RetrainOutcome("error", store.finish(row.id, "error", str(exc)), str(exc))
    except BaseException as exc:
        store.finish(row.id, "error", f"{type(exc).__name__}: {exc}".rstrip(": "))
        raise
    done = store.finish(row.id, end.state, end.reason, **end.fields)
    return RetrainOutcome(end.state, done, end.reason, end.gate, end.comparison)


def _champion(ctx: TrackingContext, cfg: Config) -> _Champion:
    from mlcycle.registry import lookup_version, parse_model_ref

    text = str(cfg.retrain.champion).strip()
    is_ref = text.startswith(("@", "models:/")) or text.lstrip("vV").isdigit()
    mref = parse_model_ref(
        text if is_ref else f"@{text}", default_name=cfg.tracking.registered_model
    )
    version = lookup_version(ctx, mref)
    if version is None:
        raise RegistryError(
            f"there is no champion to retrain against: {mref.uri} does not exist. Promote "
            "a version with `mlcycle promote VERSION` (`mlcycle models` lists them), or set "
            "retrain.champion"
        )
    mv = ctx.client.get_model_version(mref.name, version)
    return _Champion(mref.name, version, int(mv.creation_timestamp) / 1000, mv.run_id or None)


def _bundle_metrics(path: Path, sets: Mapping[str, Dataset], cfg: Config) -> dict[str, Any]:
    """The champion bundle's metrics on each set."""
    from mlcycle.bundle import Bundle

    bundle = Bundle.load(path)
    out: dict[str, Any] = {}
    for name, ds in sets.items():
        unknown = sorted(set(ds.y.tolist()) - set(bundle.classes))
        if unknown:
            raise RegistryError(
                f"the champion at {path} does not know the class(es) {unknown} of the "
                f"{name} rows (its classes: {bundle.classes}); it cannot be compared"
            )
        _, proba = bundle.predict(bundle.inputs_from_columns(ds.columns()))
        out[name] = evaluate_predictions(
            ds.y, np.asarray(proba, np.float64), bundle.classes, cfg.evaluate
        )
    return out


def _skip(reason: str, **fields: Any) -> _Finish:
    log.info("nothing to retrain: %s", reason)
    return _Finish("skipped", reason, fields)


@dataclass(frozen=True)
class _Job:
    """One retraining's inputs: the config, the project and its record."""

    cfg: Config
    project: Project
    raw: DictConfig
    row: Retrain
    store: RetrainStore


def _attempt(job: _Job) -> _Finish:
    from mlcycle.tracking import configure_tracking
    from mlcycle.workflow import prepare

    cfg, rcfg = job.cfg, job.cfg.retrain
    path = job.project.path(rcfg.feedback_path)
    if not path.is_file():
        return _skip(
            f"there is no feedback dataset at {path} (retrain.feedback_path); {_EXPORT_HINT}"
        )
    if not has_rows(path):
        return _skip(f"the feedback dataset {path} has no rows yet; {_EXPORT_HINT}")
    ctx = configure_tracking(cfg.tracking, job.project)
    champion = _champion(ctx, cfg)
    splits = prepare(cfg, job.project)
    feedback = read_feedback(path, splits.train.schema, job.project.root)
    part = feedback.split(champion.registered_at, rcfg.recent_fraction)
    versions = _data_versions(splits, feedback, part)
    if part.new_rows < rcfg.min_new_rows:
        return _skip(
            f"only {part.new_rows} of the {len(feedback)} feedback rows in {path} were "
            f"labelled after the champion (version {champion.version}) was registered at "
            f"{iso(champion.registered_at)}, and retrain.min_new_rows is {rcfg.min_new_rows}; "
            f"{_EXPORT_HINT}, or lower retrain.min_new_rows",
            parent_version=champion.version,
            data_versions=versions,
        )
    if not feedback.version.tracked:
        log.warning(
            "the feedback dataset %s is not DVC-tracked as it is now; `mlcycle data feedback` "
            "tracks it, so this model's data can be restored",
            feedback.version.path,
        )
    return _train_and_judge(job, ctx, champion, splits, feedback, part)


def _data_versions(splits: Splits, feedback: Feedback, part: FeedbackSplit) -> dict[str, Any]:
    return {
        "data": splits.train.version.to_dict(),
        "feedback": {
            **feedback.version.to_dict(),
            "rows": len(feedback),
            "new_rows": part.new_rows,
            "train_rows": len(part.train),
            "recent_rows": len(part.recent),
        },
        "training_rows": len(splits.train) + len(part.train),
    }


def _train_and_judge(
    job: _Job,
    ctx: TrackingContext,
    champion: _Champion,
    splits: Splits,
    feedback: Feedback,
    part: FeedbackSplit,
) -> _Finish:
    from mlcycle.data.split import Splits
    from mlcycle.registry import resolve_bundle
    from mlcycle.train.fit import fit_model

    cfg, row = job.cfg, job.row
    train = append_rows(splits.train, part.train)
    augmented = Splits(train=train, val=splits.val, test=splits.test)
    trained = fit_model(train, cfg.model, cfg.train)
    log.info(
        "retrain %d: fitted %s on %d rows (%d from feedback)",
        row.id,
        trained.family,
        len(train),
        len(part.train),
    )
    sets = {"holdout": splits.test}
    if len(part.recent):
        sets["recent"] = part.recent
    candidate = {
        name: evaluate_predictions(ds.y, trained.predict_proba(ds), trained.classes, cfg.evaluate)
        for name, ds in sets.items()
    }
    champion_metrics = _bundle_metrics(resolve_bundle(ctx, champion.uri), sets, cfg)
    verdict = judge(
        candidate,
        champion_metrics,
        cfg.retrain.gate,
        primary_metric=cfg.evaluate.primary_metric,
        baselines=list(cfg.evaluate.baselines),
    )
    judged = Judged(verdict, candidate, champion_metrics, {n: len(ds) for n, ds in sets.items()})
    versions = _data_versions(splits, feedback, part)
    alarm_ids = job.store.get(row.id).alarm_ids  # more may have joined while it trained
    tags = {
        "mlcycle.retrain_id": str(row.id),
        "mlcycle.trigger": row.trigger,
        "mlcycle.alarm_ids": json.dumps(alarm_ids),
        "mlcycle.parent_version": champion.version,
        "mlcycle.feedback_md5": feedback.version.md5,
        "mlcycle.feedback_rows": str(len(feedback)),
        "mlcycle.gate": "passed" if verdict.passed else "failed",
    }
    fields: dict[str, Any] = {
        "parent_version": champion.version,
        "data_versions": versions,
        "gate": judged.document(),
    }
    if not verdict.passed:
        fields["run_id"] = log_rejected(
            cfg, job.project, job.raw, ctx, trained, augmented, judged, tags=tags
        )
        log.info("retrain %d failed the gate: %s", row.id, verdict.reason)
        return _Finish("failed", verdict.reason, fields, verdict, judged.comparison())
    result = register_passed(
        cfg,
        job.project,
        job.raw,
        trained,
        augmented,
        judged,
        tags=tags,
        parent={
            "model": champion.name,
            "version": champion.version,
            "run_id": champion.run_id,
            "registered_at": iso(champion.registered_at),
        },
        retrain={
            "id": row.id,
            "trigger": row.trigger,
            "alarm_ids": alarm_ids,
            "data_versions": versions,
            "gate": judged.document(),
        },
    )
    fields.update(run_id=result.run_id, version=result.version, bundle=str(result.bundle))
    log.info("retrain %d passed: version %s is the challenger", row.id, result.version)
    return _Finish(
        "passed", verdict.check("improvement").detail, fields, verdict, judged.comparison()
    )
