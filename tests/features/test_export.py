"""Training with derived features, and the exported graph that computes them itself."""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.base import clone

from mlcycle.config.structured import LogRegConfig, PreprocessConfig, TrainConfig
from mlcycle.export.bundle import make_signature
from mlcycle.export.onnx import to_onnx
from mlcycle.export.parity import ParityError, check_parity
from mlcycle.features.step import DeriveFeatures
from mlcycle.train.fit import TrainedModel, fit_model
from mlcycle.train.pipeline import onnx_inputs
from tests._datasets import fast_config, split, tickets_dataset
from tests.features._drinks import DERIVED, drinks_dataset, drinks_schema

#: Rows that exercise every edge: zero items, missing amount, missing / unseen / odd-cased
#: drinks, an amount on a bin edge, a missing or impossible date, a leap day at midnight.
TRICKY = pd.DataFrame(
    {
        "drink": ["tea", "coffee", "", "matcha", "Tea", "juice", "tea", "water"],
        "amount": [10.0, np.nan, 5.0, 20.0, -3.0, 0.0, 12.5, 1e6],
        "items": [0.0, 2.0, 1.0, 4.0, 1.0, 0.0, 3.0, 1.0],
        "ordered_at": [1709164800.0, 1.7e9, np.nan, 1e12, -86400.0, 0.0, 1735689599.0, 1.6e9],
    }
)


def _train(family: str = "logreg", n: int = 500) -> tuple[TrainedModel, Any, Any]:
    train, val = split(drinks_dataset(n))
    cfg = TrainConfig(preprocess=PreprocessConfig(derived=DERIVED))
    return fit_model(train, fast_config(family), cfg), train, val


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("family", ["logreg", "gbdt", "random_forest", "mlp"])
def test_the_exported_graph_takes_raw_inputs_and_matches_the_pipeline(family: str) -> None:
    trained, train, val = _train(family)
    assert trained.pipeline.steps[0][0] == "derive"
    model = to_onnx(trained.pipeline, train.schema)
    assert [(i.name, i.type.tensor_type.shape.dim[1].dim_value) for i in model.graph.input] == [
        ("numeric", 3),
        ("categorical", 1),
    ]
    signature = make_signature(train.schema, trained.classes, model, "drinks")
    assert [f["name"] for f in signature["features"]] == ["drink", "amount", "items", "ordered_at"]
    report = check_parity(trained, model, val, 1e-4)
    assert report.passed and report.max_abs_diff < 1e-5 and report.label_mismatches == 0
    # rows with every edge case, straight through the graph
    _, proba = _session(model).run(None, onnx_inputs(TRICKY, train.schema))
    np.testing.assert_allclose(proba, trained.predict_proba(TRICKY), atol=1e-5)


def test_the_derived_features_change_what_the_model_sees() -> None:
    trained, _, val = _train()
    frame = trained.pipeline.named_steps["derive"].transform(val.frame[drinks_schema().model_order])
    assert list(frame.columns) == [
        "amount", "items", "ordered_at", *[e["name"] for e in DERIVED], "drink"
    ]  # fmt: skip
    tea = val.frame["drink"].isin(["tea", "coffee"]).to_numpy()
    assert (frame["tea_or_coffee_only"].to_numpy() == tea).all()
    coef = trained.pipeline.named_steps["model"].coef_[0]
    assert coef.shape == (3 + len(DERIVED) + 5,)  # raw, derived, one-hot of 4 drinks and ""


def test_the_graph_records_its_derived_features_and_raw_columns() -> None:
    trained, train, _ = _train()
    model = to_onnx(trained.pipeline, train.schema)
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["mlcycle.numeric"] == ["amount", "items", "ordered_at"]
    assert props["mlcycle.categorical"] == ["drink"]
    assert props["mlcycle.classes"] == ["no", "yes"]
    derived = props["mlcycle.derived"]
    assert [d["name"] for d in derived] == [e["name"] for e in DERIVED]
    assert derived[5] == {
        "name": "tea_or_coffee_only",
        "kind": "flag",
        "formula": "drink in [tea, coffee]",
    }
    domains = [o.domain or "ai.onnx" for o in model.opset_import]
    assert len(domains) == len(set(domains))  # each domain once, at the model's version
    assert {(o.domain or "ai.onnx"): o.version for o in model.opset_import}["ai.onnx"] <= 18


def test_the_parity_check_catches_a_wrong_derivation_in_the_merged_graph() -> None:
    trained, train, val = _train()
    model = to_onnx(trained.pipeline, train.schema)
    (mapper,) = [n for n in model.graph.node if n.op_type == "CategoryMapper"][:1]
    for attr in mapper.attribute:
        if attr.name == "default_int64":  # every drink not listed now counts as tea
            attr.i = 1
    with pytest.raises(ParityError, match="the ONNX parity check failed"):
        check_parity(trained, model, val, 1e-4)


def test_text_data_keeps_the_input_order_numeric_categorical_text() -> None:
    train, val = split(tickets_dataset(300))
    derived = [
        {"name": "old", "kind": "bins", "feature": "account_age_days", "edges": [365, 730]},
        {"name": "by_phone", "kind": "flag", "any": [{"feature": "channel", "in": ["phone"]}]},
    ]
    trained = fit_model(
        train, LogRegConfig(), TrainConfig(preprocess=PreprocessConfig(derived=derived))
    )
    model = to_onnx(trained.pipeline, train.schema)
    assert [i.name for i in model.graph.input] == ["numeric", "categorical", "text"]
    assert check_parity(trained, model, val, 1e-4).max_abs_diff < 1e-5


def test_the_step_clones_and_pickles_like_an_estimator() -> None:
    step = DeriveFeatures(drinks_schema(), DERIVED)
    assert clone(step).get_params()["derived"] == DERIVED
    frame = drinks_dataset(20).frame
    fitted = pickle.loads(pickle.dumps(step.fit(frame)))
    pd.testing.assert_frame_equal(fitted.transform(frame), step.transform(frame))
    with pytest.raises(ValueError, match="not fitted"):
        DeriveFeatures(drinks_schema(), DERIVED).transform(frame)
