"""numpy and the ONNX derivation graph agree on tricky values, and both are right.

Each test states the expected values (or, for dates, takes them from Python's
``datetime``), checks numpy against them, then checks onnxruntime against numpy, at the
opsets the graph is exported with (18 / ai.onnx.ml 3) and at the lowest ones skl2onnx
declares for a plain model (13 / 1), which the merged graph then uses.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.features import derive_columns, parse_derived
from mlcycle.features.graph import derivation_model

NAN = np.nan
OPSETS = [{"": 18, "ai.onnx.ml": 3}, {"": 13, "ai.onnx.ml": 1}]
SCHEMA = Schema(
    "y",
    ["a", "b"],
    [
        FeatureSpec("drink", "categorical", "string", categories=["coffee", "tea"]),
        FeatureSpec("x", "numeric"),
        FeatureSpec("size", "categorical", "string", categories=["L", "S"]),
        FeatureSpec("n", "numeric"),
    ],
)


def derive_both(
    entries: list[dict[str, Any]],
    numeric: list[list[float]],
    categorical: list[list[str]] | None = None,
    schema: Schema = SCHEMA,
    opsets: dict[str, int] | None = None,
) -> np.ndarray[Any, Any]:
    """The derived columns from numpy; fails unless onnxruntime gives the same bits."""
    features = parse_derived(entries, schema)
    n = len(numeric) if schema.numeric else len(categorical or [])
    num = np.asarray(numeric, dtype=np.float32).reshape(n, len(schema.numeric))
    cat = np.asarray(
        categorical if categorical is not None else [[""] * len(schema.categorical)] * n,
        dtype=object,
    ).reshape(n, len(schema.categorical))
    expected = derive_columns(features, schema, num, cat)
    model = derivation_model(features, schema, opsets=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds: dict[str, Any] = {}
    if schema.numeric:
        feeds["numeric"] = num
    if schema.categorical:
        feeds["categorical"] = cat
    outputs = session.run(None, feeds)
    widened = outputs[0]
    assert widened.dtype == np.float32
    assert widened.shape == (n, len(schema.numeric) + len(features))
    np.testing.assert_array_equal(widened[:, : len(schema.numeric)], num)  # raw columns as is
    np.testing.assert_array_equal(widened[:, len(schema.numeric) :], expected)
    if schema.categorical:
        np.testing.assert_array_equal(outputs[1], cat)
    return expected


@pytest.mark.parametrize("opsets", OPSETS, ids=["opset18", "opset13"])
def test_ratio_is_missing_for_zero_or_missing_denominators_and_overflow(
    opsets: dict[str, int],
) -> None:
    rows = [
        [6, 3], [-6, 3], [1, 0], [0, 0], [-1, 0], [1, -0.0], [NAN, 2], [2, NAN],
        [3e38, 1e-3], [1e-45, 1e10], [0, 5],
    ]  # fmt: skip
    entry = {"name": "r", "kind": "ratio", "numerator": "x", "denominator": "n"}
    got = derive_both([entry], rows, opsets=opsets)[:, 0]
    np.testing.assert_array_equal(got, [2, -2, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0, 0])


@pytest.mark.parametrize("opsets", OPSETS, ids=["opset18", "opset13"])
def test_bins_put_a_value_on_an_edge_in_the_upper_bin(opsets: dict[str, int]) -> None:
    edges = [-1.5, 0, 0.1, 10]
    xs = [-2, -1.5, -0.0, 0, 0.05, 0.1, 9.999, 10, 1e30, NAN, -np.inf, np.inf]
    entry = {"name": "b", "kind": "bins", "feature": "x", "edges": edges}
    got = derive_both([entry], [[x, 0] for x in xs], opsets=opsets)[:, 0]
    np.testing.assert_array_equal(got, [0, 1, 2, 2, 2, 3, 3, 4, 4, NAN, 0, 4])


def _datetime_parts(x32: np.float32) -> dict[str, float]:
    secs = int(np.floor(np.float64(x32)))
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=secs)
    return {
        "year": t.year,
        "month": t.month,
        "day": t.day,
        "weekday": t.weekday(),
        "hour": t.hour,
        "dayofyear": t.timetuple().tm_yday,
    }


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


BOUNDARIES = [
    "1970-01-01T00:00:00", "1969-12-31T23:00:00", "1969-03-01T00:00:00",
    "1900-02-28T00:00:00", "1900-03-01T00:00:00", "1600-02-29T00:00:00",
    "2000-02-29T00:00:00", "2000-03-01T00:00:00", "2000-12-31T00:00:00",
    "2023-02-28T00:00:00", "2023-03-01T00:00:00", "2023-12-31T00:00:00",
    "2024-01-01T00:00:00", "2024-02-29T00:00:00", "2024-03-01T00:00:00",
    "2024-12-31T00:00:00", "2024-04-30T00:00:00", "2024-05-01T00:00:00",
    "2024-06-30T22:00:00", "2038-01-19T00:00:00", "2100-02-28T00:00:00",
    "2100-03-01T00:00:00", "1583-01-01T00:00:00", "4000-02-29T00:00:00",
]  # fmt: skip
TEA_COFFEE = ["tea", "coffee", "tea"]  # a repeated value is fine
DATE_ENTRIES = [
    {"name": part, "kind": "date_part", "feature": "x", "part": part}
    for part in ("year", "month", "day", "weekday", "hour", "dayofyear")
]


@pytest.mark.parametrize("opsets", OPSETS, ids=["opset18", "opset13"])
def test_date_parts_match_python_datetime_around_month_and_leap_year_boundaries(
    opsets: dict[str, int],
) -> None:
    rng = np.random.default_rng(7)
    stamps = [_ts(t) for t in BOUNDARIES]
    stamps += rng.uniform(-1e10, 1e10, size=3000).tolist()  # years 1653 to 2286
    stamps += rng.uniform(1.6e9, 1.8e9, size=1000).tolist()  # recent, to the second
    stamps += [0.5, -0.5, -1.0, 86399.0, 1e11]  # fractions floor; the largest date allowed
    x32 = np.asarray(stamps, dtype=np.float32)
    got = derive_both(DATE_ENTRIES, [[x, 1] for x in x32], opsets=opsets)
    parts = [e["name"] for e in DATE_ENTRIES]
    expected = np.array([[_datetime_parts(x)[p] for p in parts] for x in x32], dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    # spot checks that do not lean on the helper
    leap_day = stamps.index(_ts("2024-02-29T00:00:00"))
    assert got[leap_day].tolist() == [2024, 2, 29, 3, 0, 60]
    before_epoch = stamps.index(_ts("1969-12-31T23:00:00"))
    assert got[before_epoch].tolist() == [1969, 12, 31, 2, 23, 365]


@pytest.mark.parametrize("opsets", OPSETS, ids=["opset18", "opset13"])
def test_a_missing_or_impossible_date_gives_missing_parts(opsets: dict[str, int]) -> None:
    xs = [NAN, np.inf, -np.inf, 2e11, -2e11, 3e38]
    got = derive_both(DATE_ENTRIES, [[x, 1] for x in xs], opsets=opsets)
    assert np.isnan(got).all()


@pytest.mark.parametrize("opsets", OPSETS, ids=["opset18", "opset13"])
def test_flags_treat_missing_and_unseen_categories_as_values_not_listed(
    opsets: dict[str, int],
) -> None:
    entries = [
        {"name": "tea_or_coffee", "kind": "flag", "any": [{"feature": "drink", "in": TEA_COFFEE}]},
        {"name": "not_tea", "kind": "flag", "all": [{"feature": "drink", "not_in": ["tea"]}]},
        {"name": "no_drink", "kind": "flag", "any": [{"feature": "drink", "in": [None]}]},
        {"name": "mid", "kind": "flag", "all": [{"feature": "x", "min": 1, "max": 5}]},
        {
            "name": "tea_big_or_small",
            "kind": "flag",
            "all": [{"feature": "drink", "in": ["tea"]}, {"feature": "size", "not_in": ["L"]}],
        },
        {
            "name": "coffee_or_low",
            "kind": "flag",
            "any": [{"feature": "drink", "in": ["coffee"]}, {"feature": "n", "max": 0.5}],
        },
    ]  # fmt: skip
    drinks = ["tea", "coffee", "", "matcha", "Tea", "tea ", "tea", "coffee"]
    sizes = ["S", "L", "S", "", "S", "S", "L", "S"]
    xs = [1, 5, NAN, 4.99, 0.999, -3, 2, 1e9]
    ns = [0, 1, 0.5, NAN, 0.49, 2, 0.7, 1]
    got = derive_both(
        entries, [[x, n] for x, n in zip(xs, ns, strict=True)],
        [[d, s] for d, s in zip(drinks, sizes, strict=True)], opsets=opsets,
    )  # fmt: skip
    np.testing.assert_array_equal(
        got.T,
        [
            [1, 1, 0, 0, 0, 0, 1, 1],  # tea or coffee; "Tea" and "tea " are other values
            [0, 1, 1, 1, 1, 1, 0, 1],  # not tea: missing and unseen are not tea
            [0, 0, 1, 0, 0, 0, 0, 0],  # null in a list matches the missing value ""
            [1, 0, 0, 1, 0, 0, 1, 0],  # 1 <= x < 5; NaN is in no range
            [1, 0, 0, 0, 0, 0, 0, 0],  # tea and size not L
            [1, 1, 0, 0, 1, 0, 0, 1],  # coffee, or n < 0.5 (NaN is not)
        ],
    )


def test_the_graph_of_categorical_only_data_gives_the_derived_columns_alone() -> None:
    schema = Schema("y", ["a", "b"], [FeatureSpec("drink", "categorical", "string")])
    entry = {"name": "hot", "kind": "flag", "any": [{"feature": "drink", "in": ["tea"]}]}
    got = derive_both([entry], [], [["tea"], ["milk"], [""]], schema=schema)
    np.testing.assert_array_equal(got, [[1], [0], [0]])


def test_the_graph_names_no_node_or_value_outside_its_prefix() -> None:
    (feature,) = parse_derived([DATE_ENTRIES[5]], SCHEMA)
    model = derivation_model([feature], SCHEMA)
    inputs = {"numeric", "categorical"}
    names = {o for n in model.graph.node for o in n.output} | {
        i.name for i in model.graph.initializer
    }
    assert names and all(name.startswith("derive/") for name in names)
    used = {i for n in model.graph.node for i in n.input}
    assert used - names <= inputs
