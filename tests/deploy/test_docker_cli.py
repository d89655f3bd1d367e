"""The Docker client calls: engine check, build, login, push, tag.

No Docker engine runs on the machines these tests run on (the docker client is installed,
``docker info`` cannot reach a daemon), so the engine checks run the real client and expect
"no engine". Everything else runs against a stand-in ``docker`` executable written into
``tmp_path`` (:func:`fake_docker`): a small Python script that records its argument list
and stdin and prints what docker prints. It exists only because no engine runs here, and
it checks only our command lines (arguments, stdin, timeouts, how output and exit status
are read), not Docker's behaviour.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlcycle.deploy import docker_cli
from mlcycle.exceptions import DeployError
from tests.deploy._fake_docker import FakeDocker, fake_digest, fake_docker


@pytest.fixture()
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeDocker:
    for var in [v for v in os.environ if v.startswith("FAKE_DOCKER_")]:
        monkeypatch.delenv(var)
    return fake_docker(tmp_path / "bin")


def _no_engine_here() -> None:
    version = docker_cli.engine_version()
    if version is not None:
        pytest.skip(f"a Docker engine ({version}) runs here; this test needs none")


def test_engine_version_is_none_without_an_engine() -> None:
    _no_engine_here()
    assert docker_cli.engine_version() is None


def test_engine_version_is_none_without_a_client(tmp_path: Path) -> None:
    assert docker_cli.engine_version(str(tmp_path / "no-docker")) is None


def test_require_engine_names_the_step_and_docker_info_error() -> None:
    _no_engine_here()
    with pytest.raises(DeployError) as err:
        docker_cli.require_engine("building the image")
    message = str(err.value)
    assert message.startswith("no Docker engine is running (docker info: ")
    assert "building the image needs one" in message
    assert "Start Docker (or set DOCKER_HOST)" in message


def test_require_engine_names_a_missing_client(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match=r"not installed .*pushing the image needs it"):
        docker_cli.require_engine("pushing the image", str(tmp_path / "no-docker"))


def test_require_engine_quotes_the_first_error_line(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "engine")
    with pytest.raises(DeployError, match=r"\(docker info: Cannot connect to the Docker daemon"):
        docker_cli.require_engine("building the image", docker.exe)
    assert docker.calls("info")[0]["argv"] == ["info", "--format", "{{.ServerVersion}}"]


def test_require_engine_returns_the_engine_version(docker: FakeDocker) -> None:
    assert docker_cli.require_engine("building the image", docker.exe) == "27.3.1"
    assert docker_cli.engine_version(docker.exe) == "27.3.1"


def test_login_passes_the_password_on_stdin_never_in_argv(docker: FakeDocker) -> None:
    secret = "eyJwYXlsb2FkIjoic2VjcmV0In0="
    docker_cli.login(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com", "AWS", secret, docker=docker.exe
    )
    [call] = docker.calls("login")
    assert call["argv"] == [
        "login",
        "--username",
        "AWS",
        "--password-stdin",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    ]
    assert call["stdin"] == secret + "\n"
    assert not any(secret in arg for arg in call["argv"])


def test_failed_login_names_the_registry_and_hides_the_password(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "login")
    with pytest.raises(DeployError) as err:
        docker_cli.login("registry.example", "AWS", "s3cr3t-token", docker=docker.exe)
    message = str(err.value)
    assert message.startswith("logging in to registry.example failed (docker exit status 1)")
    assert "401 Unauthorized" in message
    assert "s3cr3t-token" not in message


def test_build_passes_platform_tag_and_context_and_streams_output(
    docker: FakeDocker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context = tmp_path / "my context"
    context.mkdir()
    docker_cli.build(context, "model:v1", platform="linux/arm64", docker=docker.exe)
    [call] = docker.calls("build")
    assert call["argv"] == ["build", "--platform", "linux/arm64", "-t", "model:v1", str(context)]
    err = capsys.readouterr().err
    assert "#29 [internal] step 29" in err
    assert "naming to model:v1" in err


def test_build_without_platform_leaves_it_to_the_engine(docker: FakeDocker, tmp_path: Path) -> None:
    docker_cli.build(tmp_path, "model:v1", platform=None, docker=docker.exe)
    assert docker.calls("build")[0]["argv"] == ["build", "-t", "model:v1", str(tmp_path)]


@pytest.mark.parametrize("buildkit", [True, False])
def test_single_manifest_asks_buildkit_for_no_provenance(
    docker: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, buildkit: bool
) -> None:
    if buildkit:
        monkeypatch.setenv("FAKE_DOCKER_BUILDKIT", "1")
    docker_cli.build(tmp_path, "m:1", single_manifest=True, docker=docker.exe)
    argv = next(c["argv"] for c in docker.calls("build") if c["argv"][1:2] != ["--help"])
    assert ("--provenance=false" in argv) is buildkit
    assert argv[-3:] == ["-t", "m:1", str(tmp_path)]


def test_failed_build_names_the_step_and_quotes_the_last_lines(
    docker: FakeDocker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "build")
    with pytest.raises(DeployError) as err:
        docker_cli.build(tmp_path, "model:v1", docker=docker.exe)
    message = str(err.value)
    assert message.startswith(f"building the image model:v1 from {tmp_path} failed")
    assert "ERROR: failed to solve: pip install did not complete" in message
    assert "#29 [internal] step 29" in message
    assert "#0 [internal]" not in message  # only the last lines


def test_push_returns_the_digest_docker_printed(docker: FakeDocker) -> None:
    ref = "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/model:v1"
    assert docker_cli.push(ref, docker=docker.exe) == fake_digest(ref)
    assert docker.calls("push")[0]["argv"] == ["push", ref]


def test_push_returns_empty_when_docker_prints_no_digest(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_NO_DIGEST", "1")
    assert docker_cli.push("registry.example/model:v1", docker=docker.exe) == ""


def test_failed_push_names_the_ref(docker: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "push")
    with pytest.raises(DeployError, match=r"(?s)pushing registry.example/m:1 failed.*denied"):
        docker_cli.push("registry.example/m:1", docker=docker.exe)


def test_tag_and_its_failure(docker: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> None:
    docker_cli.tag("model:v1", "registry.example/model:v1", docker=docker.exe)
    assert docker.calls("tag")[0]["argv"] == ["tag", "model:v1", "registry.example/model:v1"]
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "tag")
    with pytest.raises(DeployError, match=r"(?s)tagging nope:1 as x:1 failed.*No such image"):
        docker_cli.tag("nope:1", "x:1", docker=docker.exe)


def test_a_hanging_command_is_stopped_at_its_timeout(
    docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_DOCKER_SLEEP", "60")
    monkeypatch.setattr(docker_cli, "SHORT_TIMEOUT_S", 1.0)
    with pytest.raises(DeployError, match="tagging a:1 as b:1 did not finish within 1 s"):
        docker_cli.tag("a:1", "b:1", docker=docker.exe)


def test_missing_client_is_named_by_every_call(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-docker")
    with pytest.raises(DeployError, match=r"not installed .*pushing r:1 needs it"):
        docker_cli.push("r:1", docker=missing)
