"""Fixtures of the data tests: a project in a temp folder, table writers, git+DVC repos."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlcycle.config.project import Project
from mlcycle.config.structured import DataConfig
from mlcycle.data import dvc


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    """An empty project rooted in a temp folder."""
    return Project(tmp_path)


@pytest.fixture()
def write_csv(project: Project) -> Callable[..., DataConfig]:
    """Factory: write a table (dict of columns or CSV text) and return its DataConfig."""

    def make(
        table: dict[str, list[Any]] | str, label: str = "y", name: str = "data/t.csv"
    ) -> DataConfig:
        path = project.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(table, str):
            path.write_text(table)
        else:
            pd.DataFrame(table).to_csv(path, index=False)
        return DataConfig(name="t", path=name, label=label)

    return make


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` and return its stdout (fails the test on error)."""
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture()
def dvc_isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep DVC's global, system and site-cache state out of the user's folders."""
    base = tmp_path_factory.mktemp("dvc-home")
    for var in ("DVC_GLOBAL_CONFIG_DIR", "DVC_SYSTEM_CONFIG_DIR", "DVC_SITE_CACHE_DIR"):
        (base / var).mkdir()
        monkeypatch.setenv(var, str(base / var))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture()
def repo(project: Project, dvc_isolated: None) -> Path:
    """A git repository with DVC initialised, at the project root."""
    root = project.root
    git(root, "init", "-q")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "mlcycle tests")
    dvc.init(root)
    return root
