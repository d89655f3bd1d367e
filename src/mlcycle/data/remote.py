"""Configure the DVC remote from ``RemoteConfig``: a local folder or S3 (any endpoint).

Credentials given in the config go only to ``.dvc/config.local`` (git-ignored by DVC);
the config edits run together in one DVC subprocess with credentials on stdin, and are
rolled back when DVC rejects a step.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlcycle.data._dvc_cli import (
    _require_repo,
    error_text,
    require_module,
    run_dvc,
    run_dvc_batch,
)
from mlcycle.exceptions import ConfigError, RemoteError

if TYPE_CHECKING:
    from mlcycle.config.project import Project
    from mlcycle.config.structured import RemoteConfig

__all__ = ["REMOTE_KINDS", "configure_remote"]

logger = logging.getLogger(__name__)

#: Values of ``remote.kind``.
REMOTE_KINDS: tuple[str, ...] = ("local", "s3")


def _local_keys(root: Path, name: str) -> list[str]:
    """Keys of remote ``name`` set in ``.dvc/config.local`` (the values stay unread)."""
    if not (root / ".dvc" / "config.local").is_file():
        return []
    proc = run_dvc(root, "config", "--list", "--local")
    prefix = f"remote.{name}."
    return [
        ln.split("=", 1)[0].removeprefix(prefix)
        for ln in proc.stdout.splitlines()
        if ln.startswith(prefix)
    ]


def _remote_url(cfg: RemoteConfig, project: Project, root: Path) -> str:
    if cfg.kind == "s3":
        if not cfg.url.startswith("s3://") or len(cfg.url) <= len("s3://"):
            raise ConfigError(
                f"remote.url={cfg.url!r} is not an S3 URL; use s3://bucket/prefix "
                "(or remote.kind=local for a folder)"
            )
        return cfg.url
    if "://" in cfg.url:
        raise ConfigError(
            f"remote.url={cfg.url!r} is a URL but remote.kind=local expects a folder; "
            "set remote.kind=s3 for s3:// URLs"
        )
    folder = project.path(cfg.url).resolve()
    if folder.is_relative_to(root.resolve()):
        # Relative (DVC stores it relative to .dvc/), so the committed config works in clones.
        return os.path.relpath(folder, root.resolve())
    return str(folder)


def configure_remote(root: Path, cfg: RemoteConfig, project: Project) -> None:
    """Add or update the DVC remote ``cfg.name`` and make it the default.

    ``local`` remotes are a folder (relative paths are under the project root and stored
    relative, so clones work). ``s3`` remotes get ``url``, ``endpointurl`` and ``region``
    in ``.dvc/config`` (committed); credentials go only to ``.dvc/config.local``, which
    git ignores. Credentials already in ``.dvc/config.local`` are kept when ``cfg`` gives
    none, and removed when the remote becomes a local folder. On failure both config
    files are restored, so the repository is never left half-configured.

    Parameters
    ----------
    root
        The DVC repository.
    cfg
        The ``remote`` config.
    project
        Resolves a relative folder URL against the project root.

    Raises
    ------
    ConfigError
        Unknown kind, a URL that does not fit the kind, or only one of the two
        credentials.
    ProjectError
        When ``root`` is not a DVC repository.
    RemoteError
        When DVC rejects the configuration.
    """
    root = Path(root)
    if cfg.kind not in REMOTE_KINDS:
        raise ConfigError(f"remote.kind={cfg.kind!r} is not known; use one of {REMOTE_KINDS}")
    if not cfg.name or any(c in cfg.name for c in " \"'[]"):
        raise ConfigError(f"remote.name={cfg.name!r} is not a valid DVC remote name")
    if (cfg.access_key_id is None) != (cfg.secret_access_key is None):
        raise ConfigError(
            "set both remote.access_key_id and remote.secret_access_key, or neither "
            "(then the standard AWS credential chain is used)"
        )
    if cfg.kind == "local" and cfg.access_key_id is not None:
        raise ConfigError("remote.access_key_id applies to remote.kind=s3 only")
    url = _remote_url(cfg, project, root)
    _require_repo(root)
    if cfg.kind == "s3":
        require_module("dvc_s3", "s3")

    steps: list[list[str]] = []
    if cfg.kind == "local" and _local_keys(root, cfg.name):
        steps.append(["remote", "remove", "--local", cfg.name])
    steps.append(["remote", "add", "--force", "--default", cfg.name, url])
    if cfg.kind == "s3":
        if cfg.endpoint_url:
            steps.append(["remote", "modify", cfg.name, "endpointurl", cfg.endpoint_url])
        if cfg.region:
            steps.append(["remote", "modify", cfg.name, "region", cfg.region])
        if cfg.access_key_id is not None and cfg.secret_access_key is not None:
            steps.append(
                ["remote", "modify", "--local", cfg.name, "access_key_id", cfg.access_key_id]
            )
            steps.append(
                [
                    "remote",
                    "modify",
                    "--local",
                    cfg.name,
                    "secret_access_key",
                    cfg.secret_access_key,
                ]
            )

    files = [root / ".dvc" / "config", root / ".dvc" / "config.local"]
    saved = {p: p.read_bytes() if p.is_file() else None for p in files}
    proc = run_dvc_batch(root, steps)
    if proc.returncode != 0:
        for p, content in saved.items():
            if content is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(content)
        raise RemoteError(
            f"could not configure DVC remote '{cfg.name}' ({url}): {error_text(proc)}. "
            "The DVC config was left as it was; check the remote.* settings"
        )
    logger.info("DVC remote '%s' (%s) is the default remote", cfg.name, url)


# -- add, push, pull, status ---------------------------------------------------------------
