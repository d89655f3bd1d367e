"""The monitor as a companion process of each server worker.

Logging every predicted row (features as JSON, a database insert) and testing drift cost
far more CPU than answering a one-row request, and in a thread of the server they would
take the interpreter lock from it. So each worker starts one monitor process
(:class:`MonitorClient`) and hands it what it predicted:

* the request path appends the request to a bounded queue (:meth:`MonitorClient.record`);
  a request of :data:`RING_MIN_ROWS` rows or more has its rows copied into a ring of
  arrays allocated once (:class:`~mlcycle.monitor.ring.RowRing`), the others keep a
  reference to their own arrays; when the queue is full the rows are dropped and
  counted, and the request goes on;
* a sender thread takes the queue once a second (``serve.monitor.handover_interval``;
  sooner when it holds a quarter of its capacity, or when asked to flush) and writes it
  to a socket as one message of columns (:func:`~mlcycle.monitor.handover.pack`): when
  the ring holds rows, they follow the message as raw views of the ring and of the other
  requests' arrays, neither joined nor pickled;
* the monitor process (:mod:`mlcycle.monitor.process`) unpacks each message into a
  :class:`~mlcycle.monitor.live.LiveMonitor`, which logs, measures, tests and alarms.

``GET /metrics`` shows the monitor's metrics: with one worker the server asks the monitor
process for its exposition text; with several, every process writes prometheus-client's
multiprocess files and the scrape merges them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from mlcycle.monitor.handover import pack
from mlcycle.monitor.images import image_stats
from mlcycle.monitor.live import ModelFacts
from mlcycle.monitor.process import PROCESS_NAME
from mlcycle.monitor.ring import RingRows, RowRing, send_views
from mlcycle.monitor.settings import MonitorSettings

__all__ = ["PROCESS_NAME", "MonitorClient"]

log = logging.getLogger("mlcycle.monitor")

#: The sender hands over every ``serve.monitor.handover_interval`` seconds, and early
#: once the queue holds this share of ``buffer_capacity`` rows, so that big requests
#: (512 rows at 130 requests/s are 66,000 rows/s) never fill it.
SEND_AT_SHARE = 0.25
#: Requests of this many rows or more are copied into the ring (:mod:`mlcycle.monitor.ring`);
#: smaller ones keep their own arrays until the hand-over. Measured at a fixed rate: the
#: ring saved the worker ~5 points of CPU at 512 rows a request and cost it ~3 at one
#: row (docs/benchmarks.md); in between it was not measured.
RING_MIN_ROWS = 64
#: The ring's size in bytes at most (2.6 MB for 20,000 rows of 30 numbers and 2 classes;
#: rows that find it full keep their own arrays).
RING_MAX_BYTES = 32 << 20
#: The socket send buffer the worker asks for (see ``MonitorClient.__init__``).
SEND_BUFFER_BYTES = 4 << 20
_REPLY_TIMEOUT = 5.0
#: The monitor process runs numpy on the calling thread only: a BLAS thread pool would
#: be started when numpy is imported, before the process lowers its priority, so its
#: threads would keep the workers' priority (and spin waiting for work beside them).
_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class MonitorClient:
    """A worker's handle on its monitor process.

    Parameters
    ----------
    settings
        The ``serve.monitor`` settings (``store`` already resolved).
    model
        The served model's facts.
    on_drop
        Called with the number of rows dropped because the queue was full.
    """

    def __init__(
        self,
        settings: MonitorSettings,
        model: ModelFacts,
        on_drop: Any = None,
    ) -> None:
        self.settings = settings
        self.capacity = settings.buffer_capacity
        self.dropped = 0
        self._on_drop = on_drop
        self._queue: deque[tuple[Any, ...]] = deque()
        self._queued = 0  # rows in the queue (a failed request counts 1): what is bounded
        self._send_every = settings.handover_interval
        self._send_at = max(1, int(self.capacity * SEND_AT_SHARE))
        self._send_now = threading.Event()  # wakes the sender before its interval is up
        self._blocks = [b for b, _, _ in model.blocks]
        self._images: tuple[str, ...] | None = None  # the inputs that are images
        # Made at the first answered request, from its dtypes; the inputs not in it
        # (object dtype) stay with the request in the queue.
        self._ring: RowRing | None = None
        self._outside: tuple[str, ...] = ()
        # A fresh interpreter (``python -m mlcycle.monitor.process``) on two socket pairs:
        # unlike multiprocessing's spawn it does not re-import the caller's __main__.
        data_parent, data_child = socket.socketpair()
        control_parent, control_child = socket.socketpair()
        fds = (data_child.fileno(), control_child.fileno())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlcycle.monitor.process", *map(str, fds)],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **_ONE_THREAD},
        )
        data_child.close()
        control_child.close()
        self._data = Connection(data_parent.detach())
        # The same socket, for the ring's rows (written after each message, no pickling).
        self._raw = socket.socket(fileno=os.dup(self._data.fileno()))
        # Room for a whole hand-over (20,000 rows of 30 numbers are 2.6 MB), so that the
        # sender writes it in one go instead of waking again each time the monitor has
        # read a part (the kernel caps the request at net.core.wmem_max; 208 KiB by
        # default on Linux, where a big hand-over still goes in several writes).
        self._raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        self._control = Connection(control_parent.detach())
        self._control_lock = threading.Lock()
        self._control.send((settings, model, os.getpid()))
        self._broken = False
        self._sending = False
        self._sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send_loop, name="mlcycle-monitor-send")
        self._thread.daemon = True
        self._thread.start()

    # -- the request path -------------------------------------------------------------

    def record(
        self,
        request_id: str,
        inputs: dict[str, np.ndarray[Any, Any]],
        proba: np.ndarray[Any, Any],
        latency: float,
        *,
        arm: str = "champion",
        pipeline_id: str | None = None,
        pipeline_latency: float | None = None,
    ) -> None:
        """Queue an answered request (never blocks)."""
        if self._queued >= self.capacity or self._broken:
            self._drop(len(proba))
            return
        self._queued += len(proba)
        if self._queued >= self._send_at and not self._send_now.is_set():
            self._send_now.set()
        if self._images is None:  # the first request says which inputs are images
            self._images = tuple(k for k, a in inputs.items() if a.ndim > 2)
            self._start_ring(inputs, proba)
        if self._images:  # send 2 numbers per image, not its pixels
            inputs = {k: image_stats(a) if a.ndim > 2 else a for k, a in inputs.items()}
        ring = self._ring
        rows = None if ring is None or len(proba) < RING_MIN_ROWS else ring.put(inputs, proba)
        if rows is not None:  # else the request keeps its own arrays
            inputs = {k: inputs[k] for k in self._outside}
        self._queue.append(
            (time.time(), request_id, latency, 200, None, arm, pipeline_id, pipeline_latency,
             inputs, proba if rows is None else rows)
        )  # fmt: skip

    def record_error(
        self,
        request_id: str,
        status: int,
        error: str,
        latency: float,
        *,
        arm: str = "champion",
        pipeline_id: str | None = None,
        pipeline_latency: float | None = None,
    ) -> None:
        """Queue a failed request (never blocks)."""
        if self._queued >= self.capacity or self._broken:
            self._drop(1)
            return
        self._queued += 1
        self._queue.append(
            (time.time(), request_id, latency, status, error, arm, pipeline_id, pipeline_latency,
             None, None)
        )  # fmt: skip

    def _start_ring(
        self, inputs: dict[str, np.ndarray[Any, Any]], proba: np.ndarray[Any, Any]
    ) -> None:
        """The ring for requests like this one: ``buffer_capacity`` rows, fewer for wide
        rows (at most :data:`RING_MAX_BYTES`)."""
        if self._images:
            inputs = {k: image_stats(a) if a.ndim > 2 else a for k, a in inputs.items()}
        row_bytes = proba[:1].nbytes + sum(
            a[:1].nbytes for a in inputs.values() if not a.dtype.hasobject
        )
        rows = min(self.capacity, max(4 * RING_MIN_ROWS, RING_MAX_BYTES // max(1, row_bytes)))
        try:
            self._ring = RowRing(rows, inputs, proba)
        except (ValueError, MemoryError) as exc:  # requests keep their own arrays
            log.warning("monitor: no ring for the rows (%s); joining them at each hand-over", exc)
            return
        self._outside = tuple(k for k in inputs if k not in self._ring.blocks)

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_drop is not None:
            self._on_drop(rows)

    # -- asking the monitor process -------------------------------------------------------

    def ask(self, command: str, *args: Any, timeout: float = _REPLY_TIMEOUT) -> Any:
        """Send ``command`` to the monitor process and return its answer (``None`` on timeout).

        Commands: ``metrics`` (exposition text, bytes), ``flush`` (``True`` when all sent
        so far is written), ``evaluate`` (the window's metrics now, as a list of dicts),
        ``feedback`` (look for new feedback in the store now).
        """
        if self.process.poll() is not None:
            return None
        with self._control_lock:
            try:
                self._control.send((command, *args))
                if self._control.poll(timeout):
                    return self._control.recv()
            except (OSError, EOFError):
                return None
        log.warning("monitor: no answer to %r within %.0f s", command, timeout)
        return None

    def flush(self, timeout: float = 10.0) -> bool:
        """Hand over everything queued and wait until the monitor has written it."""
        deadline = time.monotonic() + timeout
        self._send_now.set()
        while (self._queue or self._sending) and time.monotonic() < deadline:
            time.sleep(0.005)
        left = max(0.1, deadline - time.monotonic())
        # The two sockets do not keep order between them: say how many messages must be in.
        return bool(self.ask("flush", left, self._sent, timeout=left + 1.0))

    def close(self, timeout: float = 30.0) -> None:
        """Hand over what is queued, let the monitor write it, and stop the process."""
        deadline = time.monotonic() + timeout
        self._stop.set()  # the sender hands over what is queued, then stops
        self._send_now.set()
        while (self._queue or self._sending) and time.monotonic() < deadline:
            time.sleep(0.005)
        self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self._data.send(None)
        try:
            self.process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("monitor: the monitor process did not stop in time; terminating it")
            self.process.terminate()
            self.process.wait(5)
        self._data.close()
        self._raw.close()
        self._control.close()

    # -- the sender ---------------------------------------------------------------------

    def _send(self, message: dict[str, Any], views: list[memoryview], weight: int) -> None:
        try:
            self._data.send(message)
            if views:
                send_views(self._raw, views)
            self._sent += 1
        except (OSError, ValueError) as exc:  # the monitor process is gone
            if not self._broken:
                log.error("monitor: the monitor process is gone (%s); not monitoring", exc)
            self._broken = True
            self._drop(weight)

    def _send_loop(self) -> None:
        while not self._stop.is_set() or self._queue:
            if not self._stop.is_set():
                self._send_now.wait(self._send_every)
                self._send_now.clear()
            if not self._queue:
                continue
            self._sending = True
            items = [self._queue.popleft() for _ in range(len(self._queue))]
            end = -1
            try:
                message, views, end = pack(items, self._blocks, self._ring)
            except Exception:
                log.exception("monitor: packing %d requests failed", len(items))
                lost = sum(1 if item[-1] is None else len(item[-1]) for item in items)
                self._queued -= lost
                self._drop(lost)
                self._release(items)
                self._sending = False
                continue
            # Rows, a failed request counting 1. Taken off before sending: a request queued
            # meanwhile must not find the queue still full and wake the sender again.
            weight = int(np.maximum(message["rows"], 1).sum())
            self._queued -= weight
            try:
                self._send(message, views, weight)
            finally:
                if end >= 0 and self._ring is not None:
                    self._ring.release(end)
            self._sending = False

    def _release(self, items: list[tuple[Any, ...]]) -> None:
        """Free the ring rows of requests that will not be sent."""
        ends = [item[-1].end for item in items if isinstance(item[-1], RingRows)]
        if ends and self._ring is not None:
            self._ring.release(max(ends))
