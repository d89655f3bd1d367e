"""Duplicates: identical features with the same label, or with conflicting labels."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle.data.check.duplicates import find_duplicates


def test_finds_identical_features_with_conflicting_labels() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 1.0, 3.0, 1.0], "c": ["u", "v", "u", "w", "u"]}).astype(
        {"x": "float32"}
    )
    found = find_duplicates(frame, np.array(["a", "a", "b", "a", "a"]))
    assert found.conflicting_groups == 1
    assert found.conflicting_rows == 3
    assert found.conflicting == [{"rows": [0, 2, 4], "labels": {"a": [0, 4], "b": [2]}}]
    # rows 0 and 4 also repeat each other exactly
    assert found.exact == [{"rows": [0, 4], "label": "a"}]
    assert found.exact_extra_rows == 1


def test_exact_duplicates_count_the_rows_beyond_the_first() -> None:
    frame = pd.DataFrame({"x": [5.0, 5.0, 5.0, 6.0, 6.0, 7.0]})
    found = find_duplicates(frame, np.array(["a", "a", "a", "b", "b", "b"]))
    assert found.exact_groups == 2
    assert found.exact_extra_rows == 3
    assert found.exact[0] == {"rows": [0, 1, 2], "label": "a"}  # largest first
    assert found.conflicting_groups == 0


def test_missing_values_are_equal_to_each_other() -> None:
    frame = pd.DataFrame({"x": [np.nan, np.nan, 1.0], "c": ["", "", "u"]})
    found = find_duplicates(frame, np.array(["a", "b", "a"]))
    assert found.conflicting == [{"rows": [0, 1], "labels": {"a": [0], "b": [1]}}]


def test_rows_are_reported_as_positions_in_the_data_file() -> None:
    frame = pd.DataFrame({"x": [1.0, 1.0, 2.0]})
    found = find_duplicates(frame, np.array(["a", "b", "a"]), rows=np.array([0, 3, 4]))
    assert found.conflicting[0]["rows"] == [0, 3]


def test_images_are_compared_by_their_pixels() -> None:
    same = np.zeros((1, 2, 2), np.float32)
    other = np.ones((1, 2, 2), np.float32)
    frame = pd.DataFrame({"image": pd.Series([same, same.copy(), other], dtype=object)})
    found = find_duplicates(frame, np.array(["a", "b", "a"]))
    assert found.conflicting[0]["rows"] == [0, 1]


def test_distinct_rows_have_no_duplicates() -> None:
    frame = pd.DataFrame({"x": np.arange(100.0), "y": np.arange(100.0) % 7})
    found = find_duplicates(frame, np.array(["a", "b"] * 50))
    assert (found.exact_groups, found.conflicting_groups) == (0, 0)


def test_lists_at_most_max_listed_groups_but_counts_all() -> None:
    frame = pd.DataFrame({"x": np.repeat(np.arange(10.0), 2)})
    found = find_duplicates(frame, np.array(["a", "b"] * 10), max_listed=3)
    assert found.conflicting_groups == 10
    assert len(found.conflicting) == 3
