"""``mlcycle data check`` end to end: a real project, the real CLI, the files it writes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests._cli import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh project with the bundled breast-cancer example."""
    base = tmp_path_factory.mktemp("check")
    run(["init", str(base / "proj")], cwd=base)
    return base / "proj"


def defects_csv(path: Path) -> dict[str, object]:
    """A table with known defects; returns where they are (rows counted in the file)."""
    rng = np.random.default_rng(0)
    n = 240
    x = rng.normal(size=n).round(3)
    plan = rng.choice(["basic", "plus", "pro"], n).astype(object)
    plan[7] = "gold"  # a rare category
    y = np.where(x + 0.5 * (plan == "pro") + rng.normal(0, 0.3, n) > 0, "yes", "no").astype(object)
    spend = rng.normal(50, 10, n).round(2).astype(object)
    spend[rng.choice(n, 100, replace=False)] = ""  # 100 of 240 missing
    when = [f"2024-01-{1 + i % 28:02d}T00:00:00Z" for i in range(n)]
    # rows 20 and 21 share every feature but not the label
    x[21], plan[21], spend[21], y[20], y[21] = x[20], plan[20], spend[20], "yes", "no"
    y[3] = ""  # unlabelled: the loader drops it, the report still counts file rows
    lines = ["x,plan,spend,constant,when,churned"]
    for i in range(n):
        lines.append(f"{x[i]},{plan[i]},{spend[i]},1,{when[i]},{y[i]}")
    path.write_text("\n".join(lines) + "\n")
    return {"conflict": [20, 21], "rare": "gold"}


def test_check_writes_valid_html_and_json_in_a_new_project(example: Path) -> None:
    out = run(["data", "check"], example).stdout
    assert "data check of breast_cancer: 569 rows, 30 features, 2 classes" in out
    assert "label issues:" in out and "learning curve:" in out
    assert "feedback:       not counted: no monitoring store at monitor.db" in out
    assert "report: reports/data_check/report.html" in out
    folder = example / "reports" / "data_check"
    doc = json.loads((folder / "report.json").read_text())
    assert doc["version"] == 1
    assert doc["dataset"]["rows"] == 569 and doc["dataset"]["path"] == "data/breast_cancer.csv"
    dvc = (example / "data" / "breast_cancer.csv.dvc").read_text()
    assert doc["dataset"]["md5"] in dvc
    assert {"label_issues", "duplicates", "coverage", "size", "timeliness", "findings"} <= set(doc)
    assert doc["size"]["verdict"] in ("more data would likely help", "the curve has flattened")
    assert doc["size"]["metric"] == "f1_macro"  # evaluate.primary_metric
    assert doc["settings"]["folds"] == 5 and doc["settings"]["model"] == "logreg"
    assert doc["timeliness"]["feedback"]["available"] is False
    page = (folder / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert page.count("data:image/png;base64,") == len(doc["plots"]) == 3
    for rel in doc["plots"].values():
        assert (folder / rel).read_bytes().startswith(b"\x89PNG")


def test_flags_and_overrides_set_the_check(example: Path, tmp_path: Path) -> None:
    out = run(
        [
            "data",
            "check",
            "--out",
            str(tmp_path / "dc"),
            "--folds",
            "3",
            "model=gbdt",  # overrides may sit between the flags
            "--max-issues",
            "0",
            "data.check.metric=accuracy",
            "data.check.curve_sizes=[0.5,1.0]",
        ],
        example,
    ).stdout
    assert str(tmp_path / "dc" / "report.html") in out
    doc = json.loads((tmp_path / "dc" / "report.json").read_text())
    assert doc["settings"]["folds"] == 3 and doc["settings"]["model"] == "gbdt"
    assert doc["label_issues"]["listed"] == 0 and doc["label_issues"]["issues"] == []
    assert doc["size"]["metric"] == "accuracy" and len(doc["size"]["sizes"]) == 2
    assert doc["size"]["fit"]["method"] == "last_slope"


def test_finds_the_defects_of_a_users_dataset(tmp_path: Path) -> None:
    root = tmp_path / "own"
    run(["init", str(root), "--no-example"], cwd=tmp_path)
    planted = defects_csv(root / "data" / "churn.csv")
    run(["data", "add", "data/churn.csv", "--label", "churned", "--name", "churn"], root)
    out = run(["data", "check", "data=churn", "data.time_column=when"], root).stdout
    assert "1 group(s) with conflicting labels" in out
    doc = json.loads((root / "reports" / "data_check" / "report.json").read_text())
    assert doc["dataset"]["rows"] == 239 and doc["dataset"]["rows_in_file"] == 240
    (conflict,) = doc["duplicates"]["conflicting"]
    assert conflict["rows"] == planted["conflict"]  # positions in the file, not the dataset
    features = {f["name"]: f for f in doc["coverage"]["features"]}
    assert features["constant"]["constant"]
    assert features["spend"]["too_many_missing"]
    rare = doc["coverage"]["rare_categories"]
    assert {"feature": "plan", "value": planted["rare"], "rows": 1} in rare
    assert doc["timeliness"]["time_column"]["newest"] == "2024-01-28T00:00:00Z"
    assert doc["timeliness"]["time_column"]["age_days"] > 300
    texts = " ".join(f["text"] for f in doc["findings"])
    assert "identical features but different labels" in texts
    assert "constant" in texts and "'spend' is missing" in texts and "days old" in texts
    # The time column is a feature in the inferred schema: said, and left out of the
    # comparison of rows (every row's time differs) and of the rare categories.
    assert doc["timeliness"]["time_column"]["is_feature"]
    assert "'when' (data.time_column) is also a feature" in texts
    assert all(r["feature"] != "when" for r in rare)


def test_counts_feedback_since_the_champion_was_trained(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from mlcycle.monitor.store import FEEDBACK, PREDICTIONS, connect

    example = tmp_path / "served"  # its own project: it trains, and gets a store
    run(["init", str(example)], cwd=tmp_path)
    run(["train"], example)
    run(["promote", "1"], example)
    engine = connect(example / "monitor.db")
    now = time.time()
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(
                PREDICTIONS.insert().values(
                    request_id=f"r{i}",
                    row=0,
                    time=now,
                    model_name="breast_cancer",
                    model_version="1",
                    arm="champion",
                    stage="",
                    label="benign",
                    features=json.dumps({"mean radius": 10.0}),
                )
            )
            conn.execute(
                FEEDBACK.insert().values(request_id=f"r{i}", row=0, time=now, label="malignant")
            )
        assert conn.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar() == 3
    engine.dispose()
    out = run(["data", "check", "--folds", "3"], example).stdout
    assert "feedback:       3 label(s) since the champion (version 1) was trained" in out
    fb = json.loads((example / "reports" / "data_check" / "report.json").read_text())["timeliness"][
        "feedback"
    ]
    assert fb["available"] and fb["labels"] == 3 and fb["champion"]["version"] == "1"
    assert fb["champion"]["source"] == "lineage"


def test_a_store_that_cannot_be_opened_is_reported_not_raised(example: Path) -> None:
    url = "sqlite:////nonexistent-folder/monitor.db"
    out = run(["data", "check", "--store", url, "--out", "bad-store"], example).stdout
    assert "feedback:       not counted: the monitoring store failed: cannot open" in out
    doc = json.loads((example / "bad-store" / "report.json").read_text())
    assert doc["timeliness"]["feedback"]["available"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--folds", "1"], "error: data.check.folds (or --folds) is 1; it must be a whole number"),
        (["--max-issues", "-2"], "error: data.check.max_issues (or --max-issues) is -2"),
        (["--folds", "many"], "argument --folds: invalid int value: 'many'"),
        (["evaluate.primary_metric=f2"], "error: evaluate.primary_metric is 'f2', which the "),
        (["data.check.metric=ece"], "error: data.check.metric is 'ece'"),
        (["data.check.curve_sizes=[2.0]"], "error: data.check.curve_sizes is [2.0]"),
        (["data.time_column=nope"], "error: data.time_column is 'nope', which is not a column"),
        (["data.check.folds=lots"], "error: the config overrides ['data.check.folds=lots']"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_a_clear_error(example: Path, args: list[str], message: str) -> None:
    proc = run(["data", "check", "--out", "bad", *args], example, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_class_too_small_for_the_folds_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "small"
    run(["init", str(root), "--no-example"], cwd=tmp_path)
    rows = [f"{i},{'a' if i % 2 else 'b'}" for i in range(40)] + ["100,c", "101,c"]
    (root / "data" / "t.csv").write_text("x,y\n" + "\n".join(rows) + "\n")
    run(["data", "add", "data/t.csv", "--label", "y", "--name", "t"], root)
    proc = run(["data", "check", "data=t"], root, check=False)
    assert proc.returncode == 2
    assert "error: class 'c' has 2 rows, fewer than the 5 folds of data.check.folds" in proc.stderr
    assert "--folds 2" in proc.stderr
