"""The report: its JSON shape, the ranked findings, the plots and the HTML page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlcycle.data.check.duplicates import find_duplicates
from mlcycle.data.check.findings import findings
from mlcycle.data.check.html import render_html
from mlcycle.data.check.label_issues import find_label_issues
from mlcycle.data.check.learning_curve import LearningCurve, assess_curve
from mlcycle.data.check.plots import save_plots
from mlcycle.data.check.report import REPORT_VERSION, SECTIONS, build_report, write_json

SETTINGS = {
    "folds": 5,
    "seed": 0,
    "max_issues": 50,
    "rare_count": 10,
    "min_slice_rows": 30,
    "slice_bins": 4,
    "rare_class_share": 0.05,
    "max_missing_rate": 0.2,
    "curve_sizes": [0.5, 1.0],
    "metric": "f1_macro",
    "min_gain": 0.005,
    "max_age_days": 90.0,
    "model": "logreg",
}


def curve(rising: bool) -> LearningCurve:
    sizes = [50, 100, 200, 400]
    mean = [0.6, 0.7, 0.78, 0.84] if rising else [0.9, 0.9, 0.9, 0.9]
    std = [0.01] * 4
    fit, spread, threshold, helps, verdict = assess_curve(sizes, mean, std, min_gain=0.005)
    return LearningCurve(
        "f1_macro",
        True,
        sizes,
        [1.0] * 4,
        [0.0] * 4,
        mean,
        std,
        fit,
        spread,
        threshold,
        helps,
        verdict,
    )


def sections(*, rising: bool = True, store: bool = False, old_days: float = 1.0) -> dict[str, Any]:
    y = np.array(["a"] * 6 + ["b"] * 6 + ["a", "b"])
    p = np.array([[0.9, 0.1]] * 5 + [[0.05, 0.95]] + [[0.1, 0.9]] * 6 + [[0.5, 0.5]] * 2)
    import pandas as pd

    frame = pd.DataFrame({"x": [float(i) for i in range(12)] + [99.0, 99.0]})
    feedback: dict[str, Any] = {"store": "monitor.db", "min_new_rows": 20}
    if store:
        feedback.update(
            available=True,
            since="2026-01-01T00:00:00Z",
            labels=25,
            labels_all_models=25,
            with_features=25,
            by_source={"api": 25},
            newest="2026-01-02T00:00:00Z",
            skipped={},
            champion={"version": "3", "trained_at": "2026-01-01T00:00:00Z"},
        )
    else:
        feedback.update(available=False, reason="there is no monitoring store at monitor.db")
    return {
        "label_issues": find_label_issues(y, p, ["a", "b"]).to_dict(),
        "duplicates": find_duplicates(frame, y).to_dict(),
        "coverage": {
            "classes": {
                "counts": {"a": 95, "b": 5},
                "shares": {"a": 0.95, "b": 0.05},
                "imbalance_ratio": 19.0,
                "rare": ["b"],
                "rare_class_share": 0.1,
            },
            "rare_categories": [{"feature": "plan", "value": "gold", "rows": 2}],
            "small_slices": [
                {"feature": "plan", "kind": "categorical", "slice": "gold", "rows": 2}
            ],
            "features": [
                {
                    "name": "x",
                    "kind": "numeric",
                    "missing": 40,
                    "missing_rate": 0.4,
                    "distinct": 12,
                    "constant": False,
                    "too_many_missing": True,
                },
                {
                    "name": "k",
                    "kind": "numeric",
                    "missing": 0,
                    "missing_rate": 0.0,
                    "distinct": 1,
                    "constant": True,
                    "too_many_missing": False,
                },
            ],
        },
        "size": curve(rising).to_dict(),
        "timeliness": {
            "data_file": {
                "path": "d.csv",
                "modified_at": "2025-01-01T00:00:00Z",
                "age_days": old_days,
            },
            "time_column": None,
            "feedback": feedback,
        },
    }


def document(**kwargs: Any) -> dict[str, Any]:
    return build_report(
        created_at="2026-01-03T00:00:00Z",
        dataset={
            "name": "t",
            "path": "d.csv",
            "md5": "0" * 32,
            "tracked": True,
            "rows": 100,
            "features": ["x", "k"],
            "classes": ["a", "b"],
        },
        settings=SETTINGS,
        sections=sections(**kwargs),
        plots={},
    )


def test_the_document_has_the_documented_top_level_shape() -> None:
    doc = document()
    assert list(doc) == [
        "version",
        "created_at",
        "dataset",
        "settings",
        *SECTIONS,
        "plots",
        "findings",
    ]
    assert doc["version"] == REPORT_VERSION == 1
    assert set(doc["dataset"]) >= {"name", "path", "md5", "rows"}
    json.dumps(doc, allow_nan=False)  # plain JSON, no NaN


def test_a_missing_section_is_an_internal_error() -> None:
    parts = sections()
    del parts["size"]
    with pytest.raises(ValueError, match="size"):
        build_report(created_at="", dataset={}, settings={}, sections=parts, plots={})


def test_findings_rank_contradicting_labels_first_and_say_what_to_do() -> None:
    doc = document()
    found = doc["findings"]
    assert [f["rank"] for f in found] == list(range(1, len(found) + 1))
    severities = [f["severity"] for f in found]
    assert severities == sorted(severities, key=["high", "warning", "info"].index)
    first = found[0]
    assert first["section"] == "duplicates" and "different labels" in first["text"]
    assert "rows 12, 13" in first["text"]
    texts = " | ".join(f["text"] for f in found)
    assert "class 'b' has only 5 rows" in texts
    assert "likely mislabelled" in texts and "row 5: 'a' -> 'b'" in texts
    assert "constant" in texts and "'x' is missing in 40.0%" in texts
    assert "more data would likely help" in texts
    assert "production feedback not counted" in texts


def test_a_flat_curve_stale_data_and_new_feedback_are_findings() -> None:
    found = findings(document(rising=False, store=True, old_days=200.0))
    texts = {f["section"]: [] for f in found}
    for f in found:
        texts[f["section"]].append(f["text"])
    assert any("has flattened" in t for t in texts["size"])
    time_texts = " ".join(texts["timeliness"])
    assert "200 days old" in time_texts
    assert "25 production label(s) arrived since the champion (version 3)" in time_texts


def test_html_embeds_the_plots_and_shows_the_findings(tmp_path: Path) -> None:
    doc = document()
    quality = np.linspace(0, 1, 50)
    written = save_plots(
        tmp_path / "plots",
        counts={"a": 95, "b": 5},
        rare_classes=["b"],
        quality=quality,
        issue_threshold=0.05,
        features=doc["coverage"]["features"],
        curve=curve(True),
    )
    assert set(written) == {"class_balance", "label_quality", "missing_values", "learning_curve"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written.values())
    doc["plots"] = {k: p.relative_to(tmp_path).as_posix() for k, p in written.items()}
    page = render_html(doc, tmp_path)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("data:image/png;base64,") == 4
    assert "What to fix first" in page and "different labels" in page
    assert "<script" not in page


def test_a_plot_that_no_longer_applies_is_removed(tmp_path: Path) -> None:
    features = [{"name": "x", "missing": 3, "missing_rate": 0.3}]
    args: dict[str, Any] = {
        "counts": {"a": 5, "b": 5},
        "rare_classes": [],
        "quality": np.ones(10),
        "issue_threshold": None,
        "curve": curve(False),
    }
    save_plots(tmp_path, features=features, **args)
    assert (tmp_path / "missing_values.png").is_file()
    save_plots(tmp_path, features=[{"name": "x", "missing": 0, "missing_rate": 0.0}], **args)
    assert not (tmp_path / "missing_values.png").exists()


def test_write_json_replaces_the_file_whole(tmp_path: Path) -> None:
    path = write_json({"version": 1}, tmp_path / "r" / "report.json")
    assert json.loads(path.read_text()) == {"version": 1}
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]
