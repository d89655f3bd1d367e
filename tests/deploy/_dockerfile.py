"""Read the few Dockerfile instructions mlcycle writes, to run a context as its image would.

No Docker engine runs here, so the tests do what the image does by hand: a fresh virtual
environment from the context's ``requirements.txt`` (the ``RUN pip install`` line), the
``ENV`` variables with the image's folders mapped onto the context folder, and the
``ENTRYPOINT`` + ``CMD`` started from the ``WORKDIR``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Dockerfile:
    """The instructions the tests use, in the file's order."""

    base: str = ""
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)
    copies: list[tuple[str, str]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)


def parse(path: Path) -> Dockerfile:
    """Parse ``path`` (line continuations joined, comments skipped)."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        if raw.lstrip().startswith("#") and not pending:
            continue
        if raw.endswith("\\"):
            pending += raw[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    out = Dockerfile()
    for line in lines:
        if not line.strip():
            continue
        op, _, arg = line.strip().partition(" ")
        arg = arg.strip()
        if op == "FROM":
            out.base = arg
        elif op == "ENV":
            for item in shlex.split(arg):
                key, _, value = item.partition("=")
                out.env[key] = value
        elif op == "WORKDIR":
            out.workdir = arg
        elif op == "USER":
            out.user = arg
        elif op == "ENTRYPOINT":
            out.entrypoint = json.loads(arg)
        elif op == "CMD":
            out.cmd = json.loads(arg)
        elif op == "HEALTHCHECK":
            out.healthcheck = json.loads(arg[arg.index("CMD ") + 4 :])
        elif op == "COPY":
            src, dst = arg.split()
            out.copies.append((src, dst))
        elif op == "RUN":
            out.runs.append(arg)
        elif op == "EXPOSE":
            out.expose.append(arg)
    return out


def mapped(value: str, folders: dict[str, Path]) -> str:
    """``value`` with each image folder replaced by the local folder it stands for."""
    for image_path, local in sorted(folders.items(), key=lambda kv: -len(kv[0])):
        value = value.replace(image_path, str(local))
    return value


def fresh_venv(folder: Path, requirements: Path) -> Path:
    """A new virtual environment with exactly ``requirements`` installed; its python.

    ``--no-compile`` skips writing bytecode for the installed files (half the install
    time); the packages are the same.
    """
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-compile", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=900,
        # pip's own version check would ask the network for nothing.
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return python
