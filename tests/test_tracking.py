"""MLflow tracking: store resolution, config flattening, runs, artifacts (local and S3)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mlcycle.config.project import Project
from mlcycle.config.structured import RemoteConfig, TrackingConfig
from mlcycle.exceptions import TrackingError
from mlcycle.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    TrackingContext,
    configure_tracking,
    flatten_config,
    flatten_metrics,
    log_artifacts,
    log_config,
    log_metrics,
    redact_config,
    start_run,
)
from tests.conftest import free_port

pytestmark = pytest.mark.usefixtures("isolated_mlflow_globals")

# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture()
def project(tmp_path: Path, template_db: Path) -> Project:
    """A fresh project whose store is ``sqlite:///{tmp_path}/proj/mlflow.db``."""
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(template_db, root / "mlflow.db")
    return Project(root)


def _cfg(**kw: object) -> TrackingConfig:
    return TrackingConfig(experiment="exp", registered_model="model", **kw)  # type: ignore[arg-type]


# -- flatten_config -------------------------------------------------------------------------


def test_flatten_config_uses_dotted_keys_for_nesting() -> None:
    flat = flatten_config({"data": {"split": {"seed": 42, "stratify": True}}, "name": "x"})
    assert flat == {"data.split.seed": "42", "data.split.stratify": "true", "name": "x"}


def test_flatten_config_writes_scalar_lists_as_json_and_lists_of_mappings_by_index() -> None:
    flat = flatten_config(
        {
            "model": {"hidden_layer_sizes": [64, 32], "tags": ["a", "b"], "empty": []},
            "evaluate": {"baselines": [{"name": "human", "value": 0.9}, {"name": "old"}]},
        }
    )
    assert flat["model.hidden_layer_sizes"] == "[64,32]"
    assert flat["model.tags"] == '["a","b"]'
    assert flat["model.empty"] == "[]"
    assert flat["evaluate.baselines.0.name"] == "human"
    assert flat["evaluate.baselines.0.value"] == "0.9"
    assert flat["evaluate.baselines.1.name"] == "old"


def test_flatten_config_redacts_secret_keys_and_keeps_none() -> None:
    flat = flatten_config(
        {
            "remote": {"secret_access_key": "s3cr3t", "access_key_id": "AKIA", "region": None},
            "auth": {"API_TOKEN": "t", "db_password": None},
            "credentials": {"secret": {"nested": "x", "list": ["y"]}},
        }
    )
    assert flat["remote.secret_access_key"] == "***"
    assert flat["remote.access_key_id"] == "***"
    assert flat["remote.region"] == "null"
    assert flat["auth.API_TOKEN"] == "***"
    assert flat["auth.db_password"] == "null"  # unset secrets stay visibly unset
    assert flat["credentials.secret.nested"] == "***"
    assert flat["credentials.secret.list"] == "***"
    assert "s3cr3t" not in str(flat) and "AKIA" not in str(flat)


def test_flatten_config_truncates_values_to_mlflow_param_limit() -> None:
    flat = flatten_config({"long": "x" * 10_000, "short": "y"})
    assert MAX_PARAM_VALUE_LENGTH == 6000
    assert len(flat["long"]) == MAX_PARAM_VALUE_LENGTH
    assert flat["long"].endswith("...")
    assert flat["short"] == "y"


def test_flatten_config_accepts_a_hydra_config() -> None:
    cfg = OmegaConf.create(
        {"remote": OmegaConf.structured(RemoteConfig(secret_access_key="k")), "n": "${x}", "x": 3}
    )
    flat = flatten_config(cfg)
    assert flat["remote.secret_access_key"] == "***"
    assert flat["remote.kind"] == "local"
    assert flat["n"] == "3"  # interpolations resolved


def test_redact_config_keeps_structure_and_hides_secrets() -> None:
    remote = {"secret_access_key": "k", "url": "s3://b", "region": None}
    cfg = {"remote": remote, "xs": [1]}
    assert redact_config(cfg) == {
        "remote": {"secret_access_key": "***", "url": "s3://b", "region": None},
        "xs": [1],
    }
    assert remote["secret_access_key"] == "k"  # input untouched


def test_flatten_metrics_keeps_numbers_and_skips_everything_else() -> None:
    flat = flatten_metrics(
        {
            "f1_macro": 0.9,
            "roc_auc": None,
            "n_samples": 10,
            "nan": float("nan"),
            "flag": True,
            "classes": ["a", "b"],
            "per_class": {"dog/cat (x)": {"f1": 0.5}},
        },
        "test",
    )
    assert flat == {
        "test.f1_macro": 0.9,
        "test.n_samples": 10.0,
        "test.per_class.dog/cat _x_.f1": 0.5,
    }


# -- configure_tracking ---------------------------------------------------------------------


def test_configure_tracking_defaults_to_sqlite_and_artifacts_in_the_project(
    project: Project,
) -> None:
    ctx = configure_tracking(_cfg(), project)
    assert ctx.tracking_uri == f"sqlite:///{project.root}/mlflow.db" == ctx.registry_uri
    assert ctx.artifact_location == project.artifacts_dir.as_uri()
    assert (ctx.experiment, ctx.registered_model) == ("exp", "model")
    assert ctx.cache_dir == project.state_dir / "models"


def test_configure_tracking_resolves_a_relative_artifact_location_in_the_project(
    project: Project,
) -> None:
    ctx = configure_tracking(_cfg(artifact_location="store/arts"), project)
    assert ctx.artifact_location == (project.root / "store" / "arts").as_uri()
    s3 = configure_tracking(_cfg(artifact_location="s3://bucket/prefix"), project)
    assert s3.artifact_location == "s3://bucket/prefix"


def test_configure_tracking_exports_the_s3_endpoint(project: Project) -> None:
    import os

    ctx = configure_tracking(_cfg(s3_endpoint_url="http://127.0.0.1:9"), project, check=False)
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert ctx.s3_endpoint_url == "http://127.0.0.1:9"


def test_unreachable_tracking_server_is_a_tracking_error_naming_the_uri(
    project: Project,
) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TrackingError, match=rf"{uri}.*unreachable.*tracking\.uri=null"):
        configure_tracking(_cfg(uri=uri), project)


def test_unwritable_sqlite_store_is_a_tracking_error(project: Project, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    uri = f"sqlite:///{blocker}/mlflow.db"
    with pytest.raises(TrackingError, match=rf"{uri}.*tracking\.uri"):
        configure_tracking(_cfg(uri=uri), project)


def test_parallel_first_use_of_a_new_sqlite_store_does_not_race(tmp_path: Path) -> None:
    """Two jobs of a parallel sweep on a new project both create runs in one store."""
    from mlflow import MlflowClient

    root = tmp_path / "fresh"
    root.mkdir()
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from mlcycle.config.project import Project
        from mlcycle.config.structured import TrackingConfig
        from mlcycle.tracking import configure_tracking, log_metrics, start_run

        cfg = TrackingConfig(experiment="sweep", registered_model="m")
        ctx = configure_tracking(cfg, Project(Path({str(root)!r})))
        with start_run(ctx):
            log_metrics({{"x": 1.0}})
        """
    )
    jobs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for job in jobs:
        _, err = job.communicate(timeout=180)
        assert job.returncode == 0, err[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")
    exp = client.get_experiment_by_name("sweep")
    assert exp is not None
    assert len(client.search_runs([exp.experiment_id])) == 2
    assert list((root / ".mlcycle" / "locks").glob("mlflow-*.lock"))


def test_ensure_experiment_creates_once_and_returns_the_same_id(project: Project) -> None:
    ctx = configure_tracking(_cfg(), project)
    first = ctx.ensure_experiment()
    assert ctx.ensure_experiment("exp") == first
    exp = ctx.client.get_experiment(first)
    assert exp.name == "exp"
    assert exp.artifact_location == project.artifacts_dir.as_uri()


def test_existing_experiment_elsewhere_keeps_its_location_with_a_warning(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = configure_tracking(_cfg(), project)
    ctx.ensure_experiment()
    moved = configure_tracking(_cfg(artifact_location="elsewhere"), project)
    with caplog.at_level(logging.WARNING, logger="mlcycle.tracking"):
        moved.ensure_experiment()
    assert "keeps its artifact location" in caplog.text
    assert "elsewhere" in caplog.text


def test_deleted_experiment_is_a_tracking_error_with_the_fix(project: Project) -> None:
    ctx = configure_tracking(_cfg(), project)
    ctx.client.delete_experiment(ctx.ensure_experiment())
    with pytest.raises(TrackingError, match=r"is deleted.*mlflow experiments restore"):
        ctx.ensure_experiment()


# -- runs -----------------------------------------------------------------------------------


def _bundle(folder: Path) -> Path:
    (folder / "plots").mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"onnx")
    (folder / "plots" / "roc.png").write_bytes(b"png")
    return folder


def test_run_logs_params_metrics_tags_and_artifacts_read_back_through_the_client(
    project: Project, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    ctx = configure_tracking(_cfg(), project)
    config = {"model": {"name": "logreg", "C": 1.0}, "remote": {"secret_access_key": "k"}}
    metrics = {"f1_macro": 0.9, "roc_auc": None, "per_class": {"a": {"f1": 0.8}}}
    with start_run(
        ctx, run_name="r1", tags={"team": "ml"}, git_commit="abc", git_dirty=True, data_md5="d41d"
    ) as run:
        params = log_config(config)
        logged = log_metrics(metrics, "test")
        uri = log_artifacts(_bundle(tmp_path / "bundle"), "bundle")
    run_id = run.info.run_id

    assert uri == f"{run.info.artifact_uri}/bundle"
    assert params["remote.secret_access_key"] == "***"
    assert logged == {"test.f1_macro": 0.9, "test.per_class.a.f1": 0.8}
    # What `mlflow ui --backend-store-uri sqlite:///<root>/mlflow.db` reads:
    client = MlflowClient(tracking_uri=f"sqlite:///{project.root}/mlflow.db")
    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.info.run_name == "r1"
    assert got.data.params == {
        "model.name": "logreg",
        "model.C": "1.0",
        "remote.secret_access_key": "***",
    }
    assert got.data.metrics == {"test.f1_macro": 0.9, "test.per_class.a.f1": 0.8}
    assert got.data.tags["team"] == "ml"
    assert got.data.tags["mlcycle.git_commit"] == "abc"
    assert got.data.tags["mlcycle.git_dirty"] == "true"
    assert got.data.tags["mlcycle.data_md5"] == "d41d"
    names = {f.path for f in client.list_artifacts(run_id, "bundle")}
    assert names == {"bundle/model.onnx", "bundle/plots"}
    config_yaml = Path(client.download_artifacts(run_id, "config.yaml", str(tmp_path))).read_text()
    assert "secret_access_key: '***'" in config_yaml and "logreg" in config_yaml


def test_artifacts_land_under_the_configured_location_not_the_working_directory(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    ctx = configure_tracking(_cfg(), project)
    with start_run(ctx) as run:
        log_artifacts(_bundle(tmp_path / "b"), "bundle")
    stored = list(project.artifacts_dir.rglob("model.onnx"))
    assert len(stored) == 1 and run.info.run_id in stored[0].as_posix()
    assert list(cwd.iterdir()) == []


def test_a_single_file_artifact_returns_its_uri(project: Project, tmp_path: Path) -> None:
    ctx = configure_tracking(_cfg(), project)
    report = tmp_path / "report.md"
    report.write_text("# ok")
    with start_run(ctx) as run:
        uri = log_artifacts(report, "reports")
    assert uri == f"{run.info.artifact_uri}/reports/report.md"


def test_a_failing_block_ends_the_run_as_failed(project: Project) -> None:
    ctx = configure_tracking(_cfg(), project)
    with pytest.raises(RuntimeError), start_run(ctx) as run:
        raise RuntimeError("boom")
    assert ctx.client.get_run(run.info.run_id).info.status == "FAILED"


def test_logging_outside_a_run_is_a_tracking_error(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="no active MLflow run"):
        log_metrics({"a": 1.0})
    with pytest.raises(TrackingError, match="no active MLflow run"):
        log_artifacts(tmp_path)


def test_missing_artifact_path_is_a_tracking_error(project: Project, tmp_path: Path) -> None:
    ctx = configure_tracking(_cfg(), project)
    with start_run(ctx), pytest.raises(TrackingError, match="no such file or folder"):
        log_artifacts(tmp_path / "missing")


def test_starting_a_run_inside_another_is_a_tracking_error(project: Project) -> None:
    ctx = configure_tracking(_cfg(), project)
    with start_run(ctx), pytest.raises(TrackingError, match="already active"), start_run(ctx):
        pass


def test_mlflow_artifacts_on_s3_against_moto(
    project: Project, tmp_path: Path, moto_endpoint: str, s3_bucket: str
) -> None:
    import boto3
    import mlflow

    cfg = _cfg(artifact_location=f"s3://{s3_bucket}/mlflow", s3_endpoint_url=moto_endpoint)
    ctx: TrackingContext = configure_tracking(cfg, project)
    with start_run(ctx) as run:
        uri = log_artifacts(_bundle(tmp_path / "bundle"), "bundle")
    run_id = run.info.run_id
    assert uri == f"s3://{s3_bucket}/mlflow/{run_id}/artifacts/bundle"

    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="mlflow/")
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert f"mlflow/{run_id}/artifacts/bundle/model.onnx" in keys
    assert f"mlflow/{run_id}/artifacts/bundle/plots/roc.png" in keys
    assert not project.artifacts_dir.exists()

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{uri}/model.onnx", dst_path=str(tmp_path / "dl")
    )
    assert Path(local).read_bytes() == b"onnx"
