"""build_profile: JSON-only reference statistics for drift monitoring."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import ExportError
from mlcycle.export.profile import QUANTILES, build_profile, histogram_bins
from mlcycle.train.fit import TrainedModel

Trained = Callable[[str, str], tuple[TrainedModel, Dataset, Dataset]]


@pytest.fixture(scope="module")
def mixed_profile(trained: Trained) -> tuple[dict, Dataset]:
    model, train, val = trained("logreg", "mixed")
    profile = build_profile(train, model.predict_proba(val), val.y, model.classes)
    return profile, train


def test_profile_is_strict_json(mixed_profile: tuple[dict, Dataset]) -> None:
    profile, _ = mixed_profile
    text = json.dumps(profile, allow_nan=False, sort_keys=True)
    assert json.loads(text) == profile


def test_numeric_feature_has_summary_quantiles_histogram_and_sample(
    mixed_profile: tuple[dict, Dataset],
) -> None:
    profile, train = mixed_profile
    x0 = profile["features"]["x0"]
    values = train.frame["x0"].to_numpy(dtype=np.float64)
    present = values[~np.isnan(values)]
    assert x0["kind"] == "numeric"
    assert x0["count"] == len(present)
    assert x0["missing_rate"] == pytest.approx(1 - len(present) / len(values))
    assert x0["mean"] == pytest.approx(present.mean())
    assert x0["std"] == pytest.approx(present.std())
    assert (x0["min"], x0["max"]) == (pytest.approx(present.min()), pytest.approx(present.max()))
    assert list(x0["quantiles"]) == [str(q) for q in QUANTILES]
    assert x0["quantiles"]["0.5"] == pytest.approx(np.median(present))
    hist = x0["histogram"]
    assert hist["closed"] == "right"
    assert len(hist["edges"]) == 9
    assert hist["edges"] == sorted(hist["edges"])
    assert sum(hist["counts"]) == len(present)
    assert hist["counts"] == histogram_bins(present, hist["edges"])
    assert x0["sample"] == sorted(x0["sample"])
    assert len(x0["sample"]) == len(present)  # fewer than 1000: all values


def test_reference_sample_is_capped_and_seeded() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=5000).astype(np.float32)})
    schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
    ds = Dataset(frame, np.array(["a", "b"] * 2500), schema, _version(), _path())
    proba, labels = np.full((4, 2), 0.5), ["a", "b", "a", "b"]
    a = build_profile(ds, proba, labels, ["a", "b"], seed=3)["features"]["x"]["sample"]
    b = build_profile(ds, proba, labels, ["a", "b"], seed=3)["features"]["x"]["sample"]
    c = build_profile(ds, proba, labels, ["a", "b"], seed=4)["features"]["x"]["sample"]
    assert len(a) == 1000
    assert a == b
    assert a != c


def test_categorical_feature_has_counts_and_missing_rate(
    mixed_profile: tuple[dict, Dataset],
) -> None:
    profile, train = mixed_profile
    color = profile["features"]["color"]
    column = train.frame["color"]
    assert color["kind"] == "categorical"
    assert color["counts"] == {k: int(v) for k, v in column[column != ""].value_counts().items()}
    assert "" not in color["counts"]
    assert color["missing_rate"] == pytest.approx(float((column == "").mean()))


def test_predictions_have_class_mix_and_confidence(
    mixed_profile: tuple[dict, Dataset], trained: Trained
) -> None:
    profile, train = mixed_profile
    model, _, val = trained("logreg", "mixed")
    predictions = profile["predictions"]
    predicted = model.predict(val)
    assert predictions["rows"] == len(val)
    assert set(predictions["class_mix"]) == set(model.classes)
    assert predictions["class_mix"]["mid"] == pytest.approx(np.mean(predicted == "mid"))
    assert sum(predictions["class_mix"].values()) == pytest.approx(1.0)
    confidence = predictions["confidence"]
    proba = model.predict_proba(val)
    assert confidence["mean"] == pytest.approx(proba.max(axis=1).mean())
    assert 1 / 3 <= confidence["quantiles"]["0.01"] <= confidence["quantiles"]["0.99"] <= 1.0
    assert sum(confidence["histogram"]["counts"]) == len(val)
    assert profile["label"]["counts"] == {c: int(np.sum(train.y == c)) for c in model.classes}


def test_validation_holds_the_reference_accuracy_and_label_mix(
    mixed_profile: tuple[dict, Dataset], trained: Trained
) -> None:
    profile, _ = mixed_profile
    model, _, val = trained("logreg", "mixed")
    validation = profile["validation"]
    assert validation["rows"] == len(val)
    assert validation["accuracy"] == pytest.approx(np.mean(model.predict(val) == val.y))
    assert validation["label_counts"] == {c: int(np.sum(val.y == c)) for c in model.classes}
    assert validation["mean_confidence"] == profile["predictions"]["confidence"]["mean"]


def test_an_all_missing_feature_has_nulls_not_nan() -> None:
    frame = pd.DataFrame({"x": np.full(4, np.nan, dtype=np.float32), "c": [""] * 4})
    schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical")])
    ds = Dataset(frame, np.array(["a", "b", "a", "b"]), schema, _version(), _path())
    profile = build_profile(ds, np.full((2, 2), 0.5), ["a", "b"], ["a", "b"])
    x = profile["features"]["x"]
    assert x["missing_rate"] == 1.0
    assert x["mean"] is None and x["quantiles"]["0.5"] is None
    assert x["sample"] == []
    assert profile["features"]["c"] == {
        "kind": "categorical",
        "count": 0,
        "missing_rate": 1.0,
        "counts": {},
    }
    json.dumps(profile, allow_nan=False)


def test_a_constant_feature_has_a_single_bin() -> None:
    frame = pd.DataFrame({"x": np.ones(50, dtype=np.float32)})
    schema = Schema("y", ["a", "b"], [FeatureSpec("x", "numeric")])
    ds = Dataset(frame, np.array(["a", "b"] * 25), schema, _version(), _path())
    hist = build_profile(ds, np.full((2, 2), 0.5), ["a", "b"], ["a", "b"])["features"]["x"][
        "histogram"
    ]
    assert sum(hist["counts"]) == 50


def test_probabilities_that_do_not_match_the_classes_are_refused(mixed: Dataset) -> None:
    with pytest.raises(ExportError, match=r"expected \[rows, 3\]"):
        build_profile(mixed, np.full((2, 2), 0.5), ["low", "mid"], ["high", "low", "mid"])
    with pytest.raises(ExportError, match="1 validation labels for 2 probability rows"):
        build_profile(mixed, np.full((2, 3), 1 / 3), ["low"], ["high", "low", "mid"])


def test_histogram_bins_are_right_closed() -> None:
    assert histogram_bins(np.array([1.0, 1.0000001, 2.0, 2.5]), [1.0, 2.0]) == [1, 2, 1]


def _version():
    from mlcycle.data.dataset import DataVersion

    return DataVersion(md5="x", path="p", tracked=False, size=0)


def _path():
    from pathlib import Path

    return Path("p")
