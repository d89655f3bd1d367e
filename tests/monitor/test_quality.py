"""mlcycle.monitor.quality: online metrics equal scikit-learn's on random labels, a sliding
window equals the metrics of its last pairs, and the offline numbers come from the
bundle's evaluation.json with the same names, so the drop is offline - online."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from mlcycle.evaluate.metrics import classification_metrics
from mlcycle.exceptions import BundleError, DataError
from mlcycle.monitor.quality import (
    QUALITY_METRICS,
    QualityWindow,
    offline_quality,
    quality_drop,
    quality_metrics,
)


def random_pairs(
    n: int, classes: list[str], seed: int, right: float = 0.6
) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    true = rng.choice(classes, n)
    guess = rng.choice(classes, n)
    pred = np.where(rng.random(n) < right, true, guess)
    return list(zip(pred.tolist(), true.tolist(), strict=True))


@pytest.mark.parametrize(("k", "n", "seed"), [(2, 50, 0), (3, 400, 1), (5, 1000, 2), (4, 7, 3)])
def test_metrics_equal_sklearn_on_random_labels(k: int, n: int, seed: int) -> None:
    classes = [f"c{j}" for j in range(k)]
    pairs = random_pairs(n, classes, seed)
    pred = [p for p, _ in pairs]
    true = [t for _, t in pairs]
    got = quality_metrics(pairs, classes)
    present = sorted(set(true))  # macro averages run over the classes present in y_true
    p, r, f, _ = skm.precision_recall_fscore_support(
        true, pred, labels=present, average="macro", zero_division=0
    )
    assert got["n_samples"] == n
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    assert got["precision_macro"] == pytest.approx(p)
    assert got["recall_macro"] == pytest.approx(r)
    assert got["f1_macro"] == pytest.approx(f)
    per_p, per_r, per_f, support = skm.precision_recall_fscore_support(
        true, pred, labels=classes, zero_division=0
    )
    for j, name in enumerate(classes):
        mine = got["per_class"][name]
        assert (mine["precision"] or 0.0) == pytest.approx(per_p[j])
        assert (mine["recall"] or 0.0) == pytest.approx(per_r[j])
        assert (mine["f1"] or 0.0) == pytest.approx(per_f[j])
        assert mine["support"] == support[j]
    matrix = skm.confusion_matrix(true, pred, labels=classes)
    assert got["confusion_matrix"]["matrix"] == matrix.tolist()


def test_undefined_values_are_none_and_count_as_zero_in_the_averages() -> None:
    pairs = [("a", "a"), ("a", "b"), ("a", "b")]  # b never predicted, c never seen
    got = quality_metrics(pairs, ["a", "b", "c"])
    assert got["per_class"]["b"]["precision"] is None
    assert got["per_class"]["c"]["recall"] is None and got["per_class"]["c"]["support"] == 0
    # macro over the present a and b: precision (1/3 + 0) / 2
    assert got["precision_macro"] == pytest.approx(1 / 6)
    assert got["recall_macro"] == pytest.approx(0.5)


def test_no_samples_give_no_numbers_and_unknown_labels_are_kept() -> None:
    empty = quality_metrics([], ["a", "b"])
    assert empty["n_samples"] == 0
    assert all(empty[key] is None for key in QUALITY_METRICS)
    odd = quality_metrics([("a", "z", 1.0), ("a", "a", 2.0)], ["a", "b"])
    assert odd["classes"] == ["a", "b", "z"] and odd["accuracy"] == 0.5
    assert "'z'" in odd["notes"][0]


def test_the_window_equals_the_metrics_of_its_last_pairs() -> None:
    classes = ["x", "y", "z"]
    pairs = random_pairs(300, classes, seed=4)
    window = QualityWindow(50, classes)
    for i, (pred, true) in enumerate(pairs):
        window.add(pred, true)
        if i % 37 == 0 or i == len(pairs) - 1:
            assert len(window) == min(i + 1, 50)
            assert window.metrics() == quality_metrics(pairs[max(0, i - 49) : i + 1], classes)
    other = QualityWindow(50, classes)
    other.extend((p, t, 0.0) for p, t in pairs)
    assert other.metrics() == window.metrics()
    with pytest.raises(DataError, match="at least 1"):
        QualityWindow(0)


def write_evaluation(folder: Path, true: list[str], proba: np.ndarray, classes: list[str]) -> Path:
    folder.mkdir()
    test = classification_metrics(true, proba, classes)
    doc = {"primary_metric": "f1_macro", "splits": {"val": test, "test": test}, "baselines": []}
    (folder / "evaluation.json").write_text(json.dumps(doc))
    return folder


def test_offline_quality_reads_the_test_split_and_the_drop_is_offline_minus_online(
    tmp_path: Path,
) -> None:
    classes = ["a", "b", "c"]
    rng = np.random.default_rng(5)
    proba = rng.dirichlet(np.ones(3), 200)
    true = rng.choice(classes, 200).tolist()
    bundle = write_evaluation(tmp_path / "bundle", true, proba, classes)
    offline = offline_quality(bundle)
    assert offline["split"] == "test" and offline["n_samples"] == 200
    assert set(offline["per_class"]["a"]) == {"precision", "recall", "f1", "support"}
    # the same predictions scored online give the same numbers: no drop
    predicted = [classes[j] for j in proba.argmax(axis=1)]
    same = quality_metrics(zip(predicted, true, strict=True), classes)
    for key in QUALITY_METRICS:
        assert same[key] == pytest.approx(offline[key])
    assert all(abs(v or 0.0) < 1e-12 for v in quality_drop(same, offline).values())
    worse = quality_metrics([(t if i % 2 else "a", t) for i, t in enumerate(true)], classes)
    drop = quality_drop(worse, offline)
    assert drop["accuracy"] == pytest.approx(offline["accuracy"] - worse["accuracy"])
    assert quality_drop(quality_metrics([], classes), offline)["f1_macro"] is None


def test_offline_quality_without_an_evaluation_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="does not exist"):
        offline_quality(tmp_path)
    (tmp_path / "evaluation.json").write_text(json.dumps({"parity": {"ok": True}}))
    with pytest.raises(BundleError, match="no metrics of the 'test' split"):
        offline_quality(tmp_path)
    (tmp_path / "evaluation.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot read"):
        offline_quality(tmp_path)
