"""Benchmark: the Lambda handler's cold start (fresh interpreter, import + bundle load).

Each repeat starts a fresh ``python`` that imports ``mlcycle.serve.lambda_handler`` with
``MLCYCLE_BUNDLE`` set, which loads and warms up the bundle at import as Lambda's init
phase would, then answers one ``/predict`` direct invocation. Reported, median over the
repeats:

* ``interpreter``: ``python -c pass``, the floor no handler can beat;
* ``process``: the whole child process, start to exit;
* ``import+load``: measured inside the child, from before the import to after it;
* ``load``: of that, verifying, loading and warming up the bundle (``load_seconds``);
* ``first predict``: the first invocation after the import.

Run: ``.venv/bin/python bench/lambda_cold_start.py [BUNDLE] [--repeats 7]``. Without a
bundle folder it trains the breast-cancer GBDT test bundle first (needs the train extra).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import time
t0 = time.perf_counter()
import mlcycle.serve.lambda_handler as h
t1 = time.perf_counter()
v = h._APP.model.validator
rows = [{f: 1.0 if v.kinds[f] == "numeric" else min(v.categories[f]) for f in v.features}]
doc = h.handler({"records": rows}, None)
t2 = time.perf_counter()
assert "predictions" in doc, doc
import json, sys
heavy = {"starlette", "uvicorn", "prometheus_client", "pandas", "sklearn", "mlflow", "torch"}
heavy = sorted(heavy & set(sys.modules))
print(json.dumps({"import_load": t1 - t0, "load": h._APP.model.load_seconds,
                  "first_predict": t2 - t1, "heavy": heavy}))
"""


def run_child(bundle: Path) -> dict[str, float]:
    """One fresh interpreter: its own timings plus the process wall time, in seconds."""
    env = {**os.environ, "MLCYCLE_BUNDLE": str(bundle)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"the handler failed in a fresh interpreter:\n{proc.stderr}")
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    if doc.pop("heavy"):
        raise SystemExit(f"the handler imported heavy modules: {proc.stdout}")
    return {**doc, "process": wall}


def interpreter_seconds() -> float:
    """Wall time of ``python -c pass``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def default_bundle(work: Path) -> Path:
    """The breast-cancer GBDT bundle the serving tests use, built into ``work``."""
    sys.path.insert(0, str(ROOT))
    from tests._bundles import build_bundle

    return build_bundle("cancer", work / "bundle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, help="bundle folder (default: build one)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.bundle is not None:
        report(args.bundle, args.repeats)
        return
    with tempfile.TemporaryDirectory(prefix="mlcycle-lambda-") as work:
        report(default_bundle(Path(work)), args.repeats)


def report(bundle: Path, repeats: int) -> None:
    """Measure ``repeats`` cold starts on ``bundle`` and print the medians."""
    run_child(bundle)  # warm the OS file cache, as a provisioned image would be
    runs = [run_child(bundle) for _ in range(repeats)]
    floor = statistics.median(interpreter_seconds() for _ in range(repeats))
    print(f"Lambda handler cold start, {bundle}, median of {repeats} fresh interpreters:")
    print(f"  {'interpreter (python -c pass)':<30}{floor * 1000:>8.0f} ms")
    for key, label in (
        ("process", "process (start to exit)"),
        ("import_load", "import+load"),
        ("load", "  of which bundle load+warm-up"),
        ("first_predict", "first predict (1 row)"),
    ):
        value = statistics.median(r[key] for r in runs)
        print(f"  {label:<30}{value * 1000:>8.1f} ms")


if __name__ == "__main__":
    main()
