"""Benchmark: a rollout's evidence (:func:`mlcycle.rollout.evidence.gather`) on a big log.

Fills a SQLite store with ``--requests`` requests of two rows each for the champion and
for a shadow (4 rows a request: 20,000 rows with the default 5,000), as the prediction
log stores them, then times ``gather(..., shadow=True)`` — per-arm requests, errors,
latencies, the class mix and the shadow's row-by-row comparison — against reading the
same rows with one plain ``SELECT`` (the floor: what any reader pays to get them).
The rollout controller gathers this on every analysis, so it must take well under the
one-second analysis interval.

Run: ``.venv/bin/python bench/rollout_evidence.py`` (a few seconds); ``--requests N``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.log_lookup import timed  # noqa: E402

from mlcycle.monitor.store import PREDICTION_COLUMNS, connect  # noqa: E402
from mlcycle.rollout.evidence import gather  # noqa: E402

MODEL = "bench-model"


def log_rows(requests: int, seed: int = 0) -> list[tuple[Any, ...]]:
    """``requests`` requests of two rows each for the champion and the shadow."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[Any, ...]] = []
    for i in range(requests):
        latency = float(rng.gamma(2.0, 5.0))
        for r in range(2):
            for arm in ("champion", "shadow"):
                p = float(rng.random())
                label = "a" if p > 0.5 else "b"
                probs = json.dumps({"a": p, "b": 1 - p})
                rows.append(
                    (f"q{i}", r, 1000.0 + i, MODEL, "1", arm, "", None, None, label, max(p, 1 - p),
                     probs, latency, None)
                )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5_000, help="requests in the log")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls of each")
    args = parser.parse_args()
    if args.requests < 1 or args.repeat < 1:
        parser.error("--requests and --repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="mlcycle-evidence-bench-") as tmp:
        engine = connect(Path(tmp) / "m.db")
        rows = log_rows(args.requests)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in PREDICTION_COLUMNS)})",
                rows,
            )

        def evidence() -> None:
            ev = gather(engine, model_name=MODEL, since=0.0, shadow=True)
            assert ev.champion.requests == args.requests
            assert ev.shadow is not None and ev.shadow.pairs == 2 * args.requests

        def plain_read() -> None:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT * FROM predictions").fetchall()

        evidence()  # one untimed call each: the compiled-statement caches are filled
        plain_read()
        took = timed(evidence, args.repeat)
        floor = timed(plain_read, args.repeat)
        engine.dispose()
    print(f"\n## Rollout evidence on {len(rows):,} logged rows ({datetime.date.today()})\n")
    print(
        f"- `gather(shadow=True)`: **{took * 1e3:.0f} ms** (median of {args.repeat}), "
        f"{len(rows) / took:,.0f} rows/s; target: well under the 1 s analysis interval"
    )
    print(
        f"- one plain `SELECT * FROM predictions`: {floor * 1e3:.0f} ms; "
        f"gather / plain read: **{took / floor:.1f}x**"
    )


if __name__ == "__main__":
    main()
