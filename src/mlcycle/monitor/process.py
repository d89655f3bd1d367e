"""The monitor process: what a worker's :class:`~mlcycle.monitor.service.MonitorClient`
starts (``python -m mlcycle.monitor.process DATA CONTROL``).

It lowers its own priority (``SCHED_IDLE``), takes the worker's messages from the data
socket into a :class:`~mlcycle.monitor.live.LiveMonitor` (which logs, measures, tests
and alarms), and answers the worker's commands on the control socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from mlcycle.monitor.handover import chunk_of
from mlcycle.monitor.live import ModelFacts
from mlcycle.monitor.ring import PROBA, receive_views
from mlcycle.monitor.settings import MonitorSettings

__all__ = ["MONITOR_NICENESS", "PROCESS_NAME", "main"]

log = logging.getLogger("mlcycle.monitor")

#: Where the ``SCHED_IDLE`` policy is not available, the monitor process runs at this
#: niceness: when the CPU is short, the workers come first and the monitor catches up
#: later (its queues are bounded).
MONITOR_NICENESS = 10
#: The monitor process's name (``ps -o comm``, ``top``), on Linux.
PROCESS_NAME = "mlcycle-monitor"


def main(argv: Sequence[str] | None = None) -> None:  # pragma: no cover - the monitor process
    """Entry point of the monitor process: ``python -m mlcycle.monitor.process DATA CONTROL``.

    ``DATA`` and ``CONTROL`` are inherited socket file descriptors; the first message on
    ``CONTROL`` is ``(MonitorSettings, ModelFacts, server pid)``.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    data, control = Connection(int(args[0])), Connection(int(args[1]))
    try:
        settings, model, server_pid = control.recv()
    except (EOFError, OSError):
        return  # the worker went away before it said what to watch
    _monitor_main(settings, model, data, control, server_pid)


def _monitor_main(
    settings: MonitorSettings,
    model: ModelFacts,
    data: Connection,
    control: Connection,
    server_pid: int,
) -> None:  # pragma: no cover - runs in the monitor process (tested through the server)
    logging.basicConfig(level=logging.WARNING, format="mlcycle monitor: %(message)s")
    _name_process(PROCESS_NAME)
    _yield_to_serving()
    # A stop signal to the whole process group (Ctrl-C, systemd, docker stop) must not cut
    # the monitor short: it stops when its worker closes the socket, after writing it all.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from prometheus_client import CollectorRegistry

    from mlcycle.monitor.live import LiveMonitor
    from mlcycle.monitor.live_metrics import MonitorMetrics
    from mlcycle.monitor.store import connect
    from mlcycle.monitor.watch import build_watchers

    multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    registry = None if multiprocess else CollectorRegistry()
    metrics = MonitorMetrics(registry, model.version, settings.stage, server_pid=server_pid)
    engine = None
    if settings.store:
        try:
            engine = connect(settings.store)
        except Exception as exc:
            log.error("cannot open the store (%s); metrics and alarms only", exc)
    watchers = build_watchers(settings, model, engine, metrics)
    monitor = LiveMonitor(settings, model, metrics, engine=engine, watchers=watchers)

    # scipy (the drift tests) takes about a second of CPU to import: now, beside the
    # server's own start-up, rather than at the first window evaluation, under load.
    threading.Thread(target=_import_drift_tests, name="mlcycle-monitor-import", daemon=True).start()
    received = [0]  # messages taken from the data socket (flush waits for its count)
    threading.Thread(
        target=_answer_commands,
        args=(control, monitor, registry, received),
        name="mlcycle-monitor-control",
        daemon=True,
    ).start()
    raw = socket.socket(fileno=os.dup(data.fileno()))  # the rows after a message
    while True:
        try:
            message = data.recv()
            if message is None:
                break
            parts = message.pop("raw", None)
            if parts:
                arrays = receive_views(raw, parts)
                message["proba"] = arrays.pop(PROBA)
                message["inputs"].update(arrays)
        except (EOFError, OSError):
            break
        try:
            _unpack(message, monitor)
        except Exception:
            log.exception("unpacking a message failed")
        received[0] += 1
    monitor.close()


def _import_drift_tests() -> None:  # pragma: no cover - runs in the monitor process
    try:
        import scipy.spatial.distance
        import scipy.stats  # noqa: F401
    except Exception:  # imported again (and the error shown) where the tests need it
        log.debug("importing scipy ahead failed", exc_info=True)


def _answer_commands(
    control: Connection, monitor: Any, registry: Any, received: list[int]
) -> None:  # pragma: no cover - runs in the monitor process (tested through the server)
    """Answer the worker's commands (see :meth:`MonitorClient.ask`) until it goes away."""
    from prometheus_client import generate_latest

    while True:
        try:
            command, *args = control.recv()
        except (EOFError, OSError):
            return
        try:
            if command == "metrics":
                reply: Any = generate_latest(registry) if registry is not None else b""
            elif command == "flush":
                timeout, sent = float(args[0]), int(args[1])
                deadline = time.monotonic() + timeout
                while received[0] < sent and time.monotonic() < deadline:
                    time.sleep(0.005)
                left = max(0.1, deadline - time.monotonic())
                reply = received[0] >= sent and monitor.flush(left)
            elif command == "evaluate":
                result = monitor.evaluate_now()
                reply = [
                    {"name": m.name, "value": m.value, "samples": m.samples, "labels": m.labels}
                    for m in result.metrics
                ]
            elif command == "feedback":
                reply = monitor.poll_feedback()
            else:
                reply = None
            control.send(reply)
        except Exception:
            log.exception("answering %r failed", command)
            control.send(None)


def _name_process(name: str) -> None:  # pragma: no cover - runs in the monitor process
    """Set this process's name as ``ps`` and ``top`` show it (Linux; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _yield_to_serving() -> None:  # pragma: no cover - runs in the monitor process
    """Let the server's workers (and everything else) have the CPU first.

    Linux: the ``SCHED_IDLE`` policy (runs only when a core has nothing else to do, and
    never delays a waking worker); elsewhere: niceness :data:`MONITOR_NICENESS`.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(MONITOR_NICENESS)


def _unpack(message: dict[str, Any], monitor: Any) -> None:
    monitor.record_chunk(chunk_of(message))


if __name__ == "__main__":  # pragma: no cover - the monitor process
    main()
