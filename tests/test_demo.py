"""The main job: ``mlcycle demo`` runs the whole lifecycle core in a fresh project."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from mlcycle.monitor.log_batches import expand_batches
from mlcycle.monitor.store import connect
from tests.test_cli import mlflow_client, run


def expanded(store: Path) -> sqlite3.Connection:
    """The store, its packed prediction log expanded first: these tests query the
    predictions table with SQL of their own (as ``mlcycle monitor expand`` allows)."""
    engine = connect(store)
    expand_batches(engine)
    engine.dispose()
    return sqlite3.connect(store)


pytestmark = pytest.mark.slow

MODEL = "breast_cancer"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo's project and what it printed (it runs once for the module)."""
    tmp = tmp_path_factory.mktemp("demo")
    root = tmp / "demo"
    return root, run(["demo", "--dir", str(root)], cwd=tmp).stdout


def _alias(client: Any, alias: str) -> str | None:
    aliases = client.get_registered_model(MODEL).aliases
    return None if alias not in aliases else str(aliases[alias])


def test_demo_runs_end_to_end_and_promotes_the_best_model(demo: tuple[Path, str]) -> None:
    root, out = demo
    for step in range(1, 12):
        assert f"{step}/11" in out
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
    with expanded(root / "monitor.db") as conn:
        logged = conn.execute("SELECT count(*) FROM predictions").fetchone()[0]
        labelled = conn.execute("SELECT count(*) FROM feedback").fetchone()[0]
        canary = conn.execute(
            "SELECT count(*) FROM predictions WHERE request_id LIKE 'canary-%'"
        ).fetchone()[0]
    # /predict, /invocations, the feedback round, then the canary's one-row requests
    assert canary > 0
    assert (logged, labelled) == (6 + 6 + 200 + canary, 200 + canary)
    client = mlflow_client(root)
    versions = client.search_model_versions(f"name='{MODEL}'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version in {v.version for v in versions}
    assert (root / ".mlcycle" / "dvc-remote").is_dir()  # the data version was pushed


def test_the_demo_rolls_the_challenger_out_as_a_canary_to_a_final_state(
    demo: tuple[Path, str],
) -> None:
    root, out = demo
    assert "mlcycle rollout start --url http://127.0.0.1:" in out
    assert "--mode canary --challenger" in out and "@challenger" in out
    assert "MLCYCLE_ADMIN_TOKEN=<generated>" in out  # the token itself is never printed
    with expanded(root / "monitor.db") as conn:
        rollouts = conn.execute(
            "SELECT id, state, champion_version, challenger_version, steps FROM rollouts"
        ).fetchall()
        [(rollout_id, state, champion, challenger, steps)] = rollouts
        events = conn.execute(
            "SELECT action, who, to_state, to_weight FROM rollout_events WHERE rollout_id = ? "
            "ORDER BY id",
            (rollout_id,),
        ).fetchall()
        sent = conn.execute(
            "SELECT count(DISTINCT request_id), count(error) FROM predictions "
            "WHERE request_id LIKE 'canary-%'"
        ).fetchone()
        arms = dict(
            conn.execute(
                "SELECT arm, count(DISTINCT request_id) FROM predictions "
                "WHERE request_id LIKE 'canary-%' GROUP BY arm"
            ).fetchall()
        )
    assert state in ("promoted", "rolled_back")
    assert {champion, challenger} == {"1", "2"}
    assert json.loads(steps) == [25, 50, 100]
    # every transition is in the history: the start first, the final decision last
    assert (events[0][0], events[0][2], events[0][3]) == ("start", "running", 25)
    final = {"promoted": "promote", "rolled_back": "rollback"}[state]
    assert events[-1][0] == final and events[-1][2] == state
    assert all(action == "step" for action, *_ in events[1:-1])
    # what the demo printed: the outcome, zero failed requests, and the history table
    printed = re.search(r"rollout finished: (\w+)", out)
    assert printed is not None and printed[1] == state
    counted = re.search(r"requests during the rollout: (\d+) sent .*?, (\d+)\s+failed", out, re.S)
    assert counted is not None and counted[2] == "0"
    assert int(counted[1]) == sent[0] and sent[1] == 0  # every request answered, no errors
    assert arms.get("challenger", 0) > 0 and set(arms) <= {"champion", "challenger"}
    assert "rollout history (newest first)" in out
    assert "start" in out and final in out
    # the registry followed the rollout (moved by the server in a process of its own)
    client = mlflow_client(root)
    deadline = time.monotonic() + 30
    while True:
        if state == "promoted":
            done = _alias(client, "champion") == challenger
        else:
            done = _alias(client, "challenger") != challenger
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if state == "promoted":
        assert _alias(client, "champion") == challenger
        assert _alias(client, "challenger") is None
        assert f"@champion moved to version {challenger}" in " ".join(out.split())
    else:
        assert _alias(client, "champion") == champion
        assert _alias(client, "challenger") != challenger


@pytest.mark.usefixtures("isolated_mlflow_globals")
def test_the_demo_sets_challenger_on_the_other_version_when_none_is_set(
    demo: tuple[Path, str],
) -> None:
    from mlcycle.demo import _ensure_challenger

    root, _ = demo
    client = mlflow_client(root)
    if _alias(client, "challenger") is not None:
        client.delete_registered_model_alias(MODEL, "challenger")
    champion = _alias(client, "champion")
    other = ({"1", "2"} - {champion}).pop()
    console = Console(record=True, width=200, color_system=None)
    assert _ensure_challenger(console, root) == other
    assert _alias(client, "challenger") == other
    assert f"set @challenger on version {other}" in console.export_text()
    assert _ensure_challenger(console, root) == other  # set now: used as it is
    assert f"@challenger is version {other}" in console.export_text()
