"""The lifecycle steps, end to end: prepare → fit → evaluate → export → track → register.

Each step is a plain function of typed config and data, so the one-shot
``mlcycle train`` and the DVC pipeline stages (``prepare``, ``fit``, ``evaluate``,
``export``) run the same code. Nothing here reads global configuration.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mlcycle._optional import require
from mlcycle.config.project import Project
from mlcycle.config.structured import Config
from mlcycle.data.augment.record import log_augmentation
from mlcycle.data.dataset import Dataset
from mlcycle.data.load import load_dataset
from mlcycle.data.split import Splits, split_dataset
from mlcycle.evaluate.baselines import BaselineResult, compare_to_baselines
from mlcycle.evaluate.plots import save_plots
from mlcycle.evaluate.report import evaluate_predictions
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import ParityReport, check_parity
from mlcycle.export.profile import build_profile
from mlcycle.lineage import build_lineage, git_state, redact
from mlcycle.train.fit import TrainedModel, fit_model

__all__ = [
    "Evaluation",
    "RunExtras",
    "TrainResult",
    "config_dict",
    "evaluate_model",
    "export_and_register",
    "prepare",
    "train",
]

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    """Metrics of one model on validation and test, its baselines and plots."""

    report: dict[str, Any]
    baselines: list[BaselineResult]
    plots: dict[str, Path] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, Any]:
        """Test-set metrics."""
        return dict(self.report["splits"]["test"])


@dataclass
class RunExtras:
    """What a caller adds to a training run, its bundle and its registered version.

    Retraining uses it to record where a model came from (its parent, the feedback data,
    the gate's verdict); plain ``mlcycle train`` adds nothing.
    """

    # Tags of the MLflow run and of the registered version.
    tags: dict[str, str] = field(default_factory=dict)
    # Nested metrics logged to the run (dotted keys, like the evaluation's).
    metrics: dict[str, Any] = field(default_factory=dict)
    # JSON documents logged as run artifacts: file name -> document.
    documents: dict[str, Any] = field(default_factory=dict)
    # The model this one derives from (lineage.json's "parent").
    parent: dict[str, Any] | None = None
    # More top-level entries of lineage.json.
    lineage: dict[str, Any] = field(default_factory=dict)
    # Register the bundle whatever train.register says (None: as it says).
    register: bool | None = None


@dataclass
class TrainResult:
    """What one training run produced."""

    family: str
    run_id: str
    version: str | None
    bundle: Path
    evaluation: Evaluation
    parity: ParityReport


def config_dict(raw: DictConfig) -> dict[str, Any]:
    """The composed config as plain data, interpolations resolved, secrets redacted."""
    plain = OmegaConf.to_container(raw, resolve=True, throw_on_missing=False)
    assert isinstance(plain, dict)
    plain.pop("hydra", None)
    plain.pop("schema", None)
    return dict(redact(plain))


def prepare(cfg: Config, project: Project) -> Splits:
    """Load the dataset (inferring its schema on first use) and split it."""
    dataset = load_dataset(cfg.data, project)
    return split_dataset(dataset, cfg.data.split)


def evaluate_model(
    cfg: Config,
    trained: TrainedModel,
    splits: Splits,
    plots_dir: Path,
    resolve_baseline: Callable[[str], dict[str, Any] | None],
) -> Evaluation:
    """Metrics on validation and test, plots of the test set, gaps to the baselines.

    Parameters
    ----------
    cfg
        The composed config (``evaluate`` section).
    trained
        The fitted model.
    splits
        The data splits; the test split is the fixed holdout.
    plots_dir
        Folder for the PNG plots.
    resolve_baseline
        Returns the test metrics of a baseline model reference, or None if it does not exist.
    """
    report: dict[str, Any] = {"primary_metric": cfg.evaluate.primary_metric, "splits": {}}
    val_proba = trained.predict_proba(splits.val)
    test_proba = trained.predict_proba(splits.test)
    for split_name, ds, proba in (
        ("val", splits.val, val_proba),
        ("test", splits.test, test_proba),
    ):
        report["splits"][split_name] = evaluate_predictions(
            ds.y, proba, trained.classes, cfg.evaluate
        )
    plots = save_plots(
        splits.test.y,
        test_proba,
        trained.classes,
        plots_dir,
        calibration_bins=cfg.evaluate.calibration_bins,
    )
    baselines = compare_to_baselines(
        report["splits"]["test"], list(cfg.evaluate.baselines), resolve_baseline
    )
    report["baselines"] = [b.to_dict() for b in baselines]
    return Evaluation(report=report, baselines=baselines, plots=dict(plots))


def baseline_resolver(
    cfg: Config, project: Project, test: Dataset
) -> Callable[[str], dict[str, Any] | None]:
    """A function that evaluates a registered model (or bundle folder) on ``test``."""

    def resolve(ref: str) -> dict[str, Any] | None:
        from mlcycle.bundle import Bundle
        from mlcycle.exceptions import RegistryError
        from mlcycle.registry import resolve_bundle
        from mlcycle.tracking import configure_tracking

        ctx = configure_tracking(cfg.tracking, project)
        try:
            path = resolve_bundle(ctx, ref, name=cfg.tracking.registered_model)
        except RegistryError as exc:  # no such model yet: the baseline is skipped
            log.info("baseline %s not available: %s", ref, exc)
            return None
        bundle = Bundle.load(path)  # a broken bundle is an error, not a skip
        if sorted(bundle.classes) != sorted(test.schema.classes):
            log.warning("baseline %s has other classes (%s); skipped", ref, bundle.classes)
            return None
        _, proba = bundle.predict(bundle.inputs_from_columns(test.columns()))
        return evaluate_predictions(
            test.y, np.asarray(proba, np.float64), bundle.classes, cfg.evaluate
        )

    return resolve


def _write_bundle(
    dest: Path,
    cfg: Config,
    trained: TrainedModel,
    splits: Splits,
    model: Any,
    evaluation: Evaluation,
    lineage: dict[str, Any],
) -> Path:
    """Write the bundle of an exported model: graph, signature, profile, reports, plots."""
    val_proba = trained.predict_proba(splits.val)
    return write_bundle(
        dest,
        model=model,
        signature=make_signature(
            splits.train.schema, trained.classes, model, cfg.tracking.registered_model
        ),
        profile=build_profile(splits.train, val_proba, splits.val.y, trained.classes),
        evaluation=evaluation.report,
        lineage=lineage,
        files={f"plots/{p.name}": p for p in evaluation.plots.values()},
        overwrite=True,
    )


def export_and_register(
    cfg: Config,
    project: Project,
    raw: DictConfig,
    trained: TrainedModel,
    splits: Splits,
    evaluation: Evaluation,
    dest: Callable[[str], Path],
    *,
    extra: RunExtras | None = None,
) -> TrainResult:
    """Track the run in MLflow, export the bundle (with parity), log it and register it.

    The MLflow run is opened first so the bundle's lineage names it; if export fails
    the run is marked FAILED and neither a bundle nor a model version is left behind.

    Parameters
    ----------
    dest
        Maps the MLflow run id to the bundle folder to write.
    extra
        Tags, metrics, JSON documents and lineage to add (retraining's provenance).
    """
    from mlcycle.registry import register_bundle
    from mlcycle.tracking import (
        configure_tracking,
        log_artifacts,
        log_config,
        log_metrics,
        start_run,
    )

    ctx = configure_tracking(cfg.tracking, project)
    plain = config_dict(raw)
    data_version = splits.train.version
    git = git_state(project.root)
    extra = extra or RunExtras()
    tags = {
        **cfg.tracking.tags,
        "mlcycle.model_family": trained.family,
        "mlcycle.data_path": data_version.path,
        **extra.tags,
    }
    with start_run(
        ctx,
        run_name=f"{cfg.data.name}-{trained.family}",
        tags=tags,
        git_commit=git.commit,
        git_dirty=git.dirty,
        data_md5=data_version.md5,
    ) as run:
        run_id = run.info.run_id
        log_config(plain)
        log_metrics(evaluation.report["splits"])
        if extra.metrics:
            log_metrics(extra.metrics)
        if extra.documents:
            _log_documents(extra.documents)
        model = to_onnx(trained.pipeline, splits.train.schema)
        parity = check_parity(trained, model, splits.val, cfg.train.parity_tolerance)
        log_metrics({"parity": {"max_abs_diff": parity.max_abs_diff}})
        evaluation.report["parity"] = parity.to_dict()
        lineage = build_lineage(
            root=project.root,
            data=data_version.to_dict(),
            config=plain,
            run={
                "run_id": run_id,
                "experiment_id": run.info.experiment_id,
                "tracking_uri": ctx.tracking_uri,
            },
            parent=extra.parent,
        )
        lineage.update(extra.lineage)
        if trained.augmentation is not None:  # what train.augment added (docs/augment.md)
            lineage["augmentation"] = trained.augmentation
            log_augmentation(trained.augmentation)
        bundle_path = _write_bundle(dest(run_id), cfg, trained, splits, model, evaluation, lineage)
        artifact_uri = log_artifacts(bundle_path, "bundle")
        version = None
        if cfg.train.register if extra.register is None else extra.register:
            version = register_bundle(
                ctx,
                cfg.tracking.registered_model,
                run_id,
                artifact_uri,
                tags={
                    "mlcycle.model_family": trained.family,
                    "mlcycle.data_md5": data_version.md5,
                    **extra.tags,
                },
            )
    return TrainResult(
        family=trained.family,
        run_id=run_id,
        version=version,
        bundle=bundle_path,
        evaluation=evaluation,
        parity=parity,
    )


def _log_documents(documents: dict[str, Any]) -> None:
    """Log JSON documents as artifacts of the active run."""
    mlflow = require("mlflow", "train")
    for name, doc in documents.items():
        mlflow.log_dict(doc, name)


def train(cfg: Config, project: Project, raw: DictConfig) -> TrainResult:
    """The whole run: prepare, fit, evaluate, export with parity, track and register."""
    splits = prepare(cfg, project)
    log.info(
        "data %s: %d rows (train %d, val %d, test %d), version %s",
        cfg.data.name,
        len(splits.train) + len(splits.val) + len(splits.test),
        len(splits.train),
        len(splits.val),
        len(splits.test),
        splits.train.version.md5[:12],
    )
    trained = fit_model(splits.train, cfg.model, cfg.train)
    log.info("fitted %s in %.2fs", trained.family, trained.fit_seconds)
    with tempfile.TemporaryDirectory(prefix="mlcycle-") as tmp:
        scratch = Path(tmp)
        evaluation = evaluate_model(
            cfg,
            trained,
            splits,
            scratch / "plots",
            baseline_resolver(cfg, project, splits.test),
        )
        bundles = project.bundles_dir / cfg.tracking.registered_model
        return export_and_register(
            cfg, project, raw, trained, splits, evaluation, dest=lambda run_id: bundles / run_id
        )


def write_json(path: Path, payload: Any) -> Path:
    """Write ``payload`` as pretty, sorted JSON (for DVC metrics and stage outputs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path
