"""build_pipeline, model_frame and onnx_inputs: the model input layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle.config.structured import GBDTConfig, LogRegConfig, PreprocessConfig, RandomForestConfig
from mlcycle.data.dataset import Dataset
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import ConfigError, DataError, TrainingError
from mlcycle.train.pipeline import build_pipeline, model_frame, onnx_inputs


def _transformers(pipeline: object) -> dict[str, list[int]]:
    ct = pipeline.named_steps["preprocess"]  # type: ignore[attr-defined]
    return {name: cols for name, _, cols in ct.transformers}


def test_columns_are_selected_by_position_numeric_first(mixed: Dataset) -> None:
    p = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(), seed=0)
    assert _transformers(p) == {"numeric": [0, 1, 2], "categorical": [3, 4]}
    assert [name for name, _ in p.steps] == ["preprocess", "model"]


def test_an_empty_group_has_no_transformer(breast_cancer: Dataset) -> None:
    p = build_pipeline(breast_cancer.schema, LogRegConfig(), PreprocessConfig(), seed=0)
    assert list(_transformers(p)) == ["numeric"]


def test_linear_models_are_scaled_and_trees_are_not(mixed: Dataset) -> None:
    for cfg, scaled in [
        (LogRegConfig(), True),
        (GBDTConfig(), False),
        (RandomForestConfig(), False),
    ]:
        p = build_pipeline(mixed.schema, cfg, PreprocessConfig(scale=True), seed=0)
        numeric = p.named_steps["preprocess"].transformers[0][1]
        assert ("scale" in numeric.named_steps) is scaled, cfg.name


def test_scale_false_leaves_numeric_features_unscaled(mixed: Dataset) -> None:
    p = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(scale=False), seed=0)
    assert list(p.named_steps["preprocess"].transformers[0][1].named_steps) == ["impute"]


def test_imputation_strategy_comes_from_the_config(mixed: Dataset) -> None:
    p = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(numeric_impute="mean"), 0)
    assert p.named_steps["preprocess"].transformers[0][1].named_steps["impute"].strategy == "mean"


def test_unknown_imputation_strategy_is_a_config_error(mixed: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"numeric_impute is 'zero'"):
        build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(numeric_impute="zero"), 0)


def test_categoricals_are_one_hot_encoded_ignoring_unknown_values(mixed: Dataset) -> None:
    p = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(), seed=0)
    encoder = p.named_steps["preprocess"].transformers[1][1]
    assert type(encoder).__name__ == "OneHotEncoder"
    assert encoder.handle_unknown == "ignore"


def test_one_hot_false_uses_an_ordinal_encoder(mixed: Dataset) -> None:
    p = build_pipeline(mixed.schema, LogRegConfig(), PreprocessConfig(one_hot=False), seed=0)
    assert type(p.named_steps["preprocess"].transformers[1][1]).__name__ == "OrdinalEncoder"


def test_each_text_feature_gets_its_own_tfidf_on_a_1d_column() -> None:
    schema = Schema(
        "y",
        ["a", "b"],
        [FeatureSpec("note", "text"), FeatureSpec("x", "numeric"), FeatureSpec("t2", "text")],
    )
    p = build_pipeline(schema, LogRegConfig(), PreprocessConfig(text_ngram_max=1), seed=0)
    assert _transformers(p) == {"numeric": [0], "text_0": 1, "text_1": 2}
    tfidf = p.named_steps["preprocess"].transformers[1][1]
    assert type(tfidf).__name__ == "TfidfVectorizer"
    assert tfidf.ngram_range == (1, 1)
    assert not tfidf.sublinear_tf  # skl2onnx ignores it: the graph would disagree


@pytest.mark.parametrize(
    ("key", "value"),
    [("text_max_features", 0), ("text_ngram_max", 4), ("text_min_df", 0), ("text_ngram_max", 1.5)],
)
def test_text_settings_out_of_range_name_the_setting(key: str, value: object) -> None:
    schema = Schema("y", ["a", "b"], [FeatureSpec("note", "text")])
    with pytest.raises(ConfigError, match=f"train.preprocess.{key}"):
        build_pipeline(schema, LogRegConfig(), PreprocessConfig(**{key: value}), seed=0)


def test_text_only_schema_trains_and_an_empty_schema_is_refused() -> None:
    schema = Schema("y", ["a", "b"], [FeatureSpec("note", "text")])
    frame = pd.DataFrame({"note": ["good day", "bad day", "good", "bad"] * 5})
    y = np.array(["a", "b", "a", "b"] * 5)
    p = build_pipeline(schema, LogRegConfig(), PreprocessConfig(), seed=0)
    p.fit(model_frame(frame, schema), y)
    assert list(p.predict(model_frame(frame.head(2), schema))) == ["a", "b"]
    with pytest.raises(TrainingError, match="no feature to train on"):
        build_pipeline(Schema("y", ["a", "b"], []), LogRegConfig(), PreprocessConfig(), seed=0)


def test_model_frame_orders_columns_numeric_then_categorical(mixed: Dataset) -> None:
    frame = model_frame(mixed, mixed.schema)
    assert list(frame.columns) == ["x0", "x1", "x2", "color", "size"]
    assert all(frame[c].dtype == np.float32 for c in ["x0", "x1", "x2"])
    assert all(isinstance(v, str) for v in frame["color"])


def test_model_frame_turns_missing_categories_into_empty_strings() -> None:
    schema = Schema("y", ["a"], [FeatureSpec("c", "categorical"), FeatureSpec("x", "numeric")])
    raw = pd.DataFrame({"x": [1, None, 3], "c": ["u", None, np.nan], "extra": [0, 0, 0]})
    frame = model_frame(raw, schema)
    assert frame["c"].tolist() == ["u", "", ""]
    assert np.isnan(frame["x"].iloc[1])
    assert frame["x"].dtype == np.float32


def test_model_frame_names_a_missing_feature(mixed: Dataset) -> None:
    with pytest.raises(DataError, match=r"'size'"):
        model_frame(mixed.frame.drop(columns=["size"]), mixed.schema)


def test_model_frame_refuses_text_in_a_numeric_feature() -> None:
    schema = Schema("y", ["a"], [FeatureSpec("x", "numeric")])
    with pytest.raises(DataError, match=r"numeric feature 'x'.*not numbers"):
        model_frame(pd.DataFrame({"x": ["1.0", "abc"]}), schema)


def test_onnx_inputs_are_float32_numeric_and_string_categorical(mixed: Dataset) -> None:
    inputs = onnx_inputs(mixed.frame, mixed.schema)
    assert list(inputs) == ["numeric", "categorical"]
    assert inputs["numeric"].dtype == np.float32
    assert inputs["numeric"].shape == (len(mixed), 3)
    assert inputs["categorical"].dtype == object
    assert inputs["categorical"].shape == (len(mixed), 2)
    assert inputs["categorical"][0].tolist() == [mixed.frame["color"][0], mixed.frame["size"][0]]


def test_onnx_inputs_omit_an_empty_group(breast_cancer: Dataset) -> None:
    assert list(onnx_inputs(breast_cancer.frame, breast_cancer.schema)) == ["numeric"]
