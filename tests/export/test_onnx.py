"""to_onnx: every family converts, with the contract's inputs and outputs and parity."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

from mlcycle.config.structured import GBDTConfig, LogRegConfig, PreprocessConfig, TrainConfig
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import Schema
from mlcycle.exceptions import ExportError, NotFittedError
from mlcycle.export.onnx import TARGET_OPSET, to_onnx
from mlcycle.export.parity import check_parity
from mlcycle.train.estimators import FAMILIES
from mlcycle.train.fit import TrainedModel, fit_model
from mlcycle.train.pipeline import build_pipeline, model_frame, onnx_inputs
from tests import _datasets

Trained = Callable[[str, str], tuple[TrainedModel, Dataset, Dataset]]


def _run(model: object, frame: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(
        model.SerializeToString(),  # type: ignore[attr-defined]
        providers=["CPUExecutionProvider"],
    )
    labels, proba = session.run(["label", "probabilities"], onnx_inputs(frame, schema))
    return np.asarray(labels).astype(str), proba


@pytest.mark.parametrize("dataset", ["breast_cancer", "mixed", "wine", "tickets"])
@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_sklearn_within_1e_4_with_equal_labels(
    family: str, dataset: str, trained: Trained
) -> None:
    model, _, val = trained(family, dataset)
    onx = to_onnx(model.pipeline, val.schema)
    report = check_parity(model, onx, val, tolerance=1e-4)
    assert report.passed
    assert report.max_abs_diff <= 1e-4
    assert report.label_mismatches == 0
    assert report.rows == len(val)


def test_text_graph_takes_strings_and_matches_sklearn_on_tricky_text(trained: Trained) -> None:
    model, _, val = trained("logreg", "tickets")
    onx = to_onnx(model.pipeline, val.schema)
    assert [i.name for i in onx.graph.input] == ["numeric", "categorical", "text"]
    odd = pd.DataFrame(
        {
            "message": [
                "refund. invoice, refund; card",  # punctuation between the words of a bigram
                "parcel parcel parcel parcel",  # a repeated word (raw term counts)
                "\u00c9CRAN noir, \u00c9cran NOIR",  # upper-case accents, lower-cased alike
                "x",  # no token at all (one letter)
                "",
            ],
            "channel": ["email", "chat", "phone", "email", "unseen"],
            "account_age_days": [1.0, 2.0, np.nan, 4.0, 5.0],
        }
    )
    _, proba = _run(onx, odd, val.schema)
    expected = model.pipeline.predict_proba(model_frame(odd, val.schema))
    np.testing.assert_allclose(proba, expected, atol=1e-5)


def test_text_lowercase_false_keeps_case_in_the_graph_too(tickets: Dataset) -> None:
    train, val = _datasets.split(tickets)
    cfg = TrainConfig(preprocess=PreprocessConfig(text_lowercase=False, text_ngram_max=1))
    model = fit_model(train, LogRegConfig(), cfg)
    onx = to_onnx(model.pipeline, val.schema)
    assert check_parity(model, onx, val, tolerance=1e-5).passed


@pytest.mark.parametrize("family", FAMILIES)
def test_graph_has_the_contract_inputs_and_outputs(family: str, trained: Trained) -> None:
    model, _, val = trained(family, "mixed")
    onx = to_onnx(model.pipeline, val.schema)
    assert [i.name for i in onx.graph.input] == ["numeric", "categorical"]
    assert [o.name for o in onx.graph.output] == ["label", "probabilities"]
    labels, proba = _run(onx, val.frame, val.schema)
    assert labels.shape == (len(val),)
    assert proba.dtype == np.float32
    assert proba.shape == (len(val), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert set(labels) <= set(model.classes)


def test_graph_uses_the_pinned_opsets(trained: Trained) -> None:
    model, _, val = trained("logreg", "mixed")
    onx = to_onnx(model.pipeline, val.schema)
    opsets = {o.domain or "": o.version for o in onx.opset_import}
    for domain, version in opsets.items():
        assert version <= TARGET_OPSET.get(domain, TARGET_OPSET[""]), domain


def test_graph_records_classes_and_feature_groups_as_metadata(trained: Trained) -> None:
    model, _, val = trained("logreg", "mixed")
    props = {p.key: p.value for p in to_onnx(model.pipeline, val.schema).metadata_props}
    assert json.loads(props["mlcycle.classes"]) == model.classes
    assert json.loads(props["mlcycle.numeric"]) == ["x0", "x1", "x2"]
    assert json.loads(props["mlcycle.categorical"]) == ["color", "size"]


def _with_frame(ds: Dataset, frame: pd.DataFrame) -> Dataset:
    return Dataset(frame.reset_index(drop=True), ds.y[: len(frame)], ds.schema, ds.version, ds.path)


@pytest.mark.parametrize("family", FAMILIES)
def test_an_unseen_category_predicts_in_onnx_as_in_sklearn(family: str, trained: Trained) -> None:
    model, _, val = trained(family, "mixed")
    frame = val.frame.copy()
    frame.loc[:9, "color"] = "purple"
    frame.loc[5:14, "size"] = "XXL"
    onx = to_onnx(model.pipeline, val.schema)
    # Labels are compared too; a row where two classes tie may go either way.
    report = check_parity(model, onx, _with_frame(val, frame.iloc[:15]), tolerance=1e-4)
    assert report.passed and report.rows == 15
    assert check_parity(model, onx, _with_frame(val, frame), tolerance=1e-4).passed


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_values_of_both_kinds_predict_in_onnx_as_in_sklearn(
    family: str, trained: Trained
) -> None:
    model, _, val = trained(family, "mixed")
    frame = val.frame.iloc[:6].copy()
    frame[["x0", "x1", "x2"]] = np.nan
    frame[["color", "size"]] = ""
    onx = to_onnx(model.pipeline, val.schema)
    _, proba = _run(onx, frame, val.schema)
    mf = model_frame(frame, val.schema)
    np.testing.assert_allclose(proba, model.pipeline.predict_proba(mf), atol=1e-4)
    assert check_parity(model, onx, _with_frame(val, frame), tolerance=1e-4).passed


@pytest.mark.parametrize("cfg", [LogRegConfig(), GBDTConfig(max_iter=10)], ids=["logreg", "gbdt"])
def test_ordinal_encoding_exports_with_parity(cfg: object, mixed: Dataset, split: Callable) -> None:
    train, val = split(mixed)
    train_cfg = TrainConfig(preprocess=PreprocessConfig(one_hot=False))
    model = fit_model(train, cfg, train_cfg)  # type: ignore[arg-type]
    frame = val.frame.copy()
    frame.loc[:4, "color"] = "purple"
    val.frame = frame
    assert check_parity(model, to_onnx(model.pipeline, val.schema), val, 1e-4).passed


def test_a_categorical_only_schema_has_only_the_categorical_input(mixed: Dataset) -> None:
    schema = Schema(
        "y", mixed.schema.classes, [f for f in mixed.schema.features if f.kind != "numeric"]
    )
    ds = Dataset(mixed.frame[["color", "size"]], mixed.y, schema, mixed.version, mixed.path)
    model = fit_model(ds, LogRegConfig(), TrainConfig())
    onx = to_onnx(model.pipeline, schema)
    assert [i.name for i in onx.graph.input] == ["categorical"]
    assert check_parity(model, onx, ds, 1e-4).passed


def test_gbdt_conversion_leaves_skl2onnx_unpatched(trained: Trained) -> None:
    from skl2onnx.common import tree_ensemble

    before = tree_ensemble.add_node
    model, _, val = trained("gbdt", "breast_cancer")
    to_onnx(model.pipeline, val.schema)
    assert tree_ensemble.add_node is before


class _NoConverter(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has never heard of."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _NoConverter:
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.full((len(X), len(self.classes_)), 1.0 / len(self.classes_))


def test_a_pipeline_without_converter_is_an_export_error_naming_the_estimator(
    mixed: Dataset,
) -> None:
    pipeline = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(), seed=0)
    pipeline.steps[-1] = ("model", _NoConverter())
    pipeline.fit(model_frame(mixed, mixed.schema), mixed.y)
    with pytest.raises(ExportError, match=r"_NoConverter.*custom skl2onnx converter"):
        to_onnx(pipeline, mixed.schema)


def test_an_unfitted_pipeline_is_a_not_fitted_error(mixed: Dataset) -> None:
    pipeline = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(), seed=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        to_onnx(pipeline, mixed.schema)
