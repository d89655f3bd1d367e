"""``mlcycle analyze`` in a real project, trained once: the report, the table, the
baselines, and the errors a user can run into."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mlcycle.evaluate.slices import parse_slices
from tests._bundles import build_bundle
from tests._cli import run

pytestmark = pytest.mark.slow

SLICES = (
    "analyze.slices=[{name: large, where: {mean radius: {min: 17}}},"
    " {name: giant, where: {mean radius: {min: 1000}}}]"
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project made by ``mlcycle init`` and trained once (version 1, no champion)."""
    root = tmp_path_factory.mktemp("analyze") / "proj"
    run(["init", str(root)], cwd=root.parent)
    run(["train"], cwd=root)
    yield root


def test_analyze_writes_json_html_and_prints_the_ranked_table(project: Path) -> None:
    proc = run(["analyze", SLICES, "--top", "5"], cwd=project)
    out = project / "reports" / "analysis"
    doc = json.loads((out / "analysis.json").read_text())
    # no champion yet: the newest version, with a note
    assert doc["model"]["version"] == "1" and doc["model"]["name"] == "breast_cancer"
    assert any("no @champion yet: analysing its newest version 1" in n for n in doc["notes"])
    assert doc["version"] == 1 and doc["split"] == "test" and doc["rows"] == 114
    assert doc["metric"] == "f1_macro" and doc["data"]["name"] == "breast_cancer"
    overall = doc["overall"]
    assert overall["rows"] == 114 and overall["share"] == 1.0
    assert overall["baseline"] == 0.95 and overall["baseline_source"] == "value:human"
    slices = {s["name"]: s for s in doc["slices"]}
    large = slices["large"]
    assert large["source"] == "config" and large["where"] == "mean radius >= 17"
    assert 0 < large["rows"] < 114 and large["share"] == pytest.approx(large["rows"] / 114)
    assert slices["giant"]["status"] == "empty"
    ranked = [s for s in doc["slices"] if s["status"] == "ranked"]
    gains = [s["potential_gain"] for s in ranked]
    assert gains == sorted(gains, reverse=True) and [s["rank"] for s in ranked][:3] == [1, 2, 3]
    for s in ranked:
        assert s["gap"] == pytest.approx(s["baseline"] - s["score"])
        assert s["potential_gain"] == pytest.approx(s["gap"] * s["share"])
    assert any(s["source"] == "auto" for s in ranked)
    assert sum(map(sum, doc["confusion"]["matrix"])) == 114
    assert set(doc["per_class"]) == {"benign", "malignant"}
    assert doc["class_balance"]["skewed"] is True
    # the suggested slices are valid config entries
    assert parse_slices(doc["suggested"])
    # the terminal: the table, the per-class figures, the snippet; the warning on stderr
    assert "Error analysis of v1 on the test split (114 rows)" in proc.stdout
    assert ranked[0]["name"] in proc.stdout and "large *" in proc.stdout
    assert "Per class" in proc.stdout and "malignant" in proc.stdout
    snippet = proc.stdout.split("paste into conf/config.yaml):", 1)[1].split("wrote ", 1)[0]
    assert parse_slices(yaml.safe_load(snippet)["analyze"]["slices"])
    assert "slice 'giant' (mean radius >= 1000) matches no rows" in proc.stderr
    page = (out / "analysis.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "large" in page
    assert (out / "potential_gain.png").is_file() and (out / "confusion_matrix.png").is_file()


def test_analyze_compares_with_an_older_model_and_skips_itself_as_a_baseline(
    project: Path, tmp_path: Path
) -> None:
    older = build_bundle("cancer", tmp_path / "older")
    run(["promote", "1"], cwd=project)
    run(["analyze", "--baseline-model", str(older), "--out", "report", "--split", "val"],
        cwd=project)  # fmt: skip
    doc = json.loads((project / "report" / "analysis.json").read_text())
    assert doc["split"] == "val" and doc["model"]["ref"] == "@champion"
    assert doc["baseline_model"]["path"] == str(older)
    sources = {s["baseline_source"] for s in doc["slices"]}
    assert sources == {f"model:{older}"}
    assert all(s["model_score"] is not None for s in doc["slices"])
    # evaluate.baselines' "@champion" is the analysed model itself: not used
    run(["analyze", "--out", "report2"], cwd=project)
    doc = json.loads((project / "report2" / "analysis.json").read_text())
    assert any("@champion is the analysed model itself" in n for n in doc["notes"])
    assert doc["baseline_model"] is None


def test_analyze_a_model_that_does_not_exist_fails_with_the_registry_message(
    project: Path,
) -> None:
    proc = run(["analyze", "99"], cwd=project, check=False)
    assert proc.returncode == 2
    assert "has no version 99" in proc.stderr and "Traceback" not in proc.stderr


def test_analyze_a_model_of_other_data_fails_naming_what_does_not_match(
    project: Path, tmp_path: Path
) -> None:
    other = build_bundle("mixed", tmp_path / "mixed")
    proc = run(["analyze", str(other)], cwd=project, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "reads feature(s) ['x0', 'x1', 'x2', 'color', 'size']" in proc.stderr


def test_analyze_a_slice_on_a_feature_the_data_lacks_fails_naming_the_slice(
    project: Path,
) -> None:
    bad = "analyze.slices=[{name: old, where: {age: {min: 60}}}]"
    proc = run(["analyze", bad], cwd=project, check=False)
    assert proc.returncode == 2
    assert "slice 'old' reads the feature 'age', which the data does not have" in proc.stderr


def test_bash_completion_offers_the_command_its_options_and_splits() -> None:
    from mlcycle.completion import candidates

    assert "analyze" in candidates("mlcycle ana")
    assert candidates("mlcycle analyze --sp") == ["--split"]
    assert sorted(candidates("mlcycle analyze --split ")) == ["test", "train", "val"]
