"""mlcycle.monitor.service: the monitor process a worker starts, and what it runs at."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mlcycle.monitor.log_read import snapshot, window_rows
from mlcycle.monitor.service import SEND_BUFFER_BYTES, MonitorClient
from mlcycle.monitor.settings import MonitorSettings
from mlcycle.monitor.store import connect
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


def _one_row(served: ServedModel) -> tuple[dict[str, Any], Any]:
    row = {"x0": 0.1, "color": "red", "x1": 1.0, "size": "M", "x2": -0.5}
    batch = served.validator.records([row])
    _, proba = served.predict(batch.inputs)
    return batch.inputs, proba


def _wait_sent(client: MonitorClient, count: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while client._sent < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return client._sent >= count


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
        inputs, proba = _one_row(served)
        client.record("r1", inputs, proba, 0.001)
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


def test_the_sender_goes_early_when_the_queue_holds_a_quarter_of_its_capacity(
    mixed_bundle: Path, tmp_path: Path
) -> None:
    served = ServedModel.load(ServeSettings(bundle=str(mixed_bundle)))
    # Only the queue can wake the sender within the test.
    settings = MonitorSettings(
        store=str(tmp_path / "monitor.db"), buffer_capacity=40, handover_interval=600.0
    )
    client = MonitorClient(settings, monitor_facts(served))
    try:
        inputs, proba = _one_row(served)
        for i in range(9):
            client.record(f"r{i}", inputs, proba, 0.001)
        assert not _wait_sent(client, 1, 0.5), "9 rows of a 40-row queue went before time"
        client.record("r9", inputs, proba, 0.001)  # 10 rows: a quarter
        assert _wait_sent(client, 1, 10), "a quarter-full queue was not handed over"
        assert client._queued == 0 and client.dropped == 0
    finally:
        client.close()


@pytest.mark.skipif(
    not Path("/proc/sys/net/core/wmem_max").exists(), reason="reads Linux's wmem_max"
)
def test_the_data_socket_has_room_for_a_whole_hand_over_as_far_as_the_kernel_allows(
    mixed_bundle: Path, tmp_path: Path
) -> None:
    served = ServedModel.load(ServeSettings(bundle=str(mixed_bundle)))
    client = MonitorClient(MonitorSettings(store=str(tmp_path / "m.db")), monitor_facts(served))
    try:
        cap = int(Path("/proc/sys/net/core/wmem_max").read_text())
        # Linux doubles what it grants (for its bookkeeping), up to wmem_max asked for.
        granted = client._raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert granted >= 2 * min(SEND_BUFFER_BYTES, cap)
    finally:
        client.close()


def test_flush_and_close_hand_over_at_once_without_waiting_for_the_next_send(
    mixed_bundle: Path, tmp_path: Path
) -> None:
    served = ServedModel.load(ServeSettings(bundle=str(mixed_bundle)))
    store = tmp_path / "monitor.db"
    settings = MonitorSettings(store=str(store), handover_interval=600.0)
    client = MonitorClient(settings, monitor_facts(served))
    inputs, proba = _one_row(served)
    try:
        client.record("before-flush", inputs, proba, 0.001)
        started = time.monotonic()
        assert client.flush(timeout=30), "flush did not hand the request over"
        client.record("before-close", inputs, proba, 0.001)
    finally:
        client.close(timeout=30)
    assert time.monotonic() - started < 60  # not handover_interval (600 s)
    assert client.process.returncode == 0
    engine = connect(str(store))
    try:
        with snapshot(engine) as conn:
            ids = {r.request_id for r in window_rows(conn, features=False)}
    finally:
        engine.dispose()
    assert ids == {"before-flush", "before-close"}
