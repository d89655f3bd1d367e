"""``mlcycle augment compare`` and augmented ``mlcycle train``, in a real project.

One project per module; one augmented training (lineage and MLflow) and one comparison.
The slice targeted is the borderline tumour size where the model's errors are
(docs/augment.md): 13 <= worst radius < 17, rebalanced with SMOTE among its rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._cli import mlflow_client, run

pytestmark = pytest.mark.slow

SLICE = "analyze.slices=[{name: borderline, where: {worst radius: {min: 13, max: 17}}}]"
AUGMENT = [
    SLICE,
    "train.augment.target_slices=[borderline]",
    "train.augment.rebalance.method=smote",
    "train.augment.rebalance.ratio=0.5",
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("augment") / "proj"
    run(["init", str(root)], cwd=root.parent)
    yield root


def test_an_augmented_training_records_what_was_done_in_lineage_and_mlflow(
    project: Path,
) -> None:
    run(["train", *AUGMENT, "train.augment.enabled=true", "train.register=false"], cwd=project)
    (bundle,) = (project / "bundles" / "breast_cancer").iterdir()
    record = json.loads((bundle / "lineage.json").read_text())["augmentation"]
    (step,) = record["steps"]
    assert step["method"] == "smote" and step["ratio"] == 0.5 and step["k_neighbors"] == 5
    (target,) = record["target_slices"]
    assert target["name"] == "borderline" and target["where"] == "13 <= worst radius < 17"
    assert target["added"] == step["added"] > 0
    assert record["rows_after"] == record["rows_before"] + step["added"]
    assert record["class_counts_after"]["malignant"] > record["class_counts_before"]["malignant"]
    # the test split is never augmented: evaluation counts the real holdout rows
    evaluation = json.loads((bundle / "evaluation.json").read_text())
    assert evaluation["splits"]["test"]["n_samples"] == 114

    client = mlflow_client(project)
    exp = client.get_experiment_by_name("breast_cancer")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.data.params["augment.steps"] == "smote"
    assert r.data.params["augment.target_slices"] == "borderline"
    assert r.data.params["train.augment.enabled"] == "true"
    assert r.data.metrics["augment.rows_added"] == step["added"]
    assert r.data.metrics["augment.slice.borderline.added"] == step["added"]
    assert "augmentation.json" in {a.path for a in client.list_artifacts(r.info.run_id)}


def test_compare_trains_with_and_without_and_reports_holdout_and_slice(project: Path) -> None:
    proc = run(["augment", "compare", *AUGMENT, "model=random_forest"], cwd=project)
    assert "slice:borderline" in proc.stdout and "recall[malignant]" in proc.stdout
    out = project / "reports" / "augment"
    result = json.loads((out / "compare.json").read_text())
    assert set(result["sets"]) == {"holdout", "slice:borderline"}
    holdout, sl = result["sets"]["holdout"], result["sets"]["slice:borderline"]
    assert holdout["rows"] == 114 and 0 < sl["rows"] < 114
    for entry in (holdout, sl):
        assert set(entry["without"]) == {
            "f1_macro", "accuracy", "recall[benign]", "recall[malignant]"
        }  # fmt: skip
        for metric, delta in entry["delta"].items():
            assert delta == pytest.approx(entry["with"][metric] - entry["without"][metric])
    assert result["augmentation"]["steps"][0]["method"] == "smote"
    # nothing is registered or tracked by a comparison: still the one training run
    client = mlflow_client(project)
    exp = client.get_experiment_by_name("breast_cancer")
    assert len(client.search_runs([exp.experiment_id])) == 1
    assert "| slice:borderline |" in (out / "compare.md").read_text()


def test_compare_with_a_bad_parameter_fails_naming_it_before_training(project: Path) -> None:
    proc = run(["augment", "compare", "train.augment.noise.snr_db=-3"], cwd=project, check=False)
    assert proc.returncode == 2
    assert "train.augment.noise.snr_db must be a number > 0" in proc.stderr


def test_compare_without_any_augmentation_says_what_to_set(project: Path) -> None:
    proc = run(["augment", "compare"], cwd=project, check=False)
    assert proc.returncode == 2 and "nothing to compare" in proc.stderr


def test_bash_completion_offers_the_compare_action() -> None:
    from mlcycle.completion import candidates

    assert candidates("mlcycle aug") == ["augment"]
    assert candidates("mlcycle augment ") == ["compare"]
