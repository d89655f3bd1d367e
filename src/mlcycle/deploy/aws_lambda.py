"""The AWS steps of ``mlcycle deploy lambda``: ECR repository, image, function, function URL.

:func:`deploy_lambda` runs these steps in order, logs each one, and checks what exists
before it changes anything, so running it again is safe:

1. check the names (ECR repository, function, region, role, image URI) before any call;
2. open ECR and Lambda clients from boto3's standard credential chain (``AWS_PROFILE``,
   the ``AWS_ACCESS_KEY_ID`` variables, SSO, instance roles; endpoints from
   ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_ECR`` / ``AWS_ENDPOINT_URL_LAMBDA``);
3. find or create the ECR repository;
4. either check that the given image is in ECR, or build the image from the build context
   and push it (``docker login`` with an ECR token, ``docker build``, ``docker push``);
5. create the function, or update its code and then its configuration;
6. wait until the function is Active;
7. optionally create (or fix the auth type of) its function URL.

Every failure is a :class:`~mlcycle.exceptions.DeployError` naming the step, what AWS said,
what to do, and what was done so far (see :mod:`mlcycle.deploy.aws_errors`).

What the tests can and cannot exercise: they run against a real ``moto_server`` over HTTP,
which emulates the ECR API (CreateRepository, DescribeRepositories, DescribeImages,
GetAuthorizationToken, PutImage to register a manifest), IAM roles, users and (with
``INITIAL_NO_AUTH_ACTION_COUNT``) IAM checks on ECR calls, and the Lambda API (GetFunction,
CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration, function URL configs,
AddPermission, GetPolicy, RemovePermission, the waiters). moto cannot emulate the image push
to ECR's registry endpoint (``<account>.dkr.ecr.<region>.amazonaws.com`` speaks the Docker
registry protocol, which moto does not serve), ``docker build`` (no Docker engine there),
running the function (moto cannot invoke Image functions and does not serve function URLs),
a function that stays Pending or ends Failed (moto's functions are Active at once), throttling,
and IAM propagation delays.
"""

from __future__ import annotations

import base64
import math
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlcycle._optional import require
from mlcycle.deploy import docker_cli
from mlcycle.deploy.aws_errors import (
    ECR_IMAGE,
    MAX_RETRIES,
    PLATFORMS,
    Progress,
    no_credentials_message,
    validate_names,
    validate_settings,
)
from mlcycle.deploy.aws_function_url import ensure_function_url
from mlcycle.exceptions import DeployError

__all__ = ["LambdaDeployment", "aws_clients", "deploy_lambda"]

#: Seconds between two polls of a Lambda waiter.
WAIT_DELAY_S = 2
#: Back-off (seconds) between CreateFunction attempts while IAM has not yet propagated a
#: new role to Lambda ("The role defined for the function cannot be assumed by Lambda").
ROLE_RETRY_DELAYS_S: tuple[float, ...] = (2.0, 4.0, 8.0)

_IMAGE_ACTIONS = ("ecr:SetRepositoryPolicy", "ecr:GetRepositoryPolicy")
_PUSH_ACTIONS = (
    "ecr:BatchCheckLayerAvailability, ecr:InitiateLayerUpload, ecr:UploadLayerPart, "
    "ecr:CompleteLayerUpload, ecr:PutImage"
)


@dataclass(frozen=True)
class LambdaDeployment:
    """What :func:`deploy_lambda` deployed."""

    #: The function's name.
    function_name: str
    #: The function's ARN.
    function_arn: str
    #: The image as deployed: ``repository_uri:tag`` or ``repository_uri@sha256:...``.
    image_uri: str
    #: True when the function was created, False when an existing one was updated.
    created: bool
    #: The function's State (``"Active"``).
    state: str
    #: The function's LastUpdateStatus (``"Successful"``).
    last_update_status: str
    #: The function URL, when one was asked for.
    url: str | None
    #: The ECR repository's URI.
    repository_uri: str
    #: What was done, in order, as logged.
    steps: tuple[str, ...]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def aws_clients(region: str) -> tuple[Any, Any]:
    """ECR and Lambda clients for ``region`` from boto3's standard credential chain.

    The clients retry in botocore's "standard" mode (:data:`MAX_RETRIES` retries, with
    backoff on throttling) and time out instead of hanging.

    Parameters
    ----------
    region
        The AWS region, e.g. ``"us-east-1"``.

    Returns
    -------
    tuple
        ``(ecr, lambda)`` botocore clients.

    Raises
    ------
    DeployError
        No credentials are configured (or the configured profile is missing).
    """
    boto3 = require("boto3", "s3")
    config = require("botocore.config", "s3")
    progress = Progress(log=lambda line: None)
    with progress.step("reading the AWS configuration"):
        session = boto3.session.Session(region_name=region)
        credentials = session.get_credentials()
    if credentials is None:
        raise progress.fail(no_credentials_message(f"deploying to AWS Lambda in {region}"))
    settings = config.Config(
        retries={"mode": "standard", "max_attempts": MAX_RETRIES},
        connect_timeout=10,
        read_timeout=60,
        user_agent_extra="mlcycle-deploy",
    )
    return session.client("ecr", config=settings), session.client("lambda", config=settings)


def _ensure_repository(ecr: Any, name: str, progress: Progress) -> str:
    with progress.step(f"checking the ECR repository {name!r}", ["ecr:DescribeRepositories"]):
        try:
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
            progress.record(f"ECR repository {name!r} exists: {repo['repositoryUri']}")
            return str(repo["repositoryUri"])
        except ecr.exceptions.RepositoryNotFoundException:
            pass
    with progress.step(f"creating the ECR repository {name!r}", ["ecr:CreateRepository"]):
        try:
            repo = ecr.create_repository(
                repositoryName=name,
                imageScanningConfiguration={"scanOnPush": True},
                imageTagMutability="MUTABLE",
            )["repository"]
        except ecr.exceptions.RepositoryAlreadyExistsException:  # created meanwhile
            repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    progress.record(f"ECR repository {name!r} created: {repo['repositoryUri']}")
    return str(repo["repositoryUri"])


def _check_image(ecr: Any, image_uri: str, repository_uri: str, progress: Progress) -> str:
    ref = ECR_IMAGE.fullmatch(image_uri)
    assert ref is not None  # validate_names checked it
    if ref["registry"] != repository_uri.split("/", 1)[0]:
        progress.record(f"image {image_uri} is in another account's ECR (not checked)")
        return image_uri
    image_id = {"imageDigest": ref["digest"]} if ref["digest"] else {"imageTag": ref["tag"]}
    what = f"digest {ref['digest']}" if ref["digest"] else f"tag {ref['tag']!r}"
    with progress.step(f"checking the image {image_uri} in ECR", ["ecr:DescribeImages"]):
        try:
            found = ecr.describe_images(repositoryName=ref["repository"], imageIds=[image_id])
            details = found["imageDetails"]
        except (
            ecr.exceptions.ImageNotFoundException,
            ecr.exceptions.RepositoryNotFoundException,
        ):
            details = []
    if not details:
        raise progress.fail(
            f"the image {what} is not in the ECR repository {ref['repository']!r} "
            f"({ref['registry']}): push it first (docker push {image_uri}), or drop "
            "--image-uri to build and push the image from the bundle"
        )
    progress.record(f"image found in ECR: {image_uri} ({details[0].get('imageDigest', '')})")
    return image_uri


@contextmanager
def _docker_step(progress: Progress, hint: str = "") -> Iterator[None]:
    try:
        yield
    except DeployError as exc:
        raise progress.fail(f"{exc}{hint}") from exc


def _build_and_push(
    ecr: Any,
    context: Path,
    *,
    repository_uri: str,
    tag: str,
    region: str,
    architecture: str,
    docker: str,
    progress: Progress,
) -> str:
    ref = f"{repository_uri}:{tag}"
    registry = repository_uri.split("/", 1)[0]
    platform = PLATFORMS[architecture]
    try:
        docker_cli.require_engine("building and pushing the Lambda image", docker)
    except DeployError as exc:
        build = docker_cli.build_command(
            context, ref, platform=platform, single_manifest=True, docker=docker
        )
        raise progress.fail(
            str(exc),
            then=(
                f"Or finish by hand: the build context was written at {context}; run\n"
                f"  {shlex.join(build)}\n"
                f"  aws ecr get-login-password --region {region} | docker login "
                f"--username AWS --password-stdin {registry}\n"
                f"  docker push {ref}\n"
                "then run the same `mlcycle deploy lambda` command again with "
                f"--image-uri {ref} added"
            ),
        ) from exc
    with progress.step("getting an ECR login token", ["ecr:GetAuthorizationToken"]):
        auth = ecr.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(auth["authorizationToken"]).decode().partition(":")
    registry = urlsplit(auth["proxyEndpoint"]).netloc or registry
    with _docker_step(progress):
        docker_cli.login(registry, username, password, docker=docker)
    progress.record(f"docker logged in to {registry}")
    with _docker_step(progress):
        docker_cli.build(context, ref, platform=platform, single_manifest=True, docker=docker)
    progress.record(f"image built as {ref} ({platform})")
    with _docker_step(progress, f" (pushing needs {_PUSH_ACTIONS})"):
        digest = docker_cli.push(ref, docker=docker)
    pushed = f"{repository_uri}@{digest}" if digest else ref
    progress.record(f"image pushed as {pushed}")
    return pushed


def _wait(lam: Any, waiter: str, function: str, wait_seconds: float, progress: Progress) -> None:
    errors = require("botocore.exceptions", "s3")
    goal = "Active" if waiter == "function_active_v2" else "done updating"
    progress.note(f"waiting until the function {function!r} is {goal}")
    attempts = max(1, math.ceil(wait_seconds / WAIT_DELAY_S))
    step = f"waiting until the function {function!r} is {goal}"
    with progress.step(step, ["lambda:GetFunction"]):
        try:
            lam.get_waiter(waiter).wait(
                FunctionName=function,
                WaiterConfig={"Delay": WAIT_DELAY_S, "MaxAttempts": attempts},
            )
            return
        except errors.WaiterError as exc:
            last = exc.last_response or {}
            if "Error" in last:
                raise errors.ClientError(last, "GetFunction") from exc
    cfg = last.get("Configuration", {})
    if cfg.get("State") == "Failed" or cfg.get("LastUpdateStatus") == "Failed":
        reason, code = (
            (cfg.get("StateReason"), cfg.get("StateReasonCode"))
            if cfg.get("State") == "Failed"
            else (cfg.get("LastUpdateStatusReason"), cfg.get("LastUpdateStatusReasonCode"))
        )
        raise progress.fail(
            f"Lambda reports the function {function!r} failed ({code}: {reason}); fix the "
            "cause and run the command again"
        )
    raise progress.fail(
        f"the function {function!r} was not {goal} after {wait_seconds:g} s (State "
        f"{cfg.get('State')}, LastUpdateStatus {cfg.get('LastUpdateStatus')}); check it with "
        f"`aws lambda get-function --function-name {function}` and run the command again"
    )


def _create_function(lam: Any, spec: dict[str, Any], progress: Progress) -> None:
    name = spec["FunctionName"]
    actions = ["lambda:CreateFunction", "iam:PassRole", *_IMAGE_ACTIONS]
    for delay in (*ROLE_RETRY_DELAYS_S, None):
        with progress.step(f"creating the Lambda function {name!r}", actions):
            try:
                lam.create_function(**spec)
                return
            except lam.exceptions.InvalidParameterValueException as exc:
                if "cannot be assumed" not in str(exc):
                    raise
                if delay is None:
                    said = exc.response.get("Error", {}).get("Message", str(exc))
                    raise progress.fail(
                        f"Lambda cannot assume the role {spec['Role']} ({said}), also after "
                        f"{len(ROLE_RETRY_DELAYS_S)} retries: check that the role exists and "
                        "that its trust policy lets lambda.amazonaws.com assume it"
                    ) from exc
        progress.note(
            f"Lambda cannot assume the role yet (IAM takes seconds to propagate a new role); "
            f"retrying in {delay:g} s"
        )
        time.sleep(delay)


def _config_changes(
    current: Mapping[str, Any],
    *,
    memory_mb: int,
    timeout_s: int,
    environment: Mapping[str, str] | None,
    role: str | None,
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if current.get("MemorySize") != memory_mb:
        changes["MemorySize"] = memory_mb
    if current.get("Timeout") != timeout_s:
        changes["Timeout"] = timeout_s
    env = (current.get("Environment") or {}).get("Variables") or {}
    if environment is not None and dict(environment) != env:
        changes["Environment"] = {"Variables": dict(environment)}
    if role is not None and current.get("Role") != role:
        changes["Role"] = role
    return changes


def _deploy_function(
    lam: Any,
    *,
    function: str,
    image: str,
    role: str | None,
    memory_mb: int,
    timeout_s: int,
    architecture: str,
    environment: Mapping[str, str] | None,
    wait_seconds: float,
    progress: Progress,
) -> bool:
    """Create or update the function; True when it was created."""
    with progress.step(f"reading the Lambda function {function!r}", ["lambda:GetFunction"]):
        try:
            current = lam.get_function(FunctionName=function)["Configuration"]
        except lam.exceptions.ResourceNotFoundException:
            current = None
    if current is None:
        if role is None:
            raise progress.fail(
                f"the function {function} does not exist; creating it needs --role ARN (an "
                "IAM role Lambda can assume, with AWSLambdaBasicExecutionRole)"
            )
        spec = {
            "FunctionName": function,
            "PackageType": "Image",
            "Code": {"ImageUri": image},
            "Role": role,
            "MemorySize": memory_mb,
            "Timeout": timeout_s,
            "Architectures": [architecture],
            "Environment": {"Variables": dict(environment or {})},
        }
        _create_function(lam, spec, progress)
        progress.record(f"Lambda function {function!r} created from {image}", lambda_change=True)
        return True
    if current.get("PackageType", "Zip") != "Image":
        raise progress.fail(
            f"the function {function} exists with PackageType {current.get('PackageType')}; "
            "Lambda cannot switch a function to a container image. Delete it or deploy under "
            "another --function name"
        )
    if current.get("LastUpdateStatus") == "InProgress":
        _wait(lam, "function_updated_v2", function, wait_seconds, progress)
    actions = ["lambda:UpdateFunctionCode", *_IMAGE_ACTIONS]
    with progress.step(f"updating the code of the function {function!r}", actions):
        lam.update_function_code(
            FunctionName=function, ImageUri=image, Architectures=[architecture]
        )
    progress.record(f"function {function!r} code updated to {image}", lambda_change=True)
    _wait(lam, "function_updated_v2", function, wait_seconds, progress)
    changes = _config_changes(
        current, memory_mb=memory_mb, timeout_s=timeout_s, environment=environment, role=role
    )
    if not changes:
        progress.note(f"function {function!r} configuration unchanged")
        return False
    actions = ["lambda:UpdateFunctionConfiguration"] + (["iam:PassRole"] if role else [])
    with progress.step(f"updating the configuration of the function {function!r}", actions):
        lam.update_function_configuration(FunctionName=function, **changes)
    progress.record(
        f"function {function!r} configuration updated ({', '.join(changes)})", lambda_change=True
    )
    _wait(lam, "function_updated_v2", function, wait_seconds, progress)
    return False


def deploy_lambda(
    context: Path | None,
    *,
    function: str,
    repository: str,
    region: str,
    role: str | None = None,
    image_uri: str | None = None,
    tag: str = "latest",
    memory_mb: int = 1024,
    timeout_s: int = 30,
    architecture: str = "x86_64",
    environment: Mapping[str, str] | None = None,
    function_url: bool = False,
    url_auth: str = "AWS_IAM",
    wait_seconds: float = 300.0,
    docker: str = "docker",
    log: Callable[[str], None] = _stderr,
) -> LambdaDeployment:
    """Deploy a Lambda container image: ECR repository, image, function, function URL.

    Every step checks what exists first, so running it again is safe (and finishes a
    deployment an earlier run could not complete).

    Parameters
    ----------
    context
        The Lambda image's build context (written by :mod:`mlcycle.deploy.context`); built
        and pushed when ``image_uri`` is None. Needs a running Docker engine.
    function
        The function's name (1-64 letters, digits, ``-``, ``_``) or ARN.
    repository
        The ECR repository's name; created (scan on push, mutable tags) when missing.
    region
        The AWS region of the repository and the function.
    role
        The ARN of the function's execution role; needed to create the function (an IAM role
        Lambda can assume, with AWSLambdaBasicExecutionRole); when given for an existing
        function, it replaces the function's role.
    image_uri
        An image already in ECR (``repository_uri:tag`` or ``@sha256:...``) to deploy
        instead of building one; checked with DescribeImages when it is in this account.
    tag
        The tag of the image built from ``context``.
    memory_mb, timeout_s, architecture
        The function's memory (128-10240 MB), timeout (1-900 s) and ``x86_64`` or ``arm64``
        (the image is built for the matching platform).
    environment
        The function's environment variables; None keeps an existing function's variables.
    function_url
        Also give the function an HTTPS URL.
    url_auth
        The URL's auth type: ``AWS_IAM`` (signed requests only) or ``NONE`` (public; the
        function's policy then allows anyone to call the URL).
    wait_seconds
        How long to wait for Lambda to finish each update and to become Active.
    docker
        The docker client to run.
    log
        Called with a line for each step; defaults to printing to stderr.

    Returns
    -------
    LambdaDeployment
        The function, the deployed image, its state and URL, and the steps done.

    Raises
    ------
    DeployError
        A name is invalid, credentials are missing, AWS refused a step, no Docker engine
        runs, or Lambda reports a failure. The message names the step, says what was done
        so far and what to do.
    """
    validate_names(
        function=function,
        repository=repository,
        region=region,
        role=role,
        image_uri=image_uri,
        tag=tag,
    )
    validate_settings(
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        architecture=architecture,
        environment=environment,
        url_auth=url_auth,
        wait_seconds=wait_seconds,
    )
    if context is None and image_uri is None:
        raise DeployError("nothing to deploy: give a build context or an image URI (--image-uri)")
    ecr, lam = aws_clients(region)
    progress = Progress(log)
    repository_uri = _ensure_repository(ecr, repository, progress)
    if image_uri is not None:
        image = _check_image(ecr, image_uri, repository_uri, progress)
    else:
        assert context is not None
        image = _build_and_push(
            ecr,
            context,
            repository_uri=repository_uri,
            tag=tag,
            region=region,
            architecture=architecture,
            docker=docker,
            progress=progress,
        )
    created = _deploy_function(
        lam,
        function=function,
        image=image,
        role=role,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        architecture=architecture,
        environment=environment,
        wait_seconds=wait_seconds,
        progress=progress,
    )
    _wait(lam, "function_active_v2", function, wait_seconds, progress)
    url = ensure_function_url(lam, function, url_auth, progress) if function_url else None
    with progress.step(f"reading the Lambda function {function!r}", ["lambda:GetFunction"]):
        deployed = lam.get_function(FunctionName=function)
    config = deployed["Configuration"]
    progress.note(f"function {function!r} is {config.get('State')}: {config['FunctionArn']}")
    return LambdaDeployment(
        function_name=str(config["FunctionName"]),
        function_arn=str(config["FunctionArn"]),
        image_uri=str(deployed.get("Code", {}).get("ImageUri", image)),
        created=created,
        state=str(config.get("State", "")),
        last_update_status=str(config.get("LastUpdateStatus", "")),
        url=url,
        repository_uri=repository_uri,
        steps=tuple(progress.done),
    )
