"""The feedback dataset read back and split by time into training rows and recent rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import DataError
from mlcycle.retrain.data import append_rows, has_rows, read_feedback
from tests.retrain._drift import write_feedback

SCHEMA = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
START = datetime(2026, 1, 1, tzinfo=UTC)


def rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=float), "y": ["a", "b"] * (n // 2)})


def test_rows_come_back_oldest_first_with_their_label_times(tmp_path: Path) -> None:
    path = write_feedback(tmp_path / "f.csv", rows(4), start=START)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")  # newest first
    feedback = read_feedback(path, SCHEMA, tmp_path)
    assert feedback.rows.frame["x"].tolist() == [0, 1, 2, 3]
    assert np.diff(feedback.labelled_at).tolist() == [1.0, 1.0, 1.0]
    assert feedback.labelled_at[0] == START.timestamp()
    assert feedback.version.path == "f.csv" and not feedback.version.tracked


def test_the_newest_share_of_the_new_rows_is_recent_the_rest_trains(tmp_path: Path) -> None:
    feedback = read_feedback(write_feedback(tmp_path / "f.csv", rows(20), start=START),
                             SCHEMA, tmp_path)  # fmt: skip
    since = (START + timedelta(seconds=9.5)).timestamp()  # rows 10..19 are new
    part = feedback.split(since, 0.3)
    assert part.new_rows == 10
    assert part.recent.frame["x"].tolist() == [17, 18, 19]
    assert part.train.frame["x"].tolist() == list(range(17))
    assert feedback.split(since, 0.0).recent.frame.empty
    # a single class in the recent rows is fine
    assert set(feedback.split(since, 0.1).recent.y) == {"b"}


def test_append_rows_keeps_the_base_version_and_adds_the_rows(tmp_path: Path) -> None:
    feedback = read_feedback(write_feedback(tmp_path / "f.csv", rows(4), start=START),
                             SCHEMA, tmp_path)  # fmt: skip
    both = append_rows(feedback.rows.subset(np.arange(2)), feedback.rows.subset(np.arange(2, 4)))
    assert both.frame["x"].tolist() == [0, 1, 2, 3] and both.y.tolist() == ["a", "b", "a", "b"]


def test_a_label_time_that_is_not_iso_8601_names_the_column_and_the_value(
    tmp_path: Path,
) -> None:
    path = write_feedback(tmp_path / "f.csv", rows(2), start=START)
    path.write_text(path.read_text().replace("2026-01-01T00:00:01.000Z", "yesterday"))
    with pytest.raises(DataError, match=r"_labelled_at .* 1 value\(s\) .*'yesterday'"):
        read_feedback(path, SCHEMA, tmp_path)


def test_a_header_alone_has_no_rows(tmp_path: Path) -> None:
    path = write_feedback(tmp_path / "f.csv", rows(0), start=START)
    assert not has_rows(path)
    assert has_rows(write_feedback(tmp_path / "g.csv", rows(2), start=START))
