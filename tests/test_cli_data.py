"""``mlcycle data add`` / ``status`` and training on a user's own mixed-type dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_cli import git, run

pytestmark = pytest.mark.slow


def churn_csv(path: Path, rows: int = 400) -> None:
    """A small mixed dataset: numeric and categorical features, missing values in both."""
    rng = np.random.default_rng(0)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    region = rng.choice(["north", "south", "east", "west"], rows)
    tenure = rng.integers(1, 60, rows).astype(float)
    spend = rng.normal(50, 15, rows).round(2)
    risk = (plan == "basic") * 1.2 + (tenure < 12) * 1.0 - spend / 60 + rng.normal(0, 0.4, rows)
    churned = np.where(risk > 0.2, "yes", "no")
    tenure[rng.choice(rows, 15, replace=False)] = np.nan
    region = region.astype(object)
    region[rng.choice(rows, 10, replace=False)] = None
    lines = ["plan,region,tenure,spend,churned"]
    for p, r, t, s, c in zip(plan, region, tenure, spend, churned, strict=True):
        lines.append(f"{p},{r or ''},{'' if np.isnan(t) else int(t)},{s},{c}")
    path.write_text("\n".join(lines) + "\n")


def test_add_own_dataset_then_train_it_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "own"
    run(["init", str(root), "--no-example"], cwd=tmp_path)
    source = tmp_path / "churn.csv"  # outside the project: copied into data/
    churn_csv(source)
    out = run(["data", "add", str(source), "--label", "churned", "--name", "churn"], root).stdout
    assert "classes ['no', 'yes']" in out
    schema = yaml.safe_load((root / "data" / "churn.schema.yaml").read_text())
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert kinds == {
        "plan": "categorical",
        "region": "categorical",
        "tenure": "numeric",
        "spend": "numeric",
    }
    staged = git(root, "diff", "--cached", "--name-only").splitlines()
    assert {"data/churn.csv.dvc", "data/churn.schema.yaml", "conf/data/churn.yaml"} <= set(staged)
    assert "data/churn.csv" not in git(root, "ls-files").splitlines()

    run(["train", "data=churn", "model=gbdt"], root)
    (bundle,) = (root / "bundles" / "churn").iterdir()
    signature = json.loads((bundle / "signature.json").read_text())
    assert [i["name"] for i in signature["inputs"]] == ["numeric", "categorical"]
    evaluation = json.loads((bundle / "evaluation.json").read_text())
    assert evaluation["parity"]["max_abs_diff"] <= 1e-4
    assert evaluation["splits"]["test"]["accuracy"] > 0.7


def test_data_status_reports_local_changes_and_unpushed_data(tmp_path: Path) -> None:
    root = tmp_path / "status"
    run(["init", str(root)], cwd=tmp_path)
    before = run(["data", "status"], root).stdout
    assert "not pushed" in before or "new" in before
    run(["data", "push"], root)
    synced = run(["data", "status"], root).stdout
    assert "up to date" in synced and "in sync" in synced
    with (root / "data" / "breast_cancer.csv").open("a") as fh:
        fh.write("\n")
    changed = run(["data", "status"], root).stdout
    assert "modified" in changed and "data/breast_cancer.csv" in changed
