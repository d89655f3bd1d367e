"""The DVC wrapper against real DVC: init, remotes (local folder, S3 on moto), push/pull."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from mlcycle.config.project import Project
from mlcycle.config.structured import RemoteConfig
from mlcycle.data import dvc, file_md5, write_example
from mlcycle.exceptions import ConfigError, DataError, ProjectError, RemoteError


def git(root: Path, *args: str) -> str:
    """Run git in ``root`` and return its stdout (fails the test on error)."""
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _data(root: Path) -> Path:
    return write_example("wine", root / "data" / "wine.csv")


def _round_trip(root: Path, data: Path, *, check_status: bool = True) -> None:
    """Push, delete the cache and the file, pull: the same bytes come back."""
    before = data.read_bytes()
    dvc.add(root, data)
    if check_status:
        assert dvc.status(root, cloud=True).changes == {"data/wine.csv": "not pushed"}
    assert "1 file pushed" in dvc.push(root)
    if check_status:
        assert dvc.status(root, cloud=True).clean
    shutil.rmtree(root / ".dvc" / "cache")
    data.unlink()
    dvc.pull(root)
    assert data.read_bytes() == before


# -- init ------------------------------------------------------------------------------------


def test_init_outside_git_repo_says_to_run_git_init(project: Project, dvc_isolated: None) -> None:
    with pytest.raises(ProjectError, match="not a git repository; run `git init`"):
        dvc.init(project.root)
    assert not dvc.is_repo(project.root)


def test_init_is_idempotent_and_stages_dvc_files(repo: Path) -> None:
    config = (repo / ".dvc" / "config").read_bytes()
    dvc.init(repo)
    assert (repo / ".dvc" / "config").read_bytes() == config
    assert ".dvc/config" in git(repo, "diff", "--cached", "--name-only").split()


@pytest.mark.parametrize("call", ["add", "push", "pull", "status"])
def test_commands_outside_dvc_repo_say_to_run_mlcycle_init(project: Project, call: str) -> None:
    with pytest.raises(ProjectError, match="not a DVC repository; run `mlcycle init`"):
        if call == "add":
            dvc.add(project.root, project.root / "x.csv")
        else:
            getattr(dvc, call)(project.root)


# -- add and status --------------------------------------------------------------------------


def test_add_returns_dvc_file_and_stages_it_with_gitignore(repo: Path) -> None:
    _data(repo)
    meta = dvc.add(repo, Path("data/wine.csv"))
    assert meta == repo / "data" / "wine.csv.dvc" and meta.is_file()
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert "data/wine.csv.dvc" in staged and "data/.gitignore" in staged
    assert "data/wine.csv" not in staged
    assert dvc.status(repo).clean
    with (repo / "data" / "wine.csv").open("a") as fh:
        fh.write("1,2\n")
    changed = dvc.status(repo)
    assert changed.changes == {"data/wine.csv": "modified"}
    assert "modified" in str(changed) and "data/wine.csv" in str(changed)


def test_add_missing_or_outside_file_is_a_data_error(
    repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with pytest.raises(DataError, match="does not exist"):
        dvc.add(repo, repo / "none.csv")
    outside = tmp_path_factory.mktemp("outside") / "o.csv"
    outside.write_text("x\n")
    with pytest.raises(DataError, match="outside the project"):
        dvc.add(repo, outside)


# -- local folder remote ---------------------------------------------------------------------


def test_local_remote_push_delete_pull_gives_same_bytes(repo: Path, project: Project) -> None:
    dvc.configure_remote(repo, RemoteConfig(kind="local", url=".mlcycle/dvc-remote"), project)
    config = (repo / ".dvc" / "config").read_text()
    assert "remote = storage" in config and "url = ../.mlcycle/dvc-remote" in config
    _round_trip(repo, _data(repo))
    assert any((repo / ".mlcycle" / "dvc-remote").rglob("*"))


def test_push_without_remote_or_to_unknown_remote_says_how_to_fix(
    repo: Path, project: Project
) -> None:
    dvc.add(repo, _data(repo))
    with pytest.raises(RemoteError, match=r"no DVC remote is configured.*mlcycle init"):
        dvc.push(repo)
    dvc.configure_remote(repo, RemoteConfig(), project)
    with pytest.raises(RemoteError, match=r"no DVC remote 'backup'.*known: \['storage'\]"):
        dvc.push(repo, remote="backup")


def test_configure_remote_rejected_by_dvc_restores_config_files(
    repo: Path, project: Project
) -> None:
    local = repo / ".dvc" / "config.local"
    local.write_text("['remote \"ghost\"']\n    access_key_id = x\n")
    before = {p: p.read_bytes() for p in (repo / ".dvc" / "config", local)}
    cfg = RemoteConfig(kind="s3", url="s3://bucket/dvc", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(
        RemoteError, match=r"could not configure DVC remote 'storage'.*left as it was"
    ):
        dvc.configure_remote(repo, cfg, project)
    assert {p: p.read_bytes() for p in before} == before


def test_pull_of_files_never_pushed_is_a_remote_error(repo: Path, project: Project) -> None:
    dvc.configure_remote(repo, RemoteConfig(), project)
    data = _data(repo)
    dvc.add(repo, data)
    shutil.rmtree(repo / ".dvc" / "cache")
    data.unlink()
    with pytest.raises(RemoteError, match="neither in the local cache nor on DVC remote 'storage'"):
        dvc.pull(repo)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (RemoteConfig(kind="gcs"), r"remote\.kind='gcs'"),
        (RemoteConfig(kind="s3", url="bucket/x"), r"remote\.url='bucket/x' is not an S3 URL"),
        (RemoteConfig(kind="local", url="s3://b/x"), r"remote\.kind=s3"),
        (RemoteConfig(kind="s3", url="s3://b", access_key_id="k"), "secret_access_key"),
    ],
)
def test_configure_remote_rejects_bad_config(
    repo: Path, project: Project, cfg: RemoteConfig, match: str
) -> None:
    config = (repo / ".dvc" / "config").read_bytes()
    with pytest.raises(ConfigError, match=match):
        dvc.configure_remote(repo, cfg, project)
    assert (repo / ".dvc" / "config").read_bytes() == config


# -- S3 on moto ------------------------------------------------------------------------------


def test_s3_remote_on_moto_round_trips_with_credentials_only_in_local_config(
    repo: Path, project: Project, s3_bucket: str, moto_endpoint: str
) -> None:
    cfg = RemoteConfig(
        kind="s3",
        name="s3store",
        url=f"s3://{s3_bucket}/dvc",
        endpoint_url=moto_endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing-secret",
    )
    dvc.configure_remote(repo, cfg, project)
    config = (repo / ".dvc" / "config").read_text()
    local = (repo / ".dvc" / "config.local").read_text()
    assert f"url = s3://{s3_bucket}/dvc" in config and f"endpointurl = {moto_endpoint}" in config
    assert "testing-secret" not in config and "access_key_id" not in config
    assert "secret_access_key = testing-secret" in local and "access_key_id = testing" in local
    assert "config.local" in (repo / ".dvc" / ".gitignore").read_text()
    _round_trip(repo, _data(repo), check_status=False)

    # Back to a local folder: the S3 credentials leave .dvc/config.local.
    dvc.configure_remote(repo, RemoteConfig(kind="local", name="s3store"), project)
    assert "secret_access_key" not in (repo / ".dvc" / "config.local").read_text()


def test_unreachable_s3_remote_names_remote_and_url(
    repo: Path, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast instead of retrying
    endpoint = f"http://127.0.0.1:{_free_port()}"
    cfg = RemoteConfig(
        kind="s3",
        name="offline",
        url="s3://nowhere/dvc",
        endpoint_url=endpoint,
        access_key_id="k",
        secret_access_key="s",
    )
    dvc.configure_remote(repo, cfg, project)
    data = _data(repo)
    dvc.add(repo, data)
    with pytest.raises(
        RemoteError,
        match=rf"remote 'offline' \(s3://nowhere/dvc, endpoint {endpoint}\).*remote\.endpoint_url",
    ):
        dvc.push(repo)
    assert file_md5(data)  # the workspace is untouched
