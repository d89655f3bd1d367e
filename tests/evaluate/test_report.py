"""The evaluation report: metrics bundle, primary metric, baselines, plots and tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from rich.console import Console

from mlcycle.config.structured import BaselineConfig, EvaluateConfig
from mlcycle.evaluate.baselines import BaselineResult
from mlcycle.evaluate.report import (
    evaluate_predictions,
    format_baseline_table,
    render_baseline_table,
)
from mlcycle.exceptions import ConfigError

Y = np.array(["a", "b", "b", "a", "b", "a"])
P = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.55, 0.45], [0.9, 0.1]])


def test_evaluate_predictions_returns_flat_metrics_with_the_primary_metric() -> None:
    out = evaluate_predictions(Y, P, ["a", "b"], EvaluateConfig())
    assert out["primary_metric"] == "f1_macro"
    assert out["f1_macro"] == pytest.approx((6 / 7 + 4 / 5) / 2)  # one b predicted as a
    assert out["confusion_matrix"]["matrix"] == [[3, 0], [1, 2]]
    assert "baselines" not in out and "plots" not in out
    json.dumps(out, allow_nan=False)


def test_evaluate_predictions_output_serves_as_a_baseline_models_metrics() -> None:
    champion = evaluate_predictions(Y, P[:, ::-1], ["a", "b"], EvaluateConfig())
    cfg = EvaluateConfig(
        baselines=[
            BaselineConfig(name="human", value=0.5),
            BaselineConfig(name="previous", model="@champion"),
            BaselineConfig(name="next", model="@challenger"),
        ]
    )
    out = evaluate_predictions(
        Y, P, ["a", "b"], cfg, resolve_model=lambda ref: champion if ref == "@champion" else None
    )
    human, previous, missing = out["baselines"]
    assert human["gap"] == pytest.approx(out["f1_macro"] - 0.5)
    assert previous["gap"] == pytest.approx(out["f1_macro"] - champion["f1_macro"])
    assert missing["status"] == "skipped"


def test_evaluate_predictions_accepts_a_hydra_structured_config() -> None:
    cfg = OmegaConf.structured(
        EvaluateConfig(
            primary_metric="accuracy",
            calibration_bins=5,
            baselines=[BaselineConfig(name="human", metric="accuracy", value=0.5)],
        )
    )
    out = evaluate_predictions(Y, P, ["a", "b"], cfg, resolve_model=lambda ref: None)
    assert out["calibration"]["bins"] == 5
    assert out["baselines"][0]["gap"] == pytest.approx(out["accuracy"] - 0.5)


def test_malformed_baselines_fail_even_without_a_resolver_only_when_compared() -> None:
    cfg = EvaluateConfig(baselines=[BaselineConfig(name="both", value=0.5, model="@champion")])
    assert "baselines" not in evaluate_predictions(Y, P, ["a", "b"], cfg)
    with pytest.raises(ConfigError, match=r"evaluate\.baselines\[0\]"):
        evaluate_predictions(Y, P, ["a", "b"], cfg, resolve_model=lambda ref: None)


def test_unknown_primary_metric_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"evaluate\.primary_metric is 'f1'.*f1_macro"):
        evaluate_predictions(Y, P, ["a", "b"], EvaluateConfig(primary_metric="f1"))


def test_evaluate_predictions_writes_plots_with_relative_paths(tmp_path: Path) -> None:
    out = evaluate_predictions(Y, P, ["a", "b"], EvaluateConfig(), plots_dir=tmp_path / "plots")
    assert out["plots"]["roc"] == "plots/roc.png"
    for rel in out["plots"].values():
        assert (tmp_path / rel).is_file()


RESULTS = [
    BaselineResult("human [expert]", "f1_macro", 0.8, 0.85, 0.05, "ok"),
    BaselineResult("sota", "f1_macro", 0.9, 0.85, -0.05, "ok"),
    BaselineResult(
        "previous",
        "f1_macro",
        None,
        0.85,
        None,
        "skipped",
        note="no model at @champion yet",
        source="@champion",
    ),
]


def test_rich_baseline_table_shows_every_baseline_and_gap() -> None:
    console = Console(record=True, width=200, color_system=None)
    console.print(render_baseline_table(RESULTS))
    text = console.export_text()
    assert "human [expert]" in text  # names are not parsed as markup
    assert "+0.0500" in text and "-0.0500" in text
    assert "skipped: no model at @champion yet" in text


def test_markdown_baseline_table_has_one_row_per_baseline() -> None:
    lines = format_baseline_table(RESULTS).splitlines()
    assert lines[0].startswith("| baseline | source | metric |")
    assert len(lines) == 2 + len(RESULTS)
    assert "| sota | value | f1_macro | 0.9000 | 0.8500 | -0.0500 | worse |" in lines
    assert format_baseline_table([]) == "(no baselines configured)"
