"""Reading data files and loading a checked Dataset."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.config.project import Project
from mlcycle.config.structured import DataConfig
from mlcycle.data import Schema, file_md5, load_dataset, read_table, schema_file
from mlcycle.exceptions import DataError, SchemaError

WriteCsv = Callable[..., DataConfig]

# -- read_table ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet", ".pq"])
def test_read_table_reads_each_format_by_suffix(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5], "c": ["a", "b"]})
    path = tmp_path / f"t{suffix}"
    if suffix in (".parquet", ".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    read = read_table(path)
    assert read["x"].tolist() == [1.5, 2.5]
    assert read["c"].tolist() == ["a", "b"]


def test_read_table_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    path = tmp_path / "t.data"
    path.write_text("x,y\n1,a\n")
    assert read_table(path, "csv").shape == (1, 2)


def test_read_table_missing_file_names_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"nope\.csv does not exist; set data\.path=.*mlcycle data add"
    ):
        read_table(tmp_path / "nope.csv")


def test_read_table_unknown_suffix_names_suffix_and_fix(tmp_path: Path) -> None:
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"'\.xlsx'.*data\.format=csv"):
        read_table(tmp_path / "t.xlsx")


def test_read_table_unknown_format_value_lists_formats(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data\.format='json'.*'parquet'"):
        read_table(tmp_path / "t.csv", "json")


def test_read_table_corrupt_parquet_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match=r"t\.parquet could not be read as PARQUET"):
        read_table(path)


def test_read_table_ragged_csv_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DataError, match=r"could not be read as CSV.*line 3"):
        read_table(path)


def test_read_table_empty_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("")
    with pytest.raises(DataError, match="is empty"):
        read_table(path)


def test_read_table_header_without_rows_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x,y\n")
    with pytest.raises(DataError, match="has no rows"):
        read_table(path)


# -- load_dataset: layout and schema file ----------------------------------------------------


def test_load_dataset_writes_missing_example_and_converts_to_model_layout(
    project: Project,
) -> None:
    cfg = DataConfig(name="wine", path="data/wine.csv", label="cultivar", example="wine")
    ds = load_dataset(cfg, project)
    assert (project.root / "data" / "wine.csv").is_file()
    assert list(ds.frame.columns) == ds.schema.feature_names
    assert (ds.frame.dtypes == np.float32).all()
    assert ds.y.dtype.kind == "U" and set(ds.y) == {"class_0", "class_1", "class_2"}
    assert len(ds) == 178 and ds.path == project.root / "data" / "wine.csv"
    assert ds.version.path == "data/wine.csv" and not ds.version.tracked
    assert ds.version.md5 == file_md5(ds.path)


def test_load_dataset_frame_has_float32_numeric_and_str_categorical_with_blanks(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv("num,cat,y\n1.5,red,a\n,,b\n3,blue,a\n")
    ds = load_dataset(cfg, project)
    assert ds.frame["num"].dtype == np.float32
    assert np.isnan(ds.frame["num"][1])
    assert ds.frame["cat"].tolist() == ["red", "", "blue"]
    assert all(isinstance(v, str) for v in ds.frame["cat"])
    assert ds.y.tolist() == ["a", "b", "a"]


def test_load_dataset_saves_inferred_schema_on_first_use(
    project: Project, write_csv: WriteCsv, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_csv({"x": [1, 2, 3], "y": ["a", "b", "a"]})
    with caplog.at_level(logging.INFO, logger="mlcycle.data"):
        ds = load_dataset(cfg, project)
    path = project.root / "data" / "t.schema.yaml"
    assert schema_file(cfg, project) == path
    assert Schema.load(path) == ds.schema
    assert "edit it" in caplog.text and str(path) in caplog.text


def test_load_dataset_without_save_schema_writes_no_file(
    project: Project, write_csv: WriteCsv
) -> None:
    load_dataset(write_csv({"x": [1, 2], "y": ["a", "b"]}), project, save_schema=False)
    assert not (project.root / "data" / "t.schema.yaml").exists()


def test_load_dataset_reuses_edited_schema_file(project: Project, write_csv: WriteCsv) -> None:
    cfg = write_csv({"code": [10, 20, 10, 30], "z": [1.0, 2.0, 3.0, 4.0], "y": list("abab")})
    first = load_dataset(cfg, project)
    assert first.frame["code"].dtype == np.float32
    path = schema_file(cfg, project)
    edited = path.read_text().replace(
        "- name: code\n  kind: numeric", "- name: code\n  kind: categorical"
    )
    path.write_text(edited)
    second = load_dataset(cfg, project)
    assert second.schema.feature("code").kind == "categorical"
    assert second.frame["code"].tolist() == ["10", "20", "10", "30"]


def test_load_dataset_uses_configured_schema_path(project: Project, write_csv: WriteCsv) -> None:
    cfg = write_csv({"x": [1, 2], "y": ["a", "b"]})
    cfg.schema_path = "schemas/mine.yaml"
    load_dataset(cfg, project)
    assert (project.root / "schemas" / "mine.yaml").is_file()
    assert not (project.root / "data" / "t.schema.yaml").exists()


def test_load_dataset_schema_for_another_label_names_both(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"x": [1, 2], "y": ["a", "b"], "z": ["c", "d"]})
    load_dataset(cfg, project)
    cfg.label = "z"
    with pytest.raises(SchemaError, match=r"for label 'y' but data\.label='z'"):
        load_dataset(cfg, project)


# -- load_dataset: bad input -----------------------------------------------------------------


def test_load_dataset_missing_file_names_file_and_fix(project: Project) -> None:
    cfg = DataConfig(name="t", path="data/none.csv", label="y")
    with pytest.raises(DataError, match=r"data/none\.csv does not exist; set data\.path="):
        load_dataset(cfg, project)


def test_load_dataset_missing_label_column_names_it_columns_and_fix(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"a": [1], "b": [2]}, label="target")
    with pytest.raises(DataError, match=r"label column 'target'.*\['a', 'b'\].*data\.label="):
        load_dataset(cfg, project)


def test_load_dataset_drops_rows_without_label_and_warns_with_count(
    project: Project, write_csv: WriteCsv, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_csv("x,y\n1,a\n2,\n3,b\n4,\n5,a\n")
    with caplog.at_level(logging.WARNING, logger="mlcycle.data"):
        ds = load_dataset(cfg, project)
    assert len(ds) == 3 and ds.frame["x"].tolist() == [1.0, 3.0, 5.0]
    assert "dropping 2 row(s)" in caplog.text


def test_load_dataset_all_labels_missing_is_a_data_error(
    project: Project, write_csv: WriteCsv
) -> None:
    with pytest.raises(DataError, match=r"label column 'y' .* empty in every row"):
        load_dataset(write_csv("x,y\n1,\n2,\n"), project)


def test_load_dataset_names_schema_features_missing_from_data(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"x": [1, 2], "w": [3, 4], "y": ["a", "b"]})
    load_dataset(cfg, project)
    pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}).to_csv(project.path(cfg.path), index=False)
    with pytest.raises(SchemaError, match=r"feature\(s\) \['w'\].*not in the data.*schema file"):
        load_dataset(cfg, project)


def test_load_dataset_names_non_numeric_column_and_row_count(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"x": [1.0, 2.0, 3.0, 4.0], "y": list("abab")})
    load_dataset(cfg, project)
    write_csv("x,y\n1,a\nn/a?,b\n3,a\nabc,b\nabc,a\n")
    with pytest.raises(
        SchemaError,
        match=r"column 'x' is numeric.*3 row\(s\).*'n/a\?', 'abc'.*kind: categorical",
    ):
        load_dataset(cfg, project)


def test_load_dataset_single_class_says_a_classifier_needs_two(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"x": [1, 2, 3], "label": ["a", "a", "a"]}, label="label")
    with pytest.raises(
        DataError,
        match="label column 'label' has a single class 'a'; a classifier needs at least two",
    ):
        load_dataset(cfg, project)


def test_load_dataset_label_not_in_schema_classes_lists_them(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"x": [1, 2], "y": ["a", "b"]})
    load_dataset(cfg, project)
    write_csv({"x": [1, 2, 3, 4], "y": ["a", "b", "c", "d"]})
    with pytest.raises(SchemaError, match=r"\['c', 'd'\] that are not among the classes.*add them"):
        load_dataset(cfg, project)


def test_load_dataset_warns_on_out_of_range_unknown_categories_and_extra_columns(
    project: Project, write_csv: WriteCsv, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = write_csv({"x": [1.0, 5.0], "c": ["u", "v"], "y": ["a", "b"]})
    load_dataset(cfg, project)
    write_csv(
        {"x": [0.0, -1.0, 9.0, 3.0], "c": ["u", "w", "w", "v"], "new": [1] * 4, "y": list("abab")}
    )
    with caplog.at_level(logging.WARNING, logger="mlcycle.data"):
        ds = load_dataset(cfg, project)
    assert len(ds) == 4 and list(ds.frame.columns) == ["x", "c"]
    assert "column 'x': 2 row(s) below the schema's min 1.0" in caplog.text
    assert "column 'x': 1 row(s) above the schema's max 5.0" in caplog.text
    assert "column 'c': 2 row(s) hold categories not in the schema" in caplog.text
    assert "ignoring 1 column(s)" in caplog.text and "'new'" in caplog.text


def test_load_dataset_invalid_schema_file_is_a_schema_error(
    project: Project, write_csv: WriteCsv
) -> None:
    cfg = write_csv({"x": [1, 2], "y": ["a", "b"]})
    schema_file(cfg, project).write_text(
        "label: y\nclasses: [a, b]\nfeatures: [{name: x, kind: num}]\n"
    )
    with pytest.raises(SchemaError, match="feature 'x' has kind 'num'"):
        load_dataset(cfg, project)
