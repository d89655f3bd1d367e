"""Loaded by the servers of ``bench/monitor_switch.py`` and ``bench/monitor_cycle.py`` only
(they put this folder first on their ``PYTHONPATH``): with ``MLCYCLE_BENCH_SWITCH`` set,
``MonitorClient.record`` does nothing until the process gets ``SIGUSR1``, which switches
it on (and off again, ...).
``MLCYCLE_BENCH_SWITCH=record`` switches the real ``record``; ``none`` keeps it a no-op in
both states (the control). Any other process ignores this file.
"""

from __future__ import annotations

import os
import signal
from typing import Any

_MODE = os.environ.get("MLCYCLE_BENCH_SWITCH", "")
_SERVER = False
if _MODE:
    with open("/proc/self/cmdline", "rb") as f:
        _SERVER = b"serve" in f.read().split(b"\0")
if _SERVER:
    from mlcycle.monitor import service as _service

    _on = [False]
    _real = _service.MonitorClient.record

    def _switch(*_: Any) -> None:
        _on[0] = not _on[0]

    def _record(self: Any, *args: Any, **kwargs: Any) -> None:
        if _on[0] and _MODE == "record":
            _real(self, *args, **kwargs)

    signal.signal(signal.SIGUSR1, _switch)
    _service.MonitorClient.record = _record  # type: ignore[method-assign]
