"""sanity_check: the pipeline must be able to memorise a few dozen rows."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.config.structured import (
    GBDTConfig,
    LogRegConfig,
    MLPConfig,
    ModelConfig,
    RandomForestConfig,
    TrainConfig,
)
from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import TrainingError
from mlcycle.train.sanity import _stratified_sample, sanity_check


@pytest.mark.parametrize(
    "cfg", [LogRegConfig(), GBDTConfig(), RandomForestConfig(), MLPConfig()], ids=lambda c: c.name
)
def test_default_configs_pass_on_breast_cancer(cfg: ModelConfig, breast_cancer: Dataset) -> None:
    result = sanity_check(breast_cancer, cfg, TrainConfig())
    assert result.passed, result.message
    assert result.rows == 32
    assert result.train_accuracy >= 0.99
    assert "memorised 32 rows" in result.message


def test_an_absurdly_regularised_logreg_fails_with_an_explanation(
    breast_cancer: Dataset,
) -> None:
    result = sanity_check(breast_cancer, LogRegConfig(C=1e-6), TrainConfig())
    assert not result.passed
    assert result.train_accuracy < 0.99
    assert "could not memorise 32 rows" in result.message
    assert "bug" in result.message
    assert "raise model.C" in result.message


def test_sanity_rows_and_threshold_come_from_the_train_config(mixed: Dataset) -> None:
    result = sanity_check(
        mixed, LogRegConfig(C=1e-6), TrainConfig(sanity_rows=20, sanity_min_accuracy=0.0)
    )
    assert result.rows == 20
    assert result.passed


def test_the_sample_is_stratified_seeded_and_covers_every_class(wine: Dataset) -> None:
    y = wine.y.astype(str)
    a = _stratified_sample(y, 32, seed=5)
    b = _stratified_sample(y, 32, seed=5)
    np.testing.assert_array_equal(a, b)
    assert len(a) == len(set(a.tolist())) == 32
    assert set(y[a]) == set(y)
    assert not np.array_equal(a, _stratified_sample(y, 32, seed=6))


def test_a_rare_class_still_gets_a_row() -> None:
    y = np.array(["a"] * 500 + ["b"] * 2)
    picked = _stratified_sample(y, 10, seed=0)
    assert len(picked) == 10
    assert "b" in set(y[picked])


def test_single_class_data_is_a_training_error(mixed: Dataset) -> None:
    only = mixed.subset(np.flatnonzero(mixed.y == "mid"))
    with pytest.raises(TrainingError, match=r"at least two classes.*'mid'"):
        sanity_check(only, LogRegConfig(), TrainConfig())
