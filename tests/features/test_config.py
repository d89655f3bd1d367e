"""``data.derived`` in config: composition through Hydra, and a clear error for each mistake,
raised before anything is fitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sklearn.pipeline import Pipeline

from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.config.structured import LogRegConfig, PreprocessConfig, TrainConfig
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.exceptions import ConfigError
from mlcycle.features import Flag, Term, derived_entries, parse_derived
from mlcycle.train.fit import fit_model
from tests.features._drinks import DERIVED, drinks_dataset, drinks_schema

DRINKS_YAML = """\
defaults:
  - /schema/data/dataset@_here_
  - _self_

name: drinks
path: data/drinks.csv
label: tip
derived:
  - {name: unit_price, kind: ratio, numerator: amount, denominator: items}
  - {name: amount_band, kind: bins, feature: amount, edges: [5, 10, 20]}
  - {name: order_month, kind: date_part, feature: ordered_at, part: month}
  - name: tea_or_coffee_only
    kind: flag
    any: [{feature: drink, in: [tea, coffee]}]
"""


def test_data_derived_composes_and_reaches_train_preprocess(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLCYCLE_PROJECT_ROOT", raising=False)
    (tmp_path / "conf" / "data").mkdir(parents=True)
    (tmp_path / "conf" / "data" / "drinks.yaml").write_text(DRINKS_YAML)
    cfg = to_config(compose(["data=drinks"], project=Project(tmp_path)))
    assert cfg.data.derived[3] == {
        "name": "tea_or_coffee_only",
        "kind": "flag",
        "any": [{"feature": "drink", "in": ["tea", "coffee"]}],
    }
    assert cfg.train.preprocess.derived == cfg.data.derived
    features = parse_derived(cfg.train.preprocess.derived, drinks_schema())
    assert features[3] == Flag(
        "tea_or_coffee_only", "any", (Term("drink", values=("tea", "coffee")),)
    )
    override = "data.derived=[{name: r, kind: ratio, numerator: amount, denominator: items}]"
    cfg = to_config(compose(["data=drinks", override], project=Project(tmp_path)))
    assert [e["name"] for e in cfg.train.preprocess.derived] == ["r"]
    cfg = to_config(compose([], project=Project(tmp_path)))  # breast cancer: none
    assert cfg.data.derived == [] and cfg.train.preprocess.derived == []


def test_no_derived_features_outside_a_composed_config() -> None:
    assert derived_entries(PreprocessConfig().derived) == []


def _ratio(**kw: Any) -> dict[str, Any]:
    return {"name": "r", "kind": "ratio", "numerator": "amount", "denominator": "items", **kw}


def _flag(*terms: dict[str, Any], mode: str = "all") -> dict[str, Any]:
    return {"name": "f", "kind": "flag", mode: list(terms)}


BAD: list[tuple[Any, str]] = [
    (
        _ratio(denominator="quantity"),
        r"data\.derived\[0\] 'r': 'denominator' names 'quantity', which is not a feature "
        r"of the data .*\['drink', 'amount', 'items', 'ordered_at'\]",
    ),
    (
        {"name": "r", "kind": "product"},
        r"data\.derived\[0\] 'r' has kind 'product'; use one of ratio, bins, date_part, flag",
    ),
    (
        _ratio(numerator="drink"),
        r"'r': 'numerator' names 'drink', a categorical feature; it must be numeric\. For a "
        r"categorical feature use a flag term \{feature: \.\.\., in: \[\.\.\.\]\}",
    ),
    (
        {"name": "b", "kind": "bins", "feature": "amount", "edges": [10, 5, 20]},
        r"'b' has edges \[10\.0, 5\.0, 20\.0\], which are not strictly increasing; sort them",
    ),
    (
        {"name": "b", "kind": "bins", "feature": "amount", "edges": [5, 5]},
        r"not strictly increasing; sort them and drop duplicates",
    ),
    (
        {"name": "b", "kind": "bins", "feature": "amount", "edges": ["low", 5]},
        r"'b' needs 'edges': a non-empty list of finite numbers",
    ),
    (
        {"name": "b", "kind": "bins", "feature": "amount", "edges": []},
        r"'b' needs 'edges'",
    ),
    (
        _ratio(name="amount"),
        r"data\.derived\[0\] 'amount': the name is already taken by a feature, the label or "
        r"another derived feature; give the derived feature a new name",
    ),
    (_ratio(name="tip"), r"'tip': the name is already taken"),
    (
        {"name": "d", "kind": "date_part", "feature": "drink", "part": "month"},
        r"'d': 'feature' names 'drink', a categorical feature; it must be numeric\. A date "
        r"must be a numeric feature holding Unix seconds",
    ),
    (
        {"name": "d", "kind": "date_part", "feature": "ordered_at", "part": "quarter"},
        r"'d' has part 'quarter'; use one of year, month, day, weekday, hour, dayofyear",
    ),
    (_ratio(denominater="items"), r"'r': unknown key\(s\) \['denominater'\] for kind ratio"),
    (
        {"name": "f", "kind": "flag"},
        r"'f' needs exactly one of 'all' or 'any'",
    ),
    (
        {**_flag({"feature": "drink", "in": ["tea"]}), "any": []},
        r"'f' needs exactly one of 'all' or 'any'",
    ),
    (_flag(), r"'f': 'all' must be a non-empty list of terms"),
    (
        _flag({"feature": "amount", "in": [1, 2]}),
        r"'f' all\[0\]: 'feature' names 'amount', a numeric feature; it must be categorical\. "
        r"For a numeric feature use a flag term \{feature: \.\.\., min: \.\.\., max: \.\.\.\}",
    ),
    (
        _flag({"feature": "drink", "min": 1}, mode="any"),
        r"'f' any\[0\]: 'feature' names 'drink', a categorical feature; it must be numeric",
    ),
    (
        _flag({"feature": "drink", "in": ["tea"], "not_in": ["milk"]}),
        r"'f' all\[0\] needs exactly one condition",
    ),
    (_flag({"feature": "drink", "in": "tea"}), r"'in' must be a non-empty list of categories"),
    (_flag({"feature": "amount", "min": 5, "max": 5}), r"'max' \(5\) must be greater than"),
    (_flag({"feature": "amount", "min": "five"}), r"'min' must be a finite number; got 'five'"),
    (_flag({"feature": "amount", "equals": 5}), r"unknown key\(s\) \['equals'\]"),
    (_flag("drink"), r"'f' all\[0\] is 'drink'; a term is \{feature: drink, in:"),
    ({"kind": "ratio"}, r"data\.derived\[0\] is .*; each derived feature needs a 'name'"),
]


@pytest.mark.parametrize(("entry", "message"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_a_bad_entry_names_the_derived_feature_and_the_fix(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_derived([entry], drinks_schema())


def test_two_derived_features_may_not_share_a_name() -> None:
    with pytest.raises(ConfigError, match=r"data\.derived\[1\] 'r': the name is already taken"):
        parse_derived([_ratio(), _ratio(numerator="items", denominator="amount")], drinks_schema())


def test_derived_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match=r"data\.derived is 'amount / items'; it must be a list"):
        derived_entries("amount / items")


def test_image_data_has_no_derived_features() -> None:
    schema = Schema("y", ["a", "b"], [FeatureSpec("img", "image", shape=[1, 2, 2])])
    with pytest.raises(ConfigError, match=r"the data is images.*remove data\.derived"):
        parse_derived([_ratio()], schema)


def test_training_fails_on_a_bad_entry_before_anything_is_fitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the pipeline was fitted despite a bad data.derived")

    monkeypatch.setattr(Pipeline, "fit", never)
    bad = [*DERIVED, {"name": "late", "kind": "bins", "feature": "amount", "edges": [9, 3]}]
    cfg = TrainConfig(preprocess=PreprocessConfig(derived=bad))
    with pytest.raises(ConfigError, match=r"data\.derived\[7\] 'late' has edges \[9\.0, 3\.0\]"):
        fit_model(drinks_dataset(60), LogRegConfig(), cfg)
