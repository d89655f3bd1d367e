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

With ``--image-context`` the child runs as in the Lambda image that ``mlcycle deploy
lambda`` builds: the image context is written, a fresh virtual environment gets exactly
its ``requirements.txt`` (from PyPI), and the child runs that environment's python with
the context's copy of mlcycle and bundle. The sizes of the context and of the installed
packages (the image's layers above ``python:3.11-slim``) are printed too.

Run: ``.venv/bin/python bench/lambda_cold_start.py [BUNDLE] [--repeats 7] [--image-context]``.
Without a bundle folder it trains the breast-cancer GBDT test bundle first (needs the
train extra).
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


def run_child(bundle: Path, python: str = sys.executable, path: str = "") -> dict[str, float]:
    """One fresh interpreter: its own timings plus the process wall time, in seconds."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLCYCLE_BUNDLE"] = str(bundle)
    if path:
        env["PYTHONPATH"] = path
    start = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", _CHILD], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"the handler failed in a fresh interpreter:\n{proc.stderr}")
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    if doc.pop("heavy"):
        raise SystemExit(f"the handler imported heavy modules: {proc.stdout}")
    return {**doc, "process": wall}


def interpreter_seconds(python: str = sys.executable) -> float:
    """Wall time of ``python -c pass``."""
    start = time.perf_counter()
    subprocess.run([python, "-c", "pass"], check=True)
    return time.perf_counter() - start


def folder_mb(folder: Path) -> float:
    """Size of the files under ``folder``, in MB."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def image_context(bundle: Path, work: Path) -> tuple[Path, str]:
    """Write the Lambda image context and its fresh venv; the context's bundle and python."""
    from mlcycle.deploy.context import write_lambda_context, write_server_context

    server = write_server_context(bundle, work / "server-context")
    ctx = write_lambda_context(bundle, work / "lambda-context")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-r", str(ctx.out / "requirements.txt")],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    site = next(venv.glob("lib/python*/site-packages"))
    print(
        f"server image context: {len(server.files)} files, {server.total_bytes / 1e6:.1f} MB, "
        f"{len(server.requirements)} pinned requirements"
    )
    print(
        f"Lambda image context: {len(ctx.files)} files, {ctx.total_bytes / 1e6:.1f} MB; its "
        f"{len(ctx.requirements)} requirements install {folder_mb(site):.0f} MB"
    )
    return ctx.out / "bundle", python


def default_bundle(work: Path) -> Path:
    """The breast-cancer GBDT bundle the serving tests use, built into ``work``."""
    sys.path.insert(0, str(ROOT))
    from tests._bundles import build_bundle

    return build_bundle("cancer", work / "bundle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", nargs="?", type=Path, help="bundle folder (default: build one)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--image-context",
        action="store_true",
        help="run in a fresh venv from the Lambda image context's requirements",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlcycle-lambda-") as tmp:
        work = Path(tmp)
        bundle = args.bundle if args.bundle is not None else default_bundle(work)
        if args.image_context:
            bundle, python = image_context(bundle, work)
            report(bundle, args.repeats, python, str(bundle.parent))
        else:
            report(bundle, args.repeats)


def report(bundle: Path, repeats: int, python: str = sys.executable, path: str = "") -> None:
    """Measure ``repeats`` cold starts on ``bundle`` and print the medians."""
    run_child(bundle, python, path)  # warm the OS file cache, as a provisioned image would be
    runs = [run_child(bundle, python, path) for _ in range(repeats)]
    floor = statistics.median(interpreter_seconds(python) for _ in range(repeats))
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
