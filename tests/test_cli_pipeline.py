"""``mlcycle train --multirun`` and ``dvc repro`` in fresh projects, each its own.

Apart from tests/test_cli.py so that pytest-xdist (``--dist loadfile``) runs them beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests._cli import BIN, mlflow_client, run

pytestmark = pytest.mark.slow


def test_multirun_sweep_lands_in_one_experiment(tmp_path: Path) -> None:
    root = tmp_path / "sweep"
    run(["init", str(root)], cwd=tmp_path)
    run(
        [
            "train",
            "--multirun",
            "model=logreg,gbdt",
            "model.C=0.1,1",
            "model.max_iter=20",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
        ],
        cwd=root,
    )
    client = mlflow_client(root)
    exp = client.get_experiment_by_name("breast_cancer")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 4
    assert {r.data.params["model.name"] for r in runs} == {"logreg", "gbdt"}
    assert {r.data.params["model.C"] for r in runs} == {"0.1", "1.0"}
    versions = client.search_model_versions("name='breast_cancer'")
    assert len(versions) == 4


def test_dvc_repro_runs_the_pipeline_and_reruns_only_what_changed(tmp_path: Path) -> None:
    root = tmp_path / "pipe"
    run(["init", str(root)], cwd=tmp_path)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("MLCYCLE_PROJECT_ROOT", None)

    def repro() -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "repro"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    first = repro()
    for stage in ("prepare", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in first
    assert (root / "bundle" / "model.onnx").is_file()
    assert json.loads((root / "reports" / "metrics.json").read_text())["test"]["f1_macro"] > 0.9
    second = repro()
    assert "Running stage 'train'" not in second and "Running stage 'prepare'" not in second
    conf = root / "conf" / "config.yaml"
    conf.write_text(conf.read_text().replace("- model: logreg", "- model: gbdt"))
    third = repro()
    assert "Running stage 'prepare'" not in third
    assert "Running stage 'train'" in third and "Running stage 'export'" in third
