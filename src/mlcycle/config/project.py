"""Where a project lives and where its files go.

The project root is resolved *before* Hydra runs, so MLflow's store, the DVC repo and
the bundles always land in the project, never in Hydra's per-run folders. The root is
``$MLCYCLE_PROJECT_ROOT`` when set, else the nearest folder at or above the working
directory that holds ``conf/config.yaml`` or ``.dvc/``, else the working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PROJECT_ENV", "Project", "find_project_root"]

PROJECT_ENV = "MLCYCLE_PROJECT_ROOT"


def find_project_root(start: Path | None = None) -> Path:
    """Return the project root for ``start`` (default: the working directory).

    Parameters
    ----------
    start
        Folder to search from, upwards.

    Returns
    -------
    Path
        Absolute path of the project root.
    """
    env = os.environ.get(PROJECT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file() or (folder / ".dvc").is_dir():
            return folder
    return here


@dataclass(frozen=True)
class Project:
    """The files of one mlcycle project, all under ``root``."""

    root: Path

    @classmethod
    def discover(cls, start: Path | None = None) -> Project:
        """Find the project that contains ``start`` (see :func:`find_project_root`)."""
        return cls(find_project_root(start))

    def path(self, relative: str | os.PathLike[str]) -> Path:
        """Resolve a config path: absolute paths stay, relative ones are under the root."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def conf_dir(self) -> Path:
        """The project's own Hydra config folder, which overrides the packaged one."""
        return self.root / "conf"

    @property
    def state_dir(self) -> Path:
        """Git-ignored working state: Hydra run folders, the local DVC remote, caches."""
        return self.root / ".mlcycle"

    @property
    def mlflow_db(self) -> Path:
        """The SQLite file of the default MLflow tracking store and registry."""
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """The default MLflow tracking URI (SQLite in the project)."""
        return f"sqlite:///{self.mlflow_db}"

    @property
    def artifacts_dir(self) -> Path:
        """Default root of MLflow run artifacts."""
        return self.root / "mlartifacts"

    @property
    def bundles_dir(self) -> Path:
        """Where training writes bundles (``bundles/<model>/<run id>``)."""
        return self.root / "bundles"

    @property
    def prepared_dir(self) -> Path:
        """Where ``mlcycle prepare`` writes the train/validation/test splits."""
        return self.root / "prepared"

    @property
    def resolved_dir(self) -> Path:
        """Resolved config sections the DVC stages depend on (``mlcycle snapshot``)."""
        return self.state_dir / "resolved"
