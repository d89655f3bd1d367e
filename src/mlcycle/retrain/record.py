"""What a judged candidate leaves in MLflow: a registered challenger, or a rejected run.

Both carry the same provenance tags (``mlcycle.retrain_id``, ``mlcycle.trigger``,
``mlcycle.alarm_ids``, ``mlcycle.parent_version``, ``mlcycle.feedback_md5``,
``mlcycle.feedback_rows``, ``mlcycle.gate``), the gate's checks and both models' metrics
per evaluation set as run metrics (``gate.*``, ``compare.<set>.<model>.*``), and
``gate.json``. A passed candidate goes through :func:`mlcycle.workflow.export_and_register`
(ONNX with parity, bundle, registered version); a rejected one is only a run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from mlcycle._optional import require
from mlcycle.config.project import Project
from mlcycle.config.structured import Config
from mlcycle.evaluate.metrics import numeric_metric_keys
from mlcycle.retrain.gate import GateVerdict

if TYPE_CHECKING:
    from mlcycle.data.split import Splits
    from mlcycle.tracking import TrackingContext
    from mlcycle.train.fit import TrainedModel
    from mlcycle.workflow import TrainResult

__all__ = ["Judged", "log_rejected", "register_passed"]


@dataclass(frozen=True)
class Judged:
    """A candidate judged against the champion: the verdict and the numbers behind it.

    Parameters
    ----------
    verdict
        The gate's checks.
    candidate, champion
        Each model's metrics per evaluation set (``holdout``, ``recent``).
    rows
        Rows of each evaluation set.
    """

    verdict: GateVerdict
    candidate: Mapping[str, Mapping[str, Any]]
    champion: Mapping[str, Mapping[str, Any]]
    rows: Mapping[str, int]

    def comparison(self) -> dict[str, dict[str, Any]]:
        """Per set: its rows and both models' gate metric."""
        metric = self.verdict.metric
        return {
            name: {
                "rows": n,
                "metric": metric,
                "candidate": self.candidate[name].get(metric),
                "champion": self.champion[name].get(metric),
            }
            for name, n in self.rows.items()
        }

    def document(self) -> dict[str, Any]:
        """``gate.json``: the verdict, its checks and the comparison."""
        return {**self.verdict.to_dict(), "comparison": self.comparison()}

    def metrics(self) -> dict[str, Any]:
        """Run metrics: ``gate.<check>.*`` and ``compare.<set>.<model>.<metric>``."""
        gate: dict[str, Any] = {"passed": float(self.verdict.passed)}
        for check in self.verdict.checks:
            numbers = {k: v for k, v in check.values.items() if k != "baselines"}
            gate[check.name] = {"passed": float(check.passed), **numbers}
        return {
            "gate": gate,
            "compare": {
                name: {
                    "candidate": _numbers(self.candidate[name]),
                    "champion": _numbers(self.champion[name]),
                }
                for name in self.rows
            },
        }


def _numbers(metrics: Mapping[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in numeric_metric_keys(dict(metrics))}


def register_passed(
    cfg: Config,
    project: Project,
    raw: DictConfig,
    trained: TrainedModel,
    splits: Splits,
    judged: Judged,
    *,
    tags: dict[str, str],
    parent: dict[str, Any],
    retrain: dict[str, Any],
) -> TrainResult:
    """Evaluate, export, log and register a candidate that passed, as ``mlcycle train`` does.

    Parameters
    ----------
    splits
        Training split with the feedback rows, and the unchanged validation and test
        splits.
    tags
        The provenance tags (run and version).
    parent, retrain
        ``lineage.json``'s ``parent`` and ``retrain`` entries.
    """
    from mlcycle.workflow import RunExtras, baseline_resolver, evaluate_model, export_and_register

    bundles = project.bundles_dir / cfg.tracking.registered_model
    with tempfile.TemporaryDirectory(prefix="mlcycle-retrain-") as tmp:
        evaluation = evaluate_model(
            cfg,
            trained,
            splits,
            Path(tmp) / "plots",
            baseline_resolver(cfg, project, splits.test),
        )
        return export_and_register(
            cfg,
            project,
            raw,
            trained,
            splits,
            evaluation,
            dest=lambda run_id: bundles / run_id,
            extra=RunExtras(
                tags=tags,
                metrics=judged.metrics(),
                documents={"gate.json": judged.document()},
                parent=parent,
                lineage={"retrain": retrain},
                register=True,
            ),
        )


def log_rejected(
    cfg: Config,
    project: Project,
    raw: DictConfig,
    ctx: TrackingContext,
    trained: TrainedModel,
    splits: Splits,
    judged: Judged,
    *,
    tags: dict[str, str],
) -> str:
    """Log the run of a candidate the gate rejected (config, metrics, ``gate.json``).

    Nothing is exported or registered.

    Returns
    -------
    str
        The run id.
    """
    from mlcycle.evaluate.report import evaluate_predictions
    from mlcycle.lineage import git_state
    from mlcycle.tracking import log_config, log_metrics, start_run
    from mlcycle.workflow import config_dict

    mlflow = require("mlflow", "train")
    val = evaluate_predictions(
        splits.val.y, trained.predict_proba(splits.val), trained.classes, cfg.evaluate
    )
    git = git_state(project.root)
    version = splits.train.version
    with start_run(
        ctx,
        run_name=f"{cfg.data.name}-{trained.family}-rejected",
        tags={
            **cfg.tracking.tags,
            "mlcycle.model_family": trained.family,
            "mlcycle.data_path": version.path,
            **tags,
        },
        git_commit=git.commit,
        git_dirty=git.dirty,
        data_md5=version.md5,
    ) as run:
        log_config(config_dict(raw))
        log_metrics({"val": val, "test": judged.candidate["holdout"]})
        log_metrics(judged.metrics())
        mlflow.log_dict(judged.document(), "gate.json")
        return str(run.info.run_id)
