"""Slices: parsing config entries, masks on raw features, and automatic candidates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.evaluate.auto_slices import candidate_slices, quantile_edges
from mlcycle.evaluate.slices import Condition, Slice, parse_slices, slice_mask
from mlcycle.exceptions import ConfigError

SCHEMA = Schema(
    "y",
    ["a", "b"],
    [
        FeatureSpec("x", "numeric", nullable=True),
        FeatureSpec("drink", "categorical", "string", categories=["coffee", "tea"]),
        FeatureSpec("tags", "text", "string"),
    ],
)
FRAME = pd.DataFrame(
    {
        "x": np.array([1.0, 2.0, 3.0, np.nan, 5.0], dtype=np.float32),
        "drink": ["tea", "coffee", "", "tea", "water"],
        "tags": ["night;rain", "day", "Night, snow", "", "nightly"],
    }
)


def mask(where: dict[str, Any]) -> list[bool]:
    found = slice_mask(FRAME, Slice.from_config({"name": "s", "where": where}), SCHEMA)
    return [bool(v) for v in found]


def test_a_range_includes_min_excludes_max_and_never_matches_missing_values() -> None:
    assert mask({"x": {"min": 2, "max": 5}}) == [False, True, True, False, False]
    assert mask({"x": {"min": 2}}) == [False, True, True, False, True]
    assert mask({"x": {"max": 2}}) == [True, False, False, False, False]


def test_values_match_categories_and_the_empty_string_stands_for_missing() -> None:
    assert mask({"drink": ["tea", "water"]}) == [True, False, False, True, True]
    assert mask({"drink": [None]}) == [False, False, True, False, False]
    assert mask({"drink": "coffee"}) == [False, True, False, False, False]


def test_values_on_a_numeric_feature_match_numbers_and_null_matches_nan() -> None:
    assert mask({"x": [1, 5]}) == [True, False, False, False, True]
    assert mask({"x": [None]}) == [False, False, False, True, False]
    assert mask({"x": [3, None]}) == [False, False, True, True, False]


def test_contains_matches_whole_words_case_insensitively_split_on_separators() -> None:
    assert mask({"tags": {"contains": "night"}}) == [True, False, True, False, False]


def test_all_conditions_must_hold() -> None:
    assert mask({"x": {"min": 1}, "drink": ["tea"]}) == [True, False, False, False, False]


def test_no_conditions_is_the_whole_set() -> None:
    assert mask({}) == [True] * 5


def test_describe_reads_like_the_condition() -> None:
    sl = Slice.from_config(
        {"name": "s", "where": {"x": {"min": 1, "max": 2.5}, "drink": ["tea", None]}}
    )
    assert sl.describe() == "1 <= x < 2.5 and drink in [tea, (missing)]"
    assert Condition("x", values=("",)).describe() == "x is missing"
    assert Condition("tags", contains="night").describe() == "tags contains 'night'"


def test_an_omegaconf_entry_parses_like_plain_data() -> None:
    entry = OmegaConf.create({"name": "s", "where": {"x": {"min": 2}}, "baseline": 0.9})
    assert Slice.from_config(entry) == Slice(
        "s", (Condition("x", min=2.0),), baseline=0.9, source="config"
    )


def test_to_config_round_trips_through_from_config() -> None:
    sl = Slice(
        "mixed",
        (
            Condition("x", min=1.5, max=3.0),
            Condition("drink", values=("tea", "")),
            Condition("tags", contains="night"),
        ),
        baseline=0.8,
    )
    assert Slice.from_config(sl.to_config()) == sl
    assert parse_slices([sl.to_config()]) == [sl]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"where": {"x": {"min": 1}}}, "every slice needs a name"),
        ("big", "every slice needs a name"),
        ({"name": "s", "when": {}}, r"unknown keys \['when'\]"),
        ({"name": "s", "where": ["x"]}, "'where' must map features to conditions"),
        ({"name": "s", "baseline": "high"}, "baseline must be a number"),
        ({"name": "s", "where": {"x": []}}, "the value list of 'x' is empty"),
        ({"name": "s", "where": {"x": {"contains": " "}}}, "'x: contains' is empty"),
        ({"name": "s", "where": {"x": {"min": "one"}}}, "x.min must be a number, got 'one'"),
        ({"name": "s", "where": {"x": {"min": True}}}, "x.min must be a number"),
        ({"name": "s", "where": {"x": {"min": None}}}, "give 'x' a min or a max"),
        ({"name": "s", "where": {"x": {"min": 3, "max": 3}}}, "min 3 >= max 3"),
        ({"name": "s", "where": {"x": {"above": 3}}}, "use a range"),
        ({"name": "s", "where": {"x": True}}, "use a range"),
    ],
)
def test_a_malformed_entry_is_a_config_error_naming_the_slice(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_slices([entry])
    assert "analyze.slices[0]" in str(info.value)


def test_repeated_names_are_a_config_error() -> None:
    entry = {"name": "s", "where": {"x": {"min": 1}}}
    with pytest.raises(ConfigError, match=r"repeated: \['s'\]"):
        parse_slices([entry, entry])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"age": {"min": 1}}, "reads the feature 'age', which the data does not have"),
        ({"drink": {"min": 1}}, "'drink' is categorical; a range .* applies to numeric"),
        ({"x": {"contains": "a"}}, "'x' is numeric; 'contains' applies to text"),
        ({"x": ["small"]}, r"'x' is numeric but the slice lists \['small'\]"),
    ],
)
def test_a_condition_that_does_not_fit_the_data_is_a_config_error(
    where: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        mask(where)


def test_quantile_edges_are_rounded_distinct_and_drop_the_minimum() -> None:
    x = np.linspace(10.0, 20.0, 101)
    assert quantile_edges(x, 4) == [12.5, 15.0, 17.5]
    # 3 digits would give 1.23, below the smallest value: one digit more
    assert quantile_edges([1.23456, 1.23457, 1.23458, 1.23459], 2) == [1.235]
    assert quantile_edges([0, 0, 0, 0, 0, 1], 4) == []
    assert quantile_edges([np.nan, np.nan], 4) == []
    with pytest.raises(ConfigError, match=r"analyze\.auto_bins must be at least 2"):
        quantile_edges(x, 1)


def test_candidates_bin_numbers_by_training_edges_with_open_outer_bins() -> None:
    train = pd.DataFrame(
        {
            "x": np.arange(1, 9, dtype=np.float32),
            "drink": ["tea", "coffee"] * 4,
            "tags": ["a"] * 8,
        }
    )
    found = candidate_slices(SCHEMA, train, FRAME, bins=2)
    names = [s.name for s in found]
    assert names == [
        "x < 4.5",
        "x >= 4.5",
        "x is missing",  # FRAME has a NaN
        "drink is missing",
        "drink = coffee",
        "drink = tea",
        "drink = water",  # seen only in the analysed rows
    ]
    assert all(s.source == "auto" and len(s.conditions) == 1 for s in found)
    # outer bins are open: a value far beyond the training range still has a bin
    far = pd.DataFrame({"x": [100.0, -100.0], "drink": ["tea", "tea"], "tags": ["", ""]})
    assert slice_mask(far, found[1], SCHEMA).tolist() == [True, False]
    assert slice_mask(far, found[0], SCHEMA).tolist() == [False, True]
    # a pasted candidate is the same slice
    assert Slice.from_config(found[0].to_config()).conditions == found[0].conditions


def test_candidates_are_the_same_for_the_same_training_rows() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"x": rng.normal(size=200).astype(np.float32), "drink": ["tea"] * 200, "tags": [""] * 200}
    )
    first = candidate_slices(SCHEMA, train, FRAME, bins=4)
    again = candidate_slices(SCHEMA, train.copy(), FRAME.copy(), bins=4)
    assert first == again
    assert [s.name for s in first[:4]] == [
        "x < -0.626",
        "x in [-0.626, 0.0484)",
        "x in [0.0484, 0.686)",
        "x >= 0.686",
    ]
