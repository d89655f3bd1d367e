"""The Lambda handler on realistic API Gateway (payload 1.0), HTTP API / function URL
(payload 2.0) and direct-invocation events; loading from a folder and from S3 (a real
moto_server); and what importing the handler loads."""

from __future__ import annotations

import base64
import csv
import importlib
import io
import json
import logging
import os
import re
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from mlcycle.bundle import Bundle
from mlcycle.exceptions import BundleError, ConfigError

MODULE = "mlcycle.serve.lambda_handler"
ENV_VARS = (
    "MLCYCLE_BUNDLE",
    "MLCYCLE_MODEL_NAME",
    "MLCYCLE_MODEL_VERSION",
    "MLCYCLE_SERVE_SETTINGS",
    "MLCYCLE_BUNDLE_CACHE",
)
ROWS: list[dict[str, Any]] = [
    {"x0": 0.5, "x1": -1.0, "x2": None, "color": "red", "size": "S"},
    {"x0": None, "x1": 2.0, "x2": 0.1, "color": None, "size": "L"},
    {"x0": 1.5, "x1": 0.0, "x2": -0.3, "color": "blue", "size": None},
]
CONTEXT_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e812345678"
Event = Callable[..., dict[str, Any]]


# -- events as AWS documents them ----------------------------------------------------


@dataclass
class FakeContext:
    """The attributes of the Lambda context object the runtime passes."""

    aws_request_id: str = CONTEXT_REQUEST_ID
    function_name: str = "mlcycle-serve"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlcycle-serve"
    memory_limit_in_mb: str = "1024"
    log_group_name: str = "/aws/lambda/mlcycle-serve"
    log_stream_name: str = "2024/05/01/[$LATEST]abcdef0123456789"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def rest_event(
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    b64: bool = False,
    stage: str = "prod",
    resource: str | None = "/{proxy+}",
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload 1.0) for ``https://{api}/{stage}{path}``."""
    sent = {
        "Accept": "*/*",
        "Host": "abc123defg.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "python-requests/2.32.3",
        "X-Amzn-Trace-Id": "Root=1-5e66d96f-7491f09xmpl79d18acf3d050",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
        **(headers or {}),
    }
    if body is not None:
        sent["Content-Length"] = str(len(body))
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": sent,
        "multiValueHeaders": {k: [v] for k, v in sent.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.strip("/")} if resource == "/{proxy+}" else None,
        "stageVariables": None,
        "requestContext": rest_request_context(method, f"/{stage}{path}", stage, resource),
        "body": body,
        "isBase64Encoded": b64,
    }


def rest_request_context(
    method: str, full_path: str, stage: str, resource: str | None
) -> dict[str, Any]:
    """``requestContext`` of a REST API event; ``full_path`` includes the stage."""
    identity: dict[str, Any] = dict.fromkeys(
        ["cognitoIdentityPoolId", "accountId", "cognitoIdentityId", "caller", "principalOrgId",
         "accessKey", "cognitoAuthenticationType", "cognitoAuthenticationProvider", "userArn",
         "user"]
    )  # fmt: skip
    identity |= {"sourceIp": "203.0.113.7", "userAgent": "python-requests/2.32.3"}
    return {
        "resourceId": "2gxmpl",
        "resourcePath": resource,
        "httpMethod": method,
        "extendedRequestId": "JJbxmHEHIAMFZSA=",
        "requestTime": "10/Mar/2020:00:03:59 +0000",
        "path": full_path,
        "accountId": "123456789012",
        "protocol": "HTTP/1.1",
        "stage": stage,
        "domainPrefix": "abc123defg",
        "requestTimeEpoch": 1583798639428,
        "requestId": "77375676-xmpl-4b79-853a-f982474efe18",
        "identity": identity,
        "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
        "apiId": "abc123defg",
    }


def http_api_event(
    method: str,
    path: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    b64: bool = False,
    stage: str = "$default",
    route_key: str = "$default",
) -> dict[str, Any]:
    """An HTTP API / function URL event (payload 2.0); a named stage prefixes ``rawPath``."""
    raw_path = path if stage == "$default" else f"/{stage}{path}"
    sent = {
        "accept": "*/*",
        "host": "abcdefghij.lambda-url.us-east-1.on.aws",
        "user-agent": "python-httpx/0.27.0",
        "x-amzn-trace-id": "Root=1-5e6722a7-cc56xmpl46db7ae02d4da47e",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
        **{k.lower(): v for k, v in (headers or {}).items()},
    }
    if body is not None:
        sent["content-length"] = str(len(body))
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": sent,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefghij",
            "domainName": "abcdefghij.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefghij",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "python-httpx/0.27.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": route_key,
            "stage": stage,
            "time": "10/Mar/2020:05:16:23 +0000",
            "timeEpoch": 1583817383220,
        },
        "isBase64Encoded": b64,
    }
    if route_key.endswith("{proxy+}"):
        event["pathParameters"] = {"proxy": path.strip("/")}
    if body is not None:
        event["body"] = body
    return event


# -- loading the handler -------------------------------------------------------------


def import_handler(env: dict[str, str]) -> ModuleType:
    """Import (or reload) the handler module with exactly ``env`` as its MLCYCLE_ variables."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ENV_VARS:
            mp.delenv(key, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        module = sys.modules.get(MODULE)
        if module is None:
            return importlib.import_module(MODULE)
        module.reload()
        return module


@pytest.fixture(scope="module")
def loaded(mixed_bundle: Path) -> tuple[ModuleType, Any]:
    """The handler module loaded with the mixed bundle, and that load's app."""
    module = import_handler({"MLCYCLE_BUNDLE": str(mixed_bundle)})
    return module, module._APP


@pytest.fixture()
def handler(
    loaded: tuple[ModuleType, Any], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., dict[str, Any]]:
    """``handler(event)``: the module's handler on the mixed bundle, with a Lambda context."""
    module, app = loaded
    monkeypatch.setattr(module, "_APP", app)

    def call(event: Any, context: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = module.handler(event, context or FakeContext())
        return result

    return call


@pytest.fixture(params=["v1", "v2"])
def event(request: pytest.FixtureRequest) -> Event:
    """Factory ``event(method, path, body, headers, b64=...)`` for both payload versions."""
    return rest_event if request.param == "v1" else http_api_event


def answer(result: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """A proxy response's status, headers and decoded JSON body."""
    assert set(result) == {"statusCode", "headers", "body", "isBase64Encoded"}
    assert result["isBase64Encoded"] is False
    assert result["headers"]["content-type"] == "application/json"
    return result["statusCode"], result["headers"], json.loads(result["body"])


def assert_predictions(preds: list[dict[str, Any]], bundle_path: Path) -> None:
    bundle = Bundle.load(bundle_path)
    columns = {f: [r[f] for r in ROWS] for f in bundle.feature_names_used}
    labels, proba = bundle.predict_columns(columns)
    assert [p["label"] for p in preds] == labels.tolist()
    got = np.array([[p["probabilities"][c] for c in bundle.classes] for p in preds])
    np.testing.assert_allclose(got, proba, atol=1e-6)


def records_body() -> str:
    return json.dumps({"records": ROWS})


JSON_CT = {"Content-Type": "application/json"}


# -- routes ---------------------------------------------------------------------------


def test_predict_equals_the_bundle_and_names_model_and_request_id(
    handler: Callable[..., dict[str, Any]], event: Event, mixed_bundle: Path
) -> None:
    status, headers, doc = answer(handler(event("POST", "/predict", records_body(), JSON_CT)))
    assert status == 200, doc
    assert_predictions(doc["predictions"], mixed_bundle)
    assert doc["model"]["name"] == "mixed"
    assert doc["request_id"] == headers["x-request-id"] == CONTEXT_REQUEST_ID
    assert headers["x-model-version"] == doc["model"]["version"]


def test_callers_request_id_is_echoed(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    sent = {**JSON_CT, "X-Request-ID": "trace-42"}
    status, headers, doc = answer(handler(event("POST", "/predict", records_body(), sent)))
    assert status == 200
    assert doc["request_id"] == headers["x-request-id"] == "trace-42"


def test_request_id_is_a_uuid_without_context(
    handler: Callable[..., dict[str, Any]], event: Event
) -> None:
    result = handler(event("GET", "/ping"), context=object())
    assert uuid.UUID(result["headers"]["x-request-id"])


def test_invocations_json_dataframe_split(
    handler: Callable[..., dict[str, Any]], event: Event, mixed_bundle: Path
) -> None:
    columns = list(ROWS[0])
    split = {
        "dataframe_split": {"columns": columns, "data": [[r[c] for c in columns] for r in ROWS]}
    }
    status, _, doc = answer(handler(event("POST", "/invocations", json.dumps(split), JSON_CT)))
    assert status == 200, doc
    assert_predictions(doc["predictions"], mixed_bundle)


def test_invocations_csv(
    handler: Callable[..., dict[str, Any]], event: Event, mixed_bundle: Path
) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(ROWS[0]))
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in ROWS])
    sent = {"Content-Type": "text/csv"}
    status, _, doc = answer(handler(event("POST", "/invocations", out.getvalue(), sent)))
    assert status == 200, doc
    assert_predictions(doc["predictions"], mixed_bundle)


def oip_request(**extra: Any) -> dict[str, Any]:
    columns = {f: [r[f] for r in ROWS] for f in ROWS[0]}
    inputs = [
        {"name": f, "shape": [len(v)], "datatype": "FP32" if f[0] == "x" else "BYTES", "data": v}
        for f, v in columns.items()
    ]
    return {"id": "req-1", "inputs": inputs, **extra}


@pytest.mark.parametrize("path", ["/v2/models/mixed/infer", "/v2/models/mixed/versions/7/infer"])
def test_oip_infer_json(
    loaded: tuple[ModuleType, Any],
    mixed_bundle: Path,
    event: Event,
    path: str,
) -> None:
    module = import_handler({"MLCYCLE_BUNDLE": str(mixed_bundle), "MLCYCLE_MODEL_VERSION": "7"})
    body = json.dumps(oip_request())
    status, headers, doc = answer(module.handler(event("POST", path, body, JSON_CT), None))
    assert status == 200, doc
    assert (doc["model_name"], doc["model_version"], doc["id"]) == ("mixed", "7", "req-1")
    assert headers["x-model-version"] == "7"
    out = {o["name"]: o for o in doc["outputs"]}
    preds = [
        {"label": label, "probabilities": dict(zip(["high", "low", "mid"], p, strict=True))}
        for label, p in zip(
            out["label"]["data"], np.reshape(out["probabilities"]["data"], (3, 3)), strict=True
        )
    ]
    assert_predictions(preds, mixed_bundle)


def _bytes_tensor(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_oip_binary_tensors_in_base64_bodies(
    handler: Callable[..., dict[str, Any]], event: Event, mixed_bundle: Path
) -> None:
    numeric = np.array([[r[f] if r[f] is not None else np.nan for f in ("x0", "x1", "x2")]
                        for r in ROWS], dtype="<f4").tobytes()  # fmt: skip
    categorical = _bytes_tensor([r[f] or "" for r in ROWS for f in ("color", "size")])
    head = json.dumps({
        "inputs": [
            {"name": "numeric", "shape": [3, 3], "datatype": "FP32",
             "parameters": {"binary_data_size": len(numeric)}},
            {"name": "categorical", "shape": [3, 2], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(categorical)}},
        ],
        "parameters": {"binary_data_output": True},
    }).encode()  # fmt: skip
    sent = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }
    body = base64.b64encode(head + numeric + categorical).decode()
    result = handler(event("POST", "/v2/models/mixed/infer", body, sent, b64=True))
    assert result["statusCode"] == 200, result
    assert result["isBase64Encoded"] is True
    assert result["headers"]["content-type"] == "application/octet-stream"
    raw = base64.b64decode(result["body"])
    n = int(result["headers"]["Inference-Header-Content-Length"])
    sizes = [o["parameters"]["binary_data_size"] for o in json.loads(raw[:n])["outputs"]]
    proba = np.frombuffer(raw[n + sizes[0] :], dtype="<f4").reshape(3, 3)
    bundle = Bundle.load(mixed_bundle)
    expected = bundle.predict_columns({f: [r[f] for r in ROWS] for f in ROWS[0]})[1]
    np.testing.assert_allclose(proba, expected, atol=1e-6)


def test_base64_json_body(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    body = base64.b64encode(records_body().encode()).decode()
    status, _, doc = answer(handler(event("POST", "/predict", body, JSON_CT, b64=True)))
    assert status == 200, doc
    assert len(doc["predictions"]) == 3


def test_bad_base64_is_400(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    status, _, doc = answer(handler(event("POST", "/predict", "not base64!", JSON_CT, b64=True)))
    assert (status, doc["code"]) == (400, "bad_base64")


def test_model_metadata(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    status, headers, doc = answer(handler(event("GET", "/v2/models/mixed")))
    assert status == 200
    assert doc["name"] == "mixed"
    assert doc["versions"] == [headers["x-model-version"]]
    assert [i["name"] for i in doc["inputs"]] == ["numeric", "categorical"]


def test_unknown_model_is_404(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    status, _, doc = answer(handler(event("GET", "/v2/models/other")))
    assert (status, doc["code"], doc["field"]) == (404, "unknown_model", "path")


@pytest.mark.parametrize("path", ["/v2/health/live", "/v2/health/ready", "/ping", "/health"])
def test_health(handler: Callable[..., dict[str, Any]], event: Event, path: str) -> None:
    status, _, doc = answer(handler(event("GET", path)))
    assert (status, doc) == (200, {"status": "ok", "live": True, "ready": True})


def test_server_metadata_and_model_ready(
    handler: Callable[..., dict[str, Any]], event: Event
) -> None:
    assert answer(handler(event("GET", "/v2")))[2]["name"] == "mlcycle"
    assert answer(handler(event("GET", "/v2/models/mixed/ready")))[2]["ready"] is True


# -- errors ---------------------------------------------------------------------------


def test_unknown_path_is_404(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    status, _, doc = answer(handler(event("GET", "/nope")))
    assert (status, doc["code"]) == (404, "not_found")
    assert "/nope" in doc["error"] and "POST /predict" in doc["error"]


def test_wrong_method_is_405_with_allow(
    handler: Callable[..., dict[str, Any]], event: Event
) -> None:
    status, headers, doc = answer(handler(event("GET", "/predict")))
    assert (status, doc["code"], headers["allow"]) == (405, "method_not_allowed", "POST")


def test_wrong_content_type_is_415(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    sent = {"Content-Type": "text/plain"}
    status, _, doc = answer(handler(event("POST", "/predict", records_body(), sent)))
    assert (status, doc["code"], doc["field"]) == (415, "unsupported_media_type", "Content-Type")


def test_compressed_body_is_415(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    sent = {**JSON_CT, "Content-Encoding": "gzip"}
    status, _, doc = answer(handler(event("POST", "/predict", records_body(), sent)))
    assert (status, doc["code"]) == (415, "unsupported_encoding")


def test_malformed_json_is_400(handler: Callable[..., dict[str, Any]], event: Event) -> None:
    status, _, doc = answer(handler(event("POST", "/predict", '{"records": [', JSON_CT)))
    assert (status, doc["code"]) == (400, "malformed_json")


def test_bad_value_is_422_naming_the_field(
    handler: Callable[..., dict[str, Any]], event: Event
) -> None:
    rows = [dict(ROWS[0]), {**ROWS[1], "x1": "high"}]
    body = json.dumps({"records": rows})
    status, _, doc = answer(handler(event("POST", "/predict", body, JSON_CT)))
    assert (status, doc["code"], doc["field"]) == (422, "wrong_type", "records[1].x1")


def test_body_over_the_limit_is_413(
    loaded: tuple[ModuleType, Any],
    mixed_bundle: Path,
    event: Event,
) -> None:
    settings = json.dumps({"validation": {"max_body_bytes": 1024}})
    module = import_handler(
        {"MLCYCLE_BUNDLE": str(mixed_bundle), "MLCYCLE_SERVE_SETTINGS": settings}
    )
    big = json.dumps({"records": ROWS * 20})
    assert len(big) > 1024
    plain = answer(module.handler(event("POST", "/predict", big, JSON_CT), None))
    b64 = base64.b64encode(big.encode()).decode()
    coded = answer(module.handler(event("POST", "/predict", b64, JSON_CT, b64=True), None))
    small = answer(module.handler(event("POST", "/predict", records_body(), JSON_CT), None))
    assert (plain[0], plain[2]["code"], plain[2]["field"]) == (413, "body_too_large", "body")
    assert "max_body_bytes" in plain[2]["error"]
    assert coded[0] == 413
    assert small[0] == 200


def test_unexpected_error_is_500_and_logged(
    handler: Callable[..., dict[str, Any]],
    loaded: tuple[ModuleType, Any],
    event: Event,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(inputs: Any) -> Any:
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(loaded[1].model, "predict", boom)
    with caplog.at_level(logging.ERROR, logger="mlcycle.serve.lambda"):
        status, headers, doc = answer(handler(event("POST", "/predict", records_body(), JSON_CT)))
    assert (status, doc["code"]) == (500, "internal")
    assert "onnxruntime fell over" not in doc["error"]
    assert "onnxruntime fell over" in caplog.text
    assert headers["x-request-id"] == CONTEXT_REQUEST_ID


@pytest.mark.parametrize(
    "broken",
    [
        {"httpMethod": None, "path": "/ping"},
        {"httpMethod": "GET", "path": "/ping", "headers": "Accept: */*"},
        {"httpMethod": "POST", "path": "/predict", "body": {"records": []}},
        {"version": "2.0", "rawPath": "/ping", "requestContext": {"http": "GET"}},
    ],
)
def test_malformed_event_is_400(
    handler: Callable[..., dict[str, Any]], broken: dict[str, Any]
) -> None:
    status, _, doc = answer(handler(broken))
    assert (status, doc["code"]) == (400, "bad_event")


# -- paths behind stages --------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        # What API Gateway sends for https://{api}/prod/predict through /{proxy+}.
        lambda body: rest_event("POST", "/predict", body, JSON_CT),
        # A custom domain's base path (or a hand-written event) leaving the stage in path.
        lambda body: rest_event("POST", "/prod/predict", body, JSON_CT, resource=None),
        # A non-proxy resource: resource is the route itself.
        lambda body: {**rest_event("POST", "/ml/predict", body, JSON_CT), "resource": "/predict"},
        # HTTP API named stages put the stage in rawPath.
        lambda body: http_api_event("POST", "/predict", body, JSON_CT, stage="prod"),
        lambda body: http_api_event(
            "POST", "/predict", body, JSON_CT, stage="prod", route_key="ANY /{proxy+}"
        ),
    ],
    ids=["rest-proxy", "rest-stage-in-path", "rest-resource", "v2-stage", "v2-proxy"],
)
def test_stage_prefixed_paths_route(
    handler: Callable[..., dict[str, Any]], make: Callable[[str], dict[str, Any]]
) -> None:
    status, _, doc = answer(handler(make(records_body())))
    assert status == 200, doc
    assert len(doc["predictions"]) == 3


def test_stage_named_like_a_route_prefix_still_routes(
    handler: Callable[..., dict[str, Any]],
) -> None:
    event = http_api_event("GET", "/v2/health/live", stage="v2")
    assert event["rawPath"] == "/v2/v2/health/live"
    assert answer(handler(event))[0] == 200


# -- direct invocations ---------------------------------------------------------------


def test_direct_records_answer_the_predict_document(
    handler: Callable[..., dict[str, Any]], mixed_bundle: Path
) -> None:
    doc = handler({"records": ROWS})
    assert "statusCode" not in doc
    assert doc["request_id"] == CONTEXT_REQUEST_ID
    assert_predictions(doc["predictions"], mixed_bundle)


def test_direct_mlflow_document_is_invocations(
    handler: Callable[..., dict[str, Any]], mixed_bundle: Path
) -> None:
    doc = handler({"dataframe_records": ROWS})
    assert set(doc) == {"predictions"}
    assert_predictions(doc["predictions"], mixed_bundle)
    columns = {f: [r[f] for r in ROWS] for f in ROWS[0]}
    assert handler({"inputs": columns}) == doc


def test_direct_tensors_are_oip_infer(handler: Callable[..., dict[str, Any]]) -> None:
    doc = handler(oip_request(parameters={"binary_data_output": True}))
    assert doc["model_name"] == "mixed" and doc["id"] == "req-1"
    assert [o["name"] for o in doc["outputs"]] == ["label", "probabilities"]
    assert all("data" in o for o in doc["outputs"])


def test_direct_envelope_reaches_any_route(
    handler: Callable[..., dict[str, Any]], mixed_bundle: Path
) -> None:
    assert handler({"path": "/v2/health/ready"})["ready"] is True
    text = "x0,x1,x2,color,size\n0.5,-1.0,,red,S\n,2.0,0.1,,L\n1.5,0.0,-0.3,blue,\n"
    doc = handler({"path": "/invocations", "body": text, "headers": {"Content-Type": "text/csv"}})
    assert_predictions(doc["predictions"], mixed_bundle)
    assert handler({"path": "/predict", "body": {"records": ROWS}}) == handler({"records": ROWS})


@pytest.mark.parametrize(
    ("event", "status", "code", "field"),
    [
        ({"records": [{**ROWS[0], "color": 3.5}]}, 422, "wrong_type", "records[0].color"),
        ({"records": ROWS, "extra": 1}, 422, "unknown_field", "extra"),
        ({"rows": ROWS}, 422, "unknown_event", "event"),
        (["not", "an", "object"], 400, "bad_event", "event"),
        ({"records": [{**ROWS[0], "x0": float("nan")}]}, 400, "malformed_json", "body"),
        ({"path": "/predict", "verb": "POST"}, 422, "unknown_field", "verb"),
        ({"path": "/predict"}, 405, "method_not_allowed", "method"),
        ({"path": "/v2/models/other/infer", "body": {}}, 404, "unknown_model", "path"),
    ],
)
def test_direct_errors_are_returned_with_status(
    handler: Callable[..., dict[str, Any]], event: Any, status: int, code: str, field: str
) -> None:
    doc = handler(event)
    assert set(doc) == {"statusCode", "error", "code", "field"}
    assert (doc["statusCode"], doc["code"], doc["field"]) == (status, code, field)


# -- loading --------------------------------------------------------------------------


def test_missing_bundle_variable_fails_the_import(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    proc = subprocess.run(
        [sys.executable, "-c", f"import {MODULE}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "ConfigError: MLCYCLE_BUNDLE is not set; set it to the bundle folder" in proc.stderr


def test_bad_variables_name_themselves(
    loaded: tuple[ModuleType, Any], mixed_bundle: Path, tmp_path: Path
) -> None:
    load = loaded[0].app_from_env
    bundle = str(mixed_bundle)
    with pytest.raises(ConfigError, match="MLCYCLE_BUNDLE='/nowhere' is not a folder"):
        load({"MLCYCLE_BUNDLE": "/nowhere"})
    with pytest.raises(ConfigError, match="MLCYCLE_SERVE_SETTINGS is not valid JSON"):
        load({"MLCYCLE_BUNDLE": bundle, "MLCYCLE_SERVE_SETTINGS": "{port: 1}"})
    with pytest.raises(ConfigError, match=r"MLCYCLE_SERVE_SETTINGS: unknown setting\(s\) \['x'\]"):
        load({"MLCYCLE_BUNDLE": bundle, "MLCYCLE_SERVE_SETTINGS": '{"x": 1}'})
    with pytest.raises(BundleError, match=re.escape(f"MLCYCLE_BUNDLE='{tmp_path}'")):
        load({"MLCYCLE_BUNDLE": str(tmp_path)})


def test_name_and_version_come_from_the_environment(
    loaded: tuple[ModuleType, Any], mixed_bundle: Path
) -> None:
    env = {"MLCYCLE_BUNDLE": str(mixed_bundle), "MLCYCLE_MODEL_NAME": "churn",
           "MLCYCLE_MODEL_VERSION": "12"}  # fmt: skip
    app = loaded[0].app_from_env(env)
    doc = app({"records": ROWS[:1]}, None)
    assert doc["model"] == {"name": "churn", "version": "12"}


def test_import_loads_no_web_or_training_stack(mixed_bundle: Path, tmp_path: Path) -> None:
    code = (
        f"import sys, json, {MODULE} as h\n"
        "assert h.handler({'path': '/ping'}, None)['status'] == 'ok'\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "MLCYCLE_BUNDLE": str(mixed_bundle)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
        check=True,
    )  # fmt: skip
    modules = {m.split(".")[0] for m in json.loads(proc.stdout)}
    heavy = {"starlette", "uvicorn", "prometheus_client", "mlflow", "pandas", "sklearn", "torch"}
    assert not modules & heavy
    assert "boto3" not in modules and "botocore" not in modules
    assert {"numpy", "onnxruntime", "orjson"} <= modules


# -- loading from S3 (moto_server) -----------------------------------------------------


def upload(bundle: Path, bucket: str, prefix: str, endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(bundle).as_posix()}")
    # A look-alike prefix that must not be mixed in.
    client.put_object(Bucket=bucket, Key=f"{prefix}-old/MANIFEST.json", Body=b"{}")


@pytest.fixture()
def s3_env(
    mixed_bundle: Path, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> dict[str, str]:
    """The MLCYCLE_ variables for the mixed bundle uploaded under s3://bucket/models/mixed/3."""
    upload(mixed_bundle, s3_bucket, "models/mixed/3", moto_endpoint)
    return {
        "MLCYCLE_BUNDLE": f"s3://{s3_bucket}/models/mixed/3",
        "MLCYCLE_MODEL_VERSION": "3",
        "MLCYCLE_BUNDLE_CACHE": str(tmp_path / "cache"),
    }


@pytest.mark.parametrize("endpoint_var", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_loads_the_bundle_from_s3(
    loaded: tuple[ModuleType, Any],
    s3_env: dict[str, str],
    moto_endpoint: str,
    endpoint_var: str,
    mixed_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(endpoint_var, moto_endpoint)
    module = import_handler(s3_env)
    result = module.handler(http_api_event("POST", "/predict", records_body(), JSON_CT), None)
    status, headers, doc = answer(result)
    assert status == 200, doc
    assert headers["x-model-version"] == "3"
    assert_predictions(doc["predictions"], mixed_bundle)
    (folder,) = Path(s3_env["MLCYCLE_BUNDLE_CACHE"]).iterdir()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        p.name for p in mixed_bundle.iterdir()
    )


def test_s3_download_is_reused(
    loaded: tuple[ModuleType, Any],
    s3_env: dict[str, str],
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    fetch = loaded[0].fetch_s3_bundle
    cache = Path(s3_env["MLCYCLE_BUNDLE_CACHE"])
    first = fetch(s3_env["MLCYCLE_BUNDLE"], cache)
    marker = first / "MANIFEST.json"
    stamp = marker.stat().st_mtime_ns
    assert fetch(s3_env["MLCYCLE_BUNDLE"] + "/", cache) != first  # another URI, another folder
    assert fetch(s3_env["MLCYCLE_BUNDLE"], cache) == first
    assert marker.stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir() if p.name.startswith(".partial")] == []


def test_s3_errors_name_the_variable(
    loaded: tuple[ModuleType, Any],
    s3_bucket: str,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    fetch = loaded[0].fetch_s3_bundle
    with pytest.raises(ConfigError, match="no objects under that prefix"):
        fetch(f"s3://{s3_bucket}/models/none", tmp_path)
    with pytest.raises(
        BundleError, match=r"cannot download the bundle MLCYCLE_BUNDLE=.*NoSuchBucket"
    ):
        fetch("s3://no-such-bucket-here/models", tmp_path)
    with pytest.raises(ConfigError, match="has no bucket"):
        fetch("s3:///models", tmp_path)
