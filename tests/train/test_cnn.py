"""The CNN family: a scikit-learn classifier over an image feature, exported to ONNX."""

from __future__ import annotations

import time
import warnings

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from mlcycle.config.structured import CNNConfig, LogRegConfig, PreprocessConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import ConfigError, DataError, NotFittedError
from mlcycle.export.bundle import make_signature
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import check_parity
from mlcycle.train.cnn import CNNClassifier, stack_images
from mlcycle.train.estimators import make_estimator
from mlcycle.train.fit import TrainedModel, fit_model
from mlcycle.train.pipeline import build_pipeline, model_frame, onnx_inputs
from tests import _datasets

# The CNN needs PyTorch (the `torch` extra).
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    return _datasets.split(_datasets.digits_dataset(), train_share=0.75, seed=0)


@pytest.fixture(scope="module")
def trained(digits: tuple[Dataset, Dataset]) -> tuple[TrainedModel, float]:
    start = time.perf_counter()
    model = fit_model(digits[0], CNNConfig(), TrainConfig(seed=0))
    return model, time.perf_counter() - start


def test_cnn_reaches_95_percent_test_accuracy_on_digits_in_seconds(
    digits: tuple[Dataset, Dataset], trained: tuple[TrainedModel, float]
) -> None:
    model, seconds = trained
    test = digits[1]
    predicted = model.pipeline.predict(model_frame(test, test.schema))
    accuracy = float(np.mean(predicted == test.y))
    assert accuracy >= 0.95, accuracy
    assert seconds < 60, seconds  # about 1.5 s on one free core
    assert model.classes == [str(d) for d in range(10)]


def test_cnn_fit_is_deterministic_for_a_seed_and_leaves_torch_global_state_alone() -> None:
    import torch

    ds = _datasets.digits_dataset(rows=300)
    frame = model_frame(ds, ds.schema)
    before = torch.random.get_rng_state()
    a = CNNClassifier(epochs=2, random_state=3).fit(frame, ds.y).predict_proba(frame)
    b = CNNClassifier(epochs=2, random_state=3).fit(frame, ds.y).predict_proba(frame)
    c = CNNClassifier(epochs=2, random_state=4).fit(frame, ds.y).predict_proba(frame)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert torch.equal(before, torch.random.get_rng_state())


def test_cnn_clones_and_cross_val_predicts_through_the_pipeline() -> None:
    ds = _datasets.digits_dataset(rows=400)
    pipeline = build_pipeline(ds.schema, CNNConfig(epochs=3), PreprocessConfig(), seed=0)
    cloned = clone(pipeline)
    assert cloned.get_params()["model__epochs"] == 3
    assert cloned.named_steps["model"] is not pipeline.named_steps["model"]
    proba = cross_val_predict(
        pipeline, model_frame(ds, ds.schema), ds.y, cv=3, method="predict_proba"
    )
    assert proba.shape == (400, 10)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert float(np.mean(np.array(ds.schema.classes)[proba.argmax(axis=1)] == ds.y)) > 0.5


def test_cnn_takes_image_arrays_of_both_layouts() -> None:
    grey = np.zeros((4, 8, 8), np.uint8)
    assert stack_images(grey).shape == (4, 1, 8, 8)
    assert stack_images(grey[:, None]).dtype == np.float32


def test_cnn_refuses_images_of_another_shape_than_its_training_images() -> None:
    ds = _datasets.digits_dataset(rows=60)
    clf = CNNClassifier(epochs=1).fit(model_frame(ds, ds.schema), ds.y)
    with pytest.raises(DataError, match=r"shape \[1, 8, 7\]; the CNN was trained on \[1, 8, 8\]"):
        clf.predict_proba(np.zeros((2, 1, 8, 7), np.float32))


def test_cnn_before_fit_raises_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        CNNClassifier().predict_proba(np.zeros((1, 1, 8, 8)))


def test_cnn_config_maps_c_to_weight_decay_and_checks_its_values() -> None:
    est = make_estimator(CNNConfig(C=4.0, channels=[8]), seed=7)
    assert (est.weight_decay, est.channels, est.random_state) == (0.25, [8], 7)
    with pytest.raises(ConfigError, match=r"model\.epochs must be a positive integer; got 0"):
        make_estimator(CNNConfig(epochs=0), seed=0)
    with pytest.raises(ConfigError, match=r"model\.channels must be a non-empty list"):
        make_estimator(CNNConfig(channels=[]), seed=0)


def test_sanity_check_gives_the_cnn_as_many_steps_as_on_the_full_data() -> None:
    from mlcycle.train.sanity import sanity_check

    result = sanity_check(_datasets.digits_dataset(), CNNConfig(epochs=3), TrainConfig())
    assert result.passed, result.message
    assert result.rows == 32


def test_build_pipeline_image_data_with_a_tabular_family_says_to_use_cnn() -> None:
    schema = _datasets.digits_dataset(rows=10).schema
    with pytest.raises(
        ConfigError, match=r"image feature\(s\) \['image'\].*model=logreg.*model=cnn"
    ):
        build_pipeline(schema, LogRegConfig(), PreprocessConfig(), seed=0)


def test_build_pipeline_cnn_on_tabular_data_says_what_to_use() -> None:
    schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
    with pytest.raises(
        ConfigError, match=r"exactly one image feature.*no image feature.*model=logreg"
    ):
        build_pipeline(schema, CNNConfig(), PreprocessConfig(), seed=0)
    mixed = Schema(
        "y",
        ["a", "b"],
        [FeatureSpec("im", "image", shape=[1, 2, 2]), FeatureSpec("x", "numeric")],
    )
    with pytest.raises(ConfigError, match=r"other features \['x'\]"):
        build_pipeline(mixed, CNNConfig(), PreprocessConfig(), seed=0)


def test_cnn_export_keeps_the_exporter_quiet(
    digits: tuple[Dataset, Dataset],
    trained: tuple[TrainedModel, float],
    capfd: pytest.CaptureFixture[str],
) -> None:
    to_onnx(trained[0].pipeline, digits[1].schema)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_cnn_exports_to_onnx_with_a_dynamic_batch_and_matches_torch(
    digits: tuple[Dataset, Dataset], trained: tuple[TrainedModel, float]
) -> None:
    model, _ = trained
    val = digits[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the exporter's own warnings are handled inside
        start = time.perf_counter()
        onx = to_onnx(model.pipeline, val.schema)
        seconds = time.perf_counter() - start
    assert seconds < 120
    report = check_parity(model, onx, val, 1e-4)
    assert report.passed and report.max_abs_diff < 1e-5 and report.label_mismatches == 0

    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = onnx_inputs(model_frame(val, val.schema), val.schema)
    assert list(inputs) == ["image"] and inputs["image"].shape == (len(val), 1, 8, 8)
    for n in (1, 2, 7):
        labels, proba = session.run(["label", "probabilities"], {"image": inputs["image"][:n]})
        expected = model.predict_proba(val.subset(np.arange(n)))
        assert proba.shape == (n, 10) and labels.shape == (n,)
        assert np.abs(proba - expected).max() < 1e-5
        assert labels.tolist() == [model.classes[k] for k in expected.argmax(axis=1)]

    props = {p.key: p.value for p in onx.metadata_props}
    assert props["mlcycle.image"] == '["image"]'
    assert [o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")] == [18]
    signature = make_signature(val.schema, model.classes, onx, "digits")
    assert signature["inputs"] == [
        {"name": "image", "dtype": "float32", "shape": [None, 1, 8, 8], "features": ["image"]}
    ]
    assert [o["name"] for o in signature["outputs"]] == ["label", "probabilities"]


@pytest.mark.slow
def test_cli_trains_the_digits_cnn_into_a_registered_bundle(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import json

    from tests._cli import run

    root = tmp_path_factory.mktemp("cli-cnn") / "proj"
    run(["init", str(root)], cwd=root.parent)
    proc = run(["train", "data=digits", "model=cnn", "model.epochs=8"], cwd=root)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    assert "onnx_ir" not in output and "torch" not in output  # the exporter stays quiet
    assert "version 1 (alias challenger)" in output
    (bundle,) = (root / "bundles" / "digits").iterdir()
    signature = json.loads((bundle / "signature.json").read_text())
    assert signature["inputs"] == [
        {"name": "image", "dtype": "float32", "shape": [None, 1, 8, 8], "features": ["image"]}
    ]
    assert signature["features"][0]["kind"] == "image"
    evaluation = json.loads((bundle / "evaluation.json").read_text())
    assert evaluation["splits"]["test"]["accuracy"] >= 0.9
    assert evaluation["parity"]["passed"] and evaluation["parity"]["max_abs_diff"] <= 1e-4
    profile = json.loads((bundle / "profile.json").read_text())
    assert profile["features"]["image"]["brightness"]["sample"]
