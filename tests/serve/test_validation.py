"""mlcycle.serve.validation: every protocol's rows are judged the same way, with the field
of the first bad value named."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from mlcycle.serve.errors import RequestError
from mlcycle.serve.settings import ValidationSettings
from mlcycle.serve.validation import Validator

SIGNATURE: dict[str, Any] = {
    "features": [
        {"name": "age", "kind": "numeric", "nullable": False},
        {"name": "color", "kind": "categorical", "nullable": True, "categories": ["red", "blue"]},
        {"name": "income", "kind": "numeric", "nullable": True},
        {"name": "size", "kind": "categorical", "nullable": False, "categories": ["S", "L"]},
    ],
    "inputs": [
        {"name": "numeric", "dtype": "float32", "features": ["age", "income"]},
        {"name": "categorical", "dtype": "string", "features": ["color", "size"]},
    ],
    "missing_category": "",
}


def validator(**settings: Any) -> Validator:
    return Validator(SIGNATURE, ValidationSettings(**settings))


def row(**changes: Any) -> dict[str, Any]:
    return {"age": 30, "color": "red", "income": 1.5, "size": "S", **changes}


def error(call: Any, *args: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        call(*args)
    return info.value


def test_records_become_the_models_input_arrays() -> None:
    batch = validator().records([row(), row(age=41.5, income=None, color=None, size="L")])
    assert batch.rows == 2
    num = batch.inputs["numeric"]
    assert num.dtype == np.float32 and num.shape == (2, 2)
    assert num[1, 0] == 41.5 and math.isnan(num[1, 1])
    assert batch.inputs["categorical"].tolist() == [["red", "S"], ["", "L"]]


def test_every_layout_gives_the_same_arrays() -> None:
    v = validator()
    rows = [row(), row(age=2, color="blue", income=None, size="L")]
    cols = ["size", "age", "income", "color"]
    layouts = [
        v.records(rows),
        v.table(cols, [[r[c] for c in cols] for r in rows]),
        v.columns({f: [r[f] for r in rows] for f in v.features}),
        v.positional([[r[f] for f in ["age", "color", "income", "size"]] for r in rows]),
        v.text_rows(cols, [["S", "30", "1.5", "red"], ["L", "2", "", "blue"]], "csv"),
    ]
    for batch in layouts[1:]:
        np.testing.assert_array_equal(batch.inputs["numeric"], layouts[0].inputs["numeric"])
        assert batch.inputs["categorical"].tolist() == layouts[0].inputs["categorical"].tolist()


@pytest.mark.parametrize(
    ("records", "status", "code", "field"),
    [
        (
            [row(), {"age": 1, "color": "red", "size": "S"}],
            422,
            "missing_feature",
            "records[1].income",
        ),
        ([row(height=2)], 422, "unknown_feature", "records[0].height"),
        ([row(age="30")], 422, "wrong_type", "records[0].age"),
        ([row(), row(income=[1, 2])], 422, "wrong_type", "records[1].income"),
        ([row(age=None)], 422, "missing_value", "records[0].age"),
        ([row(age=1e39)], 422, "not_finite", "records[0].age"),
        ([row(age=3.402823466385289e38)], 422, "not_finite", "records[0].age"),
        ([row(size="XL")], 422, "unseen_category", "records[0].size"),
        ([row(size=None)], 422, "missing_value", "records[0].size"),
        ([row(color=1.5)], 422, "wrong_type", "records[0].color"),
        ([], 422, "empty_batch", "records"),
        ({"age": 1}, 422, "wrong_type", "records"),
        ([row(), 3], 422, "wrong_type", "records[1]"),
    ],
)
def test_bad_records_are_refused_with_the_field_named(
    records: Any, status: int, code: str, field: str
) -> None:
    err = error(validator().records, records)
    assert (err.status, err.code, err.field) == (status, code, field), err.message


def test_policies_relax_unknown_fields_unseen_categories_and_missing_values() -> None:
    v = validator(unknown_feature="ignore", unseen_category="missing", allow_missing=True)
    batch = v.records([row(height=2, size="XL", age=None)])
    assert batch.inputs["categorical"].tolist() == [["red", ""]]
    assert math.isnan(batch.inputs["numeric"][0, 0])
    passed = validator(unseen_category="pass").records([row(size="XL")])
    assert passed.inputs["categorical"].tolist() == [["red", "XL"]]


def test_integers_are_accepted_as_category_text_and_booleans_as_numbers() -> None:
    sig = {
        **SIGNATURE,
        "features": [
            *SIGNATURE["features"][:3],
            {"name": "size", "kind": "categorical", "categories": ["1", "2"]},
        ],
    }
    batch = Validator(sig, ValidationSettings()).records([row(size=2, age=True)])
    assert batch.inputs["categorical"].tolist() == [["red", "2"]]
    assert batch.inputs["numeric"][0, 0] == 1.0


def test_row_limit_and_table_shape_are_checked() -> None:
    err = error(validator(max_rows=2).records, [row()] * 3)
    assert err.code == "too_many_rows" and "max_rows" in err.message
    err = error(validator().table, ["age", "income", "color", "size"], [[1, 2, "red"]])
    assert (err.code, err.field) == ("wrong_shape", "dataframe_split.data[0]")
    err = error(validator().table, ["age", "age", "income", "color", "size"], [])
    assert err.code == "duplicate_feature"


def test_model_input_arrays_are_checked_for_shape() -> None:
    v = validator()
    good = v.arrays(
        {
            "numeric": np.ones((2, 2), np.float32),
            "categorical": np.array([["red", "S"]] * 2, object),
        },
        "inputs",
    )
    assert good.rows == 2
    err = error(v.arrays, {"numeric": np.ones((2, 3)), "categorical": np.ones((2, 2))}, "inputs")
    assert err.code == "wrong_shape" and "numeric" in err.message


def test_csv_text_that_is_not_a_number_is_refused_with_its_cell() -> None:
    err = error(
        validator().text_rows, ["age", "income", "color", "size"], [["x", "1", "red", "S"]], "csv"
    )
    assert (err.code, err.field) == ("wrong_type", "csv[0].age")
