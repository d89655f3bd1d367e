"""Adaptive micro-batching: concurrent requests share one onnxruntime call.

A request that arrives while the server is idle and alone runs at once, on the event loop:
batching would only add a thread hop. When other requests are in flight, requests queue
and one dispatcher runs them together in a worker thread (onnxruntime releases the GIL,
so the event loop keeps reading requests meanwhile); whatever queued during a call forms
the next batch, up to ``max_batch_rows``. If more requests are in flight than queued
(still being read), the dispatcher waits up to ``max_wait_ms`` for them.

If a merged call fails, each request is retried alone, so one request can never fail
another's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mlcycle.serve.settings import BatchingSettings
from mlcycle.serve.validation import FeatureBatch

__all__ = ["MicroBatcher", "Prediction"]

Prediction = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]
PredictFn = Callable[[Mapping[str, np.ndarray[Any, Any]]], Prediction]
_Item = tuple[FeatureBatch, "asyncio.Future[Prediction]"]


class MicroBatcher:
    """Groups concurrent :meth:`predict` calls into batched model calls.

    Parameters
    ----------
    predict
        The model: inputs → (labels ``[N]``, probabilities ``[N, C]``).
    settings
        ``enabled``, ``max_batch_rows``, ``max_wait_ms``.
    in_flight
        How many prediction requests the server is handling right now (read, queued or
        running); tells the batcher whether waiting can pay.
    on_batch
        Called with the row count of every model call (for the batch-size histogram).
    """

    def __init__(
        self,
        predict: PredictFn,
        settings: BatchingSettings,
        *,
        in_flight: Callable[[], int] = lambda: 1,
        on_batch: Callable[[int], None] = lambda rows: None,
    ) -> None:
        self._predict = predict
        self._settings = settings
        self._in_flight = in_flight
        self._on_batch = on_batch
        self._queue: list[_Item] = []
        self._busy = False
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    async def predict(self, batch: FeatureBatch) -> Prediction:
        """Labels and probabilities for ``batch``, computed alone or with others."""
        settings = self._settings
        if (
            not settings.enabled
            or batch.rows >= settings.max_batch_rows  # nothing to merge it with
            or (not self._busy and self._in_flight() <= 1)
        ):
            return self._run_now(batch)
        fut: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._queue.append((batch, fut))
        if not self._busy:
            self._busy = True
            self._task = asyncio.create_task(self._dispatch())
        return await fut

    def close(self) -> None:
        """Stop the worker thread (pending calls finish first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # -- internals ------------------------------------------------------------------

    def _run_now(self, batch: FeatureBatch) -> Prediction:
        self._on_batch(batch.rows)
        return self._predict(batch.inputs)

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mlcycle-batch")
        try:
            while self._queue:
                await self._gather_stragglers()
                items = self._take()
                merged = _merge([b for b, _ in items])
                self._on_batch(sum(b.rows for b, _ in items))
                try:
                    result = await loop.run_in_executor(self._executor, self._predict, merged)
                except Exception:
                    await self._one_by_one(items)
                    continue
                _deliver(items, result)
        finally:
            self._busy = False

    async def _gather_stragglers(self) -> None:
        wait = self._settings.max_wait_ms / 1000.0
        if wait <= 0:
            return
        deadline = time.perf_counter() + wait
        while (
            self._in_flight() > len(self._queue)
            and self._rows_queued() < self._settings.max_batch_rows
            and time.perf_counter() < deadline
        ):
            await asyncio.sleep(0)

    def _rows_queued(self) -> int:
        return sum(b.rows for b, _ in self._queue)

    def _take(self) -> list[_Item]:
        items = [self._queue.pop(0)]
        rows = items[0][0].rows
        limit = self._settings.max_batch_rows
        while self._queue and rows + self._queue[0][0].rows <= limit:
            item = self._queue.pop(0)
            items.append(item)
            rows += item[0].rows
        return items

    async def _one_by_one(self, items: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        for batch, fut in items:
            try:
                result = await loop.run_in_executor(self._executor, self._predict, batch.inputs)
            except Exception as exc:
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)


def _merge(batches: list[FeatureBatch]) -> dict[str, np.ndarray[Any, Any]]:
    if len(batches) == 1:
        return batches[0].inputs
    names = batches[0].inputs.keys()
    return {name: np.concatenate([b.inputs[name] for b in batches]) for name in names}


def _deliver(items: list[_Item], result: Prediction) -> None:
    labels, proba = result
    start = 0
    for batch, fut in items:
        end = start + batch.rows
        if not fut.done():
            fut.set_result((labels[start:end], proba[start:end]))
        start = end
