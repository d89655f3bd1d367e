"""Benchmark: finding logged predictions by request id in the packed prediction log.

``POST /feedback``, ``mlcycle feedback import`` and the monitor's online-quality join look
predictions up by request id. The log keeps them packed, one row of
``prediction_batches`` per hand-over (never a row per request), so no database index
finds an id. This benchmark fills a SQLite store with ``--requests`` one-row requests in
batches of ``--batch`` (30 numeric features each, as ``bench/serve.py``'s model), then
times, in one run, per look-up of 1 present id, 1 absent id and 100 present ids:

* **filters**: :func:`mlcycle.monitor.log_read.logged_labels` as mlcycle does it — the
  batches' Bloom filters, then only the batches they point to;
* **scan**: the same, but with every batch's request-id text read, split and checked to
  find the batches (what it did before the filters);
* **expanded**: the same ids after ``mlcycle monitor expand`` (the ``predictions``
  table's index on ``request_id``), with what expanding cost.

Run: ``.venv/bin/python bench/log_lookup.py`` (about a minute;
``--requests 1000000`` for a larger store).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from mlcycle.monitor import log_read  # noqa: E402
from mlcycle.monitor.log_batches import BatchModel, expand_batches, pack_batch  # noqa: E402
from mlcycle.monitor.log_read import logged_labels  # noqa: E402
from mlcycle.monitor.store import PREDICTION_BATCHES, connect  # noqa: E402

FEATURES = 30


def fill(engine: sa.Engine, requests: int, size: int) -> list[str]:
    """``requests`` one-row requests in batches of ``size``; their ids."""
    model = BatchModel("bench", "1", "", [f"f{i}" for i in range(FEATURES)], [], ["no", "yes"])
    rng = np.random.default_rng(0)
    ids = [uuid.uuid4().hex for _ in range(requests)]
    for start in range(0, requests, size):
        chunk = ids[start : start + size]
        n = len(chunk)
        packed = pack_batch(
            model,
            times=1000.0 + start + np.arange(n) * 0.001,
            request_ids=chunk,
            latency_s=np.full(n, 0.001),
            errors=[None] * n,
            arms=["champion"] * n,
            pipeline_ids=[None] * n,
            counts=np.ones(n, dtype=np.int32),
            keep=np.ones(n, dtype=np.bool_),
            numeric=rng.normal(size=(n, FEATURES)).astype(np.float32),
            categorical=np.empty((n, 0), dtype=object),
            proba=np.tile(np.array([[0.3, 0.7]], dtype=np.float32), (n, 1)),
        )
        with engine.begin() as conn:
            conn.execute(PREDICTION_BATCHES.insert(), [packed.values()])
    return ids


def scanning(conn: sa.Connection, wanted: Collection[str], model_version: str | None) -> list[int]:
    """The batches holding any of ``wanted``, by reading every batch's id text (what
    :func:`mlcycle.monitor.log_read.logged_labels` did before the filters)."""
    want = set(wanted)
    query = sa.select(PREDICTION_BATCHES.c.id, PREDICTION_BATCHES.c.request_ids)
    if model_version is not None:
        query = query.where(PREDICTION_BATCHES.c.model_version == model_version)
    return [bid for bid, text in conn.execute(query) if not want.isdisjoint(text.split("\n"))]


def by_scanning(conn: sa.Connection, wanted: list[str]) -> dict[tuple[str, int], str | None]:
    """:func:`logged_labels` with the batches found by :func:`scanning`."""
    with mock.patch.object(log_read, "_batches_holding", scanning):
        return logged_labels(conn, wanted)


def timed(call: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=500, help="requests per batch")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="mlcycle-lookup-") as tmp:
        engine = connect(Path(tmp) / "monitor.db")
        ids = fill(engine, args.requests, args.batch)
        cases = {
            "1 present id": [ids[int(rng.integers(len(ids)))]],
            "1 absent id": [uuid.uuid4().hex],
            "100 present ids": [ids[int(i)] for i in rng.integers(len(ids), size=100)],
        }
        results: dict[str, dict[str, float]] = {}
        with engine.connect() as conn:
            for name, wanted in cases.items():
                found = logged_labels(conn, wanted)
                assert found == by_scanning(conn, wanted), name
                assert len(found) == sum(1 for w in wanted if w in set(ids)), name
                results[name] = {
                    "filters": timed(partial(logged_labels, conn, wanted), args.repeat),
                    "scan": timed(partial(by_scanning, conn, wanted), args.repeat),
                }
        start = time.perf_counter()
        expand_batches(engine)
        expanding = time.perf_counter() - start
        with engine.connect() as conn:
            for name, wanted in cases.items():
                results[name]["expanded"] = timed(partial(logged_labels, conn, wanted), args.repeat)
        engine.dispose()
    print(f"\n## Look-ups by request id, {args.requests:,} requests in batches of {args.batch}\n")
    print("| look-up | filters (ms) | scan (ms) | scan / filters | expanded table (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['filters'] * 1e3:.2f} | {r['scan'] * 1e3:.1f} | "
            f"{r['scan'] / r['filters']:.0f}x | {r['expanded'] * 1e3:.2f} |"
        )
    print(
        f"\nExpanding the {args.requests:,} requests into the table took {expanding:.1f} s "
        f"({expanding / args.requests * 1e6:.0f} µs a row): what the table's index costs."
    )


if __name__ == "__main__":
    main()
