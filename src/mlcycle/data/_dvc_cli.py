"""Running DVC and git in subprocesses, for :mod:`mlcycle.data.dvc`.

Each DVC command runs as ``python -m dvc ...`` (or, for several config edits at once,
through DVC's CLI entry point in one fresh interpreter) with the project root as working
directory and analytics off. Nothing of DVC is imported into the calling process.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlcycle.exceptions import MissingDependencyError, ProjectError

logger = logging.getLogger(__name__)


def require_module(module: str, extra: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``extra`` unless ``module`` is installed."""
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"'{module}' is not installed; it comes with mlcycle's '{extra}' extra. "
            f"Install it with: pip install 'mlcycle[{extra}]'"
        )


def _env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1"}


def run_dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one DVC command (``python -m dvc ARGS``) in ``root``."""
    require_module("dvc", "train")
    logger.debug("running dvc %s in %s", " ".join(args[:3]), root)
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )


# Runs several DVC commands through DVC's own CLI entry point in one fresh interpreter,
# stopping at the first failure. The commands come on stdin, so credentials never appear
# in a process's argument list (visible to other users through `ps`).
_BATCH = """
import json, sys
from dvc.cli import main
for argv in json.load(sys.stdin):
    rc = main(argv)
    if rc:
        sys.exit(rc)
"""


def run_dvc_batch(root: Path, steps: list[list[str]]) -> subprocess.CompletedProcess[str]:
    """Run DVC commands one after the other in one subprocess; stop at the first failure."""
    require_module("dvc", "train")
    logger.debug("running %d dvc commands in %s", len(steps), root)
    return subprocess.run(
        [sys.executable, "-c", _BATCH],
        cwd=root,
        env=_env(),
        input=json.dumps(steps),
        capture_output=True,
        text=True,
        check=False,
    )


def error_text(proc: subprocess.CompletedProcess[str]) -> str:
    """DVC's error lines, without its advertising footer."""
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines()]
    errors = [ln.removeprefix("ERROR:").strip() for ln in lines if ln.startswith("ERROR:")]
    if errors:
        return " ".join(errors)
    kept = [ln for ln in lines if ln and not ln.startswith(("Having any troubles", "<https"))]
    return kept[-1] if kept else f"dvc exited with status {proc.returncode}"


def run_git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``git ARGS`` in ``root``, capturing its output."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def git_toplevel(root: Path) -> Path | None:
    """The top folder of the git work tree holding ``root``; None outside git."""
    if shutil.which("git") is None:
        return None
    proc = run_git(root, "rev-parse", "--show-toplevel")
    return Path(proc.stdout.strip()).resolve() if proc.returncode == 0 else None


def is_repo(root: Path) -> bool:
    """Whether ``root`` holds a DVC repository (a ``.dvc`` folder)."""
    return (Path(root) / ".dvc").is_dir()


def _require_repo(root: Path) -> None:
    if not is_repo(root):
        raise ProjectError(
            f"{root} is not a DVC repository; run `mlcycle init` there (or `dvc init`)"
        )
