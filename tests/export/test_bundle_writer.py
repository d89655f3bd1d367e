"""write_bundle and make_signature: complete, integrity-checked, atomic."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import BundleError, ExportError
from mlcycle.export import bundle as writer
from mlcycle.export.bundle import make_signature, write_bundle
from mlcycle.export.onnx import to_onnx
from mlcycle.export.profile import build_profile
from mlcycle.train.fit import TrainedModel

Trained = Callable[[str, str], tuple[TrainedModel, Dataset, Dataset]]
FILES = {
    "model.onnx",
    "signature.json",
    "profile.json",
    "evaluation.json",
    "lineage.json",
    "MANIFEST.json",
}


@pytest.fixture(scope="module")
def parts(trained: Trained) -> dict[str, Any]:
    """Everything write_bundle needs, for the mixed dataset and logreg."""
    model, train, val = trained("logreg", "mixed")
    onx = to_onnx(model.pipeline, train.schema)
    return {
        "model": onx,
        "signature": make_signature(train.schema, model.classes, onx, "mixed"),
        "profile": build_profile(train, model.predict_proba(val), val.y, model.classes),
        "evaluation": {"test": {"accuracy": 0.9, "roc_auc": None}},
        "lineage": {"git": {"commit": "abc", "dirty": False}, "data": {"md5": "x"}},
    }


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_bundle_holds_every_file_with_its_hash_in_the_manifest(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    plot = tmp_path / "cm.png"
    plot.write_bytes(b"\x89PNG fake")
    dest = write_bundle(tmp_path / "b", **parts, files={"plots/confusion_matrix.png": plot})
    assert dest == tmp_path / "b"
    names = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    assert names == FILES | {"plots/confusion_matrix.png"}
    manifest = json.loads((dest / "MANIFEST.json").read_text())
    assert manifest["format_version"] == 1
    assert set(manifest["files"]) == names - {"MANIFEST.json"}
    for rel, entry in manifest["files"].items():
        data = (dest / rel).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert (dest / "plots/confusion_matrix.png").read_bytes() == b"\x89PNG fake"
    assert _leftovers(tmp_path) == []


def test_json_files_are_pretty_sorted_utf8(parts: dict[str, Any], tmp_path: Path) -> None:
    parts = {**parts, "lineage": {"z": 1, "a": "naïve ✓", "n": np.int64(3)}}
    dest = write_bundle(tmp_path / "b", **parts)
    text = (dest / "lineage.json").read_text(encoding="utf-8")
    assert text == '{\n  "a": "naïve ✓",\n  "n": 3,\n  "z": 1\n}\n'
    assert json.loads((dest / "signature.json").read_text()) == parts["signature"]


def test_model_file_is_the_serialised_graph(parts: dict[str, Any], tmp_path: Path) -> None:
    dest = write_bundle(tmp_path / "b", **parts)
    assert (dest / "model.onnx").read_bytes() == parts["model"].SerializeToString()


def test_the_same_inputs_give_byte_identical_bundles(parts: dict[str, Any], tmp_path: Path) -> None:
    a = write_bundle(tmp_path / "a", **parts)
    b = write_bundle(tmp_path / "b", **parts)
    assert (a / "MANIFEST.json").read_bytes() == (b / "MANIFEST.json").read_bytes()


def test_a_non_serialisable_profile_leaves_nothing_behind(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    bad = {**parts, "profile": {"features": {"x": object()}}}
    with pytest.raises(BundleError, match=r"profile.json cannot be written as JSON"):
        write_bundle(tmp_path / "b", **bad)
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []


def test_nan_is_refused_because_it_is_not_json(parts: dict[str, Any], tmp_path: Path) -> None:
    bad = {**parts, "evaluation": {"roc_auc": float("nan")}}
    with pytest.raises(BundleError, match=r"evaluation.json.*NaN"):
        write_bundle(tmp_path / "b", **bad)
    assert list(tmp_path.iterdir()) == []


def test_a_failure_at_the_last_step_leaves_nothing_behind(
    parts: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(tmp: Path, dest: Path) -> None:
        assert (tmp / "MANIFEST.json").is_file()  # everything was written by then
        raise OSError("disk full")

    monkeypatch.setattr(writer, "_swap_into_place", fail)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(tmp_path / "b", **parts)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_overwrite_keeps_the_previous_bundle(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    dest = write_bundle(tmp_path / "b", **parts)
    before = (dest / "MANIFEST.json").read_bytes()
    with pytest.raises(BundleError):
        write_bundle(dest, **{**parts, "lineage": {"x": {1, 2}}}, overwrite=True)
    assert (dest / "MANIFEST.json").read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_an_existing_non_empty_folder_is_not_overwritten(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(BundleError, match=r"already exists and is not empty.*overwrite=True"):
        write_bundle(dest, **parts)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert _leftovers(tmp_path) == []


def test_overwrite_replaces_an_existing_bundle_completely(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    write_bundle(dest, **parts, overwrite=True)
    assert not (dest / "stale.txt").exists()
    assert (dest / "MANIFEST.json").is_file()
    assert _leftovers(tmp_path) == []


def test_an_empty_existing_folder_is_used(parts: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    assert (write_bundle(tmp_path / "b", **parts) / "model.onnx").is_file()


def test_missing_parent_folders_are_created(parts: dict[str, Any], tmp_path: Path) -> None:
    assert (write_bundle(tmp_path / "x" / "y" / "b", **parts) / "model.onnx").is_file()


@pytest.mark.parametrize("name", ["../escape.png", "/abs.png", "signature.json", ""])
def test_bad_extra_file_names_are_refused(name: str, parts: dict[str, Any], tmp_path: Path) -> None:
    src = tmp_path / "f.png"
    src.write_bytes(b"x")
    with pytest.raises(BundleError, match="extra bundle file"):
        write_bundle(tmp_path / "b", **parts, files={name: src})
    assert not (tmp_path / "b").exists()


def test_a_missing_extra_file_is_refused_before_writing(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        write_bundle(tmp_path / "b", **parts, files={"plots/x.png": tmp_path / "nope.png"})
    assert list(tmp_path.iterdir()) == []


def test_a_signature_of_another_model_is_refused(
    parts: dict[str, Any], trained: Trained, tmp_path: Path
) -> None:
    model, train, _ = trained("logreg", "breast_cancer")
    onx = to_onnx(model.pipeline, train.schema)
    with pytest.raises(BundleError, match="signature declares inputs"):
        write_bundle(tmp_path / "b", **{**parts, "model": onx})


def test_signature_describes_inputs_outputs_features_and_classes(
    parts: dict[str, Any], mixed: Dataset
) -> None:
    sig = parts["signature"]
    assert sig["format_version"] == 1
    assert sig["model_name"] == "mixed"
    assert sig["inputs"] == [
        {"name": "numeric", "dtype": "float32", "shape": [None, 3], "features": ["x0", "x1", "x2"]},
        {
            "name": "categorical",
            "dtype": "string",
            "shape": [None, 2],
            "features": ["color", "size"],
        },
    ]
    assert sig["outputs"] == [
        {"name": "label", "dtype": "string", "shape": [None]},
        {"name": "probabilities", "dtype": "float32", "shape": [None, 3]},
    ]
    assert sig["features"] == [f.to_dict() for f in mixed.schema.features]
    assert sig["label"] == "y"
    assert sig["classes"] == ["high", "low", "mid"]
    assert sig["missing_category"] == ""
    assert sig["opset"]["ai.onnx.ml"] <= 3
    json.dumps(sig, allow_nan=False)


def test_signature_refuses_a_model_of_another_schema(
    parts: dict[str, Any], breast_cancer: Dataset
) -> None:
    with pytest.raises(ExportError, match="does not match the schema"):
        make_signature(breast_cancer.schema, ["benign", "malignant"], parts["model"], "x")


def test_signature_refuses_classes_the_model_does_not_output(
    parts: dict[str, Any], mixed: Dataset
) -> None:
    with pytest.raises(ExportError, match="3 probabilities for 2 classes"):
        make_signature(mixed.schema, ["a", "b"], parts["model"], "x")
