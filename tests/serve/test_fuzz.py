"""Fuzzing the prediction server: it answers 2xx or 4xx to anything, and never dies.

Three layers, all against a real ``mlcycle serve`` over HTTP:

* schemathesis generates requests from the server's own ``/openapi.json`` (valid and
  invalid) and checks that no answer is a 5xx and every answer is documented;
* hypothesis sends arbitrary JSON, raw JSON text (``1e309``, ``NaN``, lone surrogate
  escapes, numbers with hundreds of digits), bytes, CSV, OIP tensor specs and
  binary-extension bodies, with odd headers: every answer is a 2xx, or a 4xx whose JSON
  body has a string ``error`` and ``code``, and the server stays live;
* explicit cases pin the status and the ``field`` of each kind of bad request.

Every run is derandomized (``derandomize=True``, no example database), so CI sees the
same examples each time.
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import hypothesis
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis import checks as schema_checks

from tests.serve.conftest import RunningServer

_SETTINGS = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def fuzz(max_examples: int) -> hypothesis.settings:
    """Reproducible settings: the same ``max_examples`` examples on every run."""
    return hypothesis.settings(_SETTINGS, max_examples=max_examples)


# The mixed bundle's features (see tests/_bundles.py).
CATEGORIES = {"color": ("blue", "green", "red"), "size": ("L", "M", "S")}
FEATURES = ("x0", "color", "x1", "size", "x2")
VALID = {"x0": 0.5, "x1": -1.0, "x2": 2.0, "color": "red", "size": "S"}
INFER = "/v2/models/mixed/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def http(mixed_server: RunningServer) -> Iterator[httpx.Client]:
    """A keep-alive client for the module's mixed-bundle server."""
    with httpx.Client(base_url=mixed_server.url, timeout=30) as client:
        yield client


def check_answer(response: httpx.Response) -> None:
    """A 2xx, or a 4xx with a JSON error; either way from the app (it sets X-Request-ID)."""
    status = response.status_code
    assert 200 <= status < 300 or 400 <= status < 500, (status, response.text[:500])
    assert "x-request-id" in response.headers, response.text[:500]
    if status >= 400:
        error = response.json()
        assert isinstance(error["error"], str) and error["error"], error
        assert isinstance(error["code"], str) and error["code"], error
        assert isinstance(error.get("field", ""), str), error
    elif response.headers["content-type"] == "application/json":
        assert isinstance(response.json(), dict)


def assert_alive(server: RunningServer) -> None:
    """The process runs, answers liveness, and counted no 5xx answer."""
    assert server.process.poll() is None, server.output()[-3000:]
    assert httpx.get(f"{server.url}/v2/health/live", timeout=10).json()["live"] is True
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert not re.search(r'^mlcycle_requests_total\{[^}]*status="5', metrics, re.M), metrics
    assert "unexpected error" not in server.output(), server.output()[-3000:]


# -- schemathesis: the server against its own OpenAPI document ----------------------------

POSTS = (
    "/predict",
    "/invocations",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/feedback",
    "/review/api/items/{review_id}",
)
GETS = (
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/versions/{version}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/versions/{version}/ready",
    "/ping",
    "/health",
    "/openapi.json",
    "/reviews/{review_id}",
    "/review",
    "/review/api/items",
    "/review/api/items/{review_id}",
    "/review/api/next",
    "/review/api/stats",
)
OPERATIONS = [("POST", p) for p in POSTS] + [("GET", p) for p in GETS]
# Every answer: not a 5xx, a documented status and content type, the documented body.
CHECKS = [
    schema_checks.not_a_server_error,
    schema_checks.status_code_conformance,
    schema_checks.content_type_conformance,
    schema_checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def api_schema(mixed_server: RunningServer) -> Any:
    return schemathesis.openapi.from_url(f"{mixed_server.url}/openapi.json")


def _run_schemathesis(
    operation: Any,
    mode: GenerationMode,
    checks: list[Any],
    max_examples: int,
    path_parameters: dict[str, str] | None = None,
) -> None:
    strategy = operation.as_strategy(mode, path_parameters=path_parameters)
    with requests.Session() as session:

        @hypothesis.given(case=strategy)
        @fuzz(max_examples)
        def run(case: Any) -> None:
            case.call_and_validate(session=session, checks=checks)

        run()


def _pinned(path: str, server: RunningServer) -> dict[str, str]:
    """The served model's name (and version) for the path's parameters."""
    params = {}
    if "{name}" in path:
        params["name"] = "mixed"
    if "{version}" in path:
        params["version"] = httpx.get(f"{server.url}/v2/models/mixed").json()["versions"][0]
    return params


def test_fuzzed_operations_are_every_documented_operation(api_schema: Any) -> None:
    # The admin routes (bearer token; 403 on this server, which has none) are fuzzed in
    # tests/serve/test_openapi_rollout.py against a server with a token.
    documented = {
        (method.upper(), path)
        for path, item in api_schema.raw_schema["paths"].items()
        if not path.startswith("/admin/")
        for method in item
    }
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_schema_valid_requests_get_documented_answers(
    api_schema: Any, mixed_server: RunningServer, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    # POSTs go to the served model, so their bodies are judged; GETs try any name.
    pinned = _pinned(path, mixed_server) if method == "POST" else None
    _run_schemathesis(operation, GenerationMode.POSITIVE, CHECKS, 40, pinned)
    assert_alive(mixed_server)


@pytest.mark.parametrize("path", POSTS)
def test_schema_violating_requests_are_refused_with_documented_4xx(
    api_schema: Any, mixed_server: RunningServer, path: str
) -> None:
    operation = api_schema[path]["POST"]
    checks = [*CHECKS, schema_checks.negative_data_rejection]
    _run_schemathesis(operation, GenerationMode.NEGATIVE, checks, 40, _pinned(path, mixed_server))
    assert_alive(mixed_server)


@pytest.mark.parametrize("server_fixture", ["mixed_server", "cancer_server"])
def test_predict_accepts_every_request_its_schema_allows(
    request: pytest.FixtureRequest, server_fixture: str
) -> None:
    server: RunningServer = request.getfixturevalue(server_fixture)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    checks = [*CHECKS, schema_checks.positive_data_acceptance]
    _run_schemathesis(schema["/predict"]["POST"], GenerationMode.POSITIVE, checks, 40)
    assert_alive(server)


# -- hypothesis: arbitrary documents, bytes and headers -------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
# JSON text the encoders would never write: out-of-range and non-JSON numbers, lone
# surrogate escapes, bad literals, unterminated values.
RAW_TOKENS = st.sampled_from(
    [
        "1e309", "-1e309", "1e-400", "3.5e38", "-3.5e38", "1" * 400, "-" + "9" * 400,
        "NaN", "-NaN", "Infinity", "-Infinity", "nan", "inf", "-0", "01", "+1", ".5", "0x10",
        '"\\ud800"', '"\\udfff\\ud800"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\u0072ed"',
        "null", "true", "false", "[]", "{}", "[[[[1]]]]", '["red"]', "tru", '"open', "[1,",
    ]
)  # fmt: skip


def _dumps(value: Any) -> str:
    return json.dumps(value)  # the standard library writes big integers and any str


def _feature_value(feature: str) -> st.SearchStrategy[str]:
    """Raw JSON text for one feature: mostly plausible, often not."""
    if feature in CATEGORIES:
        plausible = st.sampled_from([*CATEGORIES[feature], "", "purple"]).map(_dumps)
    else:
        plausible = st.floats(width=32, allow_nan=False, allow_infinity=False).map(repr)
    return st.one_of(plausible, plausible, RAW_TOKENS, JSON.map(_dumps), st.just("null"))


def _raw_record() -> st.SearchStrategy[str]:
    features = st.fixed_dictionaries({}, optional={f: _feature_value(f) for f in FEATURES}).map(
        lambda d: list(d.items())
    )
    extra = st.lists(st.tuples(st.text(max_size=6), RAW_TOKENS | JSON.map(_dumps)), max_size=2)
    return st.builds(
        lambda fs, xs: "{" + ",".join(f"{_dumps(k)}:{v}" for k, v in fs + xs) + "}",
        features,
        extra | st.just([]),
    )


RAW_RECORDS = st.lists(_raw_record(), max_size=4).map(lambda rs: "[" + ",".join(rs) + "]")
CONTENT_TYPES = st.sampled_from(
    [
        "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
        "application/problem+json", "text/csv", "application/csv", "text/plain",
        "application/octet-stream", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        ";", "application/json;;;", "*/*", "",
    ]
)  # fmt: skip
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=12
)


def _post(
    http: httpx.Client, path: str, body: bytes | str, headers: dict[str, str | bytes]
) -> httpx.Response:
    """POST as is (header values may be any latin-1 bytes) and check the answer."""
    content = body.encode() if isinstance(body, str) else body
    raw = [
        (k.encode(), v if isinstance(v, bytes) else v.encode("latin-1")) for k, v in headers.items()
    ]
    hypothesis.note(f"POST {path} {raw!r} {content[:3000]!r}")
    response = http.post(path, content=content, headers=raw)
    check_answer(response)
    return response


@fuzz(80)
@hypothesis.given(doc=JSON | st.fixed_dictionaries({"records": JSON}))
def test_predict_answers_any_json_document(http: httpx.Client, doc: Any) -> None:
    _post(http, "/predict", _dumps(doc), {"content-type": "application/json"})


@fuzz(120)
@hypothesis.given(records=RAW_RECORDS)
def test_predict_answers_records_of_any_raw_values(http: httpx.Client, records: str) -> None:
    _post(http, "/predict", '{"records":' + records + "}", {"content-type": "application/json"})


@fuzz(80)
@hypothesis.given(
    path=st.sampled_from(["/predict", "/invocations", INFER]),
    body=st.binary(max_size=200),
    content_type=CONTENT_TYPES,
)
def test_posts_answer_any_bytes(
    http: httpx.Client, path: str, body: bytes, content_type: str
) -> None:
    _post(http, path, body, {"content-type": content_type})


def _invocations_body() -> st.SearchStrategy[str]:
    columns = st.lists(st.sampled_from(FEATURES) | st.text(max_size=4), max_size=7)
    rows = st.lists(
        st.lists(st.one_of(*(_feature_value(f) for f in FEATURES)), max_size=6), max_size=3
    ).map(lambda rs: "[" + ",".join("[" + ",".join(r) + "]" for r in rs) + "]")
    column_lists = st.fixed_dictionaries(
        {}, optional={f: st.lists(_feature_value(f), max_size=3) for f in FEATURES}
    ).map(lambda d: "{" + ",".join(f'"{k}":[{",".join(v)}]' for k, v in d.items()) + "}")
    split = st.builds(lambda c, d: '{"columns":' + _dumps(c) + ',"data":' + d + "}", columns, rows)
    return st.one_of(
        split.map(lambda s: '{"dataframe_split":' + s + "}"),
        RAW_RECORDS.map(lambda r: '{"dataframe_records":' + r + "}"),
        st.one_of(RAW_RECORDS, rows).map(lambda r: '{"instances":' + r + "}"),
        column_lists.map(lambda c: '{"inputs":' + c + "}"),
        st.builds(lambda r, p: '{"instances":' + r + ',"params":' + p + "}", rows, RAW_TOKENS),
    )


@fuzz(120)
@hypothesis.given(body=_invocations_body())
def test_invocations_answers_any_mlflow_document(http: httpx.Client, body: str) -> None:
    _post(http, "/invocations", body, {"content-type": "application/json"})


CSV_CELL = st.one_of(
    st.sampled_from(["", "1.5", "-2", "nan", "inf", "-inf", "1e999", "1_000", " 3 ", "red", "S"]),
    st.text(max_size=8),
)


@fuzz(100)
@hypothesis.given(
    header=st.lists(st.sampled_from(FEATURES) | st.text(max_size=4), max_size=7),
    rows=st.lists(st.lists(CSV_CELL, max_size=7), max_size=4),
    raw=st.booleans(),
)
def test_invocations_answers_any_csv(
    http: httpx.Client, header: list[str], rows: list[list[str]], raw: bool
) -> None:
    if raw:  # joined as is: quotes, newlines and NULs left for the parser to trip on
        body = "\n".join(",".join(r) for r in [header, *rows])
    else:
        out = io.StringIO()
        csv.writer(out).writerows([header, *rows])
        body = out.getvalue()
    _post(http, "/invocations", body, {"content-type": "text/csv"})


TENSOR_DATATYPES = st.sampled_from(["FP32", "FP64", "INT64", "UINT8", "BOOL", "FP16", "BYTES"])
SHAPES = st.one_of(
    st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=2),
    st.lists(st.integers(min_value=-(2**70), max_value=2**70), max_size=3),
    JSON,
)


def _tensor_spec(binary: bool) -> st.SearchStrategy[dict[str, Any]]:
    names = st.sampled_from(["numeric", "categorical", *FEATURES]) | st.text(max_size=6)
    size = st.integers(min_value=-4, max_value=64) | JSON
    parameters = st.fixed_dictionaries({"binary_data_size": size}) if binary else JSON
    return st.fixed_dictionaries(
        {"name": names | JSON, "shape": SHAPES, "datatype": TENSOR_DATATYPES | JSON},
        optional={"data": JSON, "parameters": parameters},
    )


def _outputs() -> st.SearchStrategy[Any]:
    name = st.sampled_from(["label", "probabilities"]) | JSON
    spec = st.fixed_dictionaries({"name": name}, optional={"parameters": JSON})
    return st.lists(spec, max_size=3) | JSON


def _infer_doc(binary: bool) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"inputs": st.lists(_tensor_spec(binary), max_size=5) | JSON},
        optional={"outputs": _outputs(), "id": JSON, "parameters": JSON},
    )


@fuzz(150)
@hypothesis.given(doc=_infer_doc(binary=False))
def test_infer_answers_any_json_tensor_request(http: httpx.Client, doc: dict[str, Any]) -> None:
    _post(http, INFER, _dumps(doc), {"content-type": "application/json"})


@fuzz(150)
@hypothesis.given(
    doc=_infer_doc(binary=True),
    blob=st.binary(max_size=64),
    header_length=st.one_of(st.none(), st.integers(-3, 3), HEADER_TEXT),
    content_type=CONTENT_TYPES,
)
def test_infer_answers_any_binary_extension_request(
    http: httpx.Client,
    doc: dict[str, Any],
    blob: bytes,
    header_length: int | str | None,
    content_type: str,
) -> None:
    head = _dumps(doc).encode()
    if header_length is None:  # the true length
        value = str(len(head))
    elif isinstance(header_length, int):  # off by a few
        value = str(len(head) + header_length)
    else:
        value = header_length
    _post(
        http,
        INFER,
        head + blob,
        {"content-type": content_type, HEADER_LENGTH: value},
    )


@fuzz(80)
@hypothesis.given(
    path=st.sampled_from(["/predict", "/invocations", INFER]),
    content_type=CONTENT_TYPES | HEADER_TEXT,
    encoding=st.none() | st.sampled_from(["identity", "gzip", "br", "IDENTITY"]) | HEADER_TEXT,
    request_id=st.none() | HEADER_TEXT | st.just("x" * 300),
    header_length=st.none() | HEADER_TEXT,
)
def test_valid_bodies_with_odd_headers_get_an_answer(
    http: httpx.Client,
    path: str,
    content_type: str,
    encoding: str | None,
    request_id: str | None,
    header_length: str | None,
) -> None:
    if path == INFER:
        body = _infer_body()
    else:
        key = "records" if path == "/predict" else "dataframe_records"
        body = orjson.dumps({key: [VALID]})
    headers: dict[str, str | bytes] = {"content-type": content_type}
    for name, value in (
        ("content-encoding", encoding),
        ("x-request-id", request_id),
        (HEADER_LENGTH, header_length),
    ):
        if value is not None:
            headers[name] = value
    response = _post(http, path, body, headers)
    if request_id and request_id.isprintable() and len(request_id) <= 200:
        echoed = [v for k, v in response.headers.raw if k.lower() == b"x-request-id"]
        assert echoed == [request_id.encode("latin-1")]


def _infer_body() -> bytes:
    """A valid infer request: one JSON tensor per feature."""
    tensors = [
        {"name": f, "shape": [1], "datatype": "BYTES" if f in CATEGORIES else "FP32", "data": [v]}
        for f, v in VALID.items()
    ]
    return orjson.dumps({"inputs": tensors})


def test_server_survived_the_fuzzing(mixed_server: RunningServer) -> None:
    assert_alive(mixed_server)


# -- explicit cases -------------------------------------------------------------------------

PREDICT_JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("path", ["/predict", "/invocations", INFER])
@pytest.mark.parametrize("body", [b'{"records": [', b"{'records': []}", b"nul", b"\xff\xfe{}"])
def test_malformed_json_is_400(http: httpx.Client, path: str, body: bytes) -> None:
    response = http.post(path, content=body, headers=PREDICT_JSON)
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"
    assert response.json()["error"].startswith("the body is not valid JSON")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/predict", "text/plain"),
        ("/predict", "text/csv"),
        ("/predict", ""),
        ("/invocations", "application/xml"),
        ("/invocations", "multipart/form-data; boundary=x"),
        (INFER, "text/plain"),
    ],
)
def test_wrong_content_type_is_415(http: httpx.Client, path: str, content_type: str) -> None:
    response = http.post(
        path, content=orjson.dumps({"records": [VALID]}), headers={"content-type": content_type}
    )
    assert response.status_code == 415
    assert response.json() == {
        "error": response.json()["error"],
        "code": "unsupported_media_type",
        "field": "Content-Type",
    }


def test_compressed_body_is_415(http: httpx.Client) -> None:
    response = http.post(
        "/predict",
        content=orjson.dumps({"records": [VALID]}),
        headers={**PREDICT_JSON, "content-encoding": "gzip"},
    )
    assert response.status_code == 415
    assert response.json()["field"] == "Content-Encoding"


@pytest.mark.parametrize(
    ("path", "doc", "field"),
    [
        ("/predict", {"records": []}, "records"),
        ("/invocations", {"dataframe_records": []}, "dataframe_records"),
        ("/invocations", {"instances": []}, "instances"),
        ("/invocations", {"inputs": {f: [] for f in FEATURES}}, "inputs"),
        ("/invocations", {"dataframe_split": {"columns": list(FEATURES), "data": []}},
         "dataframe_split.data"),
        (INFER, {"inputs": [{"name": "numeric", "shape": [0, 3], "datatype": "FP32", "data": []},
                            {"name": "categorical", "shape": [0, 2], "datatype": "BYTES",
                             "data": []}]}, "inputs"),
    ],
)  # fmt: skip
def test_empty_batch_is_422(http: httpx.Client, path: str, doc: Any, field: str) -> None:
    response = http.post(path, content=orjson.dumps(doc), headers=PREDICT_JSON)
    assert response.status_code == 422
    assert response.json()["code"] == "empty_batch"
    assert response.json()["field"] == field


def test_empty_csv_is_400(http: httpx.Client) -> None:
    response = http.post("/invocations", content=b"\r\n\n", headers={"content-type": "text/csv"})
    assert response.status_code == 400
    assert response.json()["code"] == "empty_body"


def _eleven_megabytes() -> bytes:
    record = orjson.dumps(VALID)
    n = 11 * 1024 * 1024 // (len(record) + 1) + 1
    return b'{"records":[' + b",".join([record] * n) + b"]}"


@pytest.mark.parametrize("path", ["/predict", "/invocations", INFER])
def test_body_over_the_limit_is_413(http: httpx.Client, path: str) -> None:
    body = _eleven_megabytes()
    assert len(body) > 11 * 1024 * 1024
    response = http.post(path, content=body, headers=PREDICT_JSON)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert "10485760" in response.json()["error"]


def test_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    body = _eleven_megabytes()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    response = http.post("/predict", content=chunks(), headers=PREDICT_JSON)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def _raw_http(server: RunningServer, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes as they are, close the sending half, return everything read back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


def test_declared_length_over_the_limit_is_413_before_the_body_is_sent(
    mixed_server: RunningServer,
) -> None:
    with socket.create_connection(("127.0.0.1", mixed_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 20000000\r\n\r\n"
        )
        answer = b""
        while b"body_too_large" not in answer and (data := sock.recv(65536)):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"body_too_large"' in answer


def test_content_length_shorter_than_the_body_is_refused(mixed_server: RunningServer) -> None:
    body = orjson.dumps({"records": [VALID]})
    answer = _raw_http(
        mixed_server,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 12\r\n\r\n",
        body,
    )
    # The first 12 bytes are a truncated document; the rest is no HTTP request. Either
    # the app or uvicorn says 400 first, depending on when uvicorn parses the rest.
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert_alive(mixed_server)


def test_client_leaving_mid_body_is_not_a_server_error(
    start_server: Callable[..., RunningServer], mixed_bundle: Any
) -> None:
    server = start_server(mixed_bundle)
    answer = _raw_http(
        server,
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n",
        b'{"records": [',
    )
    assert answer == b""  # nobody is left to answer
    assert_alive(server)


# -- each bad value is named by feature and row ---------------------------------------------


def _records(bad: dict[str, Any], drop: str | None = None) -> dict[str, Any]:
    second = {**VALID, **bad}
    if drop:
        del second[drop]
    return {"records": [VALID, second, VALID]}


@pytest.mark.parametrize(
    ("doc", "code", "field"),
    [
        (_records({}, drop="size"), "missing_feature", "records[1].size"),
        (_records({"colour": "red"}), "unknown_feature", "records[1].colour"),
        (_records({"x1": "1.5"}), "wrong_type", "records[1].x1"),
        (_records({"x2": [1.0]}), "wrong_type", "records[1].x2"),
        (_records({"color": 3.5}), "wrong_type", "records[1].color"),
        (_records({"color": True}), "wrong_type", "records[1].color"),
        (_records({"x0": 1e39}), "not_finite", "records[1].x0"),
        (_records({"x0": -(10**40)}), "not_finite", "records[1].x0"),
        (_records({"color": "purple"}), "unseen_category", "records[1].color"),
        (_records({"size": "XL"}), "unseen_category", "records[1].size"),
    ],
)
def test_bad_value_in_predict_is_422_naming_feature_and_row(
    http: httpx.Client, doc: dict[str, Any], code: str, field: str
) -> None:
    response = http.post("/predict", content=_dumps(doc), headers=PREDICT_JSON)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == field


def test_infinity_written_in_the_body_is_refused(http: httpx.Client) -> None:
    records = [_dumps(VALID), _dumps(VALID).replace("0.5", "1e309")]
    assert "1e309" in records[1]
    body = '{"records": [' + ",".join(records) + "]}"
    response = http.post("/predict", content=body, headers=PREDICT_JSON)
    assert response.status_code == 400  # orjson reads 1e309 as no JSON number
    assert response.json()["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("doc", "code", "field"),
    [
        (
            {"dataframe_split": {"columns": list(FEATURES),
                                 "data": [[0.1, "red", 0.2, "S", 0.3],
                                          [0.1, "red", 0.2, "XS", 0.3]]}},
            "unseen_category",
            "dataframe_split.data[1][3]",
        ),
        (
            {"inputs": {**{f: [VALID[f]] * 2 for f in FEATURES}, "color": ["red", 7.5]}},
            "wrong_type",
            "inputs.color[1]",
        ),
        (
            # positional rows follow the schema's order: x0, color, x1, size, x2
            {"instances": [[0.1, "red", 0.2, "S", 0.3], [0.1, "red", 0.2, "S", 1e39]]},
            "not_finite",
            "instances[1][4]",
        ),
        ({"dataframe_records": _records({}, drop="x2")["records"]}, "missing_feature",
         "dataframe_records[1].x2"),
    ],
)  # fmt: skip
def test_bad_value_in_invocations_is_422_naming_feature_and_row(
    http: httpx.Client, doc: dict[str, Any], code: str, field: str
) -> None:
    response = http.post("/invocations", content=_dumps(doc), headers=PREDICT_JSON)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    ("cells", "code", "field"),
    [
        (["0.1", "red", "abc", "S", "0.3"], "wrong_type", "csv[1].x1"),
        (["0.1", "red", "0.2", "S", "inf"], "not_finite", "csv[1].x2"),
        (["0.1", "pink", "0.2", "S", "0.3"], "unseen_category", "csv[1].color"),
    ],
)
def test_bad_value_in_csv_is_422_naming_feature_and_line(
    http: httpx.Client, cells: list[str], code: str, field: str
) -> None:
    body = "\n".join([",".join(FEATURES), "0.1,red,0.2,S,0.3", ",".join(cells)])
    response = http.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == field


def test_duplicate_csv_column_is_422(http: httpx.Client) -> None:
    body = "x0,x1,x2,color,size,x0\n1,2,3,red,S,4\n"
    response = http.post("/invocations", content=body, headers={"content-type": "text/csv"})
    assert response.status_code == 422
    assert response.json()["code"] == "duplicate_feature"
    assert response.json()["field"] == "csv header"


@pytest.mark.parametrize(
    ("tensors", "code", "field"),
    [
        (
            [("numeric", "FP32", [2, 3], [0.1, 0.2, 0.3, 0.1, 0.2, 0.3]),
             ("categorical", "BYTES", [2, 2], ["red", "S", "red", "XL"])],
            "unseen_category",
            "inputs.categorical[1][1] (size)",
        ),
        (
            [("numeric", "FP32", [2, 3], [0.1, 0.2, 0.3, 0.1, "x", 0.3]),
             ("categorical", "BYTES", [2, 2], ["red", "S", "red", "L"])],
            "wrong_type",
            "inputs.numeric[1][1] (x1)",
        ),
        (
            [("x0", "FP32", [2], [0.1, 0.2]), ("x1", "FP32", [2], [0.1, 0.2]),
             ("x2", "FP32", [2, 1], [0.1, 1e39]), ("color", "BYTES", [2], ["red", "blue"]),
             ("size", "BYTES", [2], ["S", "M"])],
            "not_finite",
            "inputs.x2[1]",
        ),
        (
            [("x0", "FP32", [2], [0.1, 0.2]), ("x1", "FP32", [2], [0.1, 0.2]),
             ("x2", "FP32", [2], [0.1, 0.2]), ("color", "BYTES", [2], ["red", "blue"])],
            "missing_feature",
            "inputs.size",
        ),
    ],
)  # fmt: skip
def test_bad_value_in_infer_is_422_naming_tensor_cell(
    http: httpx.Client, tensors: list[tuple[str, str, list[int], list[Any]]], code: str, field: str
) -> None:
    doc = {"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in tensors]}
    response = http.post(INFER, content=_dumps(doc), headers=PREDICT_JSON)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    ("value", "code"),
    [(None, "missing_value"), (1e39, "not_finite"), ("12", "wrong_type")],
)
def test_bad_value_for_a_feature_that_is_not_nullable_is_422(
    cancer_server: RunningServer, value: Any, code: str
) -> None:
    schema = httpx.get(f"{cancer_server.url}/v2/models/breast_cancer").json()
    features = schema["inputs"][0]["parameters"]["features"]
    rows = [dict.fromkeys(features, 1.0) for _ in range(3)]
    rows[2][features[7]] = value
    response = httpx.post(f"{cancer_server.url}/predict", json={"records": rows})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == f"records[2].{features[7]}"


DEEP = "[" * 1015 + "1" + "]" * 1015  # as deep as orjson reads; past Python's recursion limit
BIG = str(2**63 - 1)


@pytest.mark.parametrize(
    ("spec", "code", "field"),
    [
        ('"shape": [1, 3], "datatype": "FP32", "data": [1, 2, {"a": ' + DEEP + "}]",
         "wrong_type", "inputs.numeric[0][2] (x2)"),
        ('"datatype": "FP32", "data": [], "shape": ' + DEEP, "wrong_shape", "inputs[0].shape"),
        ('"datatype": "FP32", "data": [], "shape": [0, ' + BIG + "]",
         "wrong_shape", "inputs[0].shape"),
        ('"datatype": "BYTES", "parameters": {"binary_data_size": 0}, "shape": [0, ' + BIG + "]",
         "wrong_shape", "inputs[0].shape"),
        ('"shape": [1, 3], "data": [1, 2, 3], "datatype": ["FP32"]',
         "wrong_type", "inputs[0].datatype"),
        ('"shape": [1, 3], "data": [1, 2, 3], "datatype": ' + DEEP,
         "wrong_type", "inputs[0].datatype"),
    ],
    ids=["data-deep-object", "shape-deep", "dimension-past-int64",
         "binary-dimension-past-int64", "datatype-list", "datatype-deep"],
)  # fmt: skip
def test_pathological_tensor_specs_are_422(
    http: httpx.Client, spec: str, code: str, field: str
) -> None:
    categorical = orjson.dumps(
        {"name": "categorical", "shape": [1, 2], "datatype": "BYTES", "data": ["red", "S"]}
    ).decode()
    body = '{"inputs": [{"name": "numeric", ' + spec + "}, " + categorical + "]}"
    response = http.post(INFER, content=body, headers=PREDICT_JSON)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    assert response.json()["field"] == field


def test_deeply_nested_tensor_data_is_flattened(http: httpx.Client) -> None:
    numeric = '{"name": "numeric", "shape": [1, 3], "datatype": "FP32", "data": [0.5, -1, ' + DEEP
    categorical = (
        '{"name": "categorical", "shape": [1, 2], "datatype": "BYTES", "data": ["red", "S"]}'
    )
    body = '{"inputs": [' + numeric + "]}, " + categorical + "]}"
    deep = http.post(INFER, content=body, headers=PREDICT_JSON)
    flat = http.post(INFER, content=body.replace(DEEP, "1"), headers=PREDICT_JSON)
    assert deep.status_code == flat.status_code == 200, deep.text
    assert deep.json()["outputs"] == flat.json()["outputs"]


def test_pathological_output_request_is_422(http: httpx.Client) -> None:
    doc = orjson.loads(_infer_body()) | {"outputs": [{"name": "label"}, {"name": "label"}]}
    response = http.post(INFER, content=orjson.dumps(doc), headers=PREDICT_JSON)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "duplicate_output"
    assert response.json()["field"] == "outputs[1]"


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_values_nested_past_the_recursion_limit_are_422(http: httpx.Client, path: str) -> None:
    record = '{"x0":' + DEEP + ',"x1":1,"x2":1,"color":"red","size":"S"}'
    key = "records" if path == "/predict" else "dataframe_records"
    body = '{"' + key + '":[' + record + "]}"
    response = http.post(path, content=body, headers=PREDICT_JSON)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"{key}[0].x0"
