"""Bundled example datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle.data import EXAMPLES, write_example
from mlcycle.exceptions import ConfigError


@pytest.mark.parametrize("name", sorted(n for n in EXAMPLES if EXAMPLES[n].arrays is None))
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_example_is_byte_identical_across_calls(
    tmp_path: Path, name: str, suffix: str
) -> None:
    first = write_example(name, tmp_path / "a" / f"{name}{suffix}")
    second = write_example(name, tmp_path / "b" / f"{name}{suffix}")
    assert first.read_bytes() == second.read_bytes()
    assert write_example(name, first).read_bytes() == second.read_bytes()


def test_breast_cancer_example_has_sklearn_features_and_string_diagnosis(tmp_path: Path) -> None:
    frame = pd.read_csv(write_example("breast_cancer", tmp_path / "bc.csv"))
    features = [c for c in frame.columns if c != "diagnosis"]
    assert features == list(load_breast_cancer().feature_names)
    assert len(features) == 30
    assert frame.columns[-1] == "diagnosis"
    assert set(frame["diagnosis"]) == {"malignant", "benign"}
    assert len(frame) == 569
    assert (frame["diagnosis"] == "malignant").sum() == 212


def test_wine_example_has_cultivar_classes(tmp_path: Path) -> None:
    frame = pd.read_parquet(write_example("wine", tmp_path / "wine.parquet"))
    assert frame.shape == (178, 14)
    assert sorted(set(frame["cultivar"])) == ["class_0", "class_1", "class_2"]


def test_example_csv_floats_round_trip_exactly(tmp_path: Path) -> None:
    frame = pd.read_csv(write_example("breast_cancer", tmp_path / "bc.csv"))
    data = load_breast_cancer().data
    assert (frame.drop(columns="diagnosis").to_numpy() == data).all()


def test_write_example_creates_parent_folders(tmp_path: Path) -> None:
    out = write_example("wine", tmp_path / "deep" / "er" / "wine.csv")
    assert out.is_file()
    assert [p.name for p in out.parent.iterdir()] == ["wine.csv"]


def test_write_example_unknown_name_lists_available_examples(tmp_path: Path) -> None:
    listed = r"unknown example dataset 'iris'.*breast_cancer, digits, tickets, wine"
    with pytest.raises(ConfigError, match=listed):
        write_example("iris", tmp_path / "iris.csv")
    assert not (tmp_path / "iris.csv").exists()


def test_tickets_example_has_a_text_message_and_four_teams(tmp_path: Path) -> None:
    frame = pd.read_csv(write_example("tickets", tmp_path / "tickets.csv"))
    assert list(frame.columns) == ["message", "channel", "account_age_days", "team"]
    assert len(frame) == 1200
    assert sorted(frame["team"].unique()) == ["account", "billing", "shipping", "technical"]
    assert frame["message"].str.len().median() > 40  # sentences, not categories
    assert frame["message"].nunique() > 1000
