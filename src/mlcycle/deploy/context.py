"""Docker build contexts: a slim, non-root server image, and an AWS Lambda container image.

Both contexts hold the same four things, so what runs in the image is what was tested:

``bundle/``
    The bundle, copied and verified against its manifest.
``mlcycle/``
    The mlcycle package itself (pure Python, no compiled parts), put on ``PYTHONPATH``;
    mlcycle is not installed from an index, so the image runs the code that wrote it.
``requirements.txt``
    Every distribution the image installs, pinned (``==``) to the versions installed
    here, with their own dependencies (the closure, for Linux and this Python): the
    server image takes mlcycle's core dependencies (the serving path), the Lambda image
    only numpy, onnxruntime, orjson and ``awslambdaric``. Nothing from the training
    extras (MLflow, pandas, scikit-learn, torch) goes in.
``Dockerfile``
    ``python:X.Y-slim`` (this Python's version), the requirements, then the code and the
    bundle, byte-compiled; the server runs as the unprivileged user ``mlcycle`` (uid
    10001) with a ``HEALTHCHECK`` on ``/v2/health/ready``; the Lambda image starts
    ``python -m awslambdaric mlcycle.serve.lambda_handler.handler``.

The server's settings are the project's ``serve`` section written to ``serve.json``, with
what cannot hold inside an image changed and reported (:func:`image_settings`): it listens
on 0.0.0.0:8080, a SQLite monitoring store moves to ``/var/lib/mlcycle`` (a volume),
token files move to ``/run/secrets/``, and retraining on alarms is off (it needs the
project). No secret is ever written: tokens are mounted or given as environment variables
when the container starts.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as metadata
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlcycle
from mlcycle import __version__
from mlcycle.bundle import Bundle
from mlcycle.exceptions import DeployError
from mlcycle.serve.settings import ServeSettings

__all__ = [
    "AWSLAMBDARIC",
    "IMAGE_BUNDLE",
    "IMAGE_PORT",
    "BuildContext",
    "image_settings",
    "pinned_requirements",
    "write_lambda_context",
    "write_server_context",
]

#: The Lambda runtime interface client the Lambda image installs (not needed here).
AWSLAMBDARIC = "awslambdaric==4.2.2"
#: Where the server image keeps its code, bundle and settings.
IMAGE_APP = "/app"
IMAGE_BUNDLE = f"{IMAGE_APP}/bundle"
#: The server image's data folder (a volume): the SQLite monitoring store lives here.
IMAGE_DATA = "/var/lib/mlcycle"
IMAGE_PORT = 8080
#: Lambda's code folder (``LAMBDA_TASK_ROOT``).
LAMBDA_TASK = "/var/task"
_UID = 10001
_LAMBDA_ROOTS = ("numpy", "onnxruntime", "orjson")
_SECRETS = "/run/secrets"


@dataclass(frozen=True)
class BuildContext:
    """A build context written by :func:`write_server_context` or :func:`write_lambda_context`.

    Attributes
    ----------
    out
        The context folder (``docker build OUT``).
    kind
        ``server`` or ``lambda``.
    files
        Every file written, relative to ``out``, sorted.
    total_bytes
        Their size.
    requirements
        The pinned requirements the image installs.
    notes
        Settings changed for the image, and why (see :func:`image_settings`).
    """

    out: Path
    kind: str
    files: list[str]
    total_bytes: int
    requirements: list[str]
    notes: list[str]


def write_server_context(
    bundle: Path,
    out: Path,
    *,
    settings: ServeSettings | None = None,
    model_name: str = "",
    model_version: str = "",
    force: bool = False,
) -> BuildContext:
    """Write the build context of a server image for ``bundle``.

    Parameters
    ----------
    bundle
        The bundle folder.
    out
        The context folder; it must not exist or be empty, unless ``force``.
    settings
        The ``serve`` settings to bake in (the project's); ``None``: the defaults.
    model_name, model_version
        Shown in answers and ``X-Model-Version`` (e.g. the registry's name and version).
    force
        Replace ``out`` if it holds files.

    Returns
    -------
    BuildContext
        What was written.

    Raises
    ------
    BundleError
        The bundle is missing, has no model or does not match its manifest.
    DeployError
        ``out`` holds files (without ``force``), or a requirement is not installed here.
    """
    loaded = Bundle.load(bundle)
    base = settings or ServeSettings()
    served, notes = image_settings(base)
    served = dataclasses.replace(
        served,
        model_name=model_name or base.model_name,
        model_version=model_version or base.model_version,
    )
    roots = _core_requirements()
    if served.monitor.enabled and served.monitor.store.startswith("postgresql"):
        roots.append("psycopg[binary]")
    requirements = pinned_requirements(roots)
    title = f"{model_name or loaded.model_name} {model_version}".strip()

    def fill(tmp: Path) -> None:
        _copy_common(loaded.path, tmp, requirements)
        (tmp / "serve.json").write_text(
            json.dumps(json.loads(served.to_json()), indent=2, sort_keys=True) + "\n"
        )
        (tmp / "Dockerfile").write_text(_server_dockerfile(title))

    return _write(out, force, fill, "server", requirements, notes, loaded.path)


def write_lambda_context(
    bundle: Path,
    out: Path,
    *,
    settings: ServeSettings | None = None,
    model_name: str = "",
    model_version: str = "",
    force: bool = False,
) -> BuildContext:
    """Write the build context of an AWS Lambda container image for ``bundle``.

    The image runs :func:`mlcycle.serve.lambda_handler.handler` under ``awslambdaric``;
    the bundle is baked in at ``/var/task/bundle`` and loaded in the init phase.

    Parameters
    ----------
    bundle, out, model_name, model_version, force
        As for :func:`write_server_context`.
    settings
        The ``serve`` settings whose validation and onnxruntime options the handler
        uses (``MLCYCLE_SERVE_SETTINGS``); ``None``: the defaults.

    Returns
    -------
    BuildContext
        What was written.

    Raises
    ------
    BundleError
        The bundle is missing, has no model or does not match its manifest.
    DeployError
        ``out`` holds files (without ``force``), or a requirement is not installed here.
    """
    loaded = Bundle.load(bundle)
    requirements = [*pinned_requirements(_LAMBDA_ROOTS), AWSLAMBDARIC]
    env = {
        "MLCYCLE_BUNDLE": f"{LAMBDA_TASK}/bundle",
        "MLCYCLE_MODEL_NAME": model_name,
        "MLCYCLE_MODEL_VERSION": model_version,
    }
    if settings is not None:
        env["MLCYCLE_SERVE_SETTINGS"] = settings.to_json()
    title = f"{model_name or loaded.model_name} {model_version}".strip()

    def fill(tmp: Path) -> None:
        _copy_common(loaded.path, tmp, requirements)
        (tmp / "Dockerfile").write_text(_lambda_dockerfile(title, env))

    return _write(out, force, fill, "lambda", requirements, [], loaded.path)


def image_settings(settings: ServeSettings) -> tuple[ServeSettings, list[str]]:
    """``settings`` made right for a container, and a note for each change.

    Parameters
    ----------
    settings
        The project's ``serve`` settings.

    Returns
    -------
    tuple
        The settings for the image, and what was changed and why.

    Examples
    --------
    >>> s, notes = image_settings(ServeSettings())
    >>> s.host, s.port, s.bundle
    ('0.0.0.0', 8080, '/app/bundle')
    """
    notes: list[str] = []
    monitor = settings.monitor
    store = monitor.store
    if store and (store.startswith("sqlite") or "://" not in store):
        notes.append(
            f"serve.monitor.store {store!r} is a local SQLite file; the image keeps its "
            f"store in {IMAGE_DATA}/monitor.db (mount a volume there, or set a PostgreSQL URL)"
        )
        monitor = dataclasses.replace(monitor, store="")
    admin = settings.admin
    if admin.token_file:
        path = f"{_SECRETS}/mlcycle-admin-token"
        notes.append(
            f"serve.admin.token_file {admin.token_file!r} becomes {path}: mount the token "
            "there, or set MLCYCLE_ADMIN_TOKEN when the container starts"
        )
        admin = dataclasses.replace(admin, token_file=path)
    automation = settings.automation
    if automation.reviewer_token_file:
        path = f"{_SECRETS}/mlcycle-reviewer-token"
        notes.append(
            f"serve.automation.reviewer_token_file {automation.reviewer_token_file!r} "
            f"becomes {path}: mount the reviewers' token there"
        )
        automation = dataclasses.replace(automation, reviewer_token_file=path)
    retrain = settings.retrain
    if retrain.on_alarms:
        notes.append(
            f"serve.retrain.on_alarms {retrain.on_alarms} is turned off: retraining runs "
            "in the project (mlcycle retrain), not in a serving image"
        )
        retrain = dataclasses.replace(retrain, on_alarms=[])
    if settings.metrics_dir:
        notes.append("serve.metrics_dir is cleared: each container uses a temporary folder")
    changed = dataclasses.replace(
        settings,
        host="0.0.0.0",  # inside a container; the published port decides
        port=IMAGE_PORT,
        bundle=IMAGE_BUNDLE,
        metrics_dir="",
        monitor=monitor,
        admin=admin,
        automation=automation,
        retrain=retrain,
    )
    return changed, notes


def pinned_requirements(roots: Iterable[str]) -> list[str]:
    """``roots`` and everything they depend on, pinned to the versions installed here.

    Dependency markers are evaluated for this interpreter (a Linux image runs the same
    Python version), so a dependency for another platform or Python is left out.

    Parameters
    ----------
    roots
        Requirement strings, e.g. ``["numpy", "uvicorn[standard]"]``.

    Returns
    -------
    list of str
        ``name==version`` lines (with extras where asked), sorted by name.

    Raises
    ------
    DeployError
        A requirement is not installed here, so its version cannot be pinned.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    extras_seen: dict[str, set[str]] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        seen = extras_seen.get(name)
        if seen is None:
            new = {"", *req.extras}
            extras_seen[name] = set(req.extras)
        else:
            new = set(req.extras) - seen
            if not new:
                continue
            seen |= new
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            raise DeployError(
                f"writing requirements.txt: {req.name} is not installed here, so its version "
                f"cannot be pinned; install it (pip install '{req}') and run the command again"
            ) from None
        pins[name] = dist.version
        for dep in dist.requires or []:
            dreq = Requirement(dep)
            if dreq.marker is None:
                if "" in new:
                    todo.append(dreq)
            elif any(dreq.marker.evaluate({"extra": extra}) for extra in new):
                todo.append(dreq)
    lines = []
    for pinned in sorted(pins):
        extras = extras_seen[pinned]
        suffix = f"[{','.join(sorted(extras))}]" if extras else ""
        lines.append(f"{pinned}{suffix}=={pins[pinned]}")
    return lines


# -- internals ----------------------------------------------------------------------------


def _core_requirements() -> list[str]:
    """mlcycle's core dependencies (the serving path), as declared in its metadata."""
    try:
        declared = metadata.requires("mlcycle") or []
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        raise DeployError(
            "writing requirements.txt: mlcycle is not installed (pip install -e .), so its "
            "serving dependencies are unknown"
        ) from None
    return [r.split(";")[0].strip() for r in declared if "extra ==" not in r]


def _copy_common(bundle: Path, tmp: Path, requirements: Sequence[str]) -> None:
    shutil.copytree(bundle, tmp / "bundle")
    package = Path(mlcycle.__file__).parent
    shutil.copytree(package, tmp / "mlcycle", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (tmp / "requirements.txt").write_text(
        f"# Pinned by mlcycle {__version__} deploy from the versions it ran with.\n"
        + "\n".join(requirements)
        + "\n"
    )
    (tmp / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")


def _write(
    out: Path,
    force: bool,
    fill: Callable[[Path], None],
    kind: str,
    requirements: list[str],
    notes: list[str],
    bundle: Path,
) -> BuildContext:
    """Fill a temporary folder beside ``out``, then move it into place."""
    out = out.expanduser().resolve()
    if bundle.resolve().is_relative_to(out):
        raise DeployError(f"the context folder {out} holds the bundle {bundle}; give another --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise DeployError(
            f"{out} already exists and is not empty; pass --force to replace it, or "
            "choose another --out folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    size = sum((out / f).stat().st_size for f in files)
    return BuildContext(out, kind, files, size, requirements, notes)


def _base_image() -> str:
    return f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"


_PIP_ENV = (
    "ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 "
    "PIP_DISABLE_PIP_VERSION_CHECK=1"
)


def _server_dockerfile(title: str) -> str:
    entry = [
        "python",
        "-m",
        "mlcycle",
        "serve",
        "--model",
        IMAGE_BUNDLE,
        "--settings",
        f"{IMAGE_APP}/serve.json",
    ]
    health = (
        "import urllib.request; urllib.request.urlopen("
        f"'http://127.0.0.1:{IMAGE_PORT}/v2/health/ready', timeout=4)"
    )
    return f"""\
# syntax=docker/dockerfile:1
# {_safe(title)}: the prediction server, written by `mlcycle deploy docker` (mlcycle {__version__}).
# Build: docker build -t IMAGE .    Run: docker run -p 8080:8080 IMAGE [--workers N]
FROM {_base_image()}
{_PIP_ENV}
RUN groupadd --system --gid {_UID} mlcycle \\
 && useradd --system --uid {_UID} --gid mlcycle --no-create-home mlcycle \\
 && mkdir -p {IMAGE_DATA} && chown mlcycle:mlcycle {IMAGE_DATA}
COPY requirements.txt {IMAGE_APP}/requirements.txt
RUN python -m pip install --no-cache-dir -r {IMAGE_APP}/requirements.txt
COPY mlcycle {IMAGE_APP}/mlcycle
COPY bundle {IMAGE_BUNDLE}
COPY serve.json {IMAGE_APP}/serve.json
RUN python -m compileall -q {IMAGE_APP}/mlcycle
ENV PYTHONPATH={IMAGE_APP}
# The monitoring store (SQLite) and anything else the server writes.
VOLUME ["{IMAGE_DATA}"]
WORKDIR {IMAGE_DATA}
USER {_UID}:{_UID}
EXPOSE {IMAGE_PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \\
  CMD {json.dumps(["python", "-c", health])}
ENTRYPOINT {json.dumps(entry)}
CMD []
"""


def _lambda_dockerfile(title: str, env: dict[str, str]) -> str:
    env_lines = "\n".join(f"ENV {k}={json.dumps(v)}" for k, v in env.items())
    return f"""\
# syntax=docker/dockerfile:1
# {_safe(title)}: an AWS Lambda container image, written by `mlcycle deploy lambda`
# (mlcycle {__version__}). The handler loads the bundle in the init phase.
FROM {_base_image()}
{_PIP_ENV}
WORKDIR {LAMBDA_TASK}
COPY requirements.txt {LAMBDA_TASK}/requirements.txt
RUN python -m pip install --no-cache-dir -r {LAMBDA_TASK}/requirements.txt
COPY mlcycle {LAMBDA_TASK}/mlcycle
COPY bundle {LAMBDA_TASK}/bundle
RUN python -m compileall -q {LAMBDA_TASK}/mlcycle
ENV PYTHONPATH={LAMBDA_TASK}
{env_lines}
# Lambda runs the container as an unprivileged user of its own; so does this image.
USER {_UID}:{_UID}
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["mlcycle.serve.lambda_handler.handler"]
"""


def _safe(text: str) -> str:
    """One line of plain text for a Dockerfile comment."""
    return re.sub(r"[^\w .@:/+-]", "_", text) or "model"
