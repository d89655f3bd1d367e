"""``mlcycle deploy``: a server image, an AWS Lambda function, or a static web site.

::

    mlcycle deploy docker [MODEL] --out DIR [--build [--tag TAG]] [--force] [KEY=VALUE ...]
    mlcycle deploy lambda [MODEL] --function NAME --repository NAME --region REGION
                          [--role ARN] [--image-uri URI] [--tag TAG] [--memory MB]
                          [--timeout S] [--architecture x86_64|arm64] [--env K=V ...]
                          [--wait S]
                          [--function-url [--url-auth AWS_IAM|NONE]] [--out DIR] [KEY=VALUE ...]
    mlcycle deploy web [MODEL] --out DIR [--ort-version V | --ort-dist DIR] [--title T]
                       [--force] [KEY=VALUE ...]

``MODEL`` is a bundle folder or a registry reference (``@champion``, ``models:/NAME@ALIAS``,
a version); the default is the registry's ``@champion``. The ``serve`` section of the
project's config (with ``serve.KEY=VALUE`` overrides) is baked into the server image and
the Lambda image. Exit status 2 and ``error: ...`` when a step fails; the message names the
step, what was already done, and what to do.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcycle.deploy.context import BuildContext

__all__ = ["DESCRIPTION", "main"]

DESCRIPTION = "build a server image, deploy to AWS Lambda, or write a browser (web) site"


def main(argv: Sequence[str]) -> None:
    """Run ``mlcycle deploy`` with ``argv`` (the arguments after ``deploy``)."""
    parser = _parser()
    ns = parser.parse_args(list(argv))
    ref, overrides = _split_model(ns.model, ns.overrides)
    from mlcycle.serve_commands import resolve_model

    bundle, name, version, settings = resolve_model(ref, overrides)
    if ns.target == "docker":
        _docker(ns, bundle, name, version, settings)
    elif ns.target == "lambda":
        _lambda(ns, bundle, name, version, settings)
    else:
        _web(ns, bundle, name, version)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlcycle deploy", description=DESCRIPTION)
    sub = p.add_subparsers(dest="target", required=True, metavar="TARGET")
    docker = sub.add_parser(
        "docker",
        help="write a build context for a slim, non-root server image (and build it)",
        description="Write a Docker build context: Dockerfile, pinned serving requirements, "
        "the bundle and the mlcycle package. --build builds and tags it when a Docker engine "
        "runs.",
    )
    _model(docker)
    docker.add_argument("--out", type=Path, required=True, help="the context folder to write")
    docker.add_argument("--build", action="store_true", help="build the image (needs Docker)")
    docker.add_argument("--tag", help="the image tag for --build (default mlcycle-NAME:VERSION)")
    docker.add_argument("--platform", default="linux/amd64", help="--build platform")
    _force(docker)
    _overrides(docker)

    lam = sub.add_parser(
        "lambda",
        help="deploy to AWS Lambda as a container image through ECR",
        description="Write a Lambda image context, create the ECR repository if missing, "
        "build and push the image (needs Docker; or --image-uri of an image already pushed), "
        "create or update the function (PackageType=Image), wait until it is active, and "
        "optionally create a function URL. Credentials come from the standard AWS chain "
        "(AWS_PROFILE, environment, SSO, instance role); AWS_ENDPOINT_URL is honoured.",
    )
    _model(lam)
    lam.add_argument("--function", required=True, help="the Lambda function name")
    lam.add_argument("--repository", required=True, help="the ECR repository name")
    lam.add_argument("--region", required=True, help="the AWS region, e.g. eu-west-1")
    lam.add_argument("--role", help="execution role ARN (needed to create the function)")
    lam.add_argument(
        "--image-uri",
        help="an image already pushed to ECR (REPO_URI:TAG or @sha256:...): skip build and push",
    )
    lam.add_argument("--tag", default="", help="the image tag to push (default: the version)")
    lam.add_argument("--memory", type=_positive, default=1024, help="memory in MB (1024)")
    lam.add_argument("--timeout", type=_positive, default=30, help="timeout in seconds (30)")
    lam.add_argument("--architecture", choices=("x86_64", "arm64"), default="x86_64")
    lam.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_env_pair,
        help="a function environment variable (repeatable; default: keep the function's)",
    )
    lam.add_argument(
        "--wait",
        type=_positive,
        default=300,
        help="seconds to wait for the function to become active (300)",
    )
    lam.add_argument("--function-url", action="store_true", help="create a function URL")
    lam.add_argument(
        "--url-auth",
        choices=("AWS_IAM", "NONE"),
        default="AWS_IAM",
        help="the function URL's auth type (AWS_IAM; NONE makes it public)",
    )
    lam.add_argument(
        "--out",
        type=Path,
        help="the image context folder (default build/lambda-FUNCTION, replaced on every run)",
    )
    _force(lam)
    _overrides(lam)

    web = sub.add_parser(
        "web",
        help="write a static site that runs the model in the browser (onnxruntime-web)",
        description="Write a static site: a form generated from the signature, a batch "
        "mode for pasted CSV, the model, and onnxruntime-web installed from the npm "
        "registry (no CDN). Serve the folder with any static web server.",
    )
    _model(web)
    web.add_argument("--out", type=Path, required=True, help="the site folder to write")
    web.add_argument("--ort-version", help="the onnxruntime-web version from npm")
    web.add_argument(
        "--ort-dist",
        type=Path,
        help="use onnxruntime-web's dist/ files from this folder instead of npm (offline)",
    )
    web.add_argument("--title", help="the page title (default: the model's name)")
    _force(web)
    _overrides(web)
    return p


def _model(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="bundle folder or registry reference (@champion, models:/NAME@ALIAS, a version); "
        "default @champion",
    )


def _force(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true", help="replace an --out folder that has files")


def _overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides (serve.KEY=VALUE, tracking.uri=...)",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE, e.g. MLCYCLE_LOG=info")
    return key, value


def _split_model(model: str | None, overrides: list[str]) -> tuple[str | None, list[str]]:
    """``MODEL`` is optional before the overrides: a ``KEY=VALUE`` there is an override."""
    if model is not None and "=" in model and not Path(model).exists():
        return None, [model, *overrides]
    return model, overrides


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _report(ctx: BuildContext) -> None:
    print(
        f"wrote the {ctx.kind} image context {ctx.out}: {len(ctx.files)} files, "
        f"{ctx.total_bytes / 1e6:.1f} MB, {len(ctx.requirements)} pinned requirements"
    )
    for note in ctx.notes:
        print(f"  note: {note}")


def _image_tag(name: str, version: str, bundle: Path) -> str:
    """``mlcycle-NAME:VERSION`` in the characters Docker allows."""
    from mlcycle.bundle import Bundle

    base = name or Bundle.load(bundle).model_name or "model"
    repo = re.sub(r"[^a-z0-9._-]+", "-", base.lower()).strip("-._") or "model"
    tag = re.sub(r"[^A-Za-z0-9._-]+", "-", version or "latest")[:128]
    return f"mlcycle-{repo}:{tag}"


def _docker(ns: argparse.Namespace, bundle: Path, name: str, version: str, settings: Any) -> None:
    from mlcycle.deploy import docker_cli
    from mlcycle.deploy.context import write_server_context

    ctx = write_server_context(
        bundle,
        ns.out,
        settings=settings,
        model_name=name,
        model_version=version,
        force=ns.force,
    )
    _report(ctx)
    tag = ns.tag or _image_tag(name, version, bundle)
    if not ns.build:
        print(f"build it with: docker build -t {tag} {ctx.out}")
        print(f"run it with:   docker run --rm -p 8080:8080 {tag}")
        return
    docker_cli.require_engine(f"building the image (the context is written at {ctx.out})")
    docker_cli.build(ctx.out, tag, platform=ns.platform)
    print(f"built {tag}; run it with: docker run --rm -p 8080:8080 {tag}")


def _lambda(ns: argparse.Namespace, bundle: Path, name: str, version: str, settings: Any) -> None:
    from mlcycle.deploy.aws_lambda import deploy_lambda
    from mlcycle.deploy.context import write_lambda_context

    ctx: BuildContext | None = None
    if not ns.image_uri:
        out = ns.out or Path("build") / f"lambda-{ns.function}"
        ctx = write_lambda_context(
            bundle,
            out,
            settings=settings,
            model_name=name,
            model_version=version,
            force=ns.force or ns.out is None,
        )
        _report(ctx)
    tag = ns.tag or re.sub(r"[^A-Za-z0-9._-]+", "-", version or "latest")
    result = deploy_lambda(
        ctx.out if ctx else None,
        function=ns.function,
        repository=ns.repository,
        region=ns.region,
        role=ns.role,
        image_uri=ns.image_uri,
        tag=tag,
        memory_mb=ns.memory,
        timeout_s=ns.timeout,
        architecture=ns.architecture,
        environment=dict(ns.env) if ns.env else None,
        wait_seconds=float(ns.wait),
        function_url=ns.function_url,
        url_auth=ns.url_auth,
        log=_say,
    )
    verb = "created" if result.created else "updated"
    print(f"{verb} {result.function_arn}: {result.state}, image {result.image_uri}")
    if result.url:
        print(f"function URL: {result.url}")


def _web(ns: argparse.Namespace, bundle: Path, name: str, version: str) -> None:
    from mlcycle.deploy.web import ORT_WEB_VERSION, build_web_site

    site = build_web_site(
        bundle,
        ns.out,
        ort_version=ns.ort_version or ORT_WEB_VERSION,
        ort_dist=ns.ort_dist,
        title=ns.title,
        model_name=name,
        model_version=version,
        force=ns.force,
    )
    print(
        f"wrote the web site {site.out}: {len(site.files)} files, "
        f"{site.total_bytes / 1e6:.1f} MB, onnxruntime-web {site.ort_version}"
    )
    print(f"try it: python -m http.server -d {site.out} 8000 --bind 127.0.0.1")
    print("then open http://127.0.0.1:8000/ (pages need http(s), not file://)")
