"""Baselines: gaps to fixed figures and to other models, skipped models, config errors."""

from __future__ import annotations

from typing import Any

import pytest

from mlcycle.config.structured import BaselineConfig
from mlcycle.evaluate.baselines import BaselineResult, compare_to_baselines
from mlcycle.exceptions import ConfigError

METRICS: dict[str, Any] = {
    "accuracy": 0.9,
    "f1_macro": 0.85,
    "roc_auc": None,
    "log_loss": 0.3,
    "classes": ["a", "b"],
    "per_class": {},
}


def _never(ref: str) -> dict[str, Any] | None:
    raise AssertionError(f"resolve_model must not be called (got {ref!r})")


def test_value_baseline_gap_is_model_minus_baseline() -> None:
    above, below = compare_to_baselines(
        METRICS,
        [BaselineConfig(name="human", value=0.8), BaselineConfig(name="sota", value=0.95)],
        _never,
    )
    assert above.status == "ok" and above.gap == pytest.approx(0.05)
    assert above.beats_baseline is True
    assert below.gap == pytest.approx(-0.10)
    assert below.beats_baseline is False
    assert (below.baseline_value, below.model_value, below.source) == (0.95, 0.85, "value")


def test_gap_of_a_loss_is_better_when_negative() -> None:
    [r] = compare_to_baselines(
        METRICS, [BaselineConfig(name="old", metric="log_loss", value=0.5)], _never
    )
    assert r.gap == pytest.approx(-0.2)
    assert r.higher_is_better is False
    assert r.beats_baseline is True


def test_model_baseline_compares_with_the_resolved_model_metrics() -> None:
    calls: list[str] = []

    def resolve(ref: str) -> dict[str, Any]:
        calls.append(ref)
        return {"accuracy": 0.92, "f1_macro": 0.8}

    results = compare_to_baselines(
        METRICS,
        [
            BaselineConfig(name="champion", model="@champion"),
            BaselineConfig(name="champion acc", metric="accuracy", model="@champion"),
        ],
        resolve,
    )
    assert [r.gap for r in results] == pytest.approx([0.05, -0.02])
    assert calls == ["@champion"]  # each distinct reference is resolved once
    assert results[0].source == "@champion"


def test_missing_model_baseline_is_skipped_with_a_note() -> None:
    [r] = compare_to_baselines(
        METRICS, [BaselineConfig(name="previous", model="@champion")], lambda ref: None
    )
    assert r.status == "skipped"
    assert r.gap is None and r.beats_baseline is None
    assert r.note == "no model at @champion yet"


def test_undefined_metric_is_skipped_not_compared() -> None:
    [r] = compare_to_baselines(
        METRICS, [BaselineConfig(name="h", metric="roc_auc", value=0.9)], _never
    )
    assert r.status == "skipped"
    assert "undefined" in r.note


@pytest.mark.parametrize(
    ("baseline", "match"),
    [
        (BaselineConfig(name="both", value=0.9, model="@champion"), "both `value` and `model`"),
        (BaselineConfig(name="neither"), "neither `value` nor `model`"),
        (BaselineConfig(name="typo", metric="f1", value=0.9), "metric 'f1'.*f1_macro"),
        (BaselineConfig(name="list", metric="classes", value=0.9), "metric 'classes'"),
    ],
)
def test_malformed_baseline_is_a_config_error_naming_its_index(
    baseline: BaselineConfig, match: str
) -> None:
    good = BaselineConfig(name="human", model="@champion")
    with pytest.raises(ConfigError, match=r"evaluate\.baselines\[1\].*" + match):
        # raised before the first baseline's model is resolved
        compare_to_baselines(METRICS, [good, baseline], _never)


def test_result_dict_is_plain_data_that_reads_back() -> None:
    r = BaselineResult("human", "f1_macro", 0.8, 0.85, 0.05, "ok")
    d = r.to_dict()
    assert d == {
        "name": "human",
        "metric": "f1_macro",
        "baseline_value": 0.8,
        "model_value": 0.85,
        "gap": 0.05,
        "status": "ok",
        "note": "",
        "source": "value",
        "higher_is_better": True,
    }
    assert BaselineResult(**d) == r
    assert BaselineResult.from_dict({**d, "added_later": 1}) == r
