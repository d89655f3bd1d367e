"""Helpers of the CLI tests: run ``mlcycle`` as a user would, read MLflow, run its server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_port

BIN = Path(sys.executable).parent
MLCYCLE = (
    [str(BIN / "mlcycle")] if (BIN / "mlcycle").exists() else [sys.executable, "-m", "mlcycle"]
)


def run(
    args: list[str], cwd: Path, check: bool = True, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``mlcycle ARGS`` in ``cwd`` and return the finished process."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k != "MLCYCLE_PROJECT_ROOT" and not k.startswith("MLFLOW_")
    }
    full_env["PATH"] = f"{BIN}:{full_env.get('PATH', '')}"
    full_env.update(env)
    proc = subprocess.run(
        [*MLCYCLE, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mlcycle {' '.join(args)} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
        )
    return proc


def mlflow_client(root: Path) -> Any:
    """An MlflowClient on the project's SQLite store (tracking and registry)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


@contextmanager
def running_mlflow(args: list[str], cwd: Path) -> Iterator[str]:
    """Run ``mlflow ARGS --host 127.0.0.1 --port P`` until the block ends; yield its URL.

    MLflow's server starts job-consumer processes, so it runs in its own process group
    and the whole group is stopped afterwards.
    """
    port = free_port()
    proc = subprocess.Popen(
        # one worker process: the default four take ~20 s more to start on two cores
        [str(BIN / "mlflow"), *args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"},
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except OSError:
                assert proc.poll() is None, f"mlflow {args[0]} exited"
                assert time.monotonic() < deadline, f"mlflow {args[0]} did not start in 90 s"
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            os.killpg(proc.pid, signal.SIGKILL)


def rest(base: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """GET (or POST ``body`` to) an MLflow REST endpoint and return the JSON answer."""
    request = urllib.request.Request(
        f"{base}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read()))
