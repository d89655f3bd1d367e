"""Loaded by the servers of ``bench/monitor_switch.py`` and ``bench/monitor_cycle.py`` only
(they put this folder first on their ``PYTHONPATH``): with ``MLCYCLE_BENCH_SWITCH`` set,
``MonitorClient.record`` does nothing until the process gets ``SIGUSR1``, which switches
it on (and off again, ...).
``MLCYCLE_BENCH_SWITCH=record`` switches the real ``record``; ``keep`` one that only keeps
each request's event (the tuple ``record`` queues, in a list emptied every
:data:`KEEP_EVENTS` requests; nothing handed over): the least any per-request log must do;
``none`` keeps it a no-op in both states (the control). Any other process ignores this file.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

#: Events the ``keep`` switch holds before it lets them go (about 1/3 s at saturation).
KEEP_EVENTS = 2048

_MODE = os.environ.get("MLCYCLE_BENCH_SWITCH", "")
_SERVER = False
if _MODE:
    with open("/proc/self/cmdline", "rb") as f:
        _SERVER = b"serve" in f.read().split(b"\0")
if _SERVER:
    from mlcycle.monitor import service as _service

    _on = [False]
    _real = _service.MonitorClient.record
    _kept: list[tuple[Any, ...]] = []

    def _switch(*_: Any) -> None:
        _on[0] = not _on[0]

    def _record(self: Any, *args: Any, **kwargs: Any) -> None:
        if not _on[0]:
            return
        if _MODE == "record":
            _real(self, *args, **kwargs)
        elif _MODE == "keep":
            request_id, inputs, proba, latency = args
            _kept.append(
                (time.time(), request_id, latency, 200, None, kwargs.get("arm"),
                 kwargs.get("pipeline_id"), kwargs.get("pipeline_latency"), inputs, proba)
            )  # fmt: skip
            if len(_kept) >= KEEP_EVENTS:
                _kept.clear()

    signal.signal(signal.SIGUSR1, _switch)
    _service.MonitorClient.record = _record  # type: ignore[method-assign]
