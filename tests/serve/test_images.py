"""An image model served over HTTP: JSON images, OIP tensors, and clear 4xx for bad images."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.bundle import Bundle
from tests._bundles import build_bundle
from tests._datasets import digits_dataset
from tests.serve.conftest import RunningServer, _module_server
from tests.serve.test_app import call, post_json
from tests.serve.test_monitoring import _wait_for_rows

# The CNN needs PyTorch (the `torch` extra).
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle("digits", tmp_path_factory.mktemp("digits") / "bundle")


@pytest.fixture(scope="module")
def digits_server(
    digits_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    # The prediction log expanded at once: the tests read its table.
    yield from _module_server(digits_bundle, tmp_path_factory, "serve.monitor.expand_after=0")


@pytest.fixture(scope="module")
def images() -> np.ndarray[Any, Any]:
    frame = digits_dataset(rows=12).frame
    return np.stack(frame["image"].tolist())  # [12, 1, 8, 8]


def _expected(bundle: Path, images: np.ndarray[Any, Any]) -> tuple[list[str], Any]:
    labels, proba = Bundle.load(bundle).predict({"image": images})
    return labels.tolist(), proba


def test_predict_takes_images_as_nested_lists_of_both_layouts(
    digits_server: RunningServer, digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    records = [{"image": im.tolist()} for im in images[:3]]  # [1][8][8]
    records += [{"image": im[0].tolist()} for im in images[3:6]]  # [8][8]: one channel
    status, _, doc = post_json(f"{digits_server.url}/predict", {"records": records})
    assert status == 200, doc
    labels, proba = _expected(digits_bundle, images[:6])
    assert [p["label"] for p in doc["predictions"]] == labels
    got = np.array([[p["probabilities"][str(d)] for d in range(10)] for p in doc["predictions"]])
    np.testing.assert_allclose(got, proba, atol=1e-6)


def test_invocations_take_images_in_dataframe_split_and_instances(
    digits_server: RunningServer, digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    url = f"{digits_server.url}/invocations"
    labels, _ = _expected(digits_bundle, images[:2])
    split = {
        "dataframe_split": {"columns": ["image"], "data": [[im.tolist()] for im in images[:2]]}
    }
    status, _, doc = post_json(url, split)
    assert status == 200 and [p["label"] for p in doc["predictions"]] == labels
    status, _, doc = post_json(url, {"instances": [[im[0].tolist()] for im in images[:2]]})
    assert status == 200 and [p["label"] for p in doc["predictions"]] == labels


def test_oip_takes_image_tensors_in_json_and_binary(
    digits_server: RunningServer, digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    status, _, meta = call(f"{digits_server.url}/v2/models/digits")
    assert status == 200
    assert meta["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, 1, 8, 8],
         "parameters": {"features": ["image"]}}
    ]  # fmt: skip
    url = f"{digits_server.url}/v2/models/digits/infer"
    labels, proba = _expected(digits_bundle, images[:7])
    for shape in ([7, 1, 8, 8], [7, 8, 8]):
        body = {
            "inputs": [
                {"name": "image", "shape": shape, "datatype": "FP32",
                 "data": images[:7].ravel().tolist()}
            ]
        }  # fmt: skip
        status, _, doc = post_json(url, body)
        assert status == 200, doc
        out = {o["name"]: o for o in doc["outputs"]}
        assert out["label"]["data"] == labels
        np.testing.assert_allclose(
            np.array(out["probabilities"]["data"]).reshape(7, 10), proba, atol=1e-6
        )
    raw = images[:7].astype("<f4").tobytes()
    head = json.dumps(
        {"inputs": [{"name": "image", "shape": [7, 1, 8, 8], "datatype": "FP32",
                     "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()  # fmt: skip
    status, _, doc = call(
        url, head + raw, "application/octet-stream", inference_header_content_length=str(len(head))
    )
    assert status == 200, doc
    assert {o["name"]: o for o in doc["outputs"]}["label"]["data"] == labels


@pytest.mark.parametrize(
    ("image", "code", "message"),
    [
        (
            [[0.0] * 7] * 8,
            "wrong_shape",
            "image feature 'image' at records[0].image has shape [8, 7]; the model expects "
            "[1, 8, 8] (1 channel, 8x8) or [8, 8]",
        ),
        (
            [[[0.0] * 8] * 8] * 3,
            "wrong_shape",
            "image feature 'image' at records[0].image has shape [3, 8, 8]; the model "
            "expects [1, 8, 8] (1 channel, 8x8) or [8, 8]",
        ),
        (
            [[0.0] * 8] * 7 + [[0.0] * 8 + ["x"]],
            "wrong_shape",
            "image feature 'image' at records[0].image is not a rectangular array",
        ),
        (
            [[0.0] * 8] * 7 + [[0.0] * 7 + ["x"]],
            "wrong_type",
            "image feature 'image' at records[0].image holds a string 'x'; every pixel must "
            "be a number",
        ),
        (
            "a cat",
            "wrong_type",
            "image feature 'image' at records[0].image is a string 'a cat'; send the image "
            "as a nested list of numbers",
        ),
        (None, "missing_value", "image feature 'image' at records[0].image is missing (null)"),
        (
            [[1e39] * 8] * 8,
            "not_finite",
            "image feature 'image' at records[0].image holds NaN or infinite pixels",
        ),
    ],
)
def test_bad_images_are_a_422_naming_the_field_and_the_expected_shape(
    digits_server: RunningServer, image: Any, code: str, message: str
) -> None:
    status, _, doc = post_json(f"{digits_server.url}/predict", {"records": [{"image": image}]})
    assert status == 422
    assert doc["code"] == code
    assert doc["field"] == "records[0].image"
    assert doc["error"].startswith(message), doc["error"]


def test_oip_image_tensor_of_the_wrong_shape_is_a_422(digits_server: RunningServer) -> None:
    body = {"inputs": [{"name": "image", "shape": [2, 3, 8, 8], "datatype": "FP32",
                        "data": [0.0] * 384}]}  # fmt: skip
    status, _, doc = post_json(f"{digits_server.url}/v2/models/digits/infer", body)
    assert status == 422 and doc["code"] == "wrong_shape"
    assert "input 'image' has shape [2, 3, 8, 8]; the model expects [N, 1, 8, 8]" in doc["error"]


def test_csv_to_an_image_model_says_to_send_json(digits_server: RunningServer) -> None:
    status, _, doc = call(f"{digits_server.url}/invocations", b"image\n1\n", "text/csv")
    assert status == 415 and doc["code"] == "images_need_json"
    assert "send images as JSON" in doc["error"]


def test_openapi_describes_the_image_as_nested_numbers(digits_server: RunningServer) -> None:
    status, _, doc = call(f"{digits_server.url}/openapi.json")
    assert status == 200
    image = doc["components"]["schemas"]["Record"]["properties"]["image"]
    first = image["oneOf"][0]
    assert (first["minItems"], first["items"]["minItems"], first["items"]["items"]["maxItems"]) == (
        1,
        8,
        8,
    )


def test_the_monitor_logs_brightness_and_contrast_not_pixels(
    digits_server: RunningServer, images: np.ndarray[Any, Any]
) -> None:
    records = [{"image": im.tolist()} for im in images[:4]]
    status, _, _ = post_json(
        f"{digits_server.url}/predict", {"records": records}, x_request_id="img-log"
    )
    assert status == 200
    db = Path(digits_server.log).parent / "monitor.db"
    rows = _wait_for_rows(
        db, "SELECT row, features FROM predictions WHERE request_id = 'img-log' ORDER BY row", 4
    )
    assert len(rows) == 4
    features = json.loads(rows[1][1])
    assert set(features) == {"image.brightness", "image.contrast"}
    assert features["image.brightness"] == pytest.approx(float(images[1].mean()), rel=1e-5)
    assert features["image.contrast"] == pytest.approx(float(images[1].std()), rel=1e-5)


def test_batch_scoring_and_the_web_site_refuse_an_image_model_clearly(
    digits_bundle: Path, tmp_path: Path
) -> None:
    from mlcycle.batch.scoring import check_features
    from mlcycle.deploy.web import build_web_site
    from mlcycle.exceptions import DeployError, SchemaError

    bundle = Bundle.load(digits_bundle)
    with pytest.raises(SchemaError, match=r"image feature 'image'.*cannot hold images"):
        check_features(["image"], bundle, tmp_path / "x.csv")
    with pytest.raises(DeployError, match="cannot take images yet"):
        build_web_site(digits_bundle, tmp_path / "site")


def test_a_review_holds_the_image_pixels_for_the_reviewer(
    start_server: Callable[..., RunningServer],
    digits_bundle: Path,
    images: np.ndarray[Any, Any],
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "reviewers.token"
    token_file.write_text("img-reviewer\n")
    server = start_server(
        digits_bundle,
        "serve.automation.mode=assist",
        f"serve.automation.reviewer_token_file={token_file}",
    )
    status, _, doc = post_json(
        f"{server.url}/predict", {"records": [{"image": images[0][0].tolist()}]}
    )
    assert status == 202, doc
    review_id = doc["predictions"][0]["review_id"]
    status, _, shown = call(
        f"{server.url}/review/api/items/{review_id}", authorization="Bearer img-reviewer"
    )
    assert status == 200, shown
    assert np.array_equal(np.array(shown["features"]["image"]), images[0])
    assert shown["suggestion"] in [str(d) for d in range(10)]


def test_bundle_predict_columns_takes_a_column_of_images(
    digits_bundle: Path, images: np.ndarray[Any, Any]
) -> None:
    from mlcycle.bundle import BundleInputError

    bundle = Bundle.load(digits_bundle)
    labels, proba = bundle.predict_columns({"image": [im[0] for im in images[:3]]})
    assert labels.tolist() == _expected(digits_bundle, images[:3])[0] and proba.shape == (3, 10)
    with pytest.raises(BundleInputError, match=r"images of shape \[1, 8, 7\]; the model expects"):
        bundle.predict_columns({"image": [np.zeros((8, 7))]})
