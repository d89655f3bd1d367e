"""Where a model came from: git state, data version, config, libraries."""

from __future__ import annotations

import datetime as dt
import getpass
import importlib.metadata
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcycle import __version__

__all__ = ["SECRET_WORDS", "GitState", "build_lineage", "git_state", "library_versions", "redact"]

_LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "numpy", "mlflow", "dvc")


@dataclass(frozen=True)
class GitState:
    """The git commit of the project and whether the work tree had uncommitted changes."""

    commit: str | None
    dirty: bool | None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form."""
        return {"commit": self.commit, "dirty": self.dirty}


def git_state(root: Path) -> GitState:
    """Read the commit and dirty flag of the git repo at ``root``.

    Returns ``GitState(None, None)`` outside a git repo or before the first commit.

    Parameters
    ----------
    root
        The project root.
    """

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)

    try:
        head = git("rev-parse", "HEAD")
    except FileNotFoundError:
        return GitState(None, None)
    if head.returncode != 0:
        return GitState(None, None)
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitState(head.stdout.strip(), bool(status.stdout.strip()))


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries that shape a model."""
    out: dict[str, str | None] = {"mlcycle": __version__}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_lineage(
    *,
    root: Path,
    data: dict[str, Any],
    config: dict[str, Any],
    run: dict[str, Any] | None = None,
    parent: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble ``lineage.json``.

    Parameters
    ----------
    root
        Project root (for the git state).
    data
        The data version (``DataVersion.to_dict()``).
    config
        The composed config as plain data (secrets already redacted).
    run
        MLflow run identity: ``run_id``, ``experiment_id``, ``tracking_uri``.
    parent
        The model this one was derived from, if any (retraining).
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "created_by": user,
        "git": git_state(root).to_dict(),
        "data": data,
        "config": config,
        "mlflow": run or {},
        "parent": parent,
        "libraries": library_versions(),
    }


SECRET_WORDS = ("secret", "access_key", "password", "token")


def redact(obj: Any, words: tuple[str, ...] = SECRET_WORDS) -> Any:
    """Copy of ``obj`` with the values of secret-looking keys replaced by ``"***"``.

    Examples
    --------
    >>> redact({"remote": {"url": "s3://b", "secret_access_key": "x"}, "n": [1]})
    {'remote': {'url': 's3://b', 'secret_access_key': '***'}, 'n': [1]}
    """
    if isinstance(obj, dict):
        return {
            k: (
                "***"
                if v is not None and any(w in str(k).lower() for w in words)
                else redact(v, words)
            )
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [redact(v, words) for v in obj]
    return obj
