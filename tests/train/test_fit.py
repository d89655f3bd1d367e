"""fit_model: deterministic, string classes in order, clear errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from mlcycle.config.structured import LogRegConfig, MLPConfig, ModelConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import ConfigError, SchemaError, TrainingError
from mlcycle.train.estimators import FAMILIES
from mlcycle.train.fit import fit_model


@pytest.mark.parametrize("dataset", ["breast_cancer", "mixed"])
@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_and_data_give_identical_predictions(
    family: str,
    dataset: str,
    datasets: dict[str, Dataset],
    fast_config: Callable[..., ModelConfig],
) -> None:
    ds = datasets[dataset]
    a = fit_model(ds, fast_config(family), TrainConfig(seed=3))
    b = fit_model(ds, fast_config(family), TrainConfig(seed=3))
    np.testing.assert_array_equal(a.predict_proba(ds), b.predict_proba(ds))
    np.testing.assert_array_equal(a.predict(ds), b.predict(ds))


@pytest.mark.parametrize("family", FAMILIES)
def test_classes_are_the_pipeline_classes_in_schema_order(
    family: str, wine: Dataset, fast_config: Callable[..., ModelConfig]
) -> None:
    trained = fit_model(wine, fast_config(family), TrainConfig())
    assert trained.classes == [str(c) for c in trained.pipeline.classes_]
    assert trained.classes == wine.schema.classes
    assert trained.predict_proba(wine).shape == (len(wine), 3)
    assert set(trained.predict(wine)) <= set(wine.schema.classes)
    assert trained.fit_seconds > 0
    assert trained.model_cfg.name == family


def test_a_different_seed_gives_a_different_model(
    mixed: Dataset, fast_config: Callable[..., ModelConfig]
) -> None:
    a = fit_model(mixed, fast_config("random_forest"), TrainConfig(seed=1))
    b = fit_model(mixed, fast_config("random_forest"), TrainConfig(seed=2))
    assert not np.array_equal(a.predict_proba(mixed), b.predict_proba(mixed))


def test_predict_accepts_a_plain_frame(mixed: Dataset) -> None:
    trained = fit_model(mixed, LogRegConfig(), TrainConfig())
    np.testing.assert_array_equal(trained.predict(mixed.frame), trained.predict(mixed))


def test_single_class_training_data_is_a_training_error(mixed: Dataset) -> None:
    only_low = mixed.subset(np.flatnonzero(mixed.y == "low"))
    with pytest.raises(TrainingError, match=r"the training split has a single class 'low'"):
        fit_model(only_low, LogRegConfig(), TrainConfig())


def test_empty_training_data_is_a_training_error(mixed: Dataset) -> None:
    with pytest.raises(TrainingError, match=r"empty"):
        fit_model(mixed.subset(np.array([], dtype=int)), LogRegConfig(), TrainConfig())


def test_a_label_outside_the_schema_is_a_schema_error(mixed: Dataset) -> None:
    bad = mixed.subset(np.arange(len(mixed)))
    bad.y = bad.y.astype(object)
    bad.y[0] = "unheard-of"
    with pytest.raises(SchemaError, match=r"'unheard-of'.*schema's classes"):
        fit_model(bad, LogRegConfig(), TrainConfig())


def test_a_schema_class_absent_from_training_is_logged(
    mixed: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    no_high = mixed.subset(np.flatnonzero(mixed.y != "high"))
    with caplog.at_level(logging.WARNING, logger="mlcycle.train.fit"):
        trained = fit_model(no_high, LogRegConfig(), TrainConfig())
    assert trained.classes == ["low", "mid"]
    assert "['high']" in caplog.text


def test_a_hyperparameter_sklearn_rejects_is_a_config_error(mixed: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"model 'mlp'.*learning_rate_init"):
        fit_model(mixed, MLPConfig(learning_rate_init=-1.0), TrainConfig())


def test_non_convergence_is_logged_not_raised(
    mixed: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="mlcycle.train.estimators"):
        fit_model(mixed, MLPConfig(hidden_layer_sizes=[4], max_iter=2), TrainConfig())
    assert "mlp did not converge" in caplog.text
