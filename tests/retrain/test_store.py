"""The record of retrainings in a real SQLite monitoring store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlcycle.retrain.store import RetrainError, RetrainStore, pid_alive
from mlcycle.retrain.tables import RETRAINS

MODEL = "wine"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def store(tmp_path: Path) -> RetrainStore:
    return RetrainStore.open(tmp_path / "monitor.db")


def dead_pid() -> int:
    """The pid of a process that was killed with SIGKILL (and reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.pid


def test_start_records_a_running_retrain_with_its_alarms_pid_and_host(
    store: RetrainStore,
) -> None:
    r = store.start(MODEL, "alarm", "server", [4, 3])
    assert r is not None and r.running and r.state == "running"
    assert (r.model_name, r.trigger, r.who, r.alarm_ids) == (MODEL, "alarm", "server", [3, 4])
    assert r.pid == os.getpid() and r.host and r.duration is None
    assert store.running(MODEL) == r and store.latest(MODEL) == r


def test_a_second_start_is_coalesced_into_the_running_one(store: RetrainStore) -> None:
    first = store.start(MODEL, "alarm", "server", [1])
    assert first is not None
    assert store.start(MODEL, "alarm", "server", [2, 1]) is None
    assert store.start(MODEL, "manual", "ana") is None
    running = store.running(MODEL)
    assert running is not None and running.id == first.id and running.alarm_ids == [1, 2]
    assert len(store.history(MODEL)) == 1


def test_finish_records_the_outcome_and_frees_the_model(store: RetrainStore) -> None:
    first = store.start(MODEL, "manual", "ana")
    assert first is not None
    done = store.finish(
        first.id,
        "passed",
        "better on recent traffic",
        parent_version="1",
        version="2",
        run_id="abc",
        bundle="/b/2",
        data_versions={"feedback": {"md5": "f" * 32, "rows": 200}},
        gate={"passed": True, "checks": []},
    )
    assert (done.state, done.reason, done.version, done.parent_version) == (
        "passed", "better on recent traffic", "2", "1",
    )  # fmt: skip
    assert done.data_versions == {"feedback": {"md5": "f" * 32, "rows": 200}}
    assert done.gate == {"passed": True, "checks": []} and done.duration is not None
    assert store.running(MODEL) is None
    second = store.start(MODEL, "manual", "ana")
    assert second is not None and second.id != first.id
    assert [r.id for r in store.history(MODEL)] == [second.id, first.id]
    assert store.set_rollout(first.id, 7).rollout_id == 7


def test_finish_rejects_unknown_states_fields_and_ids(store: RetrainStore) -> None:
    r = store.start(MODEL, "manual", "ana")
    assert r is not None
    with pytest.raises(RetrainError, match=r"finishes as one of .*not 'running'"):
        store.finish(r.id, "running")
    with pytest.raises(RetrainError, match=r"unknown retrain field\(s\) \['colour'\]"):
        store.finish(r.id, "error", colour="red")
    with pytest.raises(RetrainError, match="no retrain with id 99; run `mlcycle retrain history`"):
        store.finish(99, "error")
    with pytest.raises(RetrainError, match="trigger must be one of"):
        store.start(MODEL, "cron", "ana")


def test_two_threads_starting_at_once_start_exactly_one(store: RetrainStore) -> None:
    barrier = threading.Barrier(4)
    results: list[object] = []

    def start(alarm: int) -> None:
        barrier.wait()
        results.append(store.start(MODEL, "alarm", "server", [alarm]))

    threads = [threading.Thread(target=start, args=(i,)) for i in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [r for r in results if r is not None]
    assert len(results) == 4 and len(started) == 1
    running = store.running(MODEL)
    assert running is not None and running.alarm_ids == [1, 2, 3, 4]


def test_a_killed_retrain_is_marked_dead_on_the_next_start(tmp_path: Path) -> None:
    clock = Clock()
    store = RetrainStore(RetrainStore.open(tmp_path / "m.db").engine, clock=clock)
    pid = dead_pid()
    assert not pid_alive(pid)
    killed = store.start(MODEL, "alarm", "server", [1], pid=pid)
    assert killed is not None
    clock.now += 10  # older than stale_after
    fresh = store.start(MODEL, "manual", "ana")
    assert fresh is not None and fresh.id != killed.id
    dead = store.get(killed.id)
    assert dead.state == "error" and dead.reason.startswith("the retraining process died")
    assert f"pid {pid}" in dead.reason and dead.finished_at == clock.now


def test_a_dead_retrain_that_just_started_still_blocks(tmp_path: Path) -> None:
    clock = Clock()
    store = RetrainStore(RetrainStore.open(tmp_path / "m.db").engine, clock=clock)
    assert store.start(MODEL, "alarm", "server", pid=dead_pid()) is not None
    clock.now += 1  # its process may still be starting up
    assert store.start(MODEL, "manual", "ana") is None


def test_a_live_or_remote_retrain_is_never_marked_dead(tmp_path: Path) -> None:
    clock = Clock()
    store = RetrainStore(RetrainStore.open(tmp_path / "m.db").engine, clock=clock)
    live = store.start(MODEL, "manual", "ana")  # this very process
    assert live is not None
    clock.now += 3600
    assert store.start(MODEL, "manual", "ana") is None
    with store.engine.begin() as conn:  # a dead pid, but on another machine
        conn.execute(
            RETRAINS.update().where(RETRAINS.c.id == live.id).values(pid=dead_pid(), host="far")
        )
    assert store.start(MODEL, "manual", "ana") is None
    assert store.get(live.id).running


def test_a_killed_child_that_was_not_reaped_yet_counts_as_dead() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # a zombie now
        assert not pid_alive(proc.pid)
    finally:
        proc.wait()


def test_rows_of_other_models_do_not_block(store: RetrainStore) -> None:
    assert store.start("wine", "manual", "ana") is not None
    assert store.start("iris", "manual", "ana") is not None
    assert {r.model_name for r in store.history()} == {"wine", "iris"}
    with store.engine.connect() as conn:
        ids = conn.execute(sa.select(RETRAINS.c.alarm_ids)).scalars().all()
    assert [json.loads(i) for i in ids] == [[], []]
