"""Classification metrics: hand-computed cases, agreement with scikit-learn, edge cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from mlcycle.evaluate.metrics import (
    calibration_table,
    classification_metrics,
    higher_is_better,
    predicted_labels,
)
from mlcycle.exceptions import DataError

BINARY_Y = np.array(["a", "a", "b", "b"])
BINARY_P = np.array([[0.9, 0.1], [0.4, 0.6], [0.35, 0.65], [0.8, 0.2]])


def _random_case(n: int, classes: list[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(len(classes)), size=n)
    # Labels correlated with the probabilities, so the metrics are far from trivial.
    idx = np.array([rng.choice(len(classes), p=0.5 * row + 0.5 / len(classes)) for row in proba])
    return np.asarray(classes)[idx], proba


def test_binary_metrics_match_hand_computed_case() -> None:
    m = classification_metrics(BINARY_Y, BINARY_P, ["a", "b"])
    # predicted: a, b, b, a
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == {"labels": ["a", "b"], "matrix": [[1, 1], [1, 1]]}
    assert m["per_class"]["a"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["recall"] == pytest.approx(0.5)
    assert m["f1_macro"] == pytest.approx(0.5)
    assert m["per_class"]["b"]["support"] == 2
    # positive class b: pairs (pos, neg) ordered correctly: 3 of 4
    assert m["roc_auc"] == pytest.approx(0.75)
    # ranking b, a, b, a: AP = 0.5 * 1 + 0.5 * 2/3
    assert m["pr_auc"] == pytest.approx(0.5 + 1 / 3)
    expected_ll = -np.mean(np.log([0.9, 0.4, 0.65, 0.2]))
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert m["brier"] == pytest.approx((0.1**2 + 0.6**2 + 0.35**2 + 0.8**2) / 4)
    assert m["positive_class"] == "b"
    assert m["average"] == "binary"
    assert m["notes"] == []


def test_binary_metrics_agree_with_sklearn() -> None:
    y, p = _random_case(200, ["neg", "pos"], seed=1)
    m = classification_metrics(y, p, ["neg", "pos"])
    positive = y == "pos"
    pred = predicted_labels(p, ["neg", "pos"])
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(positive, p[:, 1]))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(positive, p[:, 1]))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(positive, p[:, 1]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=["neg", "pos"]))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))


def test_multiclass_metrics_agree_with_sklearn() -> None:
    classes = ["other", "setosa", "versicolor", "virginica"]  # sorted, as sklearn needs
    y, p = _random_case(300, classes, seed=2)
    m = classification_metrics(y, p, classes)
    pred = predicted_labels(p, classes)
    for avg in ("macro", "weighted"):
        prec, rec, f1, _ = skm.precision_recall_fscore_support(
            y, pred, labels=classes, average=avg, zero_division=0
        )
        assert m[f"precision_{avg}"] == pytest.approx(prec)
        assert m[f"recall_{avg}"] == pytest.approx(rec)
        assert m[f"f1_{avg}"] == pytest.approx(f1)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, p, multi_class="ovr", average="macro", labels=classes)
    )
    onehot = label_binarize(y, classes=classes)
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(onehot, p, average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=classes))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p, labels=classes))
    assert m["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, pred, labels=classes).tolist()
    assert m["average"] == "macro_ovr"
    assert m["positive_class"] is None


def test_confusion_matrix_follows_classes_order_not_sorted_order() -> None:
    m = classification_metrics(["z", "z", "a"], [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]], ["z", "a"])
    assert m["confusion_matrix"] == {"labels": ["z", "a"], "matrix": [[1, 1], [0, 1]]}
    assert m["positive_class"] == "a"


def test_predicted_label_is_first_class_on_ties() -> None:
    assert predicted_labels([[0.5, 0.5], [0.1, 0.9]], ["x", "y"]).tolist() == ["x", "y"]


def test_class_absent_from_y_true_gives_null_and_a_note() -> None:
    y = np.array(["a", "a", "b", "b"])
    p = np.array([[0.7, 0.2, 0.1], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    m = classification_metrics(y, p, ["a", "b", "c"])
    c = m["per_class"]["c"]
    assert c["recall"] is None and c["roc_auc"] is None and c["pr_auc"] is None
    assert c["precision"] == 0.0  # predicted once, wrongly
    assert c["support"] == 0
    assert any("'c'" in note and "no samples" in note for note in m["notes"])
    # macro averages over the two present classes
    assert m["recall_macro"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["roc_auc"] == pytest.approx(
        np.mean([skm.roc_auc_score(y == k, p[:, j]) for j, k in enumerate(["a", "b"])])
    )
    json.dumps(m, allow_nan=False)  # no NaN anywhere


def test_class_never_predicted_has_null_precision_counted_as_zero() -> None:
    y = np.array(["a", "b", "b"])
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]])
    m = classification_metrics(y, p, ["a", "b"])
    assert m["per_class"]["b"]["precision"] is None
    assert m["precision_macro"] == pytest.approx((1 / 3 + 0.0) / 2)
    assert any("never predicted" in note for note in m["notes"])


def test_ece_of_perfectly_calibrated_toy_case_is_zero() -> None:
    # 10 rows at confidence 0.8 with 8 right, 10 rows at 0.6 with 6 right.
    y = ["a"] * 8 + ["b"] * 2 + ["b"] * 6 + ["a"] * 4
    p = [[0.8, 0.2]] * 10 + [[0.4, 0.6]] * 10
    m = classification_metrics(y, p, ["a", "b"])
    assert m["ece"] == pytest.approx(0.0, abs=1e-12)
    table = m["calibration"]
    assert table["count"][8] == 10 and table["count"][6] == 10
    assert table["accuracy"][8] == pytest.approx(0.8)
    assert table["confidence"][0] is None


def test_ece_of_overconfident_model_is_the_confidence_gap() -> None:
    t = calibration_table(["a", "b"] * 5, [[0.9, 0.1]] * 10, ["a", "b"], n_bins=10)
    assert t["ece"] == pytest.approx(0.4)
    assert t["count"][9] == 10
    assert len(t["edges"]) == 11


def test_confidence_of_one_falls_in_the_last_bin() -> None:
    t = calibration_table(["a"], [[1.0, 0.0]], ["a", "b"], n_bins=4)
    assert t["count"] == [0, 0, 0, 1]


def test_metrics_are_plain_json() -> None:
    y, p = _random_case(50, ["x", "y", "z"], seed=3)
    m = classification_metrics(y, p.astype(np.float32), ["x", "y", "z"])
    again = json.loads(json.dumps(m, allow_nan=False))
    assert again == m
    assert all(not isinstance(v, np.generic) for v in m.values())


def test_log_loss_is_finite_when_true_class_has_zero_probability() -> None:
    m = classification_metrics(["a", "b"], [[0.0, 1.0], [0.0, 1.0]], ["a", "b"])
    assert math.isfinite(m["log_loss"]) and m["log_loss"] > 10


@pytest.mark.parametrize(
    ("y", "p", "classes", "match"),
    [
        (["a", "b"], [[0.5, 0.5]], ["a", "b"], "2 labels but proba has 1 rows"),
        (["a"], [[0.2, 0.3, 0.5]], ["a", "b"], r"shape \[N, 2\]"),
        (["a", "q"], [[0.5, 0.5], [0.5, 0.5]], ["a", "b"], "'q'"),
        (["a"], [[1.0]], ["a"], "at least two"),
        (["a"], [[np.nan, 1.0]], ["a", "b"], "NaN"),
    ],
)
def test_bad_inputs_raise_data_error(
    y: list[str], p: list[list[float]], classes: list[str], match: str
) -> None:
    with pytest.raises(DataError, match=match):
        classification_metrics(y, p, classes)


def test_losses_are_lower_is_better() -> None:
    assert not higher_is_better("log_loss") and not higher_is_better("ece")
    assert higher_is_better("roc_auc")
