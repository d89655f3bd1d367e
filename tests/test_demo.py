"""The main job: ``mlcycle demo`` runs the whole lifecycle core in a fresh project."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import mlflow_client, run

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_and_promotes_the_best_model(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    out = run(["demo", "--dir", str(root)], cwd=tmp_path).stdout
    for step in range(1, 11):
        assert f"{step}/10" in out
    assert "POST http://127.0.0.1:" in out and "gives the same labels: True" in out
    assert 'route="/predict",status="200"' in out
    with (root / "predictions.csv").open(newline="") as f:
        predictions = list(csv.DictReader(f))
    assert len(predictions) == 569
    assert set(predictions[0]) == {"prediction", "proba_benign", "proba_malignant"}
    assert {p["prediction"] for p in predictions} == {"benign", "malignant"}
    assert "summary" in out and "demo finished" in out and "mlflow ui" in out
    # the monitor logged the served traffic, joined the feedback and wrote a report
    assert "200 stored" in out and "mlcycle_quality_accuracy{" in out
    assert (root / "monitor-report.html").is_file() and (root / "monitor-report.json").is_file()
    with sqlite3.connect(root / "monitor.db") as conn:
        logged = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
        labelled = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
    assert (logged, labelled) == (6 + 6 + 200, 200)  # /predict, /invocations, the feedback round
    client = mlflow_client(root)
    versions = client.search_model_versions("name='breast_cancer'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias("breast_cancer", "champion")
    assert champion.version in {v.version for v in versions}
    assert (root / ".mlcycle" / "dvc-remote").is_dir()  # the data version was pushed
