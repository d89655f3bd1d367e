"""MLflow runs: start one, and log its config, metrics, artifacts and lineage.

A run logs the flattened config as params (secrets redacted, values cut to MLflow's
limit), the full redacted config as ``config.yaml``, metrics flattened to dotted keys
(``test.f1_macro``), and folders of artifacts (the bundle under ``bundle/``).
:func:`start_run` sets the only process-global MLflow state: the tracking and registry
URI, which ``mlflow.start_run`` and the fluent logging functions read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcycle._optional import require
from mlcycle.exceptions import TrackingError
from mlcycle.tracking.context import TrackingContext
from mlcycle.tracking.params import REDACT_WORDS, flatten_config, flatten_metrics, redact_config

if TYPE_CHECKING:
    from mlflow import ActiveRun

__all__ = [
    "TAG_DATA_MD5",
    "TAG_GIT_COMMIT",
    "TAG_GIT_DIRTY",
    "lineage_tags",
    "log_artifacts",
    "log_config",
    "log_metrics",
    "start_run",
]

# Run tags (and model-version tags) that record where a model came from.
TAG_GIT_COMMIT = "mlcycle.git_commit"
TAG_GIT_DIRTY = "mlcycle.git_dirty"
TAG_DATA_MD5 = "mlcycle.data_md5"


def lineage_tags(
    *, git_commit: str | None = None, git_dirty: bool | None = None, data_md5: str | None = None
) -> dict[str, str]:
    """Run tags recording the code and data a run used; ``None`` values are left out.

    Examples
    --------
    >>> lineage_tags(git_commit="abc123", git_dirty=False)
    {'mlcycle.git_commit': 'abc123', 'mlcycle.git_dirty': 'false'}
    """
    tags: dict[str, str] = {}
    if git_commit is not None:
        tags[TAG_GIT_COMMIT] = git_commit
    if git_dirty is not None:
        tags[TAG_GIT_DIRTY] = "true" if git_dirty else "false"
    if data_md5 is not None:
        tags[TAG_DATA_MD5] = data_md5
    return tags


def _activate(ctx: TrackingContext) -> None:
    """Point MLflow's fluent API at ``ctx``: the one place global MLflow state is set."""
    mlflow = require("mlflow", "train")
    mlflow.set_tracking_uri(ctx.tracking_uri)
    mlflow.set_registry_uri(ctx.registry_uri)


@contextmanager
def start_run(
    ctx: TrackingContext,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    experiment: str | None = None,
    git_commit: str | None = None,
    git_dirty: bool | None = None,
    data_md5: str | None = None,
) -> Iterator[ActiveRun]:
    """Start an MLflow run in the context's experiment; end it when the block exits.

    The run ends as ``FINISHED``, or ``FAILED`` when the block raises.

    Parameters
    ----------
    ctx
        From :func:`configure_tracking`.
    run_name
        Display name of the run; default: MLflow's generated name.
    tags
        Extra run tags.
    experiment
        Experiment name; default ``ctx.experiment``. Created when missing.
    git_commit, git_dirty, data_md5
        Lineage, recorded as the tags ``mlcycle.git_commit``, ``mlcycle.git_dirty`` and
        ``mlcycle.data_md5`` when given.

    Yields
    ------
    mlflow.ActiveRun
        The run; ``run.info.run_id`` is its id.

    Raises
    ------
    TrackingError
        The store cannot be written, or another run is already active in this process.
    """
    mlflow = require("mlflow", "train")
    active = mlflow.active_run()
    if active is not None:
        raise TrackingError(
            f"an MLflow run ({active.info.run_id}) is already active in this process; "
            "end it (mlflow.end_run()) before starting another"
        )
    _activate(ctx)
    experiment_id = ctx.ensure_experiment(experiment)
    all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    all_tags.update(lineage_tags(git_commit=git_commit, git_dirty=git_dirty, data_md5=data_md5))
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        yield run


def _active_run_id() -> str:
    mlflow = require("mlflow", "train")
    run = mlflow.active_run()
    if run is None:
        raise TrackingError("no active MLflow run; call this inside `with start_run(ctx):`")
    return str(run.info.run_id)


def log_config(cfg: Mapping[str, Any], *, redact: Sequence[str] = REDACT_WORDS) -> dict[str, str]:
    """Log a config to the active run: flattened params and the full ``config.yaml``.

    Parameters
    ----------
    cfg
        The composed config (plain mapping, ``DictConfig`` or dataclass).
    redact
        Words that mark secrets (see :func:`flatten_config`); redacted in both forms.

    Returns
    -------
    dict[str, str]
        The params logged.
    """
    mlflow = require("mlflow", "train")
    yaml = require("yaml", "train")
    run_id = _active_run_id()
    params = flatten_config(cfg, redact=redact)
    mlflow.log_params(params, run_id=run_id)
    text = yaml.safe_dump(redact_config(cfg, redact=redact), sort_keys=False)
    mlflow.log_text(text, "config.yaml", run_id=run_id)
    return params


def log_metrics(
    nested_metrics: Mapping[str, Any], prefix: str = "", *, step: int | None = None
) -> dict[str, float]:
    """Log the numeric leaves of nested metrics to the active run.

    Parameters
    ----------
    nested_metrics
        E.g. the output of :func:`~mlcycle.evaluate.metrics.classification_metrics`.
    prefix
        Key prefix, e.g. ``"test"`` gives ``test.f1_macro``.
    step
        Optional training step.

    Returns
    -------
    dict[str, float]
        The metrics logged (see :func:`flatten_metrics`).
    """
    mlflow = require("mlflow", "train")
    run_id = _active_run_id()
    flat = flatten_metrics(nested_metrics, prefix)
    if flat:
        mlflow.log_metrics(flat, step=step, run_id=run_id)
    return flat


def log_artifacts(path: Path, artifact_path: str | None = None) -> str:
    """Upload a file or folder to the active run's artifacts.

    Parameters
    ----------
    path
        Local file or folder; a folder's content goes under ``artifact_path``.
    artifact_path
        Folder in the run's artifacts, e.g. ``"bundle"``; default: the root.

    Returns
    -------
    str
        The artifact URI of what was logged: the folder (``<run artifacts>/bundle``,
        usable as a model version's ``source``) or the file.

    Raises
    ------
    TrackingError
        ``path`` does not exist, or no run is active.
    """
    mlflow = require("mlflow", "train")
    run_id = _active_run_id()
    path = Path(path)
    if path.is_dir():
        mlflow.log_artifacts(str(path), artifact_path, run_id=run_id)
        return str(mlflow.get_artifact_uri(artifact_path))
    if path.is_file():
        mlflow.log_artifact(str(path), artifact_path, run_id=run_id)
        inner = f"{artifact_path.strip('/')}/{path.name}" if artifact_path else path.name
        return str(mlflow.get_artifact_uri(inner))
    raise TrackingError(f"cannot log artifacts from {path}: no such file or folder")
