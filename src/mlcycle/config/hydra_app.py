"""Run an mlcycle command as a Hydra application.

``mlcycle train model=gbdt --multirun ...`` reaches :func:`run` with the command's task
and the arguments after the command name. Hydra then does what it does for any app:
overrides (``key=v``, ``+key=v``, ``++key=v``, ``~key``), ``--multirun`` sweeps through
the configured launcher (``hydra/launcher=joblib`` for parallel local runs), ``--cfg job``
and ``--help``. The project root is resolved first and exported as
``MLCYCLE_PROJECT_ROOT`` so Hydra's folders and every store land in the project.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from mlcycle.config.project import PROJECT_ENV, Project
from mlcycle.config.store import register_schemas
from mlcycle.config.structured import Config
from mlcycle.exceptions import ConfigError, MlcycleError

__all__ = ["Task", "compose", "run", "to_config"]

Task = Callable[[Config, Project, DictConfig], Any]

_CONFIG_PATH = "conf"
_CONFIG_NAME = "config"


def to_config(cfg: DictConfig) -> Config:
    """Turn the composed DictConfig into typed dataclasses (resolving interpolations)."""
    obj = OmegaConf.to_object(cfg)
    assert isinstance(obj, Config), type(obj)
    return obj


def _prepare(project: Project | None) -> Project:
    register_schemas()
    project = project or Project.discover()
    os.environ[PROJECT_ENV] = str(project.root)
    return project


def run(command: str, task: Task, argv: list[str], project: Project | None = None) -> None:
    """Run ``task`` as the Hydra app ``mlcycle <command>`` with ``argv`` as its arguments.

    Parameters
    ----------
    command
        The subcommand name, shown in Hydra's help and used as the job name.
    task
        Called once per job with the typed config, the project and the raw DictConfig.
    argv
        Hydra's command line: overrides and flags such as ``--multirun`` or ``--cfg job``.
    project
        The project; discovered from the working directory when omitted.
    """
    project = _prepare(project)

    @hydra.main(config_path=_CONFIG_PATH, config_name=_CONFIG_NAME, version_base="1.3")
    def _app(cfg: DictConfig) -> Any:
        return _run_task(task, cfg, project)

    saved = sys.argv
    sys.argv = [f"mlcycle {command}", *argv, f"hydra.job.name={command}"]
    try:
        _app()
    finally:
        sys.argv = saved


def _run_task(task: Task, cfg: DictConfig, project: Project) -> Any:
    try:
        return task(to_config(cfg), project, cfg)
    except MlcycleError as exc:
        # One clear line, no traceback; Hydra would print a stack otherwise.
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def compose(overrides: list[str] | None = None, project: Project | None = None) -> DictConfig:
    """Compose the config for ``overrides`` without running an app (for non-Hydra commands).

    Parameters
    ----------
    overrides
        Hydra overrides such as ``["model=gbdt", "tracking.uri=http://127.0.0.1:5000"]``.
    project
        The project whose ``conf/`` overrides the packaged defaults.

    Returns
    -------
    DictConfig
        The composed config, with Hydra's own node removed.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    saved = os.environ.get(PROJECT_ENV)
    _prepare(project)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="mlcycle.config.conf", version_base="1.3"):
            return hydra_compose(config_name=_CONFIG_NAME, overrides=list(overrides or []))
    except HydraException as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = "; ".join(line for line in lines if not line.startswith("See https://"))
        if exc.__cause__ is not None:  # e.g. omegaconf's "could not be converted to Float"
            detail += f" ({str(exc.__cause__).strip().splitlines()[0]})"
        raise ConfigError(
            f"the config overrides {list(overrides or [])} are not valid: {detail}. "
            "Overrides are KEY=VALUE (e.g. model=gbdt serve.port=9000); a command's options "
            "start with -- (e.g. --model @challenger); see the command's --help"
        ) from None
    finally:
        GlobalHydra.instance().clear()
        if saved is None:
            os.environ.pop(PROJECT_ENV, None)
        else:
            os.environ[PROJECT_ENV] = saved
