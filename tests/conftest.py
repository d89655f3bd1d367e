"""Shared fixtures: in-memory datasets and configs, a real moto_server for S3 / AWS, and
(tests/_postgres.py) a PostgreSQL server for the monitoring store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_breast_cancer, load_wine

from mlcycle.config.structured import ModelConfig
from mlcycle.data.dataset import Dataset
from tests import _datasets

pytest_plugins = ["tests._mlflow_fixtures", "tests._postgres"]

#: The longest test modules (each one to three minutes on CI's two cores), longest first.
#: ``make test`` runs modules on two workers (``--dist loadfile``), handing each module to
#: the next free worker in collection order; in path order these came last and one worker
#: ran them alone for minutes after the other had finished. Run first, they overlap with
#: each other and the short modules fill in around them.
LONGEST_FIRST = (
    "tests/test_cli.py",
    "tests/test_demo.py",
    "tests/test_cli_pipeline.py",
    "tests/test_cli_data.py",
    "tests/test_cli_tracking_server.py",
    "tests/monitor/test_pipeline.py",
    "tests/test_demo_drift.py",
    "tests/test_cli_s3.py",
    "tests/test_cli_errors.py",
    "tests/rollout/test_simulations.py",
    "tests/retrain/test_retrain.py",
    "tests/deploy/test_images.py",
    "tests/deploy/test_aws_lambda.py",
    "tests/deploy/test_web_browser.py",
    "tests/data/check/test_command.py",
    "tests/test_cli_analyze.py",
    "tests/test_cli_augment.py",
    "tests/train/test_cnn.py",
    "tests/features/test_serving.py",
    "tests/serve/test_images.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the modules of :data:`LONGEST_FIRST` first, in that order (the rest keep theirs)."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    root = config.rootpath

    def key(item: pytest.Item) -> int:
        try:
            path = item.path.relative_to(root).as_posix()
        except ValueError:
            return len(rank)
        return rank.get(path, len(rank))

    items.sort(key=key)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _moto_command() -> list[str]:
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if exe:
        return [exe]
    return [sys.executable, "-m", "moto.server"]


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start ``moto_server`` on 127.0.0.1 for the session and return its URL.

    The AWS credential variables are set to dummy values for the session, so boto3,
    DVC (s3fs) and MLflow all talk to moto and never to AWS.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*_moto_command(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start on {url}: {log.read_text()[-2000:]}")
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(_AWS_ENV)
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture()
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the session's moto_server; returns its name."""
    import uuid

    import boto3

    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(
        Bucket=name
    )
    return name


@pytest.fixture(scope="session")
def breast_cancer() -> Dataset:
    return _datasets.sklearn_dataset(load_breast_cancer)


@pytest.fixture(scope="session")
def wine() -> Dataset:
    return _datasets.sklearn_dataset(load_wine)


@pytest.fixture(scope="session")
def mixed() -> Dataset:
    return _datasets.mixed_dataset()


@pytest.fixture(scope="session")
def tickets() -> Dataset:
    return _datasets.tickets_dataset()


@pytest.fixture(scope="session")
def datasets(
    breast_cancer: Dataset, wine: Dataset, mixed: Dataset, tickets: Dataset
) -> dict[str, Dataset]:
    return {"breast_cancer": breast_cancer, "wine": wine, "mixed": mixed, "tickets": tickets}


@pytest.fixture(scope="session")
def fast_config() -> Callable[..., ModelConfig]:
    """Factory: ``fast_config("gbdt", C=0.1)`` is a small, quick config of that family."""
    return _datasets.fast_config


@pytest.fixture(scope="session")
def split() -> Callable[..., tuple[Dataset, Dataset]]:
    """Factory: ``split(ds)`` is a seeded 70/30 (train, validation) split."""
    return _datasets.split


_LEAKY_ENV = ("MLFLOW_", "MLCYCLE_PROJECT_ROOT")


@pytest.fixture(autouse=True)
def _isolate_tracking_env() -> Iterator[None]:
    """Undo what a test leaves in os.environ: ``mlflow.set_tracking_uri`` and
    ``set_registry_uri`` export MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, which would
    point later tests (and their subprocesses) at another test's store."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(_LEAKY_ENV)}
    yield
    for key in [k for k in os.environ if k.startswith(_LEAKY_ENV)]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)
