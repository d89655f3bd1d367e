"""make_estimator: one family per name, the shared C, the seed everywhere."""

from __future__ import annotations

import logging
import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning

from mlcycle.config.structured import (
    GBDTConfig,
    LogRegConfig,
    MLPConfig,
    ModelConfig,
    RandomForestConfig,
)
from mlcycle.exceptions import ConfigError
from mlcycle.train.estimators import FAMILIES, log_convergence_warnings, make_estimator


@pytest.mark.parametrize(
    ("cfg", "cls"),
    [
        (LogRegConfig(), "LogisticRegression"),
        (GBDTConfig(), "HistGradientBoostingClassifier"),
        (RandomForestConfig(), "RandomForestClassifier"),
        (MLPConfig(), "MLPClassifier"),
    ],
)
def test_each_family_builds_its_estimator_with_the_seed(cfg: ModelConfig, cls: str) -> None:
    est = make_estimator(cfg, seed=7)
    assert type(est).__name__ == cls
    assert est.random_state == 7


def test_families_lists_the_four_supported_names() -> None:
    assert FAMILIES == ("logreg", "gbdt", "random_forest", "mlp")


def test_logreg_uses_c_directly() -> None:
    assert make_estimator(LogRegConfig(C=0.25), 0).C == 0.25


def test_gbdt_turns_c_into_l2_regularization_and_disables_early_stopping() -> None:
    est = make_estimator(GBDTConfig(C=4.0), 0)
    assert est.l2_regularization == 0.25
    assert est.early_stopping is False


def test_gbdt_without_c_keeps_its_own_l2_regularization() -> None:
    assert make_estimator(GBDTConfig(l2_regularization=0.3), 0).l2_regularization == 0.3


def test_mlp_turns_c_into_alpha() -> None:
    est = make_estimator(MLPConfig(C=100.0, hidden_layer_sizes=[8, 4]), 0)
    assert est.alpha == pytest.approx(0.01)
    assert est.hidden_layer_sizes == (8, 4)


def test_mlp_without_c_keeps_its_alpha() -> None:
    assert make_estimator(MLPConfig(alpha=0.5), 0).alpha == 0.5


def test_random_forest_ignores_c_with_a_logged_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="mlcycle.train.estimators"):
        est = make_estimator(RandomForestConfig(C=2.0), 0)
    assert type(est).__name__ == "RandomForestClassifier"
    assert "model.C=2.0 is ignored" in caplog.text


def test_random_forest_max_features_all_means_none() -> None:
    assert make_estimator(RandomForestConfig(max_features="all"), 0).max_features is None
    assert make_estimator(RandomForestConfig(max_features="log2"), 0).max_features == "log2"


def test_random_forest_rejects_an_unknown_max_features() -> None:
    with pytest.raises(ConfigError, match=r"max_features is 'half'.*sqrt, log2, all"):
        make_estimator(RandomForestConfig(max_features="half"), 0)


def test_unknown_family_is_a_config_error_listing_the_families() -> None:
    with pytest.raises(ConfigError, match=r"'svm'.*logreg, gbdt, random_forest, mlp"):
        make_estimator(ModelConfig(name="svm"), 0)


@pytest.mark.parametrize("c", [0.0, -1.0, "big"])
def test_non_positive_c_is_a_config_error(c: object) -> None:
    with pytest.raises(ConfigError, match=r"model.C"):
        make_estimator(LogRegConfig(C=c), 0)  # type: ignore[arg-type]


def test_unknown_class_weight_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"class_weight is 'heavy'"):
        make_estimator(GBDTConfig(class_weight="heavy"), 0)


def test_a_base_model_config_takes_the_family_defaults() -> None:
    est = make_estimator(ModelConfig(name="gbdt", C=None), 0)
    assert est.max_iter == GBDTConfig().max_iter


def test_convergence_warnings_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="mlcycle.train.estimators"),
        log_convergence_warnings("mlp"),
    ):
        warnings.warn("Maximum iterations reached.", ConvergenceWarning, stacklevel=1)
    assert "mlp did not converge: Maximum iterations reached." in caplog.text


def test_other_warnings_pass_through_the_convergence_filter() -> None:
    with pytest.warns(RuntimeWarning, match=r"other"), log_convergence_warnings("mlp"):
        warnings.warn("other", RuntimeWarning, stacklevel=1)
