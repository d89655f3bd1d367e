"""The server's retrain trigger: alarms in, one retraining at a time, storms coalesced.

The trigger's work is two subprocesses (``mlcycle data feedback``, ``mlcycle retrain
--retrain-id ID``). Here they are a small real program that records its arguments and
ends the retraining like ``mlcycle retrain`` would, so the coordination (which alarms
start one, how many run, cooldowns, failures) is tested in seconds; the real commands
run in tests/test_demo_drift.py.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlcycle.monitor.store import ALARMS, connect
from mlcycle.retrain.settings import RetrainTriggerSettings
from mlcycle.retrain.store import RetrainStore
from mlcycle.retrain.trigger import RetrainTrigger, matching_alarms

MODEL = "cancer"

# Stands in for `python -m mlcycle ARGS`: logs ARGS; `retrain --retrain-id ID` adopts the
# retraining, waits while the file LOG.hold exists, then records it as OUTCOME with a
# version and bundle.
FAKE_MLCYCLE = """
import json, os, sys, time
from mlcycle.retrain.store import RetrainStore
log, store_url, outcome, *args = sys.argv[1:]
with open(log, "a") as f:
    f.write(json.dumps(args) + "\\n")
if args[0] == "data":
    sys.exit(0 if outcome != "no-feedback" else 2)
rid = int(args[args.index("--retrain-id") + 1])
store = RetrainStore.open(store_url)
store.adopt(rid)
hold = log + ".hold"  # the test removes it to let the retraining end
deadline = time.monotonic() + 60
while os.path.exists(hold) and time.monotonic() < deadline:
    time.sleep(0.05)
if outcome == "crash":
    sys.exit(3)
store.finish(rid, outcome, "the gate said so", version="2", bundle="/tmp/bundle-2")
"""


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return str(tmp_path / "monitor.db")


def fire(engine: sa.Engine, name: str = "dataset_drift", model: str = MODEL) -> int:
    with engine.begin() as conn:
        key = conn.execute(
            ALARMS.insert().values(
                time=time.time(), name=name, model_name=model,
                metric="drift.share" if name == "dataset_drift" else "latency_p99_ms",
                state="firing", message="drifted",
            )
        ).inserted_primary_key  # fmt: skip
    assert key is not None
    return int(key[0])


def trigger(
    tmp_path: Path,
    store_url: str,
    outcome: str = "passed",
    *,
    cooldown: float = 600.0,
    rollouts: list[tuple[str, str, str]] | None = None,
    root: Path | None = None,
) -> RetrainTrigger:
    script = tmp_path / "fake_mlcycle.py"
    script.write_text(FAKE_MLCYCLE)
    log = tmp_path / "calls.jsonl"

    def start_rollout(bundle: str, version: str, reason: str) -> int:
        assert rollouts is not None
        rollouts.append((bundle, version, reason))
        return 7

    t = RetrainTrigger(
        RetrainTriggerSettings(on_alarms=["dataset_drift"], cooldown_seconds=cooldown),
        connect(store_url),
        model_name=MODEL,
        store_url=store_url,
        project_root=tmp_path if root is None else root,
        start_rollout=start_rollout if rollouts is not None else None,
        command=[sys.executable, str(script), str(log), store_url, outcome],
    )
    return t


def calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_only_named_alarms_of_the_served_model_newer_than_the_mark_match(store_url: str) -> None:
    engine = connect(store_url)
    old = fire(engine)
    mine = fire(engine)
    fire(engine, name="latency_p99_spike")
    fire(engine, model="another")
    found = matching_alarms(engine, MODEL, ["dataset_drift"], after_id=old)
    assert [a.id for a in found] == [mine]
    assert [a.id for a in matching_alarms(engine, MODEL, ["drift.share"], 0)] == [old, mine]


def test_an_alarm_exports_feedback_retrains_and_starts_the_rollout(
    tmp_path: Path, store_url: str
) -> None:
    rollouts: list[tuple[str, str, str]] = []
    t = trigger(tmp_path, store_url, rollouts=rollouts)
    t.start()  # remembers the newest alarm: older ones are history
    t.close()
    assert t.check() is None  # nothing new
    alarm = fire(t.engine)
    done = t.check()
    assert done is not None and done.state == "passed" and done.alarm_ids == [alarm]
    assert done.rollout_id == 7 and done.trigger == "alarm" and done.who == "server"
    assert rollouts == [("/tmp/bundle-2", "2", f"retrain {done.id} (alarms [{alarm}]) passed "
                         "its gate")]  # fmt: skip
    (export, retrain) = calls(tmp_path)
    assert export[:2] == ["data", "feedback"] and "--store" in export
    assert retrain[:3] == ["retrain", "--retrain-id", str(done.id)]


def test_an_alarm_storm_from_two_workers_runs_one_retrain_with_every_alarm(
    tmp_path: Path, store_url: str
) -> None:
    workers = [trigger(tmp_path, store_url) for _ in range(2)]
    hold = tmp_path / "calls.jsonl.hold"
    hold.touch()  # the retraining runs until the storm is over
    first = fire(workers[0].engine)
    running = threading.Thread(target=workers[0].check)
    running.start()
    store = RetrainStore(connect(store_url))
    deadline = time.monotonic() + 60
    while store.running(MODEL) is None or store.running(MODEL).pid == os.getpid():  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the retraining did not start"
        time.sleep(0.05)
    storm = [fire(workers[0].engine) for _ in range(20)]  # alarms keep firing meanwhile
    assert workers[1].check() is None  # the other worker joins them to the running one
    hold.unlink()
    running.join(60)
    history = store.history(MODEL)
    assert len(history) == 1 and history[0].state == "passed"
    assert history[0].alarm_ids == sorted([first, *storm])
    assert sum(c[0] == "retrain" for c in calls(tmp_path)) == 1
    assert workers[0].check() is None  # after it: inside the cooldown


def test_alarms_inside_the_cooldown_start_nothing(tmp_path: Path, store_url: str) -> None:
    t = trigger(tmp_path, store_url, cooldown=600.0)
    fire(t.engine)
    assert t.check() is not None
    fire(t.engine)
    assert t.check() is None
    assert len(RetrainStore(t.engine).history(MODEL)) == 1


def test_a_failed_export_is_recorded_as_skipped_with_the_reason(
    tmp_path: Path, store_url: str
) -> None:
    t = trigger(tmp_path, store_url, outcome="no-feedback")
    fire(t.engine)
    done = t.check()
    assert done is not None and done.state == "skipped"
    assert done.reason.startswith("exporting the feedback dataset failed")
    assert [c[0] for c in calls(tmp_path)] == ["data"]


def test_a_retrain_that_dies_is_recorded_as_an_error_and_frees_the_model(
    tmp_path: Path, store_url: str
) -> None:
    t = trigger(tmp_path, store_url, outcome="crash", cooldown=0.0)
    fire(t.engine)
    done = t.check()
    assert done is not None and done.state == "error" and "exited 3" in done.reason
    assert RetrainStore(t.engine).running(MODEL) is None


def test_a_failed_gate_starts_no_rollout(tmp_path: Path, store_url: str) -> None:
    rollouts: list[tuple[str, str, str]] = []
    t = trigger(tmp_path, store_url, outcome="failed", rollouts=rollouts)
    fire(t.engine)
    done = t.check()
    assert done is not None and done.state == "failed" and done.rollout_id is None
    assert rollouts == []


def test_outside_a_project_alarms_are_only_watched(tmp_path: Path, store_url: str) -> None:
    t = trigger(tmp_path, store_url)
    t.root = None
    fire(t.engine)
    assert t.check() is None
    assert RetrainStore(t.engine).history(MODEL) == [] and calls(tmp_path) == []


def test_alarms_that_fired_while_the_last_retrain_ran_start_no_second_one(
    tmp_path: Path, store_url: str
) -> None:
    t = trigger(tmp_path, store_url, cooldown=0.0)
    store = RetrainStore(t.engine)
    running = store.start(MODEL, "manual", "ana")
    assert running is not None
    fire(t.engine)  # fires while it runs; this worker only looks after it ended
    store.finish(running.id, "passed", "done")
    done = t.check()
    assert done is not None and done.state == "skipped"
    assert f"while retrain {running.id} ran" in done.reason
    assert calls(tmp_path) == []
