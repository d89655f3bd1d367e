"""The closed loop: ``mlcycle demo --scenario drift`` goes from drift to a promoted retrain.

Drifting traffic with labels reaches a served champion; with no human step the monitor
raises a drift alarm, the server retrains, the gate passes, a canary promotes the new
version and the registry follows. The scenario itself fails (exit 1) on any failed
request or if the loop does not close; these tests read what it left behind.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests._cli import mlflow_client, run

pytestmark = pytest.mark.slow

MODEL = "breast_cancer"


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The scenario's project and what it printed (it runs once for the module)."""
    tmp = tmp_path_factory.mktemp("drift")
    root = tmp / "loop"
    return root, run(["demo", "--scenario", "drift", "--dir", str(root)], cwd=tmp).stdout


def test_the_loop_closes_with_no_failed_request(loop: tuple[Path, str]) -> None:
    _, out = loop
    milestones = ("drift", "alarm", "retrain started", "challenger", "canary", "promoted")
    found = re.findall(r"^(\w[\w ]*?) after (\d+) requests, ([\d.]+) s", out, re.M)
    assert [name for name, _, _ in found] == list(milestones)
    requests = [int(n) for _, n, _ in found]
    assert requests == sorted(requests)
    assert re.search(r"\d+ requests, 0 failed, \d+ labels sent back", out)


def test_one_retrain_ran_on_the_drift_alarm_and_passed_its_gate(loop: tuple[Path, str]) -> None:
    root, _ = loop
    with sqlite3.connect(root / "monitor.db") as conn:
        alarms = conn.execute("SELECT id, name FROM alarms WHERE state = 'firing'").fetchall()
        retrains = conn.execute(
            "SELECT state, trigger, alarm_ids, parent_version, version, rollout_id, gate "
            "FROM retrains"
        ).fetchall()
        events = conn.execute(
            "SELECT action, to_state, who FROM rollout_events ORDER BY id"
        ).fetchall()
    assert alarms and {name for _, name in alarms} == {"dataset_drift"}
    ((state, trigger, alarm_ids, parent, version, rollout_id, gate),) = retrains
    assert (state, trigger, parent, version, rollout_id) == ("passed", "alarm", "1", "2", 1)
    assert set(json.loads(alarm_ids)) <= {a for a, _ in alarms} and json.loads(alarm_ids)
    assert json.loads(gate)["passed"] is True
    assert events[0][:2] == ("start", "running") and events[0][2] == "retrain"
    assert events[-1][:2] == ("promote", "promoted")


def test_the_registry_shows_the_retrained_champion_and_its_lineage(
    loop: tuple[Path, str],
) -> None:
    root, out = loop
    client = mlflow_client(root)
    assert client.get_registered_model(MODEL).aliases.get("champion") in ("2", 2)
    tags = client.get_model_version(MODEL, "2").tags
    assert tags["mlcycle.parent_version"] == "1" and tags["mlcycle.trigger"] == "alarm"
    assert int(tags["mlcycle.feedback_rows"]) > 0 and tags["mlcycle.feedback_md5"]
    run_tags = client.get_run(client.get_model_version(MODEL, "2").run_id).data.tags
    assert run_tags["mlcycle.gate"] == "passed"
    # the steps are visible in the histories the scenario printed
    assert "mlcycle retrain history" in out and "mlcycle rollout history" in out
