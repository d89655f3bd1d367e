"""``python -m mlcycle.rollout.registry_sync``: the registry follows a finished rollout.

Each test gets a real project (its ``conf/config.yaml`` and an MLflow SQLite store) with
two registered versions of ``breast_cancer``: version 1 is the champion, version 2 the
challenger. The module runs as the server runs it: a process of its own in the project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import mlcycle.config
from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.registry import history, lookup_version, promote, register_bundle
from mlcycle.rollout import registry_sync
from mlcycle.tracking import TrackingContext, configure_tracking, log_artifacts, start_run

pytestmark = pytest.mark.usefixtures("isolated_mlflow_globals")

USAGE = "usage: python -m mlcycle.rollout.registry_sync promote|reject NAME VERSION REASON"


@dataclass
class Registry:
    """A project with two registered versions: 1 is ``champion``, 2 is ``challenger``."""

    root: Path
    ctx: TrackingContext
    name: str

    def alias(self, alias: str) -> str | None:
        return lookup_version(self.ctx, f"@{alias}", default_name=self.name)

    def sync(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``python -m mlcycle.rollout.registry_sync ARGS`` in the project."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k != "MLCYCLE_PROJECT_ROOT" and not k.startswith("MLFLOW_")
        }
        return subprocess.run(
            [sys.executable, "-m", "mlcycle.rollout.registry_sync", *args],
            cwd=cwd or self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture()
def project(tmp_path: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.delenv("MLCYCLE_PROJECT_ROOT", raising=False)
    root = tmp_path / "proj"
    (root / "conf").mkdir(parents=True)
    packaged = Path(mlcycle.config.__file__).parent / "conf" / "config.yaml"
    shutil.copy(packaged, root / "conf" / "config.yaml")
    shutil.copy(template_db, root / "mlflow.db")
    project = Project(root)
    cfg = to_config(compose([], project=project))
    ctx = configure_tracking(cfg.tracking, project)
    name = cfg.tracking.registered_model
    for n in (1, 2):
        folder = tmp_path / f"bundle-{n}"
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"onnx")
        (folder / "signature.json").write_text(json.dumps({"made": n}))
        with start_run(ctx) as run:
            uri = log_artifacts(folder, "bundle")
        assert register_bundle(ctx, name, run.info.run_id, uri) == str(n)
    promote(ctx, name, "1", reason="first", user="alice")
    registry = Registry(root, ctx, name)
    assert (registry.alias("champion"), registry.alias("challenger")) == ("1", "2")
    return registry


def test_promote_moves_champion_and_records_the_rollout_in_the_history(
    project: Registry,
) -> None:
    reason = "rollout 7 (canary) promoted it"
    done = project.sync("promote", project.name, "2", reason)
    assert done.returncode == 0, done.stderr
    assert f"{project.name} champion is now version 2" in done.stdout
    assert project.alias("champion") == "2"
    assert project.alias("challenger") is None  # it pointed to the promoted version
    event = history(project.ctx, project.name)[-1]
    assert (event.action, event.from_version, event.to_version) == ("promote", "1", "2")
    assert (event.user, event.reason) == ("mlcycle-rollout", reason)


def test_reject_removes_the_challenger_alias_only_when_it_points_to_that_version(
    project: Registry,
) -> None:
    before = len(history(project.ctx, project.name))
    other = project.sync("reject", project.name, "1", "rollout 3 (canary) rolled it back")
    assert other.returncode == 0, other.stderr
    assert other.stdout == ""
    assert project.alias("challenger") == "2"  # version 1 was not the challenger
    done = project.sync("reject", project.name, "2", "rollout 4 (canary) rolled it back")
    assert done.returncode == 0, done.stderr
    assert f"{project.name} version 2 is no longer the challenger" in done.stdout
    assert project.alias("challenger") is None
    assert project.alias("champion") == "1"  # the champion stays
    assert len(history(project.ctx, project.name)) == before


def test_a_registry_move_that_fails_exits_1_and_says_why(project: Registry) -> None:
    failed = project.sync("promote", project.name, "1", "rollout 5 promoted it")
    assert failed.returncode == 1
    assert f"registry: promote {project.name} 1 failed" in failed.stderr
    assert "already is the champion" in failed.stderr
    assert project.alias("champion") == "1"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["promote"],
        ["promote", "m", "2"],
        ["promote", "m", "2", "why", "extra"],
        ["demote", "m", "2", "why"],
    ],
)
def test_bad_arguments_exit_2_with_the_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert registry_sync.main(argv) == 2
    assert capsys.readouterr().out.strip() == USAGE


def test_bad_arguments_exit_2_as_a_module_too(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mlcycle.rollout.registry_sync", "promote", "m"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout.strip() == USAGE


@pytest.fixture()
def popen(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """The processes :func:`registry_sync.sync_in_background` starts (really started)."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def record(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        process: subprocess.Popen[bytes] = real(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(registry_sync.subprocess, "Popen", record)
    return started


def test_sync_in_background_does_nothing_outside_a_project(
    tmp_path: Path,
    popen: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLCYCLE_PROJECT_ROOT", raising=False)
    nowhere = tmp_path / "served-from-here"
    nowhere.mkdir()
    assert not registry_sync.sync_in_background("promote", "m", "2", "why", nowhere)
    assert popen == []


def test_sync_in_background_does_nothing_for_a_bundle_digest(
    project: Registry, popen: list[subprocess.Popen[bytes]]
) -> None:
    for action in ("promote", "reject"):
        assert not registry_sync.sync_in_background(
            action, project.name, "3cc4f590b369", "why", project.root
        )
    assert popen == []
    assert project.alias("champion") == "1"


def test_sync_in_background_runs_the_module_in_the_project_root(
    project: Registry, popen: list[subprocess.Popen[bytes]]
) -> None:
    below = project.root / "served" / "from-here"
    below.mkdir(parents=True)
    reason = "rollout 9 (canary) promoted it"
    assert registry_sync.sync_in_background("promote", project.name, "2", reason, below)
    [process] = popen
    assert process.args == [
        sys.executable, "-m", "mlcycle.rollout.registry_sync", "promote", project.name, "2",
        reason,
    ]  # fmt: skip
    assert process.wait(timeout=120) == 0
    assert project.alias("champion") == "2"
    event = history(project.ctx, project.name)[-1]
    assert (event.user, event.reason) == ("mlcycle-rollout", reason)
