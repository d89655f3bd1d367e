"""A thin wrapper over the DVC command line: init, add, push, pull, status.

Remote configuration lives in :mod:`mlcycle.data.remote` (re-exported here).

Every call runs ``python -m dvc ...`` in a subprocess with the project root as working
directory (the config edits of :func:`configure_remote` run together in one subprocess,
with credentials passed on stdin rather than on the command line). DVC's in-process API
(``dvc.repo.Repo``) keeps process-wide state (logging handlers, config and index caches,
threads of the S3 filesystem) and emits warnings of its own; a subprocess keeps all of
that out of mlcycle's process and out of the tests, uses exactly the behaviour users get
from ``dvc`` in a terminal, and costs about a second per call, which is small next to a
push or pull. Failures are turned into :class:`~mlcycle.exceptions.RemoteError` (the
remote could not be reached or is not configured) or
:class:`~mlcycle.exceptions.ProjectError` (no DVC repository, or a local DVC step
failed), with DVC's own error line and the fix.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mlcycle.data._dvc_cli import (
    _require_repo,
    error_text,
    git_toplevel,
    is_repo,
    run_dvc,
    run_git,
)
from mlcycle.data.remote import REMOTE_KINDS, configure_remote
from mlcycle.data.version import dvc_file
from mlcycle.exceptions import (
    DataError,
    ProjectError,
    RemoteError,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "REMOTE_KINDS",
    "DataStatus",
    "add",
    "configure_remote",
    "init",
    "is_repo",
    "pull",
    "push",
    "status",
]

logger = logging.getLogger(__name__)

_CLOUD_STATES = {
    "new": "not pushed",
    "deleted": "on the remote only (pull it)",
    "missing": "missing from the cache and the remote",
}


# -- init and remote -----------------------------------------------------------------------


def init(root: Path, *, no_scm: bool = False) -> None:
    """Make ``root`` a DVC repository (``dvc init``); nothing happens if it already is.

    DVC stages its own files (``.dvc/config``, ``.dvc/.gitignore``, ``.dvcignore``) in git.

    Parameters
    ----------
    root
        The project root; a git repository, or a folder inside one (then DVC is
        initialised with ``--subdir``).
    no_scm
        Initialise without git (``dvc init --no-scm``).

    Raises
    ------
    ProjectError
        When ``root`` is not a folder or not in a git repository, or ``dvc init`` fails.
    """
    root = Path(root)
    if not root.is_dir():
        raise ProjectError(f"project folder {root} does not exist")
    if is_repo(root):
        return
    args = ["init", "--quiet"]
    if no_scm:
        args.append("--no-scm")
    else:
        top = git_toplevel(root)
        if top is None:
            raise ProjectError(
                f"{root} is not a git repository; run `git init` there first "
                "(`mlcycle init` does both)"
            )
        if top != root.resolve():
            args.append("--subdir")
    proc = run_dvc(root, *args)
    if proc.returncode != 0:
        raise ProjectError(f"`dvc init` failed in {root}: {error_text(proc)}")


def add(root: Path, path: Path) -> Path:
    """Track a data file with DVC (``dvc add``) and stage the result in git.

    Parameters
    ----------
    root
        The DVC repository.
    path
        The data file, absolute or relative to ``root``; it must be inside ``root``.

    Returns
    -------
    Path
        The ``.dvc`` file DVC wrote (``<path>.dvc``).

    Raises
    ------
    DataError
        When the file does not exist or is outside ``root``.
    ProjectError
        When ``root`` is not a DVC repository, ``dvc add`` fails, or staging in git fails
        (the message then says what to run).
    """
    root = Path(root)
    _require_repo(root)
    target = path if Path(path).is_absolute() else root / path
    if not target.is_file():
        raise DataError(f"data file {target} does not exist; nothing to add to DVC")
    try:
        rel = target.resolve().relative_to(root.resolve())
    except ValueError:
        raise DataError(
            f"data file {target} is outside the project {root}; copy it into the project "
            "(e.g. under data/) and add that copy"
        ) from None
    proc = run_dvc(root, "add", "--quiet", rel.as_posix())
    if proc.returncode != 0:
        raise ProjectError(f"`dvc add {rel.as_posix()}` failed: {error_text(proc)}")
    meta = dvc_file(root / rel)
    if git_toplevel(root) is not None:
        staged = [dvc_file(rel).as_posix()]
        ignore = rel.parent / ".gitignore"
        if (root / ignore).is_file():
            staged.append(ignore.as_posix())
        git = run_git(root, "add", "--", *staged)
        if git.returncode != 0:
            raise ProjectError(
                f"{rel.as_posix()} is now tracked by DVC, but `git add` of "
                f"{' '.join(staged)} failed: {git.stderr.strip()}. Run `git add "
                f"{' '.join(staged)}` yourself"
            )
    return meta


def _config(root: Path) -> dict[str, str]:
    proc = run_dvc(root, "config", "--list")
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _remote_error(
    root: Path, remote: str | None, action: str, proc: subprocess.CompletedProcess[str]
) -> RemoteError:
    detail = error_text(proc)
    if "no remote specified" in detail:
        return RemoteError(
            f"cannot {action}: no DVC remote is configured in {root}; run `mlcycle init` "
            "(it configures the remote from remote.*) or `dvc remote add -d NAME URL`"
        )
    config = _config(root)
    name = remote or config.get("core.remote", "?")
    if f"remote '{name}' doesn't exist" in detail or f"remote.{name}.url" not in config:
        known = sorted(
            {k.split(".")[1] for k in config if k.startswith("remote.") and k.count(".") >= 2}
        )
        return RemoteError(
            f"cannot {action}: there is no DVC remote '{name}' in {root} (known: {known}); "
            "check remote.name, or run `mlcycle init` to configure it"
        )
    where = config[f"remote.{name}.url"]
    endpoint = config.get(f"remote.{name}.endpointurl")
    if endpoint:
        where += f", endpoint {endpoint}"
    if "Checkout failed" in detail or "missing-files" in detail or "Missing cache" in detail:
        return RemoteError(
            f"cannot {action}: some tracked files are neither in the local cache nor on DVC "
            f"remote '{name}' ({where}): {detail}. Push them from a copy that has them"
        )
    return RemoteError(
        f"cannot {action} DVC remote '{name}' ({where}): {detail}. Check remote.url, "
        "remote.endpoint_url and the credentials (remote.access_key_id / "
        "remote.secret_access_key or the AWS_* environment variables)"
    )


def _summary(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    return lines[-1] if lines else "Everything is up to date."


def push(root: Path, remote: str | None = None) -> str:
    """Upload the cached data versions to a DVC remote (``dvc push``).

    Parameters
    ----------
    root
        The DVC repository.
    remote
        Remote name; None: the default remote.

    Returns
    -------
    str
        DVC's summary, e.g. ``1 file pushed``.

    Raises
    ------
    ProjectError
        When ``root`` is not a DVC repository.
    RemoteError
        When the remote is missing, unreachable or refuses the upload. A push is
        resumable: files already uploaded are skipped when it is run again.
    """
    root = Path(root)
    _require_repo(root)
    proc = run_dvc(root, "push", *(["--remote", remote] if remote else []))
    if proc.returncode != 0:
        raise _remote_error(root, remote, "push to", proc)
    return _summary(proc)


def pull_targets(root: Path) -> list[str]:
    """What ``pull`` fetches: every ``.dvc`` file, and the pipeline stages that have run.

    A plain ``dvc pull`` also tries to check out the outputs of stages that were never
    run (no ``dvc.lock`` entry) and fails on them; a fresh project has such stages.
    """
    skip = {".dvc", ".git", ".mlcycle"}
    files = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.dvc")
        if p.is_file() and not skip.intersection(p.relative_to(root).parts[:-1])
    )
    lock = root / "dvc.lock"
    stages: list[str] = []
    if lock.is_file():
        data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
        stages = sorted((data.get("stages") or {}).keys())
    return files + stages


def pull(root: Path, remote: str | None = None) -> str:
    """Download the tracked data from a DVC remote and check it out (``dvc pull``).

    Parameters
    ----------
    root
        The DVC repository.
    remote
        Remote name; None: the default remote.

    Returns
    -------
    str
        DVC's summary, e.g. ``1 file added``.

    Raises
    ------
    ProjectError
        When ``root`` is not a DVC repository.
    RemoteError
        When the remote is missing or unreachable, or lacks some of the tracked files.
    """
    root = Path(root)
    _require_repo(root)
    targets = pull_targets(root)
    if not targets:
        return "nothing is tracked yet"
    proc = run_dvc(root, "pull", *(["--remote", remote] if remote else []), *targets)
    if proc.returncode != 0:
        raise _remote_error(root, remote, "pull from", proc)
    return _summary(proc)


@dataclass
class DataStatus:
    """What differs between the workspace, the DVC cache and (with ``cloud``) a remote.

    ``changes`` maps a path (or a stage) to a short state: ``modified``, ``deleted``,
    ``not in cache``, ``not pushed``, ``on the remote only (pull it)``, ...
    ``raw`` is DVC's own JSON answer.
    """

    cloud: bool
    remote: str | None = None
    changes: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """True when nothing needs adding, pushing or pulling."""
        return not self.changes

    def __str__(self) -> str:
        if self.clean:
            if self.cloud:
                return f"data in sync with remote '{self.remote or 'default'}'"
            return "data up to date with its .dvc files"
        width = max(len(s) for s in self.changes.values())
        return "\n".join(f"{s:<{width}}  {p}" for p, s in sorted(self.changes.items()))


def _flatten(raw: dict[str, Any], cloud: bool) -> dict[str, str]:
    changes: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            changes[key] = _CLOUD_STATES.get(value, value) if cloud else value
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                changes[key] = item
            elif isinstance(item, dict):
                for kind, entries in item.items():
                    if isinstance(entries, dict):
                        for path, state in entries.items():
                            changes[str(path)] = str(state)
                    else:
                        changes[key] = f"{kind}: {entries}"
    return changes


def status(
    root: Path,
    cloud: bool = False,
    remote: str | None = None,
    targets: Sequence[str] | None = None,
) -> DataStatus:
    """Which tracked files changed (``dvc status``), or are not pushed (``cloud=True``).

    Parameters
    ----------
    root
        The DVC repository.
    cloud
        Compare the local cache with a remote instead of the workspace with the cache.
    remote
        Remote to compare with (``cloud`` only); None: the default remote.
    targets
        ``.dvc`` files or stages to report on; None: everything DVC tracks.

    Returns
    -------
    DataStatus
        Printable (``str(status)``); ``status.clean`` is True when nothing is to do.

    Raises
    ------
    ProjectError
        When ``root`` is not a DVC repository or ``dvc status`` fails.
    RemoteError
        With ``cloud``, when the remote is missing or unreachable.
    """
    root = Path(root)
    _require_repo(root)
    args = ["status", "--json"]
    if cloud:
        args += ["--cloud", *(["--remote", remote] if remote else [])]
    proc = run_dvc(root, *args, *(targets or []))
    if proc.returncode != 0:
        if cloud:
            raise _remote_error(root, remote, "compare with", proc)
        raise ProjectError(f"`dvc status` failed in {root}: {error_text(proc)}")
    text = proc.stdout.strip()
    try:
        raw = json.loads(text) if text else {}
    except json.JSONDecodeError:
        raise ProjectError(f"`dvc status --json` gave unexpected output: {text[:200]}") from None
    if not isinstance(raw, dict):
        raw = {}
    return DataStatus(cloud=cloud, remote=remote, changes=_flatten(raw, cloud), raw=raw)
