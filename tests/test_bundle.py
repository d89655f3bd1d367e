"""mlcycle.bundle.Bundle: verified loading and predictions, with numpy + onnxruntime only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle.bundle import Bundle, BundleInputError, sha256_file
from mlcycle.config.structured import GBDTConfig, LogRegConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import BundleError
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import check_parity
from mlcycle.export.profile import build_profile
from mlcycle.train.estimators import FAMILIES
from mlcycle.train.fit import TrainedModel, fit_model
from tests import _datasets


def _export(model: TrainedModel, train: Dataset, val: Dataset, dest: Path) -> Path:
    onx = to_onnx(model.pipeline, train.schema)
    parity = check_parity(model, onx, val, 1e-4)
    return write_bundle(
        dest,
        model=onx,
        signature=make_signature(train.schema, model.classes, onx, "demo"),
        profile=build_profile(train, model.predict_proba(val), val.y, model.classes),
        evaluation={"parity": parity.to_dict()},
        lineage={"git": {"commit": "abc"}},
    )


@pytest.fixture(scope="module")
def mixed_export(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, TrainedModel, Dataset]:
    train, val = _datasets.split(_datasets.mixed_dataset())
    model = fit_model(train, GBDTConfig(max_iter=10), TrainConfig())
    return _export(model, train, val, tmp_path_factory.mktemp("m") / "bundle"), model, val


@pytest.fixture(scope="module")
def cancer_export(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, TrainedModel, Dataset]:
    train, val = _datasets.split(_datasets.sklearn_dataset(load_breast_cancer))
    model = fit_model(train, LogRegConfig(), TrainConfig())
    return _export(model, train, val, tmp_path_factory.mktemp("c") / "bundle"), model, val


@pytest.fixture()
def copy_of(tmp_path: Path) -> Any:
    """Factory: a private copy of a bundle folder, safe to damage."""

    def make(src: Path) -> Path:
        return Path(shutil.copytree(src, tmp_path / "copy"))

    return make


def _assert_same_labels(labels: np.ndarray, expected: np.ndarray, proba: np.ndarray) -> None:
    """Labels equal, except where the two best classes tie (either answer is right)."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    differ = labels != expected
    assert np.all(top2[differ, 1] - top2[differ, 0] <= 1e-4), np.flatnonzero(differ)


@pytest.mark.parametrize("which", ["mixed_export", "cancer_export"])
def test_bundle_predictions_equal_the_pipeline(which: str, request: pytest.FixtureRequest) -> None:
    path, model, val = request.getfixturevalue(which)
    bundle = Bundle.load(path)
    labels, proba = bundle.predict(bundle.inputs_from_columns(val.columns()))
    assert proba.dtype == np.float32
    assert proba.shape == (len(val), len(model.classes))
    np.testing.assert_allclose(proba, model.predict_proba(val), atol=1e-4)
    assert labels.dtype.kind == "U"
    np.testing.assert_array_equal(labels, model.predict(val))
    again = bundle.predict_proba(bundle.inputs_from_columns(val.columns()))
    np.testing.assert_array_equal(again, proba)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_predicts_from_its_bundle_like_the_pipeline(
    family: str, tmp_path: Path
) -> None:
    train, val = _datasets.split(_datasets.mixed_dataset())
    model = fit_model(train, _datasets.fast_config(family), TrainConfig())
    bundle = Bundle.load(_export(model, train, val, tmp_path / "b"))
    labels, proba = bundle.predict_columns(val.columns())
    expected = model.predict_proba(val)
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    _assert_same_labels(labels, model.predict(val), expected)


def test_bundle_exposes_its_metadata(mixed_export: tuple[Path, TrainedModel, Dataset]) -> None:
    path, model, _ = mixed_export
    bundle = Bundle.load(path, intra_op_threads=1)
    assert bundle.path == path
    assert bundle.classes == model.classes
    assert bundle.feature_names == ["x0", "color", "x1", "size", "x2"]
    assert bundle.input_names == ["numeric", "categorical"]
    assert bundle.model_name == "demo"
    assert bundle.signature["label"] == "y"
    assert bundle.evaluation["parity"]["passed"] is True
    assert bundle.profile["features"]["color"]["kind"] == "categorical"
    assert bundle.lineage == {"git": {"commit": "abc"}}
    assert "plots" not in " ".join(bundle.files)
    assert "demo" in repr(bundle)


def test_columns_may_hold_missing_values_and_unseen_categories(
    mixed_export: tuple[Path, TrainedModel, Dataset],
) -> None:
    path, model, _ = mixed_export
    bundle = Bundle.load(path)
    columns = {
        "x0": [0.5, None, float("nan")],
        "x1": [1, 2, 3],
        "x2": np.array([0.0, 1.0, np.nan]),
        "color": ["red", None, "purple"],
        "size": ["S", float("nan"), ""],
        "not_a_feature": ["ignored"] * 3,
    }
    inputs = bundle.inputs_from_columns(columns)
    assert inputs["numeric"].dtype == np.float32 and inputs["numeric"].shape == (3, 3)
    assert inputs["categorical"].tolist() == [["red", "S"], ["", ""], ["purple", ""]]
    labels, proba = bundle.predict(inputs)
    frame = pd.DataFrame({k: v for k, v in columns.items() if k != "not_a_feature"})
    np.testing.assert_allclose(proba, model.predict_proba(frame), atol=1e-4)
    np.testing.assert_array_equal(labels, model.predict(frame))


def test_a_missing_feature_is_an_input_error_naming_it(
    mixed_export: tuple[Path, TrainedModel, Dataset],
) -> None:
    bundle = Bundle.load(mixed_export[0])
    columns = mixed_export[2].columns()
    del columns["size"]
    with pytest.raises(BundleInputError, match=r"missing feature\(s\) \['size'\]"):
        bundle.inputs_from_columns(columns)
    with pytest.raises(ValueError, match="size"):  # also a ValueError, for servers
        bundle.inputs_from_columns(columns)


def test_columns_of_different_lengths_are_an_input_error(
    mixed_export: tuple[Path, TrainedModel, Dataset],
) -> None:
    bundle = Bundle.load(mixed_export[0])
    columns = {
        "x0": [1.0, 2.0],
        "x1": [1.0],
        "x2": [1.0, 2.0],
        "color": ["a", "b"],
        "size": ["S", "M"],
    }
    with pytest.raises(BundleInputError, match="'x1' has 1 values but 'x0' has 2"):
        bundle.inputs_from_columns(columns)


def test_text_in_a_numeric_feature_is_an_input_error(
    mixed_export: tuple[Path, TrainedModel, Dataset],
) -> None:
    bundle = Bundle.load(mixed_export[0])
    columns = {
        "x0": [1.0, "lots"],
        "x1": [1, 2],
        "x2": [1, 2],
        "color": ["a", "b"],
        "size": ["S", "M"],
    }
    with pytest.raises(BundleInputError, match="numeric feature 'x0' has the value 'lots'"):
        bundle.inputs_from_columns(columns)


def test_predict_checks_input_names_and_shapes(
    mixed_export: tuple[Path, TrainedModel, Dataset],
) -> None:
    bundle = Bundle.load(mixed_export[0])
    with pytest.raises(BundleInputError, match="input 'categorical' is missing"):
        bundle.predict({"numeric": np.zeros((1, 3), np.float32)})
    with pytest.raises(
        BundleInputError, match=r"input 'numeric' has shape \(1, 2\); expected \[rows, 3\]"
    ):
        bundle.predict({"numeric": np.zeros((1, 2)), "categorical": np.array([["a", "b"]], object)})


def test_a_corrupted_model_file_is_detected(
    cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    data = bytearray((path / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match=r"model.onnx .*does not match its sha256.*re-export the bundle"
    ):
        Bundle.load(path)


def test_a_changed_json_file_is_detected(
    cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    sig = json.loads((path / "signature.json").read_text())
    sig["classes"].reverse()
    (path / "signature.json").write_text(json.dumps(sig))
    with pytest.raises(BundleError, match=r"signature.json .*changed or corrupted"):
        Bundle.load(path)


@pytest.mark.parametrize("name", ["model.onnx", "signature.json", "MANIFEST.json"])
def test_a_missing_required_file_is_named(
    name: str, cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    (path / name).unlink()
    with pytest.raises(BundleError, match=rf"lacks {name}.*re-export the bundle"):
        Bundle.load(path)


def test_a_missing_listed_file_is_named(
    cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    (path / "profile.json").unlink()
    with pytest.raises(BundleError, match=r"profile.json is listed in MANIFEST.json but missing"):
        Bundle.load(path)


def test_a_missing_folder_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(tmp_path / "nowhere")


def test_an_unsupported_format_version_names_found_and_supported(
    cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    manifest = json.loads((path / "MANIFEST.json").read_text())
    manifest["format_version"] = 99
    (path / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BundleError, match=r"format_version 99; this mlcycle reads format_version 1"
    ):
        Bundle.load(path)


def test_a_model_onnxruntime_cannot_load_is_a_bundle_error(
    cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    (path / "model.onnx").write_bytes(b"this is not protobuf")
    manifest = json.loads((path / "MANIFEST.json").read_text())
    manifest["files"]["model.onnx"] = {
        "sha256": sha256_file(path / "model.onnx"),
        "size": (path / "model.onnx").stat().st_size,
    }
    (path / "MANIFEST.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"model.onnx .*is not a valid ONNX model"):
        Bundle.load(path)


def test_importing_the_reader_pulls_in_no_training_libraries() -> None:
    code = (
        "import sys, mlcycle.bundle\n"
        "heavy = ('pandas', 'sklearn', 'mlflow', 'onnx', 'hydra', 'skl2onnx', 'omegaconf', 'dvc')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_json_file_changed_after_loading_is_detected_on_first_read(
    cancer_export: tuple[Path, TrainedModel, Dataset], copy_of: Any
) -> None:
    path = copy_of(cancer_export[0])
    bundle = Bundle.load(path)
    (path / "lineage.json").write_text('{"git": {"commit": "forged"}}')
    with pytest.raises(BundleError, match=r"lineage.json .*changed"):
        _ = bundle.lineage
