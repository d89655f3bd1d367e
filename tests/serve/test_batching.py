"""mlcycle.serve.batching: concurrent requests share model calls, a lone one runs at once,
and a failing merged call never fails the other requests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlcycle.serve.batching import MicroBatcher
from mlcycle.serve.settings import BatchingSettings
from mlcycle.serve.validation import FeatureBatch


class FakeModel:
    """Labels = the row's value as text; probability = the value. Records every call."""

    def __init__(self, seconds: float = 0.0, poison: float | None = None) -> None:
        self.calls: list[int] = []
        self.threads: set[str] = set()
        self.seconds = seconds
        self.poison = poison

    def __call__(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> tuple[Any, Any]:
        x = inputs["numeric"][:, 0]
        self.calls.append(len(x))
        self.threads.add(threading.current_thread().name)
        if self.poison is not None and self.poison in x:
            raise ValueError("poisoned row")
        time.sleep(self.seconds)
        return x.astype(str), np.stack([x, 1 - x], axis=1)


def batch(*values: float) -> FeatureBatch:
    arr = np.array([[v] for v in values], dtype=np.float32)
    return FeatureBatch({"numeric": arr}, len(values))


async def concurrently(
    batcher: MicroBatcher, batches: list[FeatureBatch], state: dict[str, int]
) -> list[Any]:
    async def one(b: FeatureBatch) -> Any:
        state["in_flight"] += 1
        try:
            await asyncio.sleep(0)  # reading the body yields to the event loop
            return await batcher.predict(b)
        except Exception as exc:
            return exc
        finally:
            state["in_flight"] -= 1

    return await asyncio.gather(*(one(b) for b in batches))


def make(model: FakeModel, state: dict[str, int], **settings: Any) -> MicroBatcher:
    sizes: list[int] = []
    b = MicroBatcher(
        model,
        BatchingSettings(**settings),
        in_flight=lambda: state["in_flight"],
        on_batch=sizes.append,
    )
    b.sizes = sizes  # type: ignore[attr-defined]
    return b


def test_concurrent_requests_are_grouped_and_each_gets_its_own_rows() -> None:
    model = FakeModel(seconds=0.01)
    state = {"in_flight": 0}
    batcher = make(model, state, max_batch_rows=64)
    batches = [batch(i / 100, i / 100 + 0.001) for i in range(40)]
    results = asyncio.run(concurrently(batcher, batches, state))
    batcher.close()
    assert len(model.calls) < 40, model.calls
    assert max(model.calls) > 2 and max(model.calls) <= 64
    assert sum(model.calls) == 80 and sum(batcher.sizes) == 80  # type: ignore[attr-defined]
    for b, (labels, proba) in zip(batches, results, strict=True):
        np.testing.assert_array_equal(proba[:, 0], b.inputs["numeric"][:, 0])
        assert labels.tolist() == b.inputs["numeric"][:, 0].astype(str).tolist()


def test_a_lone_request_runs_at_once_on_the_calling_thread() -> None:
    model = FakeModel()
    state = {"in_flight": 1}
    batcher = make(model, state)
    labels, _ = asyncio.run(batcher.predict(batch(0.5)))
    assert labels.tolist() == ["0.5"]
    assert model.threads == {threading.current_thread().name}


def test_batching_off_runs_every_request_alone() -> None:
    model = FakeModel()
    state = {"in_flight": 0}
    batcher = make(model, state, enabled=False)
    asyncio.run(concurrently(batcher, [batch(0.1), batch(0.2), batch(0.3)], state))
    assert model.calls == [1, 1, 1]


def test_a_failing_request_does_not_fail_the_requests_batched_with_it() -> None:
    model = FakeModel(seconds=0.005, poison=0.25)
    state = {"in_flight": 0}
    batcher = make(model, state)
    results = asyncio.run(
        concurrently(batcher, [batch(0.1), batch(0.25), batch(0.3), batch(0.4)], state)
    )
    batcher.close()
    assert isinstance(results[1], ValueError)
    for i in (0, 2, 3):
        assert not isinstance(results[i], Exception), results[i]
        assert results[i][1][0, 0] == np.float32([0.1, 0.25, 0.3, 0.4][i])


def test_max_batch_rows_caps_every_model_call() -> None:
    model = FakeModel(seconds=0.005)
    state = {"in_flight": 0}
    batcher = make(model, state, max_batch_rows=5)
    asyncio.run(concurrently(batcher, [batch(0.1, 0.2)] * 20, state))
    batcher.close()
    assert max(model.calls) <= 5 and sum(model.calls) == 40
