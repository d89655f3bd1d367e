"""mlcycle.monitor.service: the monitor process a worker starts, and what it runs at."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mlcycle.monitor.service import MonitorClient
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.serve.app import monitor_facts
from mlcycle.serve.model import ServedModel
from mlcycle.serve.settings import ServeSettings

#: ``policy`` in /proc/PID/task/TID/stat (see sched(7)).
SCHED_IDLE = 5


def _policies(pid: int) -> dict[int, int]:
    """Scheduling policy of every thread of ``pid``."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        out[int(task.name)] = int(fields[38])  # field 41 of stat(5); 3 is fields[0]
    return out


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(os, "SCHED_IDLE"),
    reason="SCHED_IDLE is Linux's",
)
def test_every_thread_of_the_monitor_process_runs_at_idle_priority(
    mixed_bundle: Path, tmp_path: Path
) -> None:
    served = ServedModel.load(ServeSettings(bundle=str(mixed_bundle)))
    facts = monitor_facts(served)
    client = MonitorClient(MonitorSettings(store=str(tmp_path / "monitor.db")), facts)
    try:
        row = {"x0": 0.1, "color": "red", "x1": 1.0, "size": "M", "x2": -0.5}
        batch = served.validator.records([row])
        _, proba = served.predict(batch.inputs)
        client.record("r1", batch.inputs, proba, 0.001)
        assert client.flush(), "the monitor process did not write the request"
        # Its threads: the main one, the monitor thread, the prediction log's writer, the
        # command thread, and no BLAS pool started at the workers' priority.
        deadline = time.monotonic() + 10
        policies = _policies(client.process.pid)
        while len(policies) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
            policies = _policies(client.process.pid)
        assert len(policies) >= 4
        assert set(policies.values()) == {SCHED_IDLE}, policies
    finally:
        client.close()
    assert client.process.returncode == 0
