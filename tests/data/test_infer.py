"""Schema inference and the schema file round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.data import Schema, infer_schema, read_table
from mlcycle.exceptions import DataError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "count": [3, 1, 7, 2],
            "ratio": [0.5, np.nan, 2.25, -1.0],
            "numtext": pd.Series(["1.5", "2", None, "10"], dtype=object),
            "flag": [True, False, True, True],
            "color": ["red", "blue", None, "red"],
            "note": ["a b", "c d", "e f", "g h"],
            "y": [1, 0, 2, 1],
        }
    )


def test_infer_schema_assigns_kinds_and_dtypes() -> None:
    schema = infer_schema(_frame(), "y", max_categories=3)
    kinds = {f.name: (f.kind, f.dtype) for f in schema.features}
    assert kinds == {
        "count": ("numeric", "int64"),
        "ratio": ("numeric", "float64"),
        "numtext": ("numeric", "float64"),
        "flag": ("categorical", "bool"),
        "color": ("categorical", "string"),
        "note": ("text", "string"),
    }
    assert schema.feature_names == ["count", "ratio", "numtext", "flag", "color", "note"]


def test_infer_schema_ranges_nullability_categories_and_classes() -> None:
    schema = infer_schema(_frame(), "y", max_categories=3)
    count, ratio, numtext = (
        schema.feature("count"),
        schema.feature("ratio"),
        schema.feature("numtext"),
    )
    assert (count.min, count.max, count.nullable) == (1.0, 7.0, False)
    assert (ratio.min, ratio.max, ratio.nullable) == (-1.0, 2.25, True)
    assert (numtext.min, numtext.max, numtext.nullable) == (1.5, 10.0, True)
    assert schema.feature("color").categories == ["blue", "red"]
    assert schema.feature("color").nullable
    assert schema.feature("flag").categories == ["False", "True"]
    assert schema.classes == ["0", "1", "2"]
    assert schema.label == "y"


def test_infer_schema_text_when_more_distinct_values_than_max_categories() -> None:
    frame = pd.DataFrame({"c": [f"v{i}" for i in range(60)], "y": ["a", "b"] * 30})
    assert infer_schema(frame, "y").feature("c").kind == "text"
    assert infer_schema(frame, "y", max_categories=60).feature("c").kind == "categorical"


def test_infer_schema_integer_label_with_gaps_gives_integer_class_names(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("x,y\n1,0\n2,\n3,1\n")
    assert infer_schema(read_table(path), "y").classes == ["0", "1"]


def test_infer_schema_all_missing_column_is_nullable_numeric_without_range() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan], "y": ["a", "b"]})
    spec = infer_schema(frame, "y").feature("x")
    assert (spec.kind, spec.min, spec.max, spec.nullable) == ("numeric", None, None, True)


def test_infer_schema_round_trips_through_saved_yaml(tmp_path: Path) -> None:
    schema = infer_schema(_frame(), "y", max_categories=3)
    path = schema.save(tmp_path / "s.schema.yaml")
    assert path.read_text().startswith("# mlcycle dataset schema")
    assert Schema.load(path) == schema


def test_infer_schema_missing_label_names_columns() -> None:
    with pytest.raises(DataError, match=r"label column 'target'.*'count'.*data\.label="):
        infer_schema(_frame(), "target")


def test_infer_schema_without_features_fails() -> None:
    with pytest.raises(DataError, match="no feature columns"):
        infer_schema(pd.DataFrame({"y": ["a", "b"]}), "y")
