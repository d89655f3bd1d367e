"""Error analysis: per-slice scores, baselines, gaps, ranking by gap x share, the
automatic slices, the confusion figures on skewed classes, and the rendered reports."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from mlcycle.config.structured import BaselineConfig
from mlcycle.data.schema import FeatureSpec, Schema
from mlcycle.evaluate.analysis import Reference, analyze, class_balance, reference_from_config
from mlcycle.evaluate.analysis_report import (
    per_class_table,
    render_html,
    render_table,
    slice_snippet,
)
from mlcycle.evaluate.auto_slices import candidate_slices
from mlcycle.evaluate.slices import Slice, parse_slices
from mlcycle.exceptions import ConfigError

CLASSES = ["a", "b"]
SCHEMA = Schema(
    "y",
    CLASSES,
    [FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical", "string")],
)


def proba_for(y: np.ndarray[Any, Any], wrong: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Probabilities that predict the true class, except on the rows in ``wrong``."""
    right = np.where(y == "a", 0.9, 0.1)
    p_a = np.where(wrong, 1.0 - right, right)
    return np.column_stack([p_a, 1.0 - p_a])


def ten_rows() -> tuple[np.ndarray[Any, Any], pd.DataFrame]:
    y = np.array(["a", "b"] * 5)
    frame = pd.DataFrame({"x": np.arange(10, dtype=np.float32), "c": ["u"] * 10})
    return y, frame


SLICES = parse_slices(
    [
        {"name": "big", "where": {"x": {"max": 6}}},  # rows 0-5: 3 wrong
        {"name": "tiny", "where": {"x": {"min": 6, "max": 8}}},  # rows 6-7: both wrong
        {"name": "fine", "where": {"x": {"min": 8}}},  # rows 8-9: right
    ]
)
WRONG = np.array([True, True, True, False, False, False, True, True, False, False])


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in result["slices"]}


def test_slices_are_ranked_by_gap_times_share_not_by_gap() -> None:
    y, frame = ten_rows()
    result = analyze(
        y,
        proba_for(y, WRONG),
        CLASSES,
        frame,
        SCHEMA,
        metric="accuracy",
        slices=SLICES,
        min_rows=2,
        reference=Reference(value=1.0, value_name="human"),
    )
    s = by_name(result)
    # big: accuracy 3/6, gap 1 - 0.5 = 0.5, share 0.6 -> gain 0.30
    assert s["big"]["score"] == pytest.approx(0.5)
    assert s["big"]["share"] == pytest.approx(0.6)
    assert s["big"]["gap"] == pytest.approx(0.5)
    assert s["big"]["potential_gain"] == pytest.approx(0.30)
    # tiny: accuracy 0, gap 1.0 (the worst), share 0.2 -> gain 0.20
    assert s["tiny"]["gap"] == pytest.approx(1.0)
    assert s["tiny"]["potential_gain"] == pytest.approx(0.20)
    assert s["fine"]["potential_gain"] == pytest.approx(0.0)
    assert [r["name"] for r in result["slices"]] == ["big", "tiny", "fine"]
    assert [r["rank"] for r in result["slices"]] == [1, 2, 3]
    assert {r["baseline_source"] for r in result["slices"]} == {"value:human"}
    # the whole set: accuracy 5/10
    assert result["overall"]["score"] == pytest.approx(0.5)
    assert result["overall"]["gap"] == pytest.approx(0.5)
    json.dumps(result, allow_nan=False)


def test_slices_below_min_rows_are_reported_but_not_ranked() -> None:
    y, frame = ten_rows()
    result = analyze(
        y,
        proba_for(y, WRONG),
        CLASSES,
        frame,
        SCHEMA,
        metric="accuracy",
        slices=SLICES,
        min_rows=3,
        reference=Reference(value=1.0),
    )
    s = by_name(result)
    assert s["big"]["rank"] == 1 and s["big"]["status"] == "ranked"
    for name in ("tiny", "fine"):
        assert s[name]["rank"] is None and s[name]["status"] == "too_small"
        assert "fewer than 3 rows" in s[name]["note"]
    assert [r["name"] for r in result["slices"]] == ["big", "tiny", "fine"]


def test_a_lower_is_better_metric_has_the_gap_the_other_way_round() -> None:
    y, frame = ten_rows()
    result = analyze(
        y,
        proba_for(y, WRONG),
        CLASSES,
        frame,
        SCHEMA,
        metric="log_loss",
        slices=SLICES,
        min_rows=2,
        reference=Reference(value=0.2),
    )
    s = by_name(result)
    ll_right, ll_wrong = -np.log(0.9), -np.log(0.1)
    assert s["tiny"]["score"] == pytest.approx(ll_wrong)
    assert s["tiny"]["gap"] == pytest.approx(ll_wrong - 0.2)  # score - baseline
    assert s["fine"]["gap"] == pytest.approx(ll_right - 0.2)
    assert result["higher_is_better"] is False
    assert result["slices"][0]["name"] == "big"  # (mean loss - 0.2) x 0.6 is the largest


def test_a_slice_baseline_wins_over_the_human_value_and_the_model() -> None:
    y, frame = ten_rows()
    slices = parse_slices([{"name": "big", "where": {"x": {"max": 6}}, "baseline": 0.6}])
    result = analyze(
        y,
        proba_for(y, WRONG),
        CLASSES,
        frame,
        SCHEMA,
        metric="accuracy",
        slices=slices,
        min_rows=2,
        reference=Reference(
            value=1.0,
            value_name="human",
            model_proba=proba_for(y, np.zeros(10, dtype=bool)),
            model_classes=("a", "b"),
            model_name="@champion",
            prefer_model=True,
        ),
    )
    (big,) = result["slices"]
    assert big["baseline"] == 0.6 and big["baseline_source"] == "slice"
    assert big["gap"] == pytest.approx(0.1)
    assert big["model_score"] == pytest.approx(1.0)


def test_an_older_models_score_on_the_same_rows_is_the_baseline() -> None:
    y, frame = ten_rows()
    older_wrong = np.zeros(10, dtype=bool)
    older_wrong[[0, 6]] = True  # the older model misses one row of big and one of tiny
    # its classes in the other order: scores must still be per class name
    older = proba_for(y, older_wrong)[:, ::-1]
    ref = Reference(model_proba=older, model_classes=("b", "a"), model_name="models:/m/1")
    result = analyze(
        y, proba_for(y, WRONG), CLASSES, frame, SCHEMA, metric="accuracy",
        slices=SLICES, min_rows=2, reference=ref,
    )  # fmt: skip
    s = by_name(result)
    assert s["big"]["baseline"] == pytest.approx(5 / 6)
    assert s["big"]["baseline_source"] == "model:models:/m/1"
    assert s["big"]["gap"] == pytest.approx(5 / 6 - 0.5)
    assert s["tiny"]["baseline"] == pytest.approx(0.5)
    assert s["fine"]["gap"] == pytest.approx(0.0)
    assert result["overall"]["baseline"] == pytest.approx(0.8)


def test_the_human_value_is_used_before_the_model_unless_the_model_is_preferred() -> None:
    y, frame = ten_rows()
    base = Reference(
        value=0.9,
        value_name="human",
        model_proba=proba_for(y, np.zeros(10, dtype=bool)),
        model_classes=("a", "b"),
        model_name="old",
    )
    kw: dict[str, Any] = {"metric": "accuracy", "slices": SLICES, "min_rows": 2}
    p = proba_for(y, WRONG)
    plain = analyze(y, p, CLASSES, frame, SCHEMA, reference=base, **kw)
    assert by_name(plain)["big"]["baseline_source"] == "value:human"
    preferred = dataclasses.replace(base, prefer_model=True)
    flagged = analyze(y, p, CLASSES, frame, SCHEMA, reference=preferred, **kw)
    assert by_name(flagged)["big"]["baseline_source"] == "model:old"
    assert by_name(flagged)["big"]["baseline"] == pytest.approx(1.0)


def test_without_a_baseline_the_gap_is_relative_to_the_whole_set_and_a_note_says_so() -> None:
    y, frame = ten_rows()
    result = analyze(
        y, proba_for(y, WRONG), CLASSES, frame, SCHEMA, metric="accuracy",
        slices=SLICES, min_rows=2,
    )  # fmt: skip
    s = by_name(result)
    assert s["tiny"]["baseline"] == pytest.approx(0.5)
    assert s["tiny"]["baseline_source"] == "overall"
    assert s["tiny"]["gap"] == pytest.approx(0.5)
    assert s["fine"]["gap"] == pytest.approx(-0.5)
    assert any("relative to the model's own accuracy on all rows" in n for n in result["notes"])


def test_a_declared_slice_with_no_rows_is_warned_about_and_the_others_go_on() -> None:
    y, frame = ten_rows()
    slices = parse_slices(
        [
            {"name": "nowhere", "where": {"x": {"min": 100}}},
            {"name": "big", "where": {"x": {"max": 6}}},
        ]
    )
    result = analyze(
        y, proba_for(y, WRONG), CLASSES, frame, SCHEMA, metric="accuracy",
        slices=slices, min_rows=2, reference=Reference(value=1.0),
    )  # fmt: skip
    (warning,) = result["warnings"]
    assert "slice 'nowhere' (x >= 100) matches no rows" in warning
    s = by_name(result)
    assert s["nowhere"]["status"] == "empty" and s["nowhere"]["rows"] == 0
    assert s["nowhere"]["score"] is None and s["nowhere"]["rank"] is None
    assert s["big"]["rank"] == 1


def test_a_slice_that_does_not_fit_the_data_is_a_config_error() -> None:
    y, frame = ten_rows()
    slices = parse_slices([{"name": "odd", "where": {"c": {"min": 1}}}])
    with pytest.raises(ConfigError, match="slice 'odd': 'c' is categorical"):
        analyze(y, proba_for(y, WRONG), CLASSES, frame, SCHEMA, metric="accuracy", slices=slices)


def test_an_unknown_metric_and_bad_settings_are_config_errors() -> None:
    y, frame = ten_rows()
    p = proba_for(y, WRONG)
    with pytest.raises(ConfigError, match=r"'f2', which is not a metric; use one of: .*f1_macro"):
        analyze(y, p, CLASSES, frame, SCHEMA, metric="f2")
    with pytest.raises(ConfigError, match=r"analyze\.min_rows must be at least 1"):
        analyze(y, p, CLASSES, frame, SCHEMA, metric="accuracy", min_rows=0)
    with pytest.raises(ConfigError, match=r"analyze\.auto_per_feature must be at least 1"):
        analyze(y, p, CLASSES, frame, SCHEMA, metric="accuracy", per_feature=0)


def synthetic(n: int = 600, seed: int = 1) -> tuple[np.ndarray[Any, Any], Any, pd.DataFrame]:
    """Rows where the model errs mostly on c == 'bad' (a quarter of it) and a little
    elsewhere; x is unrelated to the errors."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=n).astype(np.float32),
            "c": rng.choice(["good", "fine", "bad", "ok"], size=n),
        }
    )
    y = rng.choice(CLASSES, size=n)
    wrong = np.where(frame["c"] == "bad", rng.random(n) < 0.45, rng.random(n) < 0.04)
    return y, proba_for(y, wrong), frame


def test_automatic_slices_find_the_clearly_worse_category_first() -> None:
    y, p, frame = synthetic()
    candidates = candidate_slices(SCHEMA, frame.iloc[:300], frame, bins=4)
    result = analyze(
        y, p, CLASSES, frame, SCHEMA, metric="f1_macro", candidates=candidates,
        per_feature=2, min_rows=10, reference=Reference(value=0.98, value_name="human"),
    )  # fmt: skip
    first = result["slices"][0]
    assert first["name"] == "c = bad" and first["source"] == "auto" and first["rank"] == 1
    assert first["where"] == "c in [bad]"
    # two kept per feature: two of x's four bins and two of c's four values
    assert len(result["slices"]) == 4
    assert sum(s["features"] == ["x"] for s in result["slices"]) == 2


def test_automatic_slices_keep_the_worst_per_feature_and_skip_small_or_declared_ones() -> None:
    y, p, frame = synthetic()
    candidates = candidate_slices(SCHEMA, frame, frame, bins=4)
    declared = parse_slices([{"name": "c = bad", "where": {"c": ["bad"]}, "baseline": 0.9}])
    result = analyze(
        y, p, CLASSES, frame, SCHEMA, metric="accuracy", slices=declared,
        candidates=candidates, per_feature=1, min_rows=10, reference=Reference(value=1.0),
    )  # fmt: skip
    names = [s["name"] for s in result["slices"]]
    assert names.count("c = bad") == 1  # the declared one; its automatic twin is skipped
    assert by_name(result)["c = bad"]["source"] == "config"
    autos = [s for s in result["slices"] if s["source"] == "auto"]
    assert sorted(s["features"][0] for s in autos) == ["c", "x"]
    # the kept category is the worst of the remaining ones
    kept_c = next(s for s in autos if s["features"] == ["c"])
    others = [s.name for s in candidates if s.features == ("c",) and s.name != "c = bad"]
    scores = {
        n: float(np.mean((p.argmax(1) == (y == "b"))[frame["c"] == n.split(" = ")[1]]))
        for n in others
    }
    assert kept_c["name"] == min(scores, key=lambda n: scores[n])
    tiny = analyze(
        y, p, CLASSES, frame, SCHEMA, metric="accuracy", candidates=candidates,
        min_rows=1000,
    )  # fmt: skip
    assert tiny["slices"] == []  # no candidate has enough rows to be worth keeping


def test_similar_slices_are_marked_with_the_better_ranked_one() -> None:
    y, frame = ten_rows()
    slices = parse_slices(
        [
            {"name": "big", "where": {"x": {"max": 6}}},
            {"name": "big too", "where": {"x": {"max": 5}}},  # 5 of big's 6 rows
        ]
    )
    result = analyze(
        y, proba_for(y, WRONG), CLASSES, frame, SCHEMA, metric="accuracy",
        slices=slices, min_rows=2, reference=Reference(value=1.0),
    )  # fmt: skip
    s = by_name(result)
    assert s["big"]["similar_to"] is None and s["big too"]["similar_to"] == "big"


def test_per_class_figures_on_skewed_classes_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    n = 500
    y = np.where(rng.random(n) < 0.9, "a", "b")  # 9:1
    wrong = rng.random(n) < np.where(y == "b", 0.4, 0.05)
    p = proba_for(y, wrong)
    frame = pd.DataFrame({"x": np.zeros(n, dtype=np.float32), "c": ["u"] * n})
    result = analyze(y, p, CLASSES, frame, SCHEMA, metric="f1_macro")
    pred = np.asarray(CLASSES)[p.argmax(axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=CLASSES)
    for i, c in enumerate(CLASSES):
        pc = result["per_class"][c]
        assert pc["precision"] == pytest.approx(precision[i])
        assert pc["recall"] == pytest.approx(recall[i])
        assert pc["f1"] == pytest.approx(f1[i])
        assert pc["support"] == support[i]
    assert result["confusion"]["matrix"] == confusion_matrix(y, pred, labels=CLASSES).tolist()
    balance = result["class_balance"]
    counts = {c: int(np.sum(y == c)) for c in CLASSES}
    assert balance["counts"] == counts
    assert balance["imbalance_ratio"] == pytest.approx(counts["a"] / counts["b"])
    assert balance["majority_accuracy"] == pytest.approx(counts["a"] / n)
    note = next(x for x in result["notes"] if "skewed" in x)
    assert "always predicting 'a' would score accuracy" in note and "accuracy flatters" in note


def test_balanced_classes_get_no_skew_note() -> None:
    assert class_balance(["a", "b", "a", "b"], CLASSES)["skewed"] is False
    assert class_balance(["a", "a"], CLASSES)["imbalance_ratio"] is None  # one class present
    y, frame = ten_rows()
    result = analyze(y, proba_for(y, WRONG), CLASSES, frame, SCHEMA, metric="accuracy")
    assert not any("skewed" in x for x in result["notes"])


def test_reference_from_config_takes_the_best_value_of_the_metric_and_the_first_model() -> None:
    baselines = [
        BaselineConfig(name="novice", value=0.80),
        BaselineConfig(name="expert", value=0.97),
        BaselineConfig(name="auc", metric="roc_auc", value=0.99),  # another metric: ignored
        BaselineConfig(name="old", model="@champion"),
        BaselineConfig(name="older", model="3"),
    ]
    keys = ["f1_macro", "roc_auc", "log_loss"]
    assert reference_from_config(baselines, "f1_macro", keys) == (0.97, "expert", "@champion")
    losses = [BaselineConfig(name="a", metric="log_loss", value=0.3),
              BaselineConfig(name="b", metric="log_loss", value=0.1)]  # fmt: skip
    assert reference_from_config(losses, "log_loss", keys) == (0.1, "b", None)
    both = [BaselineConfig(name="x", value=0.9, model="@champion")]
    with pytest.raises(ConfigError, match=r"evaluate.baselines\[0\] .* sets both"):
        reference_from_config(both, "f1_macro", keys)


def document() -> dict[str, Any]:
    y, p, frame = synthetic()
    candidates = candidate_slices(SCHEMA, frame, frame, bins=4)
    declared = parse_slices(
        [
            {"name": "low x", "where": {"x": {"max": -1}}},
            {"name": "nowhere", "where": {"x": {"min": 99}}},
        ]
    )
    doc = analyze(
        y, p, CLASSES, frame, SCHEMA, metric="f1_macro", slices=declared,
        candidates=candidates, reference=Reference(value=0.98, value_name="human"),
    )  # fmt: skip
    names = {c.name: c for c in candidates}
    doc.update(
        version=1,
        model={"ref": "@champion", "name": "m", "version": "2", "path": "/x"},
        data={"name": "synthetic", "path": "data/s.csv", "md5": "0"},
        split="test",
        suggested=[
            names[s["name"]].to_config()
            for s in doc["slices"]
            if s["source"] == "auto" and s["status"] == "ranked"
        ],
    )
    return doc


def test_the_table_shows_the_ranked_slices_and_the_declared_unranked_ones() -> None:
    doc = document()
    console = Console(width=200, record=True)
    console.print(render_table(doc, top=3))
    console.print(per_class_table(doc))
    text = console.export_text()
    assert "Error analysis of v2 on the test split (600 rows)" in text
    assert "c = bad" in text and "low x *" in text
    assert "nowhere *" in text and "matches no rows" in text
    ranked = [s for s in doc["slices"] if s["status"] == "ranked"]
    assert "low x" not in [s["name"] for s in ranked[:3]]  # declared: shown all the same
    beyond = [s["name"] for s in ranked[3:] if s["source"] == "auto"]
    assert beyond and not any(name in text for name in beyond)  # only the top 3 ranked
    assert "precision" in text and "-> b" in text


def test_the_snippet_parses_back_into_the_suggested_slices() -> None:
    doc = document()
    snippet = slice_snippet(doc, top=3)
    parsed = parse_slices(yaml.safe_load(snippet)["analyze"]["slices"])
    assert [s.name for s in parsed] == [e["name"] for e in doc["suggested"][:3]]
    assert parsed[0].name == "c = bad"
    assert slice_snippet({"suggested": []}) == ""


def test_the_html_page_is_self_contained_with_tables_plots_and_notes() -> None:
    doc = document()
    page = render_html(doc)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("data:image/png;base64,") == 2
    assert "c = bad" in page and "Per class" in page and "warning: slice" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_one_slice_source_object_is_kept_per_name() -> None:
    sl = Slice("s")
    assert sl.describe() == "all rows" and sl.features == ()
