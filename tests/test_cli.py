"""The real ``mlcycle`` command in temporary projects, as a user runs it.

One project is created and trained once per module (``trained_project``); the tests then
read what a user would see: git, DVC, the bundle, MLflow runs, the registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests._cli import BIN, MLCYCLE, git, mlflow_client, rest, run, running_mlflow
from tests.conftest import free_port

__all__ = ["BIN", "MLCYCLE", "git", "mlflow_client", "run"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project made by ``mlcycle init`` and trained once with the defaults."""
    root = tmp_path_factory.mktemp("cli") / "proj"
    run(["init", str(root)], cwd=root.parent)
    run(["train"], cwd=root)
    yield root


def test_init_creates_git_dvc_conf_pipeline_and_tracked_example(trained_project: Path) -> None:
    root = trained_project
    assert (root / ".git").is_dir() and (root / ".dvc").is_dir()
    assert (root / "conf" / "config.yaml").is_file()
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert {"prepare", "train", "evaluate", "export"} <= set(stages)
    assert all("mlcycle" in s["cmd"] for s in stages.values())
    assert (root / "data" / "breast_cancer.csv.dvc").is_file()
    assert (root / "data" / "breast_cancer.schema.yaml").is_file()
    tracked = git(root, "ls-files").splitlines()
    assert "data/breast_cancer.csv.dvc" in tracked and "data/breast_cancer.csv" not in tracked
    assert git(root, "log", "--oneline").count("\n") == 0  # exactly one commit


def test_train_writes_a_complete_bundle(trained_project: Path) -> None:
    bundles = list((trained_project / "bundles" / "breast_cancer").iterdir())
    assert len(bundles) == 1
    bundle = bundles[0]
    for name in (
        "model.onnx",
        "signature.json",
        "profile.json",
        "evaluation.json",
        "lineage.json",
        "MANIFEST.json",
    ):
        assert (bundle / name).is_file(), name
    assert len(list((bundle / "plots").glob("*.png"))) == 4
    lineage = json.loads((bundle / "lineage.json").read_text())
    assert lineage["git"]["commit"] == git(trained_project, "rev-parse", "HEAD")
    assert lineage["git"]["dirty"] is False
    dvc_md5 = yaml.safe_load((trained_project / "data" / "breast_cancer.csv.dvc").read_text())[
        "outs"
    ][0]["md5"]
    assert lineage["data"]["md5"] == dvc_md5 and lineage["data"]["tracked"] is True
    evaluation = json.loads((bundle / "evaluation.json").read_text())
    assert evaluation["splits"]["test"]["f1_macro"] > 0.9
    assert evaluation["parity"]["max_abs_diff"] <= 1e-4


def test_training_run_is_in_mlflow_with_params_tags_and_artifacts(trained_project: Path) -> None:
    client = mlflow_client(trained_project)
    exp = client.get_experiment_by_name("breast_cancer")
    assert exp is not None
    assert exp.artifact_location.startswith("file://")
    assert str(trained_project) in exp.artifact_location
    (run_info,) = client.search_runs([exp.experiment_id])
    assert run_info.data.params["model.name"] == "logreg"
    assert run_info.data.tags["mlcycle.git_commit"] == git(trained_project, "rev-parse", "HEAD")
    assert "mlcycle.data_md5" in run_info.data.tags
    assert run_info.data.metrics["test.f1_macro"] > 0.9
    artifacts = {a.path for a in client.list_artifacts(run_info.info.run_id)}
    assert {"bundle", "config.yaml"} <= artifacts


def test_models_promote_rollback_cycle(trained_project: Path) -> None:
    out = run(["models"], cwd=trained_project).stdout
    assert "challenger" in out
    run(["promote", "1", "--reason", "first model"], cwd=trained_project)
    run(["train", "model=gbdt", "model.max_iter=30"], cwd=trained_project)
    run(["promote", "2", "--reason", "better"], cwd=trained_project)
    assert "champion" in run(["models"], cwd=trained_project).stdout
    run(["rollback", "--reason", "regression"], cwd=trained_project)
    client = mlflow_client(trained_project)
    assert str(client.get_model_version_by_alias("breast_cancer", "champion").version) == "1"
    history = run(["models"], cwd=trained_project).stdout
    assert "regression" in history and "better" in history
    again = run(["rollback"], cwd=trained_project, check=False)
    assert again.returncode != 0 and "roll back" in again.stderr


def test_promote_unknown_version_fails_cleanly(trained_project: Path) -> None:
    proc = run(["promote", "99"], cwd=trained_project, check=False)
    assert proc.returncode == 2
    assert "99" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_answers_with_the_registry_champion_and_config_settings(
    trained_project: Path,
) -> None:
    run(["promote", "1", "--reason", "serve it"], cwd=trained_project, check=False)
    client = mlflow_client(trained_project)
    assert str(client.get_model_version_by_alias("breast_cancer", "champion").version) == "1"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen(
        [*MLCYCLE, "serve", f"serve.port={port}", "serve.validation.unseen_category=missing"],
        cwd=trained_project,
        env={**env, "PATH": f"{BIN}:{env.get('PATH', '')}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v2/models/breast_cancer", timeout=2) as r:
                    meta = json.load(r)
                    version = r.headers["X-Model-Version"]
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "mlcycle serve did not start in 60 s"
                time.sleep(0.2)
        assert meta["versions"] == ["1"] and version == "1"
        assert meta["inputs"][0]["shape"] == [-1, 30]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    outside = run(["serve", "--model", "@champion"], cwd=trained_project.parent, check=False)
    assert outside.returncode == 2 and "no mlcycle project" in outside.stderr
    run_id = client.get_model_version("breast_cancer", "1").run_id
    data = trained_project / "data" / "breast_cancer.csv"
    for ref in ("@champion", f"runs:/{run_id}/bundle"):
        out = run(["predict", str(data), "-o", "scored.csv", "--overwrite", "--no-progress",
                   "--model", ref], cwd=trained_project).stdout  # fmt: skip
        assert "scored 569 rows" in out, out


def test_deploy_resolves_registry_aliases_and_names_a_missing_one(
    trained_project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ctx"
    # A version number is a registry reference too (which aliases exist depends on the
    # order the module's tests run in).
    done = run(["deploy", "docker", "1", "--out", str(out)], cwd=trained_project)
    assert "docker build -t mlcycle-breast_cancer:1" in done.stdout
    served = json.loads((out / "serve.json").read_text())
    assert (served["model_name"], served["model_version"]) == ("breast_cancer", "1")
    assert json.loads((out / "bundle" / "MANIFEST.json").read_text())["files"]
    missing = run(["deploy", "web", "@nope", "--out", str(tmp_path / "site")],
                  cwd=trained_project, check=False)  # fmt: skip
    assert missing.returncode == 2
    assert "no alias @nope" in missing.stderr and "mlcycle models" in missing.stderr
    assert not (tmp_path / "site").exists()


def test_sanity_passes_for_defaults_and_fails_for_a_crippled_model(trained_project: Path) -> None:
    assert "PASSED" in run(["sanity"], cwd=trained_project).stdout
    weak = run(["sanity", "model.C=0.000001"], cwd=trained_project, check=False)
    assert weak.returncode == 1 and "FAILED" in weak.stdout


def test_data_push_delete_pull_restores_the_same_bytes(trained_project: Path) -> None:
    data = trained_project / "data" / "breast_cancer.csv"
    before = data.read_bytes()
    run(["data", "push"], cwd=trained_project)
    data.unlink()
    subprocess.run(["rm", "-rf", str(trained_project / ".dvc" / "cache")], check=True)
    run(["data", "pull"], cwd=trained_project)
    assert data.read_bytes() == before


def test_mlflow_ui_on_the_project_store_shows_the_runs(trained_project: Path) -> None:
    ui_args = ["ui", "--backend-store-uri", "sqlite:///mlflow.db"]
    with running_mlflow(ui_args, trained_project) as base:
        exp = rest(base, "/api/2.0/mlflow/experiments/get-by-name?experiment_name=breast_cancer")
        exp_id = exp["experiment"]["experiment_id"]
        runs = rest(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})["runs"]
        assert len(runs) >= 1
        model = rest(base, "/api/2.0/mlflow/registered-models/get?name=breast_cancer")
        assert model["registered_model"]["name"] == "breast_cancer"
