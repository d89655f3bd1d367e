"""Benchmark: 512-row requests as Open Inference Protocol binary tensors vs in-process.

``bench/serve.py`` measures 512-row ``/predict`` bodies: JSON records, whose parsing and
checking alone take longer than the model. A client that sends a batch as a tensor
(``tritonclient`` with ``binary_data=True``) skips most of that. This script measures, in
one run, rows/s of ``POST /v2/models/{name}/infer`` with a 512 x 30 FP32 binary tensor
against ``mlcycle serve`` (1 and 2 workers) at concurrency 1 and 4, and in-process
``Bundle.predict`` rows/s on the same rows, and prints the ratio (target: >= 50 %).

Run: ``.venv/bin/python bench/serve_tensors.py [--duration 3]`` (needs ``wrk``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._load import run_load, wrk_path  # noqa: E402
from bench.serve import HOST, build_bundle, start_server, stop_all, timed_loop  # noqa: E402

from mlcycle.bundle import Bundle  # noqa: E402

ROWS = 512


def tensor_body(x: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An OIP infer request with ``x`` as a binary FP32 tensor, and its headers."""
    raw = x.astype("<f4").tobytes()
    head = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "numeric",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [
                {"name": "label", "parameters": {"binary_data": True}},
                {"name": "probabilities", "parameters": {"binary_data": True}},
            ],
        }
    )
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }
    return head + raw, headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per measurement")
    args = parser.parse_args()
    if wrk_path() is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-tensors-") as tmp:
        work = Path(tmp)
        bundle_path, rows = build_bundle(work / "bundle")
        bundle = Bundle.load(bundle_path, intra_op_threads=1)
        x = rows[bundle.feature_names_used].to_numpy(np.float32)
        x = np.resize(x, (ROWS, x.shape[1]))
        body, headers = tensor_body(x)
        inputs = {"numeric": x}
        timed_loop(lambda: bundle.predict(inputs), 0.2)
        results: dict[str, float] = {}
        try:
            for config in ("mlcycle-1", "mlcycle-2"):
                server = start_server(config, bundle_path, work)
                url = f"http://{HOST}:{server.port}/v2/models/breast_cancer/infer"
                for conns in (1, 4):
                    load = {"connections": conns, "threads": 1, "workdir": work}
                    run_load(url, body, duration=1, headers=headers, **load)  # warm-up
                    res = run_load(url, body, duration=args.duration, headers=headers, **load)
                    if res.errors:
                        raise RuntimeError(f"{config}: {res.errors} errors under load")
                    times = timed_loop(lambda: bundle.predict(inputs), 1.0)
                    ceiling = ROWS * len(times) / sum(times)
                    results[f"{config} c={conns}"] = res.rps * ROWS
                    results[f"in-process (next to {config} c={conns})"] = ceiling
                    share = res.rps * ROWS / ceiling
                    print(
                        f"{config:<10} c={conns}: {res.rps * ROWS:>9,.0f} rows/s, p50 "
                        f"{res.p50_ms:.2f} ms, p99 {res.p99_ms:.2f} ms; in-process "
                        f"{ceiling:,.0f} rows/s; share {share:.0%} (target >= 50%)",
                        flush=True,
                    )
                stop_all()
                time.sleep(0.5)
        finally:
            stop_all()
        print(json.dumps({k: round(v) for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
