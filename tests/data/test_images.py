"""Images as data: .npz array files, the image kind of the schema, shape checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlcycle.config.project import Project
from mlcycle.config.structured import DataConfig
from mlcycle.data import write_example
from mlcycle.data.dataset import DataVersion
from mlcycle.data.infer import infer_schema
from mlcycle.data.load import frame_to_dataset, load_dataset, read_table
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import ConfigError, DataError, SchemaError

_VERSION = DataVersion(md5="x", path="p", tracked=False, size=0)


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_read_table_reads_npz_arrays_as_columns_with_one_image_per_row(tmp_path: Path) -> None:
    images = np.arange(3 * 2 * 4 * 5, dtype=np.uint8).reshape(3, 2, 4, 5)
    path = _npz(
        tmp_path / "t.npz",
        image=images,
        size=np.array([1.5, 2.0, 3.0]),
        y=np.array(["a", "b", "a"]),
    )
    frame = read_table(path)
    assert list(frame.columns) == ["image", "size", "y"]
    assert frame["image"].dtype == object and frame["image"][2].dtype == np.float32
    assert frame["image"][2].shape == (2, 4, 5)
    assert (frame["image"][2] == images[2]).all()
    assert frame["size"].tolist() == [1.5, 2.0, 3.0] and frame["y"].tolist() == ["a", "b", "a"]


def test_read_table_grey_images_get_one_channel(tmp_path: Path) -> None:
    frame = read_table(_npz(tmp_path / "t.npz", image=np.zeros((2, 8, 8)), y=np.array([0, 1])))
    assert frame["image"][0].shape == (1, 8, 8)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((3, 4))}, r"array 'x' .* has shape \[3, 4\]; use 1-D arrays"),
        ({"x": np.zeros(3), "y": np.zeros(2)}, r"array 'y' .* has 2 rows but 'x' has 3"),
        ({"x": np.array(1.0)}, r"array 'x' .* is a single value"),
        ({"x": np.zeros((2, 2, 2), dtype="U1")}, r"images of dtype <U1"),
    ],
)
def test_read_table_refuses_npz_it_cannot_make_a_table_of(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        read_table(_npz(tmp_path / "t.npz", **arrays))


def test_read_table_refuses_a_file_that_is_not_npz(tmp_path: Path) -> None:
    (tmp_path / "t.npz").write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match=r"t\.npz is not an NPZ archive"):
        read_table(tmp_path / "t.npz")


def test_read_table_refuses_pickled_object_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "t.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="pickled object arrays"):
        read_table(tmp_path / "t.npz")


def test_infer_schema_gives_an_image_column_the_image_kind_shape_and_pixel_range(
    tmp_path: Path,
) -> None:
    images = np.zeros((4, 3, 5, 6), dtype=np.uint8)
    images[1, 0, 0, 0] = 200
    frame = read_table(_npz(tmp_path / "t.npz", image=images, y=np.array([0, 1, 0, 1])))
    schema = infer_schema(frame, "y")
    (spec,) = schema.features
    assert (spec.kind, spec.shape, spec.min, spec.max) == ("image", [3, 5, 6], 0.0, 200.0)
    assert schema.image == [spec] and schema.model_order == ["image"]
    again = Schema.from_dict(schema.to_dict())
    assert again == schema and again.to_dict()["features"][0]["shape"] == [3, 5, 6]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (None, r"image feature 'im' has shape None; it needs shape: \[channels, height, width\]"),
        ([8, 8], "three positive integers"),
        ([1, 0, 8], "three positive integers"),
        ([1, 8, 8.5], "three positive integers"),
    ],
)
def test_schema_file_image_shape_is_validated(shape: object, message: str) -> None:
    d = {"label": "y", "classes": ["a"], "features": [{"name": "im", "kind": "image"}]}
    if shape is not None:
        d["features"][0]["shape"] = shape  # type: ignore[index]
    with pytest.raises(SchemaError, match=message):
        Schema.from_dict(d, where="s.yaml")


def test_schema_file_shape_on_a_numeric_feature_is_refused() -> None:
    d = {
        "label": "y",
        "classes": ["a"],
        "features": [{"name": "x", "kind": "numeric", "shape": [1, 2, 2]}],
    }
    with pytest.raises(SchemaError, match="only image features have one"):
        Schema.from_dict(d)


def _dataset_from(path: Path, spec: FeatureSpec) -> None:
    frame = read_table(path)
    frame_to_dataset(
        frame, Schema("y", ["0", "1"], [spec]), path=path, version=_VERSION, where="s.yaml"
    )


def test_frame_to_dataset_names_the_file_row_and_expected_shape_of_a_wrong_size_image(
    tmp_path: Path,
) -> None:
    path = _npz(tmp_path / "t.npz", image=np.zeros((2, 8, 7)), y=np.array([0, 1]))
    spec = FeatureSpec("image", "image", shape=[1, 8, 8])
    with pytest.raises(
        SchemaError,
        match=r"image feature 'image' of .*t\.npz: row 0 has shape \[1, 8, 7\]; the schema "
        r"\(s\.yaml\) expects \[1, 8, 8\] \(1 channel, 8x8\)",
    ):
        _dataset_from(path, spec)


def test_frame_to_dataset_names_the_channels_of_a_wrong_channel_image(tmp_path: Path) -> None:
    path = _npz(tmp_path / "t.npz", image=np.zeros((2, 3, 8, 8)), y=np.array([0, 1]))
    with pytest.raises(SchemaError, match=r"row 0 has 3 channel\(s\); .* expects \[1, 8, 8\]"):
        _dataset_from(path, FeatureSpec("image", "image", shape=[1, 8, 8]))


def test_frame_to_dataset_an_image_column_of_another_kind_says_to_set_kind_image(
    tmp_path: Path,
) -> None:
    path = _npz(tmp_path / "t.npz", image=np.zeros((2, 8, 8)), y=np.array([0, 1]))
    with pytest.raises(SchemaError, match=r"holds images but is numeric.*set its kind to image"):
        _dataset_from(path, FeatureSpec("image", "numeric"))


def test_digits_example_is_an_npz_file_with_the_same_bytes_on_every_call(tmp_path: Path) -> None:
    first = write_example("digits", tmp_path / "a" / "digits.npz")
    second = write_example("digits", tmp_path / "b" / "digits.npz")
    assert first.read_bytes() == second.read_bytes()
    with np.load(first) as npz:
        assert npz.files == ["image", "digit"]
        assert npz["image"].shape == (1797, 8, 8) and npz["image"].dtype == np.uint8
        assert npz["image"].max() == 16 and sorted(set(npz["digit"])) == list("0123456789")


def test_digits_example_refuses_a_table_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"holds images.*\.npz file \(e\.g\. data/digits\.npz\)"):
        write_example("digits", tmp_path / "digits.csv")
    assert not (tmp_path / "digits.csv").exists()


def test_load_dataset_of_digits_infers_the_image_schema_and_checks_it(tmp_path: Path) -> None:
    project = Project(tmp_path)
    cfg = DataConfig(name="digits", path="data/digits.npz", label="digit", example="digits")
    ds = load_dataset(cfg, project)
    assert len(ds) == 1797 and ds.schema.label == "digit"
    (spec,) = ds.schema.features
    assert (spec.kind, spec.shape, spec.min, spec.max) == ("image", [1, 8, 8], 0.0, 16.0)
    assert ds.frame["image"][0].shape == (1, 8, 8)
    text = (tmp_path / "data" / "digits.schema.yaml").read_text()
    assert "kind: image" in text and "shape:" in text
    again = load_dataset(cfg, project)  # from the saved schema file
    assert again.schema == ds.schema
