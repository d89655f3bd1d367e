"""The server and Lambda build contexts, run the way their images run them, without Docker.

No Docker engine runs here. Each test writes a context, creates a fresh virtual
environment from exactly the context's ``requirements.txt`` (real packages from PyPI, as
the Dockerfile's ``pip install`` does), applies the Dockerfile's ``ENV`` with the image's
folders mapped onto the context folder, and starts its ``ENTRYPOINT`` from its ``WORKDIR``:

* the server image's entry point is a real ``mlcycle serve`` on 127.0.0.1, called over
  HTTP, and its ``HEALTHCHECK`` command is run against it;
* the Lambda image's entry point is the real ``awslambdaric``, fed events through a
  Runtime API on 127.0.0.1 (``tests/deploy/_runtime_api.py``).

Answers must equal the bundle's own predictions, and the environments must not hold any
training library.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.bundle import Bundle
from mlcycle.deploy.context import write_lambda_context, write_server_context
from tests._bundles import build_bundle
from tests.conftest import free_port
from tests.deploy._dockerfile import Dockerfile, fresh_venv, mapped, parse
from tests.deploy._runtime_api import start_runtime_api

ROWS: list[dict[str, Any]] = [
    {"x0": 0.5, "x1": -1.0, "x2": None, "color": "red", "size": "S"},
    {"x0": None, "x1": 2.0, "x2": 0.1, "color": None, "size": "L"},
    {"x0": 1.5, "x1": 0.0, "x2": -0.3, "color": "blue", "size": None},
]
HEAVY = ("mlflow", "pandas", "sklearn", "torch", "hydra", "dvc", "matplotlib")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle("mixed", tmp_path_factory.mktemp("bundle") / "b")


def expected(bundle: Path) -> tuple[list[str], np.ndarray[Any, Any], list[str]]:
    loaded = Bundle.load(bundle)
    columns = {f: [r[f] for r in ROWS] for f in loaded.feature_names_used}
    labels, proba = loaded.predict_columns(columns)
    return labels.tolist(), proba, loaded.classes


def check_predictions(preds: list[dict[str, Any]], bundle: Path) -> None:
    labels, proba, classes = expected(bundle)
    assert [p["label"] for p in preds] == labels
    got = np.array([[p["probabilities"][c] for c in classes] for p in preds])
    np.testing.assert_allclose(got, proba, atol=1e-6)


def image_env(spec: Dockerfile, folders: dict[str, Path], **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update({k: mapped(v, folders) for k, v in spec.env.items()})
    env.update(extra)
    return env


def assert_slim(python: Path) -> None:
    """The environment holds no training library: the image could not import one."""
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    done = subprocess.run(
        [str(python), "-c", probe, *HEAVY], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_server_context_runs_as_its_image_would(bundle: Path, tmp_path: Path) -> None:
    ctx = write_server_context(bundle, tmp_path / "ctx", model_name="mixed", model_version="7")
    spec = parse(ctx.out / "Dockerfile")
    assert spec.user == "10001:10001"
    assert ("requirements.txt", "/app/requirements.txt") in spec.copies
    python = fresh_venv(tmp_path / "venv", ctx.out / "requirements.txt")
    assert_slim(python)
    data = tmp_path / "data"  # the image's volume, its WORKDIR
    data.mkdir()
    folders = {"/app": ctx.out, "/var/lib/mlcycle": data}
    port = free_port()
    argv = [mapped(a, folders) for a in [*spec.entrypoint, *spec.cmd]]
    assert argv[0] == "python"
    # The image listens on 0.0.0.0:8080; here, a free port on 127.0.0.1 only.
    argv = [str(python), *argv[1:], "--host", "127.0.0.1", "--port", str(port)]
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        argv, cwd=data, env=image_env(spec, folders), stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/v2/health/ready", proc, tmp_path / "server.log")
        req = urllib.request.Request(
            f"{base}/predict",
            data=json.dumps({"records": ROWS}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            assert resp.headers["X-Model-Version"] == "7"
            doc = json.loads(resp.read())
        check_predictions(doc["predictions"], bundle)
        health = [mapped(a, folders).replace("8080", str(port)) for a in spec.healthcheck]
        assert health[0] == "python"
        done = subprocess.run([str(python), *health[1:]], capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        # The monitoring store lives in the image's data volume.
        assert (data / "monitor.db").is_file()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the image's server did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_lambda_context_runs_under_awslambdaric(bundle: Path, tmp_path: Path) -> None:
    ctx = write_lambda_context(bundle, tmp_path / "ctx", model_name="mixed", model_version="7")
    spec = parse(ctx.out / "Dockerfile")
    assert spec.entrypoint == ["python", "-m", "awslambdaric"]
    assert spec.cmd == ["mlcycle.serve.lambda_handler.handler"]
    python = fresh_venv(tmp_path / "venv", ctx.out / "requirements.txt")
    assert_slim(python)
    folders = {"/var/task": ctx.out}
    api = start_runtime_api()
    env = image_env(spec, folders, AWS_LAMBDA_RUNTIME_API=api.address, AWS_REGION="us-east-1")
    env["AWS_LAMBDA_FUNCTION_NAME"] = "mlcycle-test"
    log = (tmp_path / "lambda.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(python), *spec.entrypoint[1:], *spec.cmd],
        cwd=mapped(spec.workdir, folders),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        event = {
            "version": "2.0",
            "rawPath": "/predict",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/predict"}},
            "body": json.dumps({"records": ROWS}),
            "isBase64Encoded": False,
        }
        kind, result = api.invoke(event)
        init_seconds = (api.first_poll or time.monotonic()) - started
        assert kind == "response", result
        assert result["statusCode"] == 200, result
        assert result["headers"]["x-model-version"] == "7"
        check_predictions(json.loads(result["body"])["predictions"], bundle)
        # A direct invocation (the SDK's Invoke with a plain document) is answered too.
        kind, direct = api.invoke({"records": ROWS})
        assert kind == "response", direct
        check_predictions(direct["predictions"], bundle)
        # The whole cold start (interpreter, imports, bundle load) in a fresh process.
        print(f"Lambda image context: init (cold start) {init_seconds:.2f} s")
        assert not api.init_errors
    finally:
        proc.kill()
        proc.wait(timeout=30)
        api.close()
        log.close()
