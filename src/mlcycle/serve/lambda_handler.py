"""AWS Lambda entry point: set the function's handler to ``mlcycle.serve.lambda_handler.handler``.

The bundle is loaded once, when Lambda imports this module (the init phase of a cold
start), and every invocation of that execution environment reuses it. Configuration is
read from the environment:

``MLCYCLE_BUNDLE`` (required)
    The bundle: a folder (e.g. ``/var/task/bundle`` in a container image) or an
    ``s3://bucket/prefix`` URI. An S3 bundle is downloaded with boto3 (the ``s3`` extra)
    into ``$MLCYCLE_BUNDLE_CACHE/<hash of the listing>`` (default ``/tmp/mlcycle-bundle``)
    and loaded from there; boto3 itself honours ``AWS_ENDPOINT_URL_S3`` and
    ``AWS_ENDPOINT_URL`` for S3-compatible stores. Give the function's role
    ``s3:ListBucket`` and ``s3:GetObject``; never put credentials in the image.
``MLCYCLE_MODEL_NAME``, ``MLCYCLE_MODEL_VERSION`` (optional)
    Name and version shown in answers and ``X-Model-Version`` (default: the bundle's
    model name and its manifest digest).
``MLCYCLE_SERVE_SETTINGS`` (optional)
    :class:`~mlcycle.serve.settings.ServeSettings` as JSON, for the validation policies,
    ``max_body_bytes`` and onnxruntime options.

A missing or bad variable fails the import with a :class:`~mlcycle.exceptions.ConfigError`
naming it, so the function's init fails loudly instead of answering with errors. The
events answered and the answers given are described in :mod:`mlcycle.serve.lambda_app`.

This module imports numpy, onnxruntime and orjson, never Starlette, uvicorn,
prometheus-client, MLflow, pandas, scikit-learn or torch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from mlcycle._optional import require
from mlcycle.exceptions import BundleError, ConfigError
from mlcycle.serve.lambda_app import LambdaApp
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ENV_VAR as SETTINGS_VAR
from mlcycle.serve.settings import ServeSettings

__all__ = ["app_from_env", "fetch_s3_bundle", "handler", "reload"]

BUNDLE_VAR = "MLCYCLE_BUNDLE"
NAME_VAR = "MLCYCLE_MODEL_NAME"
VERSION_VAR = "MLCYCLE_MODEL_VERSION"
CACHE_VAR = "MLCYCLE_BUNDLE_CACHE"
#: Where S3 bundles are downloaded when ``MLCYCLE_BUNDLE_CACHE`` is not set.
DEFAULT_CACHE = "/tmp/mlcycle-bundle"  # Lambda's only writable folder


def handler(event: Any, context: Any) -> dict[str, Any]:
    """The Lambda handler: answer ``event`` with the model loaded at import.

    Parameters
    ----------
    event
        An API Gateway (payload 1.0 or 2.0), function URL or direct invocation event.
    context
        The Lambda context object.

    Returns
    -------
    dict
        A proxy response, or the answer document for a direct invocation (see
        :mod:`mlcycle.serve.lambda_app`).
    """
    return _APP(event, context)


def reload() -> None:
    """Load the bundle again from the current environment (tests, or a new version)."""
    global _APP
    _APP = app_from_env()


def app_from_env(environ: Mapping[str, str] | None = None) -> LambdaApp:
    """A :class:`LambdaApp` for the bundle and settings named by ``environ``.

    Parameters
    ----------
    environ
        The variables to read (default :data:`os.environ`); see the module docstring.

    Returns
    -------
    LambdaApp
        The app, with its model loaded and warmed up.

    Raises
    ------
    ConfigError
        ``MLCYCLE_BUNDLE`` is unset or ``MLCYCLE_SERVE_SETTINGS`` is not valid settings.
    BundleError
        The bundle cannot be downloaded or loaded.
    """
    env = os.environ if environ is None else environ
    location = env.get(BUNDLE_VAR, "").strip()
    if not location:
        raise ConfigError(
            f"{BUNDLE_VAR} is not set; set it to the bundle folder (e.g. /var/task/bundle) "
            "or an s3://bucket/prefix URI holding the bundle's MANIFEST.json"
        )
    settings = _settings(env.get(SETTINGS_VAR, ""))
    if location.startswith("s3://"):
        folder = fetch_s3_bundle(location, Path(env.get(CACHE_VAR) or DEFAULT_CACHE))
    else:
        folder = Path(location)
        if not folder.is_dir():
            raise ConfigError(
                f"{BUNDLE_VAR}={location!r} is not a folder; set it to the bundle folder "
                "or an s3://bucket/prefix URI"
            )
    settings = settings.replace(
        bundle=str(folder),
        model_name=env.get(NAME_VAR) or settings.model_name,
        model_version=env.get(VERSION_VAR) or settings.model_version,
    )
    try:
        model = ServedModel.load(settings)
    except BundleError as exc:
        raise BundleError(f"{BUNDLE_VAR}={location!r}: {exc}") from exc
    return LambdaApp(model, settings)


def _settings(text: str) -> ServeSettings:
    if not text.strip():
        return ServeSettings()
    try:
        return ServeSettings.from_json(text)
    except ConfigError as exc:  # before ValueError: ConfigError is one too
        raise ConfigError(f"{SETTINGS_VAR}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(
            f"{SETTINGS_VAR} is not valid JSON ({exc}); set it to ServeSettings as JSON, "
            'e.g. {"validation": {"max_body_bytes": 1048576}}, or unset it'
        ) from None


def fetch_s3_bundle(uri: str, cache: Path) -> Path:
    """Download the bundle under ``uri`` (``s3://bucket/prefix``) into ``cache``.

    The folder is named after a hash of the URI and the objects' keys, sizes and ETags,
    so a warm environment reuses its download and a changed bundle gets a new folder.

    Parameters
    ----------
    uri
        ``s3://bucket/prefix``; every object under ``prefix/`` is a bundle file.
    cache
        Folder for downloads, e.g. ``/tmp/mlcycle-bundle``.

    Returns
    -------
    pathlib.Path
        The local bundle folder.

    Raises
    ------
    ConfigError
        ``uri`` has no bucket, or nothing is stored under the prefix.
    BundleError
        S3 cannot be reached or refuses the listing or a download.
    """
    boto3 = require("boto3", "s3")
    botocore = require("botocore.exceptions", "s3")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ConfigError(f"{BUNDLE_VAR}={uri!r} has no bucket; use s3://bucket/prefix")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    try:
        client = boto3.client("s3")
        objects = _list(client, bucket, prefix)
        if not objects:
            raise ConfigError(
                f"{BUNDLE_VAR}={uri!r}: no objects under that prefix; point it at the "
                "prefix holding the bundle's MANIFEST.json"
            )
        listing = "\n".join(f"{k}\t{size}\t{etag}" for k, size, etag in objects)
        digest = hashlib.sha256(f"{uri}\n{listing}".encode()).hexdigest()[:16]
        dest = cache / digest
        if not dest.is_dir():
            _download(client, bucket, prefix, [k for k, _, _ in objects], dest)
    except (botocore.BotoCoreError, botocore.ClientError) as exc:
        raise BundleError(f"cannot download the bundle {BUNDLE_VAR}={uri!r}: {exc}") from exc
    return dest


def _list(client: Any, bucket: str, prefix: str) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                out.append((obj["Key"], int(obj["Size"]), str(obj.get("ETag", ""))))
    return sorted(out)


def _download(client: Any, bucket: str, prefix: str, keys: list[str], dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=dest.parent))
    try:
        for key in keys:
            rel = PurePosixPath(key[len(prefix) :])
            if rel.is_absolute() or ".." in rel.parts:
                raise BundleError(f"refusing S3 key {key!r}: it points outside the bundle")
            target = staging.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))
        try:
            staging.rename(dest)
        except OSError:
            if not dest.is_dir():  # else another process finished the same download first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_APP: LambdaApp = app_from_env()
