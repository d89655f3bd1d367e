"""The learning curve's metric: mlcycle names as scikit-learn scorers."""

from __future__ import annotations

import pytest

from mlcycle.data.check.scoring import curve_metric, metric_names
from mlcycle.exceptions import ConfigError


def test_a_loss_is_scored_negated_and_lower_is_better() -> None:
    metric = curve_metric("log_loss", 3, setting="evaluate.primary_metric")
    assert (metric.scorer, metric.sign, metric.higher_is_better) == ("neg_log_loss", -1.0, False)


def test_roc_auc_is_one_vs_rest_for_more_than_two_classes() -> None:
    assert curve_metric("roc_auc", 2, setting="s").scorer == "roc_auc"
    assert curve_metric("roc_auc", 4, setting="s").scorer == "roc_auc_ovr"


def test_an_unknown_metric_names_the_setting_and_the_choices() -> None:
    with pytest.raises(
        ConfigError,
        match=r"evaluate.primary_metric is 'f2'.*'accuracy'.*"
        r"data.check.metric=NAME",
    ):
        curve_metric("f2", 2, setting="evaluate.primary_metric")


def test_a_metric_sklearn_cannot_score_on_multiclass_data_is_refused() -> None:
    assert "pr_auc" not in metric_names(3)
    with pytest.raises(ConfigError, match=r"data.check.metric is 'pr_auc'.*3-class"):
        curve_metric("pr_auc", 3, setting="data.check.metric")
    with pytest.raises(ConfigError, match="'ece'"):
        curve_metric("ece", 2, setting="data.check.metric")
