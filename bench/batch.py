"""Benchmark: ``mlcycle predict`` file scoring against in-process ``bundle.predict``.

In one run, so the ratios are fair on a shared machine:

1. trains a small bundle (``--bundle mixed``: numeric + categorical with missing values;
   ``cancer``: 30 numeric features) and writes ``--rows`` rows of synthetic input, in
   chunks, as CSV and Parquet into a temporary folder;
2. **in-process**: reads the Parquet file chunk by chunk, builds the model's arrays
   outside the timer and times only ``bundle.predict`` on them (the ceiling), with
   onnxruntime's default threads (all cores) and with the command's (all but one);
3. **file scoring**: runs the batch command (``mlcycle.batch.command.run``, local engine,
   no progress bar) in a fresh interpreter per format, which reports its rows/s and its
   peak RSS (``resource.getrusage``) before and after scoring;
4. with ``--ray``, the same for ``--engine ray`` (local Ray, ``--ray-cpus`` CPUs).

Prints rows/s, the file/in-process ratio (target: >= 0.70) and the RSS growth, which
stays at a few chunks whatever ``--rows`` is.

Run: ``.venv/bin/python bench/batch.py`` (5 million rows, a few minutes) or
``--rows 500000`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._bundles import build_bundle  # noqa: E402

from mlcycle.batch.command import default_threads  # noqa: E402
from mlcycle.bundle import Bundle  # noqa: E402

# Both measurements run in a fresh interpreter, so neither inherits this process's
# training thread pools or memory. Peak RSS is VmHWM from /proc (reset by exec, unlike
# ru_maxrss, which a child inherits from its parent on Linux), else ru_maxrss.
PEAK_RSS = """
import resource
def peak_rss_mb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

# The batch command as the CLI calls it: argv = bundle, then the command's arguments.
SCORE = (
    PEAK_RSS
    + """
import argparse, json, sys
from pathlib import Path
from mlcycle.batch.command import add_arguments, run
import mlcycle.batch.local, mlcycle.batch.ray_engine, mlcycle.bundle
parser = argparse.ArgumentParser()
add_arguments(parser)
ns = parser.parse_args(sys.argv[2:])
before = peak_rss_mb()
report = run(ns, Path(sys.argv[1]), "bench")
print(json.dumps({"rows": report.rows, "seconds": report.seconds,
                  "rss_before_mb": before, "rss_peak_mb": peak_rss_mb()}))
"""
)

# In-process ceiling: argv = bundle, parquet file, chunk rows, onnxruntime threads (0:
# onnxruntime's default, all cores). The model's arrays are built outside the timer;
# only bundle.predict is timed.
PREDICT = """
import json, sys, time
from mlcycle.batch.readers import ChunkSource
from mlcycle.batch.scoring import ChunkScorer, csv_column_types
from mlcycle.bundle import Bundle
bundle = Bundle.load(sys.argv[1], intra_op_threads=int(sys.argv[4]) or None)
scorer = ChunkScorer(bundle, [])
rows, seconds = 0, 0.0
types = csv_column_types(bundle)
with ChunkSource(__import__("pathlib").Path(sys.argv[2]), "parquet",
                 bundle.feature_names_used, types, int(sys.argv[3])) as source:
    for batch in source:
        inputs = scorer.inputs(batch)
        t = time.perf_counter()
        bundle.predict(inputs)
        seconds += time.perf_counter() - t
        rows += batch.num_rows
print(json.dumps({"rows": rows, "seconds": seconds}))
"""


def synthetic_batch(bundle: Bundle, start: int, rows: int, rng: np.random.Generator) -> pa.Table:
    """``rows`` rows of every feature of ``bundle`` (10% missing), plus ``row_id``."""
    columns: dict[str, Any] = {"row_id": pa.array(np.arange(start, start + rows))}
    for feature in bundle.signature["features"]:
        missing = rng.random(rows) < 0.1
        if feature.get("kind") == "categorical":
            choices = np.array([*feature.get("categories", []), "other"], dtype=object)
            values = choices[rng.integers(0, len(choices), rows)]
            columns[feature["name"]] = pa.array(values, type=pa.string(), mask=missing)
        else:
            values = rng.normal(10.0, 5.0, rows).round(4)
            columns[feature["name"]] = pa.array(values, mask=missing)
    return pa.table(columns)


def write_inputs(bundle: Bundle, folder: Path, rows: int, chunk: int = 500_000) -> list[Path]:
    """Write ``rows`` synthetic rows to ``input.csv`` and ``input.parquet``, in chunks."""
    rng = np.random.default_rng(0)
    schema = synthetic_batch(bundle, 0, 1, rng).schema
    csv_path, parquet_path = folder / "input.csv", folder / "input.parquet"
    with (
        pa_csv.CSVWriter(str(csv_path), schema) as csv_writer,
        pq.ParquetWriter(str(parquet_path), schema) as parquet_writer,
    ):
        for start in range(0, rows, chunk):
            table = synthetic_batch(bundle, start, min(chunk, rows - start), rng)
            csv_writer.write_table(table)
            parquet_writer.write_table(table)
    return [csv_path, parquet_path]


def child(code: str, args: list[str]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter with ``args``; return the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, cwd=ROOT
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["rows_per_second"] = result["rows"] / result["seconds"]
    return result


def file_scoring(bundle_path: Path, source: Path, out: Path, flags: list[str]) -> dict[str, Any]:
    """Run the batch command on ``source`` in a fresh interpreter; return its numbers."""
    args = [str(source), "-o", str(out), "--overwrite", "--no-progress", *flags]
    return child(SCORE, [str(bundle_path), *args])


def best_of(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs, with the highest peak RSS of them all."""
    best = dict(max(results, key=lambda r: r["rows_per_second"]))
    best["rss_peak_mb"] = max(r["rss_peak_mb"] for r in results)
    best["rss_before_mb"] = min(r["rss_before_mb"] for r in results)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--bundle", choices=("mixed", "cancer"), default="mixed")
    parser.add_argument("--repeats", type=int, default=2, help="best of N, interleaved")
    parser.add_argument("--threads", type=int, help="onnxruntime threads of the command")
    parser.add_argument("--ray", action="store_true", help="also time --engine ray")
    parser.add_argument("--ray-cpus", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlcycle-bench-") as tmp:
        folder = Path(tmp)
        bundle_path = build_bundle(args.bundle, folder / "bundle")
        csv_in, parquet_in = write_inputs(Bundle.load(bundle_path), folder, args.rows)
        sizes = ", ".join(
            f"{p.suffix[1:]} {p.stat().st_size / 1e6:,.0f} MB" for p in (csv_in, parquet_in)
        )
        print(f"{args.bundle} bundle, {args.rows:,} rows ({sizes}), chunks of {args.chunk_rows:,}")
        runs = [
            (csv_in, "csv", "local"),
            (csv_in, "parquet", "local"),
            (parquet_in, "parquet", "local"),
        ]
        if args.ray:
            runs += [(parquet_in, "parquet", "ray")]
        predict_args = [str(bundle_path), str(parquet_in), str(args.chunk_rows)]
        command_threads = args.threads or default_threads()
        ceiling: dict[int, list[dict[str, Any]]] = {0: [], command_threads: []}
        scored: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(runs))}
        for _ in range(args.repeats):
            for threads, results in ceiling.items():
                results.append(child(PREDICT, [*predict_args, str(threads)]))
            for i, (source, out_format, engine) in enumerate(runs):
                flags = ["--chunk-rows", str(args.chunk_rows), "--engine", engine]
                flags += ["--ray-cpus", str(args.ray_cpus)] if engine == "ray" else []
                flags += ["--threads", str(args.threads)] if args.threads else []
                out = folder / f"out.{out_format}"
                scored[i].append(file_scoring(bundle_path, source, out, flags))
        best = {t: max(r["rows_per_second"] for r in rs) for t, rs in ceiling.items()}
        for threads, value in best.items():
            label = f"{threads} onnxruntime threads" if threads else "default onnxruntime threads"
            print(f"in-process bundle.predict ({label}): {value:,.0f} rows/s")
        top = max(best.values())
        print(f"ratios below are against the faster: {top:,.0f} rows/s (best of {args.repeats})")
        for i, (source, out_format, engine) in enumerate(runs):
            r = best_of(scored[i])
            print(
                f"file {source.suffix[1:]:>7} -> {out_format:<7} [{engine}]: "
                f"{r['rows_per_second']:,.0f} rows/s ({r['seconds']:.1f} s), "
                f"ratio {r['rows_per_second'] / top:.2f} of in-process; "
                f"peak RSS {r['rss_peak_mb']:,.0f} MB "
                f"(+{r['rss_peak_mb'] - r['rss_before_mb']:,.0f} MB while scoring)"
            )
    print(f"benchmark took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
