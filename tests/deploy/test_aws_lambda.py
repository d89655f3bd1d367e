"""The AWS steps of ``mlcycle deploy lambda``, against a real moto_server over HTTP.

The session's ``moto_server`` (fixture ``moto_endpoint``) serves ECR, IAM and Lambda; the
tests point boto3 at it with ``AWS_ENDPOINT_URL``, the same variable users set for
LocalStack or a VPC endpoint. Images are registered in moto's ECR with PutImage (a
manifest), because moto does not serve ECR's registry endpoint that ``docker push`` talks
to. No Docker engine runs here: one test checks the "no engine" error for real, and the
build-and-push path runs the stand-in ``docker`` of :mod:`tests.deploy._fake_docker`,
which checks only our command lines. Access denial runs against a second moto_server that
enforces IAM (``INITIAL_NO_AUTH_ACTION_COUNT``). Throttling cannot be provoked in moto, so
only that translation is tested on constructed botocore errors.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from mlcycle.deploy import aws_lambda, docker_cli
from mlcycle.deploy.aws_errors import MAX_RETRIES, Progress, translate
from mlcycle.deploy.aws_lambda import aws_clients, deploy_lambda
from mlcycle.exceptions import DeployError
from tests.conftest import _moto_command, free_port
from tests.deploy._fake_docker import fake_digest, fake_docker

REGION = "us-east-1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Aws:
    """boto3 clients on moto for setting up and checking what a test expects."""

    ecr: Any
    lam: Any
    iam: Any
    account: str
    logs: list[str]

    def registry(self) -> str:
        return f"{self.account}.dkr.ecr.{REGION}.amazonaws.com"

    def role(self) -> str:
        """A new role Lambda may assume; returns its ARN."""
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role = self.iam.create_role(
            RoleName=_name("lambda-exec"), AssumeRolePolicyDocument=json.dumps(trust)
        )
        return str(role["Role"]["Arn"])

    def image(self, repository: str, tag: str) -> str:
        """Register an image ``repository:tag`` in moto's ECR (repository created if new)."""
        with contextlib.suppress(self.ecr.exceptions.RepositoryAlreadyExistsException):
            self.ecr.create_repository(repositoryName=repository)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 1469,
                "digest": "sha256:" + hashlib.sha256(f"{repository}:{tag}".encode()).hexdigest(),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 3370706,
                    "digest": "sha256:" + hashlib.sha256(b"layer").hexdigest(),
                }
            ],
        }
        self.ecr.put_image(
            repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag
        )
        return f"{self.registry()}/{repository}:{tag}"

    def deploy(self, context: Path | None = None, **kwargs: Any) -> aws_lambda.LambdaDeployment:
        kwargs.setdefault("region", REGION)
        kwargs.setdefault("wait_seconds", 60)
        return deploy_lambda(context, log=self.logs.append, **kwargs)


@pytest.fixture()
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    session = boto3.session.Session(region_name=REGION)
    account = session.client("sts").get_caller_identity()["Account"]
    return Aws(
        ecr=session.client("ecr"),
        lam=session.client("lambda"),
        iam=session.client("iam"),
        account=str(account),
        logs=[],
    )


def test_creates_a_function_from_an_image_in_ecr(aws: Aws) -> None:
    repo, function, role = _name("team/model"), _name("churn"), aws.role()
    image = aws.image(repo, "v1")
    result = aws.deploy(
        function=function,
        repository=repo,
        role=role,
        image_uri=image,
        function_url=True,
        environment={"MLCYCLE_LOG_LEVEL": "info"},
        memory_mb=2048,
        timeout_s=60,
    )
    assert result.created
    assert (result.state, result.last_update_status) == ("Active", "Successful")
    assert result.image_uri == image
    assert result.repository_uri == f"{aws.registry()}/{repo}"
    assert result.url is not None and result.url.startswith("https://")
    assert result.function_arn.endswith(f":function:{function}")
    got = aws.lam.get_function(FunctionName=function)
    config = got["Configuration"]
    assert config["PackageType"] == "Image"
    assert got["Code"]["ImageUri"] == image
    assert config["Environment"]["Variables"] == {"MLCYCLE_LOG_LEVEL": "info"}
    assert (config["MemorySize"], config["Timeout"], config["Role"]) == (2048, 60, role)
    assert aws.lam.get_function_url_config(FunctionName=function)["AuthType"] == "AWS_IAM"
    assert result.steps[0] == f"ECR repository '{repo}' exists: {aws.registry()}/{repo}"
    assert any(s.startswith(f"Lambda function '{function}' created") for s in result.steps)
    assert aws.logs[: len(result.steps)][0] == result.steps[0]


def test_updates_and_reruns_idempotently(aws: Aws) -> None:
    repo, function, role = _name("model"), _name("fraud"), aws.role()
    v1, v2 = aws.image(repo, "v1"), aws.image(repo, "v2")
    common: dict[str, Any] = {"function": function, "repository": repo, "function_url": True}
    first = aws.deploy(role=role, image_uri=v1, environment={"A": "1"}, **common)
    url_created = aws.lam.get_function_url_config(FunctionName=function)["CreationTime"]
    second = aws.deploy(image_uri=v2, memory_mb=512, **common)
    assert first.created and not second.created
    assert (second.state, second.last_update_status) == ("Active", "Successful")
    assert second.image_uri == v2 == aws.lam.get_function(FunctionName=function)["Code"]["ImageUri"]
    config = aws.lam.get_function_configuration(FunctionName=function)
    assert config["MemorySize"] == 512
    assert config["Environment"]["Variables"] == {"A": "1"}  # None keeps the variables
    assert second.url == first.url
    assert any("configuration updated (MemorySize)" in s for s in second.steps)

    third = aws.deploy(image_uri=v2, memory_mb=512, **common)
    assert not third.created
    assert (third.image_uri, third.url, third.state) == (v2, first.url, "Active")
    assert not any("configuration updated" in s for s in third.steps)
    assert not any("function URL created" in s for s in third.steps)
    # moto has no ListFunctionUrlConfigs; the URL config is the one the first run made.
    url_config = aws.lam.get_function_url_config(FunctionName=function)
    assert (url_config["FunctionUrl"], url_config["CreationTime"]) == (first.url, url_created)


def _sids(aws: Aws, function: str) -> list[str]:
    try:
        policy = json.loads(aws.lam.get_policy(FunctionName=function)["Policy"])
    except aws.lam.exceptions.ResourceNotFoundException:
        return []
    return sorted(s["Sid"] for s in policy["Statement"])


def test_public_url_grants_access_once_and_iam_auth_removes_it(aws: Aws) -> None:
    repo, function = _name("model"), _name("public")
    image = aws.image(repo, "v1")
    common: dict[str, Any] = {
        "function": function,
        "repository": repo,
        "image_uri": image,
        "function_url": True,
    }
    public = aws.deploy(role=aws.role(), url_auth="NONE", **common)
    again = aws.deploy(url_auth="NONE", **common)
    assert again.url == public.url
    assert aws.lam.get_function_url_config(FunctionName=function)["AuthType"] == "NONE"
    assert _sids(aws, function) == ["FunctionURLAllowInvokeAction", "FunctionURLAllowPublicAccess"]
    private = aws.deploy(url_auth="AWS_IAM", **common)
    assert private.url == public.url
    assert aws.lam.get_function_url_config(FunctionName=function)["AuthType"] == "AWS_IAM"
    assert _sids(aws, function) == []


def test_creates_the_repository_when_missing_and_says_so(aws: Aws) -> None:
    repo = _name("brand-new")
    image = f"{aws.registry()}/{repo}:v1"
    with pytest.raises(DeployError) as err:
        aws.deploy(function=_name("f"), repository=repo, role=aws.role(), image_uri=image)
    message = str(err.value)
    assert f"the image tag 'v1' is not in the ECR repository '{repo}'" in message
    assert "push it first" in message and "drop --image-uri" in message
    assert f"done so far: ECR repository '{repo}' created" in message
    assert message.endswith("nothing was changed in Lambda")
    [created] = aws.ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    assert created["imageTagMutability"] == "MUTABLE"


def test_image_tag_not_in_ecr_is_named(aws: Aws) -> None:
    repo = _name("model")
    aws.image(repo, "v1")
    with pytest.raises(DeployError) as err:
        aws.deploy(
            function=_name("f"),
            repository=repo,
            role=aws.role(),
            image_uri=f"{aws.registry()}/{repo}:v9",
        )
    assert f"the image tag 'v9' is not in the ECR repository '{repo}'" in str(err.value)
    assert f"ECR repository '{repo}' exists" in str(err.value)


def test_missing_function_without_role_asks_for_role(aws: Aws) -> None:
    repo, function = _name("model"), _name("f")
    image = aws.image(repo, "v1")
    with pytest.raises(DeployError) as err:
        aws.deploy(function=function, repository=repo, image_uri=image)
    message = str(err.value)
    assert f"the function {function} does not exist; creating it needs --role ARN" in message
    assert "nothing was changed in Lambda" in message


def test_existing_zip_function_is_not_replaced(aws: Aws, tmp_path: Path) -> None:
    import io
    import zipfile

    repo, function, role = _name("model"), _name("zip"), aws.role()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("handler.py", "def handler(event, context):\n    return 1\n")
    aws.lam.create_function(
        FunctionName=function,
        Runtime="python3.12",
        Handler="handler.handler",
        Role=role,
        Code={"ZipFile": buf.getvalue()},
    )
    with pytest.raises(DeployError, match=r"exists with PackageType Zip.*Delete it or deploy"):
        aws.deploy(function=function, repository=repo, role=role, image_uri=aws.image(repo, "v1"))
    assert aws.lam.get_function(FunctionName=function)["Configuration"]["PackageType"] == "Zip"


def test_a_role_lambda_cannot_assume_is_retried_then_named(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws_lambda, "ROLE_RETRY_DELAYS_S", (0.01, 0.01))
    repo = _name("model")
    missing = f"arn:aws:iam::{aws.account}:role/{_name('not-there')}"
    with pytest.raises(DeployError) as err:
        aws.deploy(
            function=_name("f"), repository=repo, role=missing, image_uri=aws.image(repo, "v1")
        )
    message = str(err.value)
    assert f"Lambda cannot assume the role {missing}" in message
    assert "after 2 retries" in message and "lambda.amazonaws.com" in message
    assert sum("retrying in" in line for line in aws.logs) == 2


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"repository": "Bad_Name!"}, "ECR repository name 'Bad_Name!' is not valid"),
        ({"repository": "a"}, "ECR repository name 'a' is not valid"),
        ({"function": "my function"}, "Lambda function name 'my function' is not valid"),
        ({"function": "x" * 65}, "Lambda function name 'xxxx"),
        ({"region": "useast1"}, "AWS region 'useast1' is not valid"),
        ({"role": "lambda-exec"}, "IAM role 'lambda-exec' is not valid: a role ARN"),
        ({"tag": ".hidden"}, "image tag '.hidden' is not valid"),
        ({"image_uri": "python:3.12"}, "Lambda runs images from ECR only"),
        (
            {"image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/m:v1"},
            "only from ECR in the function's region 'us-east-1'",
        ),
        ({"memory_mb": 64}, "memory (MB) 64 is not valid"),
        ({"architecture": "amd64"}, "architecture 'amd64' is not valid: x86_64 or arm64"),
        ({"url_auth": "PUBLIC"}, "function URL auth type 'PUBLIC' is not valid"),
        ({"environment": {"1BAD": "x"}}, "environment variable name '1BAD' is not valid"),
        ({"image_uri": None}, "nothing to deploy"),
    ],
)
def test_bad_values_are_refused_before_any_aws_call(
    monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, Any], named: str
) -> None:
    # Nothing listens on this endpoint: a call would fail with "cannot reach", not this.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    args: dict[str, Any] = {
        "function": "churn",
        "repository": "team/churn",
        "region": REGION,
        "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/churn:v1",
    }
    args.update(kwargs)
    with pytest.raises(DeployError, match=r"for example|only from ECR|nothing to deploy") as err:
        deploy_lambda(None, log=lambda line: None, **args)
    assert named in str(err.value)


def test_no_credentials_is_named(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in list(os.environ):
        if var.startswith("AWS_") and var != "AWS_DEFAULT_REGION":
            monkeypatch.delenv(var)
    (tmp_path / "credentials").write_text("")
    (tmp_path / "config").write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    with pytest.raises(DeployError) as err:
        deploy_lambda(
            None,
            function="churn",
            repository="team/churn",
            region=REGION,
            image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/team/churn:v1",
            log=lambda line: None,
        )
    message = str(err.value)
    assert message.startswith("no AWS credentials found")
    assert "set AWS_PROFILE, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in message
    assert "`aws configure` / `aws sso login`" in message
    assert "done so far: nothing" in message


def test_no_docker_engine_gives_the_manual_commands(aws: Aws, tmp_path: Path) -> None:
    version = docker_cli.engine_version()
    if version is not None:
        pytest.skip(f"a Docker engine ({version}) runs here; this test needs none")
    context = tmp_path / "lambda context"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM public.ecr.aws/lambda/python:3.12\n")
    repo = _name("team/model")
    with pytest.raises(DeployError) as err:
        aws.deploy(context, function=_name("f"), repository=repo, role=aws.role(), tag="v3")
    message = str(err.value)
    ref = f"{aws.registry()}/{repo}:v3"
    assert message.startswith("no Docker engine is running (docker info: ")
    assert "building and pushing the Lambda image needs one" in message
    assert f"done so far: ECR repository '{repo}' created" in message
    assert "nothing was changed in Lambda" in message
    assert f"the build context was written at {context}" in message
    assert f"docker build --platform linux/amd64 -t {ref} '{context}'" in message
    assert (
        f"aws ecr get-login-password --region {REGION} | docker login --username AWS "
        f"--password-stdin {aws.registry()}"
    ) in message
    assert f"docker push {ref}" in message
    assert f"with --image-uri {ref} added" in message
    assert aws.ecr.describe_repositories(repositoryNames=[repo])["repositories"]


def test_builds_and_pushes_with_the_docker_client(
    aws: Aws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stand-in docker checks our command lines only; moto never sees the push, so the
    # function is created from the digest docker printed (moto does not check ECR for it).
    for var in [v for v in os.environ if v.startswith("FAKE_DOCKER_")]:
        monkeypatch.delenv(var)
    docker = fake_docker(tmp_path / "bin")
    context = tmp_path / "ctx"
    context.mkdir()
    repo, function = _name("model"), _name("built")
    result = aws.deploy(
        context,
        function=function,
        repository=repo,
        role=aws.role(),
        tag="v7",
        architecture="arm64",
        docker=docker.exe,
    )
    ref = f"{aws.registry()}/{repo}:v7"
    pushed = f"{aws.registry()}/{repo}@{fake_digest(ref)}"
    assert result.created and result.image_uri == pushed
    assert aws.lam.get_function(FunctionName=function)["Code"]["ImageUri"] == pushed
    token = aws.ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().partition(":")[2]
    [login] = docker.calls("login")
    assert login["argv"] == ["login", "--username", "AWS", "--password-stdin", aws.registry()]
    assert login["stdin"] == password + "\n"
    assert all(password not in arg for call in docker.calls() for arg in call["argv"])
    build = next(c["argv"] for c in docker.calls("build") if "--help" not in c["argv"])
    assert build == ["build", "--platform", "linux/arm64", "-t", ref, str(context)]
    assert docker.calls("push")[0]["argv"] == ["push", ref]
    assert [s.split(" ")[0] for s in result.steps[:4]] == ["ECR", "docker", "image", "image"]
    assert password not in "\n".join(aws.logs)


def test_clients_retry_in_standard_mode_and_honour_the_endpoint_variable(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    ecr, lam = aws_clients(REGION)
    for client in (ecr, lam):
        # botocore counts max_attempts=5 as five retries after the first attempt.
        assert client.meta.config.retries == {
            "mode": "standard",
            "total_max_attempts": MAX_RETRIES + 1,
        }
        assert client.meta.endpoint_url == moto_endpoint
        assert client.meta.region_name == REGION
        assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (10, 60)


# --- access denied: a second moto_server that checks IAM ---------------------------------


@dataclass(frozen=True)
class _Enforcing:
    url: str
    access_key: str
    secret_key: str


@pytest.fixture(scope="module")
def enforcing_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Enforcing]:
    """A moto_server that checks IAM after two calls, and a user with no policies.

    Those two calls create the user and its access key; every later request is checked
    against IAM, so that user is denied everything.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "2"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto_server did not start on {url}: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 0}),
        )
        user = _name("nobody")
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        yield _Enforcing(url, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_access_denied_names_the_step_and_the_iam_actions(
    enforcing_moto: _Enforcing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", enforcing_moto.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", enforcing_moto.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", enforcing_moto.secret_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    with pytest.raises(DeployError) as err:
        deploy_lambda(
            None,
            function="churn",
            repository="team/churn",
            region=REGION,
            image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/team/churn:v1",
            log=lambda line: None,
        )
    message = str(err.value)
    assert message.startswith("AWS denied checking the ECR repository 'team/churn' (AccessDenied: ")
    assert "is not authorized to perform: ecr:DescribeRepositories" in message
    assert "give the caller ecr:DescribeRepositories or use another profile" in message
    assert "done so far: nothing" in message


# --- the error translation ------------------------------------------------------------------


def _client_error(
    code: str, message: str = "Rate exceeded", retries: int | None = 3
) -> ClientError:
    meta: dict[str, Any] = {"HTTPStatusCode": 400}
    if retries is not None:
        meta["RetryAttempts"] = retries
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": meta}, "Op"
    )


@pytest.mark.parametrize(
    "code",
    ["ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"],
)
def test_throttling_says_to_wait_and_rerun(code: str) -> None:
    # Constructed: moto cannot throttle, and botocore's retries run before this point.
    error = translate(
        _client_error(code),
        step="creating the ECR repository 'm'",
        done="done so far: nothing (no AWS resource was created or changed)",
    )
    assert str(error) == (
        f"AWS throttled creating the ECR repository 'm' after 3 retries ({code}: Rate "
        "exceeded); wait and run the command again (it is safe to re-run: every step checks "
        "what exists); done so far: nothing (no AWS resource was created or changed)"
    )
    unknown = translate(_client_error(code, retries=None), step="x")
    assert f"after {MAX_RETRIES} retries" in str(unknown)


@pytest.mark.parametrize("code", ["AccessDenied", "AccessDeniedException"])
def test_access_denied_codes_name_the_actions(code: str) -> None:
    error = translate(
        _client_error(code, "not authorized"),
        step="creating the ECR repository 'm'",
        actions=["ecr:CreateRepository"],
    )
    assert str(error) == (
        f"AWS denied creating the ECR repository 'm' ({code}: not authorized): give the "
        "caller ecr:CreateRepository or use another profile"
    )


@pytest.mark.parametrize(
    "code",
    [
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
    ],
)
def test_rejected_credentials_say_to_refresh_them(code: str) -> None:
    error = translate(_client_error(code, "bad token"), step="reading the function 'f'")
    assert str(error).startswith(f"AWS denied reading the function 'f' ({code}: bad token)")
    assert "invalid or expired" in str(error) and "aws sso login" in str(error)


@pytest.mark.parametrize("code", ["InvalidParameterException", "InvalidParameterValueException"])
def test_invalid_parameter_quotes_aws(code: str) -> None:
    error = translate(
        _client_error(code, "Memory size must be 128 or more"), step="updating the function 'f'"
    )
    assert str(error) == "AWS refused updating the function 'f': Memory size must be 128 or more"


def test_no_or_partial_credentials_are_named() -> None:
    assert str(translate(NoCredentialsError(), step="s")).startswith(
        "no AWS credentials found for s: set AWS_PROFILE"
    )
    partial = PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY")
    assert "incomplete" in str(translate(partial, step="s"))


def test_unreachable_endpoint_is_named() -> None:
    # A real EndpointConnectionError from botocore: nothing listens on the port.
    url = f"http://127.0.0.1:{free_port()}"
    client = boto3.client(
        "ecr",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 0}, connect_timeout=2),
    )
    with pytest.raises(EndpointConnectionError) as raised:
        client.describe_repositories()
    error = translate(raised.value, step="checking the ECR repository 'm'")
    assert str(error).startswith(
        f"cannot reach the AWS endpoint {url}/ for checking the ECR repository 'm'"
    )


def test_progress_summary_says_whether_lambda_changed() -> None:
    progress = Progress(log=lambda line: None)
    progress.record("ECR repository 'm' created")
    progress.record("image pushed as r@sha256:1")
    assert progress.summary() == (
        "done so far: ECR repository 'm' created; image pushed as r@sha256:1; "
        "nothing was changed in Lambda"
    )
    progress.record("Lambda function 'f' created", lambda_change=True)
    assert progress.summary().endswith("Lambda function 'f' created")


@pytest.mark.parametrize(
    ("configuration", "expected"),
    [
        (
            {"State": "Failed", "StateReasonCode": "ImageAccessDenied", "StateReason": "no pull"},
            "Lambda reports the function 'f' failed (ImageAccessDenied: no pull)",
        ),
        (
            {"State": "Pending"},
            "the function 'f' was not Active after 1 s (State Pending, LastUpdateStatus None)",
        ),
    ],
)
def test_a_function_that_fails_or_stays_pending_is_reported(
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    configuration: dict[str, str],
    expected: str,
) -> None:
    # Constructed with botocore's Stubber: moto's functions are Active at once. With
    # wait_seconds below the poll delay the waiter polls once and does not sleep.
    from botocore.stub import Stubber

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    _, lam = aws_clients(REGION)
    progress = Progress(log=lambda line: None)
    progress.record("Lambda function 'f' created", lambda_change=True)
    with Stubber(lam) as stub:
        stub.add_response(
            "get_function",
            {"Configuration": {"FunctionName": "f", **configuration}},
            {"FunctionName": "f"},
        )
        with pytest.raises(DeployError) as err:
            aws_lambda._wait(lam, "function_active_v2", "f", 1, progress)
    assert str(err.value).startswith(expected)
    assert "done so far: Lambda function 'f' created" in str(err.value)


def test_cli_writes_the_context_stops_at_docker_then_finishes_with_the_image_uri(
    aws: Aws, tmp_path: Path, moto_endpoint: str
) -> None:
    """A new user's path through ``mlcycle deploy lambda`` where no Docker engine runs."""
    if docker_cli.engine_version() is not None:
        pytest.skip("a Docker engine runs here; the no-engine stop is not shown")
    from tests._bundles import build_bundle
    from tests._cli import run

    bundle = build_bundle("cancer", tmp_path / "bundle")
    repo, function, role = _name("team/cancer"), _name("cancer"), aws.role()
    args = ["deploy", "lambda", str(bundle), "--function", function, "--repository", repo]
    args += ["--region", REGION, "--role", role, "--wait", "60"]
    env = {"AWS_ENDPOINT_URL": moto_endpoint}
    first = run(args, cwd=tmp_path, check=False, **env)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "no Docker engine" in first.stderr and "--image-uri" in first.stderr
    context = tmp_path / "build" / f"lambda-{function}"
    assert (context / "Dockerfile").is_file() and str(context) in first.stderr
    assert aws.ecr.describe_repositories(repositoryNames=[repo])["repositories"]
    with pytest.raises(aws.lam.exceptions.ResourceNotFoundException):
        aws.lam.get_function(FunctionName=function)
    # The image pushed by hand (here: registered in moto's ECR), then the same command again.
    image = aws.image(repo, "latest")
    done = run([*args, "--image-uri", image, "--function-url"], cwd=tmp_path, **env)
    assert f"created arn:aws:lambda:{REGION}:" in done.stdout and "Active" in done.stdout
    assert "function URL: " in done.stdout
    again = run([*args, "--image-uri", image, "--env", "MLCYCLE_X=1"], cwd=tmp_path, **env)
    assert "updated arn:aws:lambda:" in again.stdout
    config = aws.lam.get_function(FunctionName=function)["Configuration"]
    assert config["PackageType"] == "Image" and config["State"] == "Active"
    assert config["Environment"]["Variables"] == {"MLCYCLE_X": "1"}
