"""``mlcycle init DIR``: create a working project.

A project is a git repository with DVC initialised, a ``conf/`` folder whose files
override mlcycle's packaged defaults, a ``dvc.yaml`` pipeline whose stages call mlcycle,
a default DVC remote, and (unless asked not to) the bundled example dataset tracked by
DVC with its inferred schema. Everything ends in one git commit, so the first training
run records a clean commit.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from mlcycle.config.project import Project
from mlcycle.exceptions import ConfigError, ProjectError
from mlcycle.lineage import SECRET_WORDS

__all__ = ["GROUPS", "init_project", "project_config_yaml"]

log = logging.getLogger(__name__)

GROUPS = ("data", "model", "train", "tracking", "remote")

_GITIGNORE = """\
# mlcycle working state (stores, caches, bundles); data goes to DVC, code to git
/.mlcycle/
/mlflow.db
/mlartifacts/
/bundles/
/outputs/
/multirun/
# mlcycle deploy: image contexts and web sites (regenerated from a bundle)
/build/
# mlcycle data check / analyze / augment compare: reports (regenerated on every run)
/reports/data_check/
/reports/analysis/
/reports/augment/
"""

_README = """\
# {name}

An mlcycle project: versioned data, tracked training, ONNX bundles, a model registry.

    mlcycle train                       # prepare, train, evaluate, export, register
    mlcycle train --multirun model=logreg,gbdt hydra/launcher=joblib
    dvc repro                           # the same as a DVC pipeline (dvc.yaml)
    mlcycle models                      # registered versions and aliases
    mlflow ui --backend-store-uri sqlite:///mlflow.db

Configuration: `conf/config.yaml` chooses the config groups; files in `conf/<group>/`
override or add options (e.g. `conf/model/gbdt.yaml`, `conf/data/mydata.yaml`).
"""


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise ProjectError("git is not installed; install it (apt-get install git)") from None
    if check and proc.returncode != 0:
        raise ProjectError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()}")
    return proc


def _identity_args(root: Path) -> list[str]:
    """``-c user.name/email`` for a commit when git has no identity configured."""
    if _git(root, "config", "user.email", check=False).stdout.strip():
        return []
    return ["-c", "user.name=mlcycle", "-c", "user.email=mlcycle@localhost"]


def _split_overrides(overrides: list[str]) -> tuple[dict[str, str], list[str]]:
    """Group choices (``model=gbdt``) and value overrides to write into ``conf/``.

    Secret values (keys with ``secret``, ``access_key``, ...) are left out: they reach
    only ``.dvc/config.local``, through the composed config.
    """
    choices: dict[str, str] = {}
    values: list[str] = []
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if not sep:
            raise ConfigError(f"override '{item}' is not KEY=VALUE (e.g. remote=s3)")
        if key in GROUPS:
            choices[key] = value
        elif not any(w in key.lower() for w in SECRET_WORDS):
            values.append(item)
    return choices, values


def project_config_yaml(choices: dict[str, str], values: list[str]) -> str:
    """The text of a project's ``conf/config.yaml``.

    It repeats the packaged primary config with the chosen group options and the given
    value overrides, so the project states its own defaults.
    """
    from importlib.resources import files

    packaged = yaml.safe_load(files("mlcycle.config.conf").joinpath("config.yaml").read_text())
    defaults: list[Any] = []
    for entry in packaged["defaults"]:
        if isinstance(entry, dict):
            ((group, option),) = entry.items()
            entry = {group: choices.get(group, option)}
        defaults.append(entry)
    body: dict[str, Any] = {k: v for k, v in packaged.items() if k != "defaults"}
    cfg = OmegaConf.create(body)
    for item in values:
        key, _, value = item.lstrip("+").partition("=")
        OmegaConf.update(cfg, key, yaml.safe_load(value), force_add=True)
    header = (
        "# This project's configuration. It overrides mlcycle's packaged defaults; files in\n"
        "# conf/<group>/ override or add group options (conf/model/gbdt.yaml, ...).\n"
        "# Secrets never go here: use the environment or .dvc/config.local.\n"
    )
    text = yaml.safe_dump({"defaults": defaults}, sort_keys=False)
    rest = OmegaConf.to_yaml(cfg)
    return header + text + "\n" + rest


def _dvc_yaml(data_dir: str) -> dict[str, Any]:
    resolved = ".mlcycle/resolved"
    return {
        "stages": {
            "config": {
                "cmd": "mlcycle snapshot",
                "deps": ["conf"],
                "outs": [
                    {f"{resolved}/{s}.yaml": {"cache": False}}
                    for s in ("data", "model", "train", "evaluate", "tracking")
                ],
                "always_changed": True,
            },
            "prepare": {
                "cmd": "mlcycle prepare",
                "deps": [data_dir, f"{resolved}/data.yaml"],
                "outs": ["prepared"],
            },
            "train": {
                "cmd": "mlcycle fit",
                "deps": ["prepared", f"{resolved}/model.yaml", f"{resolved}/train.yaml"],
                "outs": ["models/model.joblib"],
            },
            "evaluate": {
                "cmd": "mlcycle evaluate",
                "deps": ["prepared", "models/model.joblib", f"{resolved}/evaluate.yaml"],
                "outs": ["reports/evaluation.json", "reports/plots"],
                "metrics": [{"reports/metrics.json": {"cache": False}}],
            },
            "export": {
                "cmd": "mlcycle export",
                "deps": [
                    "prepared",
                    "models/model.joblib",
                    "reports/evaluation.json",
                    f"{resolved}/train.yaml",
                    f"{resolved}/tracking.yaml",
                ],
                "outs": ["bundle", {"reports/export.json": {"cache": False}}],
            },
        }
    }


def init_project(
    directory: Path, *, overrides: list[str] | None = None, with_example: bool = True
) -> Project:
    """Create a project in ``directory`` (new, or existing without mlcycle files).

    Parameters
    ----------
    directory
        The project folder; created if missing.
    overrides
        Config overrides to make the project's defaults, e.g. ``["remote=s3",
        "remote.url=s3://bucket/data"]``. Secret values (keys containing ``secret``,
        ``access_key``, ``password``, ``token``) go only to ``.dvc/config.local``.
    with_example
        Write and DVC-track the bundled example of the chosen ``data`` option.

    Returns
    -------
    Project
        The new project.
    """
    from mlcycle.config.hydra_app import compose, to_config
    from mlcycle.data import dvc

    root = directory.expanduser().resolve()
    if (root / "conf" / "config.yaml").exists():
        raise ProjectError(f"{root} is already an mlcycle project (conf/config.yaml exists)")
    if root.exists() and not root.is_dir():
        raise ProjectError(f"{root} exists and is not a folder; choose another path")
    overrides = list(overrides or [])
    choices, values = _split_overrides(overrides)
    project = Project(root)
    # Validate the overrides against the packaged config before touching the disk.
    cfg = to_config(compose(overrides, project=project))
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        if _git(root, "rev-parse", "--git-dir", check=False).returncode != 0:
            _git(root, "init", "-q", "-b", "main")
        dvc.init(root)
        (root / "conf").mkdir(exist_ok=True)
        (root / "conf" / "config.yaml").write_text(project_config_yaml(choices, values))
        gitignore = root / ".gitignore"
        existing = gitignore.read_text() if gitignore.exists() else ""
        if "/.mlcycle/" not in existing:
            gitignore.write_text(existing + _GITIGNORE)
        if not (root / "README.md").exists():
            (root / "README.md").write_text(_README.format(name=root.name))
        data_dir = (
            str(Path(cfg.data.path).parent) if Path(cfg.data.path).parent != Path(".") else "data"
        )
        (root / data_dir).mkdir(parents=True, exist_ok=True)
        (root / "dvc.yaml").write_text(yaml.safe_dump(_dvc_yaml(data_dir), sort_keys=False))
        dvc.configure_remote(root, cfg.remote, project)
        if with_example and cfg.data.example:
            from mlcycle.data.load import load_dataset

            load_dataset(cfg.data, project)  # writes the example and its schema
            dvc.add(root, project.path(cfg.data.path))
        _git(root, "add", "-A")
        _git(root, *_identity_args(root), "commit", "-q", "-m", "mlcycle init", check=False)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise
    print(f"created mlcycle project in {root}")
    return project
