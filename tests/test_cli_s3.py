"""S3 through the real CLI, against moto_server on 127.0.0.1 (AWS is unreachable here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest

from tests.test_cli import git, mlflow_client, run

pytestmark = pytest.mark.slow


def test_s3_remote_push_delete_pull_keeps_credentials_out_of_git(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str
) -> None:
    root = tmp_path / "s3proj"
    run(
        [
            "init",
            str(root),
            "remote=s3",
            f"remote.url=s3://{s3_bucket}/dvc",
            f"remote.endpoint_url={moto_endpoint}",
            "remote.access_key_id=testing",
            "remote.secret_access_key=testing",
        ],
        cwd=tmp_path,
    )
    assert "testing" not in (root / ".dvc" / "config").read_text()
    assert "secret_access_key" in (root / ".dvc" / "config.local").read_text()
    assert "testing" not in (root / "conf" / "config.yaml").read_text()
    assert ".dvc/config.local" not in git(root, "ls-files").splitlines()
    assert f"s3://{s3_bucket}/dvc" in (root / "conf" / "config.yaml").read_text()

    data = root / "data" / "breast_cancer.csv"
    before = data.read_bytes()
    run(["data", "push"], cwd=root)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert s3.list_objects_v2(Bucket=s3_bucket, Prefix="dvc/")["KeyCount"] >= 1
    data.unlink()
    shutil.rmtree(root / ".dvc" / "cache")
    run(["data", "pull"], cwd=root)
    assert data.read_bytes() == before


def test_mlflow_artifacts_and_registered_bundle_on_s3(
    tmp_path: Path, moto_endpoint: str, s3_bucket: str
) -> None:
    root = tmp_path / "artifacts"
    run(["init", str(root)], cwd=tmp_path)
    s3_args = [
        "tracking=s3",
        f"tracking.artifact_location=s3://{s3_bucket}/mlflow",
        f"tracking.s3_endpoint_url={moto_endpoint}",
    ]
    run(["train", *s3_args], cwd=root)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="mlflow/")["Contents"]]
    assert any(k.endswith("bundle/model.onnx") for k in keys)
    assert any(k.endswith("config.yaml") for k in keys)
    client = mlflow_client(root)
    (version,) = client.search_model_versions("name='breast_cancer'")
    assert version.source.startswith(f"s3://{s3_bucket}/mlflow/")
    # The champion baseline of a second run is downloaded from S3 and evaluated.
    run(["promote", str(version.version)], cwd=root)
    out = run(["train", *s3_args], cwd=root).stdout
    assert "champion" in out and "no model at" not in out
