"""Real bundles and real servers for the serving tests.

``start_server(bundle, *args)`` runs ``mlcycle serve`` in a subprocess on a free port of
127.0.0.1 and returns a :class:`RunningServer` once ``/v2/health/ready`` answers; the
fixtures stop every server they started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._bundles import build_bundle
from tests.conftest import free_port


@pytest.fixture(scope="session")
def cancer_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Breast cancer, 30 numeric features, two classes (gradient boosting)."""
    return build_bundle("cancer", tmp_path_factory.mktemp("cancer") / "bundle")


@pytest.fixture(scope="session")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Numeric and categorical features with missing values, three classes."""
    return build_bundle("mixed", tmp_path_factory.mktemp("mixed") / "bundle")


@dataclass
class RunningServer:
    """A ``mlcycle serve`` process and its base URL."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        """What the server printed so far."""
        return self.log.read_text(errors="replace")


def _wait_ready(server: RunningServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{server.url}/v2/health/ready", timeout=1).close()
            return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                server.process.kill()
                pytest.fail(f"mlcycle serve did not become ready: {server.output()[-3000:]}")
            time.sleep(0.05)


def _stop(server: RunningServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``start_server(bundle, "--workers", "2", ...)`` → a ready server."""
    started: list[RunningServer] = []

    def start(bundle: Path, *args: str, env: dict[str, str] | None = None) -> RunningServer:
        port = free_port()
        log = tmp_path / f"server-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle),
                 "--port", str(port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )  # fmt: skip
        server = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
        started.append(server)
        _wait_ready(server)
        return server

    yield start
    for server in started:
        _stop(server)


@pytest.fixture(scope="module")
def cancer_server(
    cancer_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server on the cancer bundle, shared by a test module."""
    yield from _module_server(cancer_bundle, tmp_path_factory)


@pytest.fixture(scope="module")
def mixed_server(
    mixed_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server on the mixed bundle, shared by a test module."""
    yield from _module_server(mixed_bundle, tmp_path_factory)


def _module_server(
    bundle: Path, factory: pytest.TempPathFactory, *args: str
) -> Iterator[RunningServer]:
    folder = factory.mktemp("server")
    port = free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "mlcycle", "serve", "--model", str(bundle)]
    command += ["--port", str(port), *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=folder,
            start_new_session=True,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", port, proc, log)
    _wait_ready(server)
    yield server
    _stop(server)
