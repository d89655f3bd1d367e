"""The real server over real HTTP: /predict, MLflow /invocations, headers, /metrics with
one and several workers, /openapi.json, and what the serving path imports."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.bundle import Bundle
from tests.serve.conftest import RunningServer

SCHEMA_ORDER = ["x0", "color", "x1", "size", "x2"]
MIXED_ROWS = [
    {"x0": 0.5, "x1": -1.0, "x2": None, "color": "red", "size": "S"},
    {"x0": None, "x1": 2.0, "x2": 0.1, "color": None, "size": "L"},
    {"x0": 1.5, "x1": 0.0, "x2": -0.3, "color": "blue", "size": None},
]


def call(
    url: str, body: bytes | None = None, content_type: str = "application/json", **headers: str
) -> tuple[int, dict[str, str], Any]:
    """One HTTP request; (status, lower-cased headers, decoded JSON or text)."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    if body is not None:
        req.add_header("Content-Type", content_type)
    for k, v in headers.items():
        req.add_header(k.replace("_", "-"), v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    text = raw.decode()
    return status, hdrs, json.loads(text) if "json" in hdrs.get("content-type", "") else text


def post_json(url: str, doc: Any, **headers: str) -> tuple[int, dict[str, str], Any]:
    return call(url, json.dumps(doc).encode(), **headers)


def expected(
    bundle_path: Path, rows: list[dict[str, Any]]
) -> tuple[list[str], np.ndarray[Any, Any]]:
    bundle = Bundle.load(bundle_path)
    columns = {f: [r[f] for r in rows] for f in bundle.feature_names_used}
    labels, proba = bundle.predict_columns(columns)
    return labels.tolist(), proba


def assert_predictions(
    preds: list[dict[str, Any]], bundle_path: Path, rows: list[dict[str, Any]]
) -> None:
    labels, proba = expected(bundle_path, rows)
    classes = Bundle.load(bundle_path).classes
    assert [p["label"] for p in preds] == labels
    got = np.array([[p["probabilities"][c] for c in classes] for p in preds])
    np.testing.assert_allclose(got, proba, atol=1e-6)


def test_predict_answers_labels_probabilities_model_and_request_id(
    mixed_server: RunningServer, mixed_bundle: Path
) -> None:
    status, headers, doc = post_json(f"{mixed_server.url}/predict", {"records": MIXED_ROWS})
    assert status == 200, doc
    assert_predictions(doc["predictions"], mixed_bundle, MIXED_ROWS)
    assert doc["model"]["name"] == "mixed"
    assert doc["model"]["version"] == headers["x-model-version"] != ""
    assert re.fullmatch(r"[0-9a-f]{32}", doc["request_id"])
    assert headers["x-request-id"] == doc["request_id"]


def test_the_callers_request_id_comes_back(mixed_server: RunningServer) -> None:
    status, headers, doc = post_json(
        f"{mixed_server.url}/predict", {"records": MIXED_ROWS[:1]}, X_Request_ID="order-42"
    )
    assert status == 200 and headers["x-request-id"] == "order-42" == doc["request_id"]


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    "form",
    ["dataframe_split", "dataframe_records", "instances", "instances_lists", "inputs", "csv"],
)
def test_invocations_takes_every_mlflow_input_format(
    form: str, mixed_server: RunningServer, mixed_bundle: Path
) -> None:
    features = ["x0", "x1", "x2", "color", "size"]
    url = f"{mixed_server.url}/invocations"
    if form == "csv":
        status, headers, doc = call(url, _csv(MIXED_ROWS), "text/csv")
    else:
        body: dict[str, Any] = {
            "dataframe_split": {
                "columns": features,
                "data": [[r[f] for f in features] for r in MIXED_ROWS],
            },
            "dataframe_records": MIXED_ROWS,
            "instances": MIXED_ROWS,
            # positional rows follow the schema's feature order
            "instances_lists": [[r[f] for f in SCHEMA_ORDER] for r in MIXED_ROWS],
            "inputs": {f: [r[f] for r in MIXED_ROWS] for f in features},
        }
        key = "instances" if form == "instances_lists" else form
        status, headers, doc = post_json(url, {key: body[form]})
    assert status == 200, doc
    assert_predictions(doc["predictions"], mixed_bundle, MIXED_ROWS)
    assert headers["x-model-version"] and headers["x-request-id"]


def test_errors_are_json_with_the_right_status(mixed_server: RunningServer) -> None:
    url = mixed_server.url
    cases = [
        (call(f"{url}/predict", b"{not json"), 400, "malformed_json"),
        (call(f"{url}/predict", b'{"records": []}', "text/plain"), 415, "unsupported_media_type"),
        (post_json(f"{url}/predict", {"records": []}), 422, "empty_batch"),
        (
            post_json(f"{url}/predict", {"records": [{**MIXED_ROWS[0], "color": "pink"}]}),
            422,
            "unseen_category",
        ),
        (
            post_json(f"{url}/invocations", {"instances": MIXED_ROWS, "inputs": {}}),
            422,
            "wrong_shape",
        ),
        (call(f"{url}/nowhere"), 404, "not_found"),
        (call(f"{url}/predict"), 405, "method_not_allowed"),
    ]
    for (status, _, doc), want_status, want_code in cases:
        assert (status, doc["code"]) == (want_status, want_code), doc
        assert isinstance(doc["error"], str) and doc["error"]
    status, _, doc = post_json(f"{url}/predict", {"records": [{**MIXED_ROWS[0], "color": "pink"}]})
    assert doc["field"] == "records[0].color" and "pink" in doc["error"]


def test_concurrent_requests_all_get_their_own_answers(
    cancer_server: RunningServer, cancer_bundle: Path
) -> None:
    bundle = Bundle.load(cancer_bundle)
    rng = np.random.default_rng(0)
    rows = [
        {
            f: float(v)
            for f, v in zip(bundle.feature_names_used, rng.uniform(0, 30, 30), strict=True)
        }
        for _ in range(64)
    ]

    def one(r: dict[str, float]) -> str:
        status, _, doc = post_json(f"{cancer_server.url}/predict", {"records": [r]})
        assert status == 200, doc
        return str(doc["predictions"][0]["label"])

    with ThreadPoolExecutor(16) as pool:
        labels = list(pool.map(one, rows))
    assert labels == expected(cancer_bundle, rows)[0]


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def _check_metrics(server: RunningServer, requests: int) -> None:
    status, headers, text = call(f"{server.url}/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    version = headers["x-model-version"]
    assert (
        metric(
            text, "mlcycle_requests_total", route="/predict", status="200", model_version=version
        )
        == requests
    )
    assert metric(text, "mlcycle_requests_total", route="/predict", status="422") == 1
    assert metric(text, "mlcycle_request_duration_seconds_count", route="/predict") == requests + 1
    assert metric(text, "mlcycle_predicted_rows_total", model_version=version) == 3 * requests
    assert metric(text, "mlcycle_batch_rows_sum") == 3 * requests
    assert metric(text, "mlcycle_model_load_seconds", model_version=version) > 0
    assert "mlcycle_requests_in_flight" in text


def _traffic(server: RunningServer, requests: int) -> None:
    for _ in range(requests):
        assert post_json(f"{server.url}/predict", {"records": MIXED_ROWS})[0] == 200
    assert post_json(f"{server.url}/predict", {"records": [{}]})[0] == 422


def _settle(server: RunningServer, requests: int, timeout: float = 10.0) -> None:
    """Wait until the metrics count the last request too.

    A request is counted just after its answer is sent, so a scrape sent as soon as the
    answer arrives (on another worker, say) may not see it yet.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            _check_metrics(server, requests)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_metrics_count_requests_latency_batches_and_load_time(
    start_server: Callable[..., RunningServer], mixed_bundle: Path
) -> None:
    server = start_server(mixed_bundle)
    _traffic(server, 7)
    _settle(server, 7)


def test_metrics_add_up_over_several_worker_processes(
    start_server: Callable[..., RunningServer], mixed_bundle: Path
) -> None:
    server = start_server(mixed_bundle, "--workers", "2")
    _traffic(server, 30)
    _settle(server, 30)
    for _ in range(4):  # whichever worker answers the scrape, the totals are the same
        _check_metrics(server, 30)


def test_openapi_document_describes_the_models_features(mixed_server: RunningServer) -> None:
    status, _, doc = call(f"{mixed_server.url}/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    record = doc["components"]["schemas"]["Record"]
    assert set(record["required"]) == {"x0", "x1", "x2", "color", "size"}
    assert record["properties"]["color"]["enum"] == ["blue", "green", "red", "", None]
    assert {"/predict", "/invocations", "/v2/models/{name}/infer"} <= set(doc["paths"])


def test_a_broken_bundle_stops_the_command_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder, needle in [(tmp_path / "empty", "lacks model.onnx"), (tmp_path / "nope", "nope")]:
        proc = subprocess.run(
            [sys.executable, "-m", "mlcycle", "serve", "--model", str(folder), "--port", "1"],
            capture_output=True, text=True, cwd=tmp_path, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error:") and needle in proc.stderr
        assert "Traceback" not in proc.stderr


def test_the_serving_path_imports_no_mlflow_pandas_sklearn_or_torch() -> None:
    code = (
        "import sys, mlcycle.cli, mlcycle.serve_commands, mlcycle.serve.app, mlcycle.serve.server;"
        "heavy = [m for m in ('mlflow', 'pandas', 'sklearn', 'torch', 'hydra', 'pyarrow') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
