"""Writing the server and Lambda build contexts, and ``mlcycle deploy docker`` on the CLI.

What each context holds, what it pins, the settings changed for an image, and the errors
for a bad bundle or an occupied folder. Running the contexts is in ``test_images.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlcycle.deploy import docker_cli
from mlcycle.deploy.context import (
    image_settings,
    pinned_requirements,
    write_lambda_context,
    write_server_context,
)
from mlcycle.exceptions import BundleError, DeployError
from mlcycle.serve.settings import ServeSettings
from tests._bundles import build_bundle
from tests._cli import run
from tests.deploy._dockerfile import parse

HEAVY = ("mlflow", "pandas", "scikit-learn", "torch", "hydra-core", "dvc", "matplotlib")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle("cancer", tmp_path_factory.mktemp("bundle") / "b")


def names(requirements: list[str]) -> set[str]:
    return {r.split("==")[0].split("[")[0] for r in requirements}


def test_server_context_holds_bundle_package_pins_and_a_non_root_dockerfile(
    bundle: Path, tmp_path: Path
) -> None:
    ctx = write_server_context(bundle, tmp_path / "ctx", model_name="cancer", model_version="3")
    out = ctx.out
    for name in ("Dockerfile", "requirements.txt", "serve.json", ".dockerignore"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (out / "bundle").iterdir()) == sorted(
        p.name for p in bundle.iterdir()
    )
    assert (out / "mlcycle" / "serve" / "app.py").is_file()
    assert not list(out.rglob("__pycache__"))
    assert ctx.files == sorted(ctx.files) and "Dockerfile" in ctx.files
    assert ctx.total_bytes == sum((out / f).stat().st_size for f in ctx.files)
    # Every requirement pinned; the serving path only.
    lines = [x for x in (out / "requirements.txt").read_text().splitlines() if x[:1] != "#"]
    assert lines == ctx.requirements and all("==" in x for x in lines)
    assert {"numpy", "onnxruntime", "starlette", "uvicorn", "orjson"} <= names(lines)
    assert not names(lines) & set(HEAVY)
    spec = parse(out / "Dockerfile")
    assert spec.base.startswith("python:3.") and spec.base.endswith("-slim")
    assert spec.user == "10001:10001"
    assert spec.expose == ["8080"]
    assert "/v2/health/ready" in " ".join(spec.healthcheck)
    assert spec.entrypoint[:4] == ["python", "-m", "mlcycle", "serve"]
    settings = ServeSettings.from_mapping(json.loads((out / "serve.json").read_text()))
    assert (settings.host, settings.port, settings.bundle) == ("0.0.0.0", 8080, "/app/bundle")
    assert (settings.model_name, settings.model_version) == ("cancer", "3")


def test_lambda_context_installs_only_what_the_handler_imports(
    bundle: Path, tmp_path: Path
) -> None:
    settings = ServeSettings.from_mapping({"validation": {"max_body_bytes": 123_456}})
    ctx = write_lambda_context(bundle, tmp_path / "ctx", settings=settings, model_version="3")
    assert names(ctx.requirements) >= {"numpy", "onnxruntime", "orjson", "awslambdaric"}
    assert not names(ctx.requirements) & {"starlette", "uvicorn", "scipy", "sqlalchemy", *HEAVY}
    spec = parse(ctx.out / "Dockerfile")
    assert spec.env["MLCYCLE_BUNDLE"] == "/var/task/bundle"
    assert spec.env["MLCYCLE_MODEL_VERSION"] == "3"
    baked = ServeSettings.from_json(spec.env["MLCYCLE_SERVE_SETTINGS"])
    assert baked.validation.max_body_bytes == 123_456
    assert spec.workdir == "/var/task"


def test_image_settings_move_local_paths_and_say_so() -> None:
    local = ServeSettings.from_mapping(
        {
            "monitor": {"store": "/home/me/proj/monitor.db"},
            "admin": {"token_file": "/home/me/.token"},
            "retrain": {"on_alarms": ["dataset_drift"]},
        }
    )
    changed, notes = image_settings(local)
    assert changed.monitor.store == ""
    assert changed.admin.token_file == "/run/secrets/mlcycle-admin-token"
    assert changed.retrain.on_alarms == []
    assert len(notes) == 3 and any("/home/me/.token" in n for n in notes)
    server = ServeSettings.from_mapping({"monitor": {"store": "postgresql+psycopg://db/x"}})
    kept, notes = image_settings(server)
    assert kept.monitor.store == "postgresql+psycopg://db/x" and notes == []


def test_pinned_requirements_follow_extras_and_name_what_is_missing() -> None:
    pins = pinned_requirements(["uvicorn[standard]"])
    assert any(p.startswith("uvicorn[standard]==") for p in pins)
    assert {"uvloop", "httptools", "h11"} <= names(pins)
    with pytest.raises(DeployError, match="no-such-dist-xyz is not installed"):
        pinned_requirements(["no-such-dist-xyz"])


def test_occupied_out_folder_needs_force_and_a_failure_leaves_nothing(
    bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ctx"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DeployError, match="--force"):
        write_server_context(bundle, out)
    assert (out / "keep.txt").read_text() == "mine"
    write_server_context(bundle, out, force=True)
    assert not (out / "keep.txt").exists() and (out / "Dockerfile").is_file()
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    (broken / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"model\.onnx"):
        write_server_context(broken, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(DeployError, match="holds the bundle"):
        write_server_context(bundle, bundle.parent, force=True)
    assert (bundle / "model.onnx").is_file()


def test_cli_deploy_docker_writes_the_context_and_build_says_no_engine(
    bundle: Path, tmp_path: Path
) -> None:
    done = run(["deploy", "docker", str(bundle), "--out", str(tmp_path / "ctx")], cwd=tmp_path)
    assert "wrote the server image context" in done.stdout
    assert "docker build -t mlcycle-breast_cancer:latest" in done.stdout
    if docker_cli.engine_version() is not None:
        pytest.skip("a Docker engine runs here; the no-engine message is not shown")
    built = run(
        ["deploy", "docker", str(bundle), "--out", str(tmp_path / "ctx"), "--force", "--build"],
        cwd=tmp_path,
        check=False,
    )
    assert built.returncode == 2
    assert "no Docker engine" in built.stderr and str(tmp_path / "ctx") in built.stderr
    assert (tmp_path / "ctx" / "Dockerfile").is_file()


def test_cli_deploy_names_a_bad_model(tmp_path: Path) -> None:
    done = run(["deploy", "docker", str(tmp_path / "nope"), "--out", "x"], tmp_path, check=False)
    assert done.returncode == 2
    assert "bundle folder" in done.stderr and "does not exist" in done.stderr
    done = run(["deploy", "web", "@champion", "--out", "x"], tmp_path, check=False)
    assert done.returncode == 2 and "no mlcycle project" in done.stderr
