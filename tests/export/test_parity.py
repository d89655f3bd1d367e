"""check_parity: measures ONNX vs scikit-learn and refuses a graph that disagrees."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest

from mlcycle.config.structured import LogRegConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.exceptions import ExportError
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import ParityError, ParityReport, check_parity
from mlcycle.train.fit import TrainedModel, fit_model

Trained = Callable[[str, str], tuple[TrainedModel, Dataset, Dataset]]


def test_parity_report_holds_the_measured_numbers(trained: Trained) -> None:
    model, _, val = trained("logreg", "breast_cancer")
    report = check_parity(model, to_onnx(model.pipeline, val.schema), val, tolerance=1e-4)
    assert report == ParityReport(
        rows=len(val),
        max_abs_diff=report.max_abs_diff,
        label_mismatches=0,
        tolerance=1e-4,
        passed=True,
    )
    assert 0.0 <= report.max_abs_diff <= 1e-4
    assert json.loads(json.dumps(report.to_dict())) == report.to_dict()


def test_parity_fails_when_probabilities_differ_beyond_tolerance(trained: Trained) -> None:
    model, _, val = trained("mlp", "mixed")
    onx = to_onnx(model.pipeline, val.schema)
    measured = check_parity(model, onx, val, tolerance=1e-4).max_abs_diff
    assert measured > 0.0  # float32 graph vs float64 scikit-learn always differ a little
    with pytest.raises(
        ParityError, match=r"parity check failed.*max \|p_onnx - p_sklearn\| = .*tolerance"
    ) as info:
        check_parity(model, onx, val, tolerance=measured / 2)
    assert isinstance(info.value, ExportError)
    assert not info.value.report.passed
    assert info.value.report.max_abs_diff == measured
    assert info.value.report.label_mismatches == 0


def test_parity_fails_against_a_different_model_and_counts_label_mismatches(
    trained: Trained,
) -> None:
    model, train, val = trained("logreg", "mixed")
    other = fit_model(train, LogRegConfig(C=1e-3), TrainConfig())
    onx_of_other = to_onnx(other.pipeline, val.schema)
    with pytest.raises(ParityError, match=r"label\(s\) differ") as info:
        check_parity(model, onx_of_other, val, tolerance=1e-4)
    report = info.value.report
    assert report.max_abs_diff > 1e-2
    assert report.label_mismatches > 0
    assert str(report.label_mismatches) in str(info.value)
    assert report.rows == len(val)


def test_parity_needs_at_least_one_row(trained: Trained) -> None:
    model, _, val = trained("logreg", "mixed")
    with pytest.raises(ExportError, match="at least one row"):
        check_parity(
            model, to_onnx(model.pipeline, val.schema), val.subset(np.array([], int)), 1e-4
        )


def test_report_to_dict_writes_a_non_finite_difference_as_null() -> None:
    report = ParityReport(
        rows=3, max_abs_diff=float("inf"), label_mismatches=0, tolerance=1e-4, passed=False
    )
    assert report.to_dict()["max_abs_diff"] is None
