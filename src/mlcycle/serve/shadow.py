"""Shadow traffic: the challenger answers mirrored requests off the request path.

The caller has already received the champion's answer when a request is mirrored. The
challenger's prediction runs in a thread of its own (onnxruntime releases the
interpreter lock while it computes) and is logged under the arm ``shadow`` with the
same request id, so analysis can pair it with the champion's row. At most ``limit``
mirrored requests wait at a time; more are dropped and counted, so a slow challenger
cannot pile up memory or slow the champion.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlcycle.serve.arms import Arm

__all__ = ["ShadowRunner"]

log = logging.getLogger("mlcycle.serve")


class ShadowRunner:
    """Runs mirrored predictions on a challenger, bounded, in one background thread.

    Parameters
    ----------
    limit
        Most mirrored requests waiting or running at once.
    """

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self.dropped = 0
        self.done = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def mirror(
        self,
        arm: Arm,
        request_id: str,
        inputs: dict[str, Any],
        *,
        pipeline_id: str | None = None,
        pipeline_latency: float | None = None,
    ) -> bool:
        """Queue ``inputs`` for ``arm``; ``False`` (and counted) when too many wait."""
        with self._lock:
            if self._pending >= self.limit:
                self.dropped += 1
                return False
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="mlcycle-shadow")
            executor = self._executor
        executor.submit(self._run, arm, request_id, inputs, pipeline_id, pipeline_latency)
        return True

    def close(self) -> None:
        """Finish what is queued and stop the thread."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _run(
        self,
        arm: Arm,
        request_id: str,
        inputs: dict[str, Any],
        pipeline_id: str | None,
        pipeline_latency: float | None,
    ) -> None:
        start = time.perf_counter()
        monitor = arm.monitor
        try:
            _, proba = arm.model.predict(inputs)
        except Exception as exc:  # a failing challenger is what shadow is for: log it
            if monitor is not None:
                monitor.record_error(
                    request_id,
                    500,
                    f"shadow prediction failed: {exc}",
                    time.perf_counter() - start,
                    arm="shadow",
                    pipeline_id=pipeline_id,
                    pipeline_latency=pipeline_latency,
                )
        else:
            if monitor is not None:
                monitor.record(
                    request_id,
                    inputs,
                    proba,
                    time.perf_counter() - start,
                    arm="shadow",
                    pipeline_id=pipeline_id,
                    pipeline_latency=pipeline_latency,
                )
        finally:
            with self._lock:
                self._pending -= 1
                self.done += 1
