"""The Hydra commands' task functions: thin wrappers that call :mod:`mlcycle.workflow`.

Each task receives the typed config, the project and the raw DictConfig (for logging the
full composed config). The DVC pipeline stages exchange files under the project:

==========  =====================================  ==================================
DVC stage   reads                                  writes
==========  =====================================  ==================================
config      conf/ and the packaged defaults        .mlcycle/resolved/<section>.yaml
prepare     data/ (files, schemas), data section   prepared/{train,val,test}.parquet
train       prepared/, model and train sections    models/model.joblib
evaluate    prepared/, the model                   reports/{metrics,evaluation}.json
export      the above, tracking section            bundle/ (+ MLflow run, registry)
==========  =====================================  ==================================

The DVC stage ``train`` runs ``mlcycle fit``; ``config`` runs ``mlcycle snapshot``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mlcycle.config.project import Project
from mlcycle.config.structured import Config

__all__ = ["TASKS"]

log = logging.getLogger("mlcycle")

MODEL_FILE = Path("models") / "model.joblib"
REPORTS_DIR = Path("reports")
BUNDLE_DIR = Path("bundle")


def train_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """``mlcycle train``: the whole run for one config (one job of a sweep)."""
    from mlcycle import workflow
    from mlcycle.summary import print_train_result

    result = workflow.train(cfg, project, raw)
    print_train_result(result, cfg)


def sanity_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """``mlcycle sanity``: can the model overfit a tiny subset? Exit 1 if not."""
    from mlcycle.data.load import load_dataset
    from mlcycle.train.sanity import sanity_check

    result = sanity_check(load_dataset(cfg.data, project), cfg.model, cfg.train)
    status = "PASSED" if result.passed else "FAILED"
    print(
        f"sanity {status}: {cfg.model.name} reached training accuracy "
        f"{result.train_accuracy:.3f} on {result.rows} rows "
        f"(needs {cfg.train.sanity_min_accuracy:.2f}). {result.message}"
    )
    if not result.passed:
        raise SystemExit(1)


def prepare_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """DVC stage ``prepare``: write the deterministic splits."""
    from mlcycle import stages, workflow

    splits = workflow.prepare(cfg, project)
    out = stages.save_splits(splits, project.prepared_dir)
    print(
        f"prepared {len(splits.train)}/{len(splits.val)}/{len(splits.test)} rows "
        f"(train/val/test) in {out}"
    )


def fit_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """DVC stage ``train``: fit on the prepared training split."""
    from mlcycle import stages
    from mlcycle.train.fit import fit_model

    splits = stages.load_splits(project.prepared_dir)
    trained = fit_model(splits.train, cfg.model, cfg.train)
    path = stages.save_model(trained, project.path(MODEL_FILE))
    print(f"fitted {trained.family} in {trained.fit_seconds:.2f}s -> {path}")


def evaluate_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """DVC stage ``evaluate``: metrics (DVC metrics file) and plots of the fitted model."""
    from mlcycle import stages, workflow

    splits = stages.load_splits(project.prepared_dir)
    trained = stages.load_model(project.path(MODEL_FILE))
    reports = project.path(REPORTS_DIR)
    evaluation = workflow.evaluate_model(
        cfg,
        trained,
        splits,
        reports / "plots",
        workflow.baseline_resolver(cfg, project, splits.test),
    )
    workflow.write_json(reports / "evaluation.json", evaluation.report)
    workflow.write_json(reports / "metrics.json", stages.headline_metrics(evaluation.report))
    print(
        f"evaluated {trained.family}: test {cfg.evaluate.primary_metric} = "
        f"{evaluation.test.get(cfg.evaluate.primary_metric)} -> {reports}"
    )


def export_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """DVC stage ``export``: ONNX with parity check, bundle, MLflow run, registry."""
    import json

    from mlcycle import stages, workflow
    from mlcycle.summary import print_train_result

    splits = stages.load_splits(project.prepared_dir)
    trained = stages.load_model(project.path(MODEL_FILE))
    reports = project.path(REPORTS_DIR)
    evaluation = stages.load_evaluation(reports)
    result = workflow.export_and_register(
        cfg,
        project,
        raw,
        trained,
        splits,
        evaluation,
        dest=lambda _run_id: project.path(BUNDLE_DIR),
    )
    (reports / "export.json").write_text(
        json.dumps(
            {"run_id": result.run_id, "version": result.version, "bundle": str(result.bundle)},
            indent=2,
        )
        + "\n"
    )
    print_train_result(result, cfg)


SNAPSHOT_SECTIONS = ("data", "model", "train", "evaluate", "tracking")


def snapshot_task(cfg: Config, project: Project, raw: DictConfig) -> None:
    """DVC stage ``config``: write each resolved config section to its own file.

    The other stages depend on just the sections they use, so ``dvc repro`` re-runs
    ``train`` when ``model`` changes but leaves ``prepare`` alone. Files are rewritten
    only when their content changes.
    """
    import yaml

    from mlcycle.workflow import config_dict

    plain = config_dict(raw)
    out = project.resolved_dir
    out.mkdir(parents=True, exist_ok=True)
    for section in SNAPSHOT_SECTIONS:
        path = out / f"{section}.yaml"
        text = yaml.safe_dump(plain.get(section), sort_keys=True)
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    print(f"resolved config sections in {out}")


TASKS: dict[str, Callable[[Config, Project, DictConfig], Any]] = {
    "train": train_task,
    "sanity": sanity_task,
    "prepare": prepare_task,
    "fit": fit_task,
    "evaluate": evaluate_task,
    "export": export_task,
    "snapshot": snapshot_task,
}
