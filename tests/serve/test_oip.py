"""Open Inference Protocol v2 against a real ``mlcycle serve``, with the stock client.

``tritonclient.http`` talks to the server unmodified: health, model metadata, and
inference with the binary tensor extension and with plain JSON, for outputs requested in
binary, in JSON, or not at all (the client then asks for binary outputs). Every answer is
compared with :meth:`mlcycle.bundle.Bundle.predict` on the same rows. Per-feature
tensors and the response headers are checked over raw HTTP.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from sklearn.datasets import load_breast_cancer
from tritonclient.utils import InferenceServerException

from mlcycle.bundle import Bundle
from tests.serve.conftest import RunningServer

HEADER_LENGTH = "Inference-Header-Content-Length"

# Mixed-bundle rows: numeric x0, x1, x2 (NaN is missing) and categorical color, size
# ("" is missing); bytes and str both make BYTES elements.
MIXED_NUMERIC = np.array(
    [
        [0.5, -1.0, 0.2],
        [np.nan, 0.3, 1.1],
        [2.0, np.nan, -0.5],
        [-1.5, 0.0, np.nan],
        [1.2, 0.7, 0.1],
        [-0.3, -0.2, 0.4],
    ],
    dtype=np.float32,
)
MIXED_CATEGORICAL = np.array(
    [[b"red", b"S"], ["blue", "L"], [b"", b"M"], ["green", ""], [b"red", "L"], ["blue", b"S"]],
    dtype=object,
)


@pytest.fixture(scope="module", params=["cancer", "mixed"])
def served(request: pytest.FixtureRequest) -> tuple[RunningServer, Bundle]:
    """Each module server with its bundle, loaded in-process for the expected answers."""
    server: RunningServer = request.getfixturevalue(f"{request.param}_server")
    bundle_path: Path = request.getfixturevalue(f"{request.param}_bundle")
    return server, Bundle.load(bundle_path)


@pytest.fixture()
def client(served: tuple[RunningServer, Bundle]) -> Iterator[Any]:
    """A ``tritonclient.http`` client for the served bundle's server."""
    server, _ = served
    with httpclient.InferenceServerClient(server.url.removeprefix("http://")) as c:
        yield c


def _model_inputs(bundle: Bundle, *, finite: bool) -> dict[str, np.ndarray[Any, Any]]:
    """Rows in the model's own input layout; ``finite`` drops missing numbers (JSON has no NaN)."""
    if bundle.input_names == ["numeric"]:
        data = load_breast_cancer()
        names = list(data.feature_names)
        columns = [names.index(f) for f in bundle.signature["inputs"][0]["features"]]
        return {"numeric": data.data[::57, columns].astype(np.float32)}
    numeric = np.nan_to_num(MIXED_NUMERIC) if finite else MIXED_NUMERIC
    return {"numeric": numeric, "categorical": MIXED_CATEGORICAL}


def _expected(
    bundle: Bundle, inputs: dict[str, np.ndarray[Any, Any]]
) -> tuple[list[str], np.ndarray[Any, Any]]:
    decoded = {
        name: np.vectorize(_text, otypes=[object])(arr) if arr.dtype == object else arr
        for name, arr in inputs.items()
    }
    labels, proba = bundle.predict(decoded)
    return labels.tolist(), proba


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _infer_inputs(inputs: dict[str, np.ndarray[Any, Any]], binary: bool) -> list[Any]:
    out = []
    for name, arr in inputs.items():
        datatype = "BYTES" if arr.dtype == object else "FP32"
        tensor = httpclient.InferInput(name, list(arr.shape), datatype)
        tensor.set_data_from_numpy(arr, binary_data=binary)
        out.append(tensor)
    return out


def _version(server: RunningServer, name: str) -> str:
    version: str = httpx.get(f"{server.url}/v2/models/{name}").json()["versions"][0]
    return version


# -- health and metadata ------------------------------------------------------------------


def test_server_and_model_report_live_and_ready(
    client: Any, served: tuple[RunningServer, Bundle]
) -> None:
    _, bundle = served
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(bundle.model_name)
    assert not client.is_model_ready("no-such-model")


def test_server_metadata_announces_the_binary_extension(client: Any) -> None:
    meta = client.get_server_metadata()
    assert meta["name"] == "mlcycle"
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_describes_the_signature(
    client: Any, served: tuple[RunningServer, Bundle]
) -> None:
    _, bundle = served
    meta = client.get_model_metadata(bundle.model_name)
    assert meta["name"] == bundle.model_name
    assert len(meta["versions"]) == 1
    expected_inputs = [
        {
            "name": spec["name"],
            "datatype": "FP32" if spec["dtype"] == "float32" else "BYTES",
            "shape": [-1, len(spec["features"])],
            "parameters": {"features": spec["features"]},
        }
        for spec in bundle.signature["inputs"]
    ]
    assert meta["inputs"] == expected_inputs
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {
            "name": "probabilities",
            "datatype": "FP32",
            "shape": [-1, len(bundle.classes)],
            "parameters": {"classes": bundle.classes},
        },
    ]


def test_mixed_model_metadata_has_numeric_and_categorical_inputs(
    mixed_server: RunningServer,
) -> None:
    with httpclient.InferenceServerClient(mixed_server.url.removeprefix("http://")) as c:
        meta = c.get_model_metadata("mixed")
    assert [(i["name"], i["datatype"], i["parameters"]["features"]) for i in meta["inputs"]] == [
        ("numeric", "FP32", ["x0", "x1", "x2"]),
        ("categorical", "BYTES", ["color", "size"]),
    ]
    assert meta["outputs"][1]["parameters"]["classes"] == ["high", "low", "mid"]


# -- inference through the client ----------------------------------------------------------


@pytest.mark.parametrize("outputs", ["binary", "json", "none"])
@pytest.mark.parametrize("binary_inputs", [True, False], ids=["binary-in", "json-in"])
def test_infer_matches_bundle_predict(
    client: Any, served: tuple[RunningServer, Bundle], binary_inputs: bool, outputs: str
) -> None:
    server, bundle = served
    inputs = _model_inputs(bundle, finite=not binary_inputs)
    labels, proba = _expected(bundle, inputs)
    assert len(set(labels)) > 1, "rows that all get one label would prove little"
    requested = None
    if outputs != "none":
        requested = [
            httpclient.InferRequestedOutput(name, binary_data=outputs == "binary")
            for name in ("label", "probabilities")
        ]

    result = client.infer(
        bundle.model_name, _infer_inputs(inputs, binary_inputs), outputs=requested
    )

    assert [_text(v) for v in result.as_numpy("label").tolist()] == labels
    np.testing.assert_allclose(result.as_numpy("probabilities"), proba, rtol=0, atol=1e-6)
    response = result.get_response()
    assert response["model_name"] == bundle.model_name
    assert response["model_version"] == _version(server, bundle.model_name)
    sent_binary = {
        o["name"]: "binary_data_size" in o.get("parameters", {}) for o in response["outputs"]
    }
    assert sent_binary == {"label": outputs != "json", "probabilities": outputs != "json"}


def test_infer_returns_only_the_requested_output(
    client: Any, served: tuple[RunningServer, Bundle]
) -> None:
    _, bundle = served
    inputs = _model_inputs(bundle, finite=False)
    _, proba = _expected(bundle, inputs)
    result = client.infer(
        bundle.model_name,
        _infer_inputs(inputs, True),
        outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=True)],
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    np.testing.assert_allclose(result.as_numpy("probabilities"), proba, rtol=0, atol=1e-6)


def test_infer_echoes_the_request_id(client: Any, served: tuple[RunningServer, Bundle]) -> None:
    _, bundle = served
    inputs = _model_inputs(bundle, finite=False)
    result = client.infer(bundle.model_name, _infer_inputs(inputs, True), request_id="req-42")
    assert result.get_response()["id"] == "req-42"


# -- versions -----------------------------------------------------------------------------


def test_version_routes_answer_for_the_served_version(
    client: Any, served: tuple[RunningServer, Bundle]
) -> None:
    _, bundle = served
    name = bundle.model_name
    version = client.get_model_metadata(name)["versions"][0]
    inputs = _model_inputs(bundle, finite=False)
    labels, _ = _expected(bundle, inputs)

    assert client.is_model_ready(name, version)
    assert client.get_model_metadata(name, version)["versions"] == [version]
    result = client.infer(name, _infer_inputs(inputs, True), model_version=version)

    assert [_text(v) for v in result.as_numpy("label").tolist()] == labels
    assert result.get_response()["model_version"] == version


def test_version_routes_refuse_another_version(
    client: Any, served: tuple[RunningServer, Bundle]
) -> None:
    _, bundle = served
    name = bundle.model_name
    inputs = _model_inputs(bundle, finite=False)
    assert not client.is_model_ready(name, "0")
    with pytest.raises(InferenceServerException, match="version '0' is not served") as meta:
        client.get_model_metadata(name, "0")
    assert meta.value.status() == "404"
    with pytest.raises(InferenceServerException, match="version '0' is not served") as infer:
        client.infer(name, _infer_inputs(inputs, True), model_version="0")
    assert infer.value.status() == "404"


# -- errors through the client --------------------------------------------------------------


def test_unknown_model_is_refused(client: Any, served: tuple[RunningServer, Bundle]) -> None:
    _, bundle = served
    inputs = _model_inputs(bundle, finite=False)
    with pytest.raises(InferenceServerException, match="'no-such-model' is not served") as exc:
        client.infer("no-such-model", _infer_inputs(inputs, True))
    assert exc.value.status() == "404"
    with pytest.raises(InferenceServerException, match="is not served"):
        client.get_model_metadata("no-such-model")


@pytest.mark.parametrize("binary_inputs", [True, False], ids=["binary-in", "json-in"])
def test_wrong_shape_names_the_input(
    client: Any, served: tuple[RunningServer, Bundle], binary_inputs: bool
) -> None:
    _, bundle = served
    inputs = _model_inputs(bundle, finite=True)
    inputs["numeric"] = inputs["numeric"][:, :2]
    with pytest.raises(
        InferenceServerException, match=r"input 'numeric' has shape \[\d+, 2\]; expected"
    ) as exc:
        client.infer(bundle.model_name, _infer_inputs(inputs, binary_inputs))
    assert exc.value.status() == "422"


def test_missing_categorical_input_is_named(mixed_server: RunningServer) -> None:
    numeric = np.nan_to_num(MIXED_NUMERIC)
    with (
        httpclient.InferenceServerClient(mixed_server.url.removeprefix("http://")) as c,
        pytest.raises(InferenceServerException, match="input 'categorical' is missing") as exc,
    ):
        c.infer("mixed", _infer_inputs({"numeric": numeric}, True))
    assert exc.value.status() == "422"


def test_unseen_category_names_the_tensor_cell(mixed_server: RunningServer) -> None:
    categorical = MIXED_CATEGORICAL.copy()
    categorical[2, 1] = b"XL"
    inputs = {"numeric": MIXED_NUMERIC, "categorical": categorical}
    with (
        httpclient.InferenceServerClient(mixed_server.url.removeprefix("http://")) as c,
        pytest.raises(InferenceServerException, match="'size' got 'XL'") as exc,
    ):
        c.infer("mixed", _infer_inputs(inputs, True))
    assert exc.value.status() == "422"


def test_nan_for_a_feature_that_is_not_nullable_names_the_cell(
    cancer_server: RunningServer,
) -> None:
    numeric = np.ones((3, 30), dtype=np.float32)
    numeric[1, 4] = np.nan
    with (
        httpclient.InferenceServerClient(cancer_server.url.removeprefix("http://")) as c,
        pytest.raises(InferenceServerException, match="is missing") as exc,
    ):
        c.infer("breast_cancer", _infer_inputs({"numeric": numeric}, True))
    assert exc.value.status() == "422"


# -- raw HTTP: per-feature tensors and headers ----------------------------------------------


def _feature_tensor(name: str, values: list[Any], numeric: bool, column: bool) -> dict[str, Any]:
    shape = [len(values), 1] if column else [len(values)]
    return {
        "name": name,
        "shape": shape,
        "datatype": "FP32" if numeric else "BYTES",
        "data": values,
    }


def _columns(bundle: Bundle, inputs: dict[str, np.ndarray[Any, Any]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for spec in bundle.signature["inputs"]:
        arr = inputs[spec["name"]]
        for j, feature in enumerate(spec["features"]):
            columns[feature] = [_text(v) if arr.dtype == object else float(v) for v in arr[:, j]]
    return columns


@pytest.mark.parametrize("column", [False, True], ids=["[N]", "[N,1]"])
def test_per_feature_json_tensors_match_bundle_predict(
    served: tuple[RunningServer, Bundle], column: bool
) -> None:
    server, bundle = served
    columns = _columns(bundle, _model_inputs(bundle, finite=True))
    if "x1" in columns:
        columns["x1"][0] = None  # null is a missing value in JSON
    kinds = {f: s["dtype"] == "float32" for s in bundle.signature["inputs"] for f in s["features"]}
    body = {"inputs": [_feature_tensor(f, v, kinds[f], column) for f, v in columns.items()]}

    response = httpx.post(f"{server.url}/v2/models/{bundle.model_name}/infer", json=body)

    assert response.status_code == 200, response.text
    labels, proba = bundle.predict_columns(columns)
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["label"]["data"] == labels.tolist()
    assert outputs["probabilities"]["shape"] == list(proba.shape)
    np.testing.assert_allclose(
        np.array(outputs["probabilities"]["data"]).reshape(proba.shape), proba, rtol=0, atol=1e-6
    )


def _binary_request(
    tensors: list[tuple[str, np.ndarray[Any, Any]]], outputs: list[str]
) -> tuple[bytes, dict[str, str]]:
    """An infer request in the binary tensor extension, as tritonclient builds one."""
    specs, blobs = [], []
    for name, arr in tensors:
        if arr.dtype == object:
            raw = b"".join(
                struct.pack("<I", len(b)) + b for b in (_text(v).encode() for v in arr.ravel())
            )
            datatype = "BYTES"
        else:
            raw, datatype = arr.astype("<f4").tobytes(), "FP32"
        specs.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        blobs.append(raw)
    head = orjson.dumps(
        {
            "inputs": specs,
            "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in outputs],
        }
    )
    headers = {"content-type": "application/octet-stream", HEADER_LENGTH: str(len(head))}
    return head + b"".join(blobs), headers


def test_per_feature_binary_tensors_match_bundle_predict(
    mixed_server: RunningServer, mixed_bundle: Path
) -> None:
    bundle_inputs = {"numeric": MIXED_NUMERIC, "categorical": MIXED_CATEGORICAL}
    tensors = [
        ("x0", MIXED_NUMERIC[:, 0]),
        ("color", MIXED_CATEGORICAL[:, 0]),
        ("x1", MIXED_NUMERIC[:, 1]),
        ("size", MIXED_CATEGORICAL[:, 1]),
        ("x2", MIXED_NUMERIC[:, 2]),
    ]
    body, headers = _binary_request(tensors, ["probabilities"])

    response = httpx.post(
        f"{mixed_server.url}/v2/models/mixed/infer", content=body, headers=headers
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    n = int(response.headers[HEADER_LENGTH])
    head = orjson.loads(response.content[:n])
    (output,) = head["outputs"]
    assert output["name"] == "probabilities"
    assert output["parameters"]["binary_data_size"] == len(response.content) - n
    proba = np.frombuffer(response.content[n:], dtype="<f4").reshape(output["shape"])
    _, expected = _expected(Bundle.load(mixed_bundle), bundle_inputs)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-6)


def test_infer_response_carries_request_id_and_model_version(
    served: tuple[RunningServer, Bundle],
) -> None:
    server, bundle = served
    inputs = _model_inputs(bundle, finite=False)
    body, headers = _binary_request(list(inputs.items()), ["label"])
    url = f"{server.url}/v2/models/{bundle.model_name}/infer"
    version = _version(server, bundle.model_name)

    given = httpx.post(url, content=body, headers={**headers, "X-Request-ID": "trace-7"})
    generated = httpx.post(url, content=body, headers=headers)

    assert given.status_code == generated.status_code == 200
    assert given.headers["x-request-id"] == "trace-7"
    assert given.headers["x-model-version"] == version
    assert generated.headers["x-model-version"] == version
    rid = generated.headers["x-request-id"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    head = orjson.loads(generated.content[: int(generated.headers[HEADER_LENGTH])])
    assert head["id"] == rid


def test_infer_error_carries_headers_and_json_error(served: tuple[RunningServer, Bundle]) -> None:
    server, bundle = served
    response = httpx.post(
        f"{server.url}/v2/models/{bundle.model_name}/infer",
        json={"inputs": [{"name": "numeric", "shape": [1], "datatype": "FP33", "data": [1]}]},
        headers={"X-Request-ID": "bad-1"},
    )
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "bad-1"
    assert response.headers["x-model-version"] == _version(server, bundle.model_name)
    error = response.json()
    assert isinstance(error["error"], str) and error["error"]
    assert error["code"] == "wrong_type"
    assert error["field"] == "inputs[0].datatype"
    assert "'FP33' is not an OIP datatype" in error["error"]
